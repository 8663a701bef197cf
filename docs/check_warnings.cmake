# cmake -DLOG=<doxygen warnings file> -P check_warnings.cmake: fails, printing them, when Doxygen warned.
file(READ "${LOG}" warnings)
string(STRIP "${warnings}" warnings)
if(NOT warnings STREQUAL "")
  message(FATAL_ERROR "Doxygen warnings (fix them; the docs must build clean):\n${warnings}")
endif()
