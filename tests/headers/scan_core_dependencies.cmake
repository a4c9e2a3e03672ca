# cmake -DNPA_INCLUDE_DIR=<include/npa> -P scan_core_dependencies.cmake
#
# Fails when a core header includes anything but npa's own headers, the C++ standard
# library and header-only Boost (DESIGN.md section 2: the core depends on nothing else).
# The one exception is npa/fmt.hpp, the optional {fmt} formatters, which no other core
# header may include.
# Contracts depend on vocabulary, never on an implementation: a header under npa/concepts/
# includes other concepts and the vocabulary headers (config, status, control, capabilities,
# stats, offload), not buffers, rings, plugins, the shell or detail/ (STYLE.md point 1).
cmake_minimum_required(VERSION 3.21)

if(NOT IS_DIRECTORY "${NPA_INCLUDE_DIR}")
  message(FATAL_ERROR "scan_core_dependencies: NPA_INCLUDE_DIR='${NPA_INCLUDE_DIR}' is not a folder")
endif()

file(GLOB_RECURSE headers "${NPA_INCLUDE_DIR}/*.hpp" "${NPA_INCLUDE_DIR}/*.h")
list(SORT headers)
set(failures 0)
foreach(h IN LISTS headers)
  file(RELATIVE_PATH rel "${NPA_INCLUDE_DIR}/.." "${h}")
  if(rel STREQUAL "npa/fmt.hpp")
    continue()
  endif()
  file(STRINGS "${h}" includes REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]")
  foreach(line IN LISTS includes)
    string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*[<\"]([^>\"]*)[>\"].*" "\\1" what "${line}")
    if(rel MATCHES "^npa/concepts/" AND what MATCHES "^npa/" AND
       NOT what MATCHES "^npa/(concepts/[a-z_]+|config|status|control|capabilities|stats|offload)[.]hpp$")
      message(SEND_ERROR "${rel}: includes <${what}>; a concept includes only other concepts "
                         "and vocabulary headers, never an implementation")
      math(EXPR failures "${failures} + 1")
    endif()
    if(what STREQUAL "npa/fmt.hpp")
      message(SEND_ERROR "${rel}: includes npa/fmt.hpp; only programs that print include it")
      math(EXPR failures "${failures} + 1")
    elseif(what MATCHES "^(npa|boost)/")
      # npa's own headers and header-only Boost
    elseif(what MATCHES "^[a-z_]+$")
      # the C++ standard library (<cstdint>, <span>, <atomic>, ...)
    else()
      message(SEND_ERROR "${rel}: includes <${what}>, which is neither npa, the C++ standard "
                         "library nor header-only Boost")
      math(EXPR failures "${failures} + 1")
    endif()
  endforeach()
endforeach()

list(LENGTH headers n)
if(failures GREATER 0)
  message(FATAL_ERROR "scan_core_dependencies: ${failures} problem(s) in ${n} headers")
endif()
message(STATUS "scan_core_dependencies: ${n} headers, standard library and Boost only")
