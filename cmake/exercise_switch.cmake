# exercise_switch.cmake: -DLLM_EXERCISE_SWITCH=ON builds the switchable student tree in place.
#
# Each file that holds an exercise region is compiled from a copy in <build>/exercise_switch/
# written by `scripts/make_student_tree --switchable --exercise-files-only`: the copy differs from
# the checkout's file only by `#include "common/exercise.h"` and, at the start of each region,
#
#     if (llm::exercise_blanked("NAME")) throw llm::NotImplemented("NAME");
#
# With LLM_BLANK unset the solutions run as in the checkout, so one build serves both the test
# run and scripts/check_student_tree (LLM_BLANK=NAME makes it behave as the student tree of NAME;
# docs/INSTRUCTORS.md). Every other file is compiled from the checkout as usual. Each test also
# records the exercise regions it enters in <build>/exercise_traces/<test> (LLM_EXERCISE_TRACE; the
# folder must exist): scripts/test's run of every test then doubles as the check's traced run.
#
# The copies are rewritten at configure time and only when their content changes; editing a file
# with an exercise reconfigures (CMAKE_CONFIGURE_DEPENDS). An exercise in a header is refused: the
# copy would be seen only by the files that include it by a path relative to the copy.
#
# Call llm_exercise_switch() at the end of the top-level CMakeLists.txt, after every target exists.

option(LLM_EXERCISE_SWITCH "Build the files with exercises as the switchable student tree (LLM_BLANK)" OFF)

if(LLM_EXERCISE_SWITCH)
  # Every test records the exercise regions it (and what it starts) enters in
  # <build>/exercise_traces/<test>. CMake 3.25 cannot set a property of a test from another
  # folder's CMakeLists.txt, so add_test itself does it in this build. Each argument is passed on
  # as a bracket argument: one holding ';' (a list, e.g. "-DCMD=${cmd}") or nothing stays one.
  file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/exercise_traces)
  function(add_test)
    set(call "_add_test(")
    math(EXPR last "${ARGC} - 1")
    foreach(i RANGE ${last})
      string(APPEND call " [==[${ARGV${i}}]==]")
    endforeach()
    cmake_language(EVAL CODE "${call})")
    if(ARGV0 STREQUAL "NAME")
      set_property(TEST ${ARGV1} PROPERTY ENVIRONMENT_MODIFICATION
                   "LLM_EXERCISE_TRACE=set:${CMAKE_BINARY_DIR}/exercise_traces/${ARGV1}")
    endif()
  endfunction()
endif()

# Every directory below `dir` (itself included), for walking all targets.
function(_llm_directories dir out)
  set(all ${dir})
  get_property(subs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
  foreach(sub ${subs})
    _llm_directories(${sub} below)
    list(APPEND all ${below})
  endforeach()
  set(${out} ${all} PARENT_SCOPE)
endfunction()

function(llm_exercise_switch)
  if(NOT LLM_EXERCISE_SWITCH)
    return()
  endif()
  find_package(Python3 REQUIRED COMPONENTS Interpreter)
  set(copies ${CMAKE_BINARY_DIR}/exercise_switch)
  set(fresh ${CMAKE_BINARY_DIR}/exercise_switch.new)
  file(REMOVE_RECURSE ${fresh})
  execute_process(COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/make_student_tree ${fresh}
                          --switchable --exercise-files-only
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "LLM_EXERCISE_SWITCH: scripts/make_student_tree failed:\n${out}${err}")
  endif()
  file(GLOB_RECURSE made RELATIVE ${fresh} ${fresh}/*)
  # Copy only what changed, so that a reconfigure recompiles only edited exercise files.
  file(GLOB_RECURSE old RELATIVE ${copies} ${copies}/*)
  foreach(rel ${old})
    if(NOT rel IN_LIST made)
      file(REMOVE ${copies}/${rel})
    endif()
  endforeach()
  set(switched "")
  foreach(rel ${made})
    if(NOT rel MATCHES "\\.(cpp|cc|cu)$")
      message(FATAL_ERROR "LLM_EXERCISE_SWITCH: ${rel} holds an exercise but is not a source file "
                          "(an exercise in a header is not supported by cmake/exercise_switch.cmake)")
    endif()
    get_filename_component(parent ${copies}/${rel} DIRECTORY)
    file(MAKE_DIRECTORY ${parent})
    file(COPY_FILE ${fresh}/${rel} ${copies}/${rel} ONLY_IF_DIFFERENT)
    set_property(DIRECTORY ${PROJECT_SOURCE_DIR} APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/${rel})
    list(APPEND switched ${rel})
  endforeach()
  file(REMOVE_RECURSE ${fresh})

  # Each target's sources: an exercise file is replaced by its copy, which finds its neighbours
  # (#include "x.h" next to it) through the original folder (-iquote).
  _llm_directories(${PROJECT_SOURCE_DIR} dirs)
  set(used "")
  foreach(dir ${dirs})
    get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
    foreach(target ${targets})
      get_target_property(type ${target} TYPE)
      if(type STREQUAL "INTERFACE_LIBRARY")
        continue()
      endif()
      get_target_property(sources ${target} SOURCES)
      get_target_property(source_dir ${target} SOURCE_DIR)
      set(changed FALSE)
      set(new_sources "")
      foreach(src ${sources})
        set(abs ${src})
        if(NOT src MATCHES "^\\$<" AND NOT IS_ABSOLUTE ${src})
          set(abs ${source_dir}/${src})
        endif()
        file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR} ${abs})
        if(rel IN_LIST switched)
          get_filename_component(original_dir ${abs} DIRECTORY)
          # The original's own properties (kernels/: -ffp-contract=off on quantize.cpp) go with it.
          foreach(prop COMPILE_OPTIONS COMPILE_DEFINITIONS COMPILE_FLAGS INCLUDE_DIRECTORIES
                       OBJECT_DEPENDS SKIP_PRECOMPILE_HEADERS SKIP_UNITY_BUILD_INCLUSION)
            get_source_file_property(value ${abs} TARGET_DIRECTORY ${target} ${prop})
            if(NOT value STREQUAL "NOTFOUND")
              set_property(SOURCE ${copies}/${rel} TARGET_DIRECTORY ${target} PROPERTY ${prop} ${value})
            endif()
          endforeach()
          if(rel MATCHES "\\.cu$")
            set_property(SOURCE ${copies}/${rel} TARGET_DIRECTORY ${target}
                         APPEND PROPERTY INCLUDE_DIRECTORIES ${original_dir})
          else()  # -iquote: only #include "..." looks there, as it looked next to the original
            set_property(SOURCE ${copies}/${rel} TARGET_DIRECTORY ${target}
                         APPEND PROPERTY COMPILE_OPTIONS -iquote${original_dir})
          endif()
          list(APPEND new_sources ${copies}/${rel})
          list(APPEND used ${rel})
          set(changed TRUE)
        else()
          list(APPEND new_sources ${src})
        endif()
      endforeach()
      if(changed)
        set_property(TARGET ${target} PROPERTY SOURCES ${new_sources})
      endif()
    endforeach()
  endforeach()
  list(LENGTH switched n)
  message(STATUS "Exercise switch: ${n} files with exercises compiled from ${copies} (LLM_BLANK=NAME blanks NAME)")
  foreach(rel ${switched})
    if(NOT rel IN_LIST used)
      # A file of a target this build skips (stage 07 without MPI, a .cu without CUDA): nothing to do.
      message(STATUS "Exercise switch: ${rel} is in no target of this build")
    endif()
  endforeach()
endfunction()
