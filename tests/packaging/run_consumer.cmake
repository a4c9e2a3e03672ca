# cmake -DNPA_MODE=find_package|add_subdirectory -DNPA_SOURCE_DIR=... -DNPA_WORK_DIR=...
#       -DNPA_CONSUMER_DIR=... -DNPA_VERSION=... [-DNPA_GENERATOR=... -DNPA_MAKE_PROGRAM=...
#       -DNPA_CXX_COMPILER=...] -P run_consumer.cmake
#
# Builds and runs the consumer in tests/packaging/consumer against npa, either from an
# install prefix (find_package) or from the source tree (add_subdirectory).
cmake_minimum_required(VERSION 3.21)

foreach(v NPA_MODE NPA_SOURCE_DIR NPA_WORK_DIR NPA_CONSUMER_DIR NPA_VERSION)
  if(NOT DEFINED ${v} OR "${${v}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer: -D${v}=... is required")
  endif()
endforeach()

# Runs a command; on failure prints what ran and stops.
function(npa_run)
  string(REPLACE ";" " " shown "${ARGN}")
  message(STATUS "run: ${shown}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "run_consumer (${NPA_MODE}): command failed (${rc}): ${shown}\n${out}")
  endif()
  set(npa_last_output "${out}" PARENT_SCOPE)
endfunction()

# Same generator and compiler as the outer build; no sanitizer or warning flags leak in,
# because each configure below starts from an empty cache.
set(tool_args -DCMAKE_BUILD_TYPE=Release)
if(NPA_GENERATOR)
  list(APPEND tool_args -G ${NPA_GENERATOR})
endif()
if(NPA_MAKE_PROGRAM)
  list(APPEND tool_args -DCMAKE_MAKE_PROGRAM=${NPA_MAKE_PROGRAM})
endif()
if(NPA_CXX_COMPILER)
  list(APPEND tool_args -DCMAKE_CXX_COMPILER=${NPA_CXX_COMPILER})
endif()

file(REMOVE_RECURSE ${NPA_WORK_DIR})
file(MAKE_DIRECTORY ${NPA_WORK_DIR})
set(consumer_build ${NPA_WORK_DIR}/consumer-build)

if(NPA_MODE STREQUAL "find_package")
  # 1. Configure npa as a user installing the core would: no tests, no platform adapters;
  #    the sim kit (header-only) is installed as the `sim` component.
  set(prefix ${NPA_WORK_DIR}/prefix)
  npa_run(${CMAKE_COMMAND} -S ${NPA_SOURCE_DIR} -B ${NPA_WORK_DIR}/npa-build ${tool_args}
          -DCMAKE_INSTALL_PREFIX=${prefix} -DNPA_BUILD_TESTS=OFF -DNPA_BUILD_BENCHMARKS=OFF
          -DNPA_BUILD_SIM=ON -DNPA_DPDK=OFF -DNPA_LINUX=OFF -DNPA_INSTALL=ON)
  # 2. Build (nothing to compile for a header-only core) and install into the prefix.
  npa_run(${CMAKE_COMMAND} --build ${NPA_WORK_DIR}/npa-build)
  npa_run(${CMAKE_COMMAND} --install ${NPA_WORK_DIR}/npa-build)
  # 3. The prefix holds the headers, the export sets and an architecture-independent
  #    version file.
  foreach(f include/npa/npa.hpp include/npa/sim/conformance.hpp
            include/npa/sim/conformance/kit.hpp
            share/cmake/npa/npa-config.cmake share/cmake/npa/npa-config-version.cmake
            share/cmake/npa/npa-targets.cmake share/cmake/npa/npa-sim-targets.cmake)
    if(NOT EXISTS ${prefix}/${f})
      message(FATAL_ERROR "run_consumer: install did not produce ${prefix}/${f}")
    endif()
  endforeach()
  # 4. The consumer finds npa in the prefix only.
  npa_run(${CMAKE_COMMAND} -S ${NPA_CONSUMER_DIR} -B ${consumer_build} ${tool_args}
          -DNPA_CONSUMER_MODE=find_package -DCMAKE_PREFIX_PATH=${prefix}
          -DNPA_EXPECTED_PREFIX=${prefix} -DNPA_EXPECTED_VERSION=${NPA_VERSION})
elseif(NPA_MODE STREQUAL "add_subdirectory")
  npa_run(${CMAKE_COMMAND} -S ${NPA_CONSUMER_DIR} -B ${consumer_build} ${tool_args}
          -DNPA_CONSUMER_MODE=add_subdirectory -DNPA_SOURCE_DIR=${NPA_SOURCE_DIR})
else()
  message(FATAL_ERROR "run_consumer: NPA_MODE must be find_package or add_subdirectory, "
                      "not '${NPA_MODE}'")
endif()

# 5. Build the consumer's whole default target: with add_subdirectory that includes
#    whatever npa adds to `all`, which must be nothing but the header-only targets.
npa_run(${CMAKE_COMMAND} --build ${consumer_build})
npa_run(${consumer_build}/npa_consumer)
if(NOT npa_last_output MATCHES "npa consumer: ok")
  message(FATAL_ERROR "run_consumer: unexpected consumer output:\n${npa_last_output}")
endif()
message(STATUS "run_consumer (${NPA_MODE}): ${npa_last_output}")
# 6. The plugin author's test: an out-of-tree plugin through the sim kit, no doctest.
npa_run(${consumer_build}/npa_kit_consumer)
if(NOT npa_last_output MATCHES "npa kit consumer: ok")
  message(FATAL_ERROR "run_consumer: unexpected kit consumer output:\n${npa_last_output}")
endif()
message(STATUS "run_consumer (${NPA_MODE}): ${npa_last_output}")
