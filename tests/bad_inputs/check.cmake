# One bad-input case: runs CMD (a ;-list) for at most LIMIT seconds and checks that
#   - the exit code is EXPECT_CODE (2 for refused input, 0 for a batch that refuses one request);
#   - with code 2: stderr has exactly one line starting with "error:", and that line contains
#     every string in EXPECT_TEXT (|-separated: the file or flag, the field, the value), or with
#     -DTEXT_ANYWHERE=ON the output does (tests/cli/expect.cmake, whose texts may be elsewhere);
#   - with code 0: the output (stdout + stderr) contains every string in EXPECT_TEXT;
#   - no sanitizer report, no uncaught exception, no crash, and it did not hang.
# Usage: cmake -DCMD=... -DEXPECT_CODE=2 -DEXPECT_TEXT=a|b -DLIMIT=20 -P check.cmake
if(NOT LIMIT)
  set(LIMIT 20)
endif()
execute_process(COMMAND ${CMD} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT ${LIMIT})
set(all "${out}${err}")
string(REPLACE "|" ";" EXPECT_TEXT "${EXPECT_TEXT}")
string(LENGTH "${out}" out_len)
if(out_len GREATER 4000)  # a case's stdout is only interesting near its end
  math(EXPR from "${out_len} - 4000")
  string(SUBSTRING "${out}" ${from} -1 out)
endif()
if(NOT rc MATCHES "^[0-9]+$")
  message(FATAL_ERROR "did not finish normally within ${LIMIT} s: ${rc}\n--- stdout:\n${out}\n--- stderr:\n${err}")
endif()
foreach(bad "AddressSanitizer" "runtime error:" "LeakSanitizer" "terminate called" "Segmentation" "internal error")
  string(FIND "${all}" "${bad}" at)
  if(NOT at EQUAL -1)
    message(FATAL_ERROR "output mentions '${bad}'\n--- stdout:\n${out}\n--- stderr:\n${err}")
  endif()
endforeach()
if(NOT rc STREQUAL EXPECT_CODE)
  message(FATAL_ERROR "exit code ${rc}, expected ${EXPECT_CODE}\n--- stdout:\n${out}\n--- stderr:\n${err}")
endif()
set(where "${all}")
if(EXPECT_CODE EQUAL 2)
  # Count the line starts only: a message may hold ";", which a CMake list would split at.
  string(REGEX MATCHALL "(^|\n)error:" errors "${err}")
  list(LENGTH errors n)
  if(NOT n EQUAL 1)
    message(FATAL_ERROR "expected exactly one 'error:' line, got ${n}\n--- stderr:\n${err}")
  endif()
  if(NOT TEXT_ANYWHERE)
    string(REGEX MATCH "(^|\n)error:[^\n]*" where "${err}")
  endif()
endif()
foreach(text IN LISTS EXPECT_TEXT)
  string(FIND "${where}" "${text}" at)
  if(at EQUAL -1)
    if(EXPECT_CODE EQUAL 2 AND NOT TEXT_ANYWHERE)
      message(FATAL_ERROR "the error line lacks \"${text}\":\n${where}")
    endif()
    message(FATAL_ERROR "output lacks \"${text}\"\n--- stdout:\n${out}\n--- stderr:\n${err}")
  endif()
endforeach()
message(STATUS "ok: exit ${rc}")
