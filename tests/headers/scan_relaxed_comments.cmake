# cmake -DNPA_INCLUDE_DIR=<include/npa> -P scan_relaxed_comments.cmake
#
# Fails when a header under NPA_INCLUDE_DIR uses std::memory_order_relaxed without a comment
# on the same line or on the line just above it. A relaxed access is right only when the
# value publishes nothing else (docs/design.md "Memory order"), and the comment says why
# this one qualifies: "own index", "a statistic", "published by the release on epoch_".
# A comment is `//` or `/*` anywhere on the line, or a line inside a block comment that
# starts with `*`.
cmake_minimum_required(VERSION 3.21)

if(NOT IS_DIRECTORY "${NPA_INCLUDE_DIR}")
  message(FATAL_ERROR "scan_relaxed_comments: NPA_INCLUDE_DIR='${NPA_INCLUDE_DIR}' is not a folder")
endif()

file(GLOB_RECURSE headers "${NPA_INCLUDE_DIR}/*.hpp" "${NPA_INCLUDE_DIR}/*.h")
list(SORT headers)
set(failures 0)
set(relaxed 0)
foreach(h IN LISTS headers)
  file(READ "${h}" text)
  if(NOT text MATCHES "memory_order_relaxed")
    continue()
  endif()
  # One list element per line: characters that CMake lists treat specially (`;` and the
  # brackets) are masked first, so that C++ lines split on newlines only.
  string(REPLACE ";" "<semi>" text "${text}")
  string(REPLACE "[" "<lb>" text "${text}")
  string(REPLACE "]" "<rb>" text "${text}")
  string(REPLACE "\\" "<bs>" text "${text}")
  string(REPLACE "\n" ";" lines "${text}")
  file(RELATIVE_PATH rel "${NPA_INCLUDE_DIR}/.." "${h}")
  set(prev "")
  set(n 0)
  foreach(line IN LISTS lines)
    math(EXPR n "${n} + 1")
    if(line MATCHES "memory_order_relaxed")
      math(EXPR relaxed "${relaxed} + 1")
      set(commented FALSE)
      foreach(l IN ITEMS "${line}" "${prev}")
        if(l MATCHES "//|/\\*|^[ \t]*\\*")
          set(commented TRUE)
        endif()
      endforeach()
      if(NOT commented)
        string(STRIP "${line}" shown)
        string(REPLACE "<semi>" ";" shown "${shown}")
        string(REPLACE "<lb>" "[" shown "${shown}")
        string(REPLACE "<rb>" "]" shown "${shown}")
        string(REPLACE "<bs>" "\\" shown "${shown}")
        message(SEND_ERROR "${rel}:${n}: memory_order_relaxed without a comment on its line "
                           "or the line above saying why relaxed is enough: ${shown}")
        math(EXPR failures "${failures} + 1")
      endif()
    endif()
    set(prev "${line}")
  endforeach()
endforeach()

list(LENGTH headers nh)
if(failures GREATER 0)
  message(FATAL_ERROR "scan_relaxed_comments: ${failures} of ${relaxed} lines with a relaxed "
                      "access in ${nh} headers have no comment")
endif()
message(STATUS "scan_relaxed_comments: ${relaxed} lines with a relaxed access in ${nh} headers, "
               "each with its comment")
