# cmake -DNPA_INCLUDE_DIR=<include/npa> -P scan_no_exceptions.cmake
#
# Fails when a header under NPA_INCLUDE_DIR uses throw, try, catch, typeid or dynamic_cast
# in code (comments and string literals are ignored). The core is built for kernels and
# exception-free embedders (DESIGN.md section 6, STYLE.md point 6).
cmake_minimum_required(VERSION 3.21)

if(NOT IS_DIRECTORY "${NPA_INCLUDE_DIR}")
  message(FATAL_ERROR "scan_no_exceptions: NPA_INCLUDE_DIR='${NPA_INCLUDE_DIR}' is not a folder")
endif()

set(forbidden throw try catch typeid dynamic_cast)
set(word "[A-Za-z0-9_]")

file(GLOB_RECURSE headers "${NPA_INCLUDE_DIR}/*.hpp" "${NPA_INCLUDE_DIR}/*.h")
list(SORT headers)
set(failures 0)
foreach(h IN LISTS headers)
  file(READ "${h}" text)
  # Order matters: character literals, then string literals (neither crosses a line), then
  # comments. Newlines are kept so that reported line numbers stay right.
  string(REGEX REPLACE "'([^'\\\\\n]|\\\\.)'" "' '" text "${text}")
  string(REGEX REPLACE "\"([^\"\\\\\n]|\\\\.)*\"" "\"\"" text "${text}")
  string(REGEX REPLACE "//[^\n]*" "" text "${text}")
  string(REGEX REPLACE "/\\*([^*]|\\*+[^*/])*\\*+/" " " text "${text}")
  foreach(kw IN LISTS forbidden)
    string(REGEX MATCH "(^|[^A-Za-z0-9_])${kw}([^A-Za-z0-9_]|$)" hit "${text}")
    if(hit)
      string(FIND "${text}" "${hit}" pos)
      string(SUBSTRING "${text}" 0 ${pos} before)
      string(REGEX MATCHALL "\n" newlines "${before}")
      list(LENGTH newlines line)
      math(EXPR line "${line} + 1")
      if(hit MATCHES "^\n")
        math(EXPR line "${line} + 1")
      endif()
      file(RELATIVE_PATH rel "${NPA_INCLUDE_DIR}/.." "${h}")
      message(SEND_ERROR "${rel}:${line}: '${kw}' in a core header; "
                         "npa's core builds with -fno-exceptions -fno-rtti: return npa::status "
                         "or npa::result on the control path, counts on the data path")
      math(EXPR failures "${failures} + 1")
    endif()
  endforeach()
endforeach()

list(LENGTH headers n)
if(failures GREATER 0)
  message(FATAL_ERROR "scan_no_exceptions: ${failures} problem(s) in ${n} headers")
endif()
message(STATUS "scan_no_exceptions: ${n} headers, no exceptions or RTTI in code")
