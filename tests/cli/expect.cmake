# Runs CMD (a ;-list) and checks its exit code is EXPECT_CODE and that its output contains every
# string in EXPECT_TEXT (a |-separated list). For bad input it also checks there is exactly one "error:"
# line; always: no sanitizer report, no uncaught exception, no crash, done within 300 s.
# Usage: cmake -DCMD=... -DEXPECT_CODE=2 -DEXPECT_TEXT=... -P expect.cmake
# The checks are the bad-input suite's (tests/bad_inputs/check.cmake), with the texts allowed
# anywhere in the output.
set(TEXT_ANYWHERE ON)
if(NOT LIMIT)
  set(LIMIT 300)
endif()
include(${CMAKE_CURRENT_LIST_DIR}/../bad_inputs/check.cmake)
