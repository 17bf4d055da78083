# Included by CMake right after project() in mimalloc-bench's
# bench/CMakeLists.txt (bench/mimalloc-bench passes
# -DCMAKE_PROJECT_INCLUDE=<this file>); the checkout is not modified.
#
# mimalloc-bench's CMakeLists lists executables whose sources its own
# build script downloads (shbench/sh6bench-new.c, shbench/sh8bench-new.c),
# so a plain checkout does not configure. This file leaves out every
# executable with a missing source, and the target_* calls on it, instead
# of failing. It writes the executables it defined to mbench-targets.txt
# and the ones it left out (with the first missing file) to
# mbench-skipped.txt in the build directory, for the driver to read.
include_guard(GLOBAL)

set(_mbench_targets "${CMAKE_BINARY_DIR}/mbench-targets.txt")
set(_mbench_skipped "${CMAKE_BINARY_DIR}/mbench-skipped.txt")
file(WRITE "${_mbench_targets}" "")
file(WRITE "${_mbench_skipped}" "")
set_property(GLOBAL PROPERTY MBENCH_SKIPPED "")

function(add_executable name)
  set(missing "")
  foreach(arg IN LISTS ARGN)
    if(arg MATCHES "^(WIN32|MACOSX_BUNDLE|EXCLUDE_FROM_ALL|IMPORTED|GLOBAL|ALIAS)$"
       OR arg MATCHES "^\\$<")
      continue()
    endif()
    if(IS_ABSOLUTE "${arg}")
      set(path "${arg}")
    else()
      set(path "${CMAKE_CURRENT_SOURCE_DIR}/${arg}")
    endif()
    if(NOT EXISTS "${path}")
      set(missing "${arg}")
      break()
    endif()
  endforeach()
  if(missing STREQUAL "" OR "IMPORTED" IN_LIST ARGN OR "ALIAS" IN_LIST ARGN)
    _add_executable(${name} ${ARGN})
    file(APPEND "${_mbench_targets}" "${name}\n")
  else()
    message(STATUS "mimalloc-bench driver: leaving out ${name} (no ${missing})")
    file(APPEND "${_mbench_skipped}" "${name} ${missing}\n")
    set_property(GLOBAL APPEND PROPERTY MBENCH_SKIPPED "${name}")
  endif()
endfunction()

# The target_* commands mimalloc-bench uses: ignored for a left-out target.
macro(_mbench_skip_if_left_out name)
  get_property(_mbench_left_out GLOBAL PROPERTY MBENCH_SKIPPED)
  if(NOT TARGET ${name} AND "${name}" IN_LIST _mbench_left_out)
    return()
  endif()
endmacro()

function(target_link_libraries name)
  _mbench_skip_if_left_out(${name})
  _target_link_libraries(${name} ${ARGN})
endfunction()

function(target_compile_options name)
  _mbench_skip_if_left_out(${name})
  _target_compile_options(${name} ${ARGN})
endfunction()

function(target_compile_definitions name)
  _mbench_skip_if_left_out(${name})
  _target_compile_definitions(${name} ${ARGN})
endfunction()

function(target_include_directories name)
  _mbench_skip_if_left_out(${name})
  _target_include_directories(${name} ${ARGN})
endfunction()
