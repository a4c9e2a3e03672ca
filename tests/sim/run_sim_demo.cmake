# Runs npa-sim-demo and checks its outcome: exit status 0, and the summary says every
# buffer is accounted for, the device caught no driver error and nothing was duplicated
# or reordered either way. Usage: cmake -DDEMO=<path to npa-sim-demo> -P run_sim_demo.cmake
execute_process(COMMAND ${DEMO} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "npa-sim-demo exited with ${rc}")
endif()
foreach(line
    "buffers: ([0-9]+) total, ([0-9]+) in the pool, 0 with the caller, 0 with the plugin: all accounted for"
    "device violations: 0   shell API errors: 0"
    "guest -> host: sent +[1-9][0-9]* +received +[1-9][0-9]* .*duplicated 0  reordered 0"
    "host -> guest: sent +[1-9][0-9]* +received +[1-9][0-9]* .*duplicated 0  reordered 0"
    "\\[phase 4\\] clean traffic again")
  if(NOT out MATCHES "${line}")
    message(FATAL_ERROR "npa-sim-demo: the output has no line matching '${line}'")
  endif()
endforeach()
if(out MATCHES "buffers: ([0-9]+) total, ([0-9]+) in the pool" AND NOT CMAKE_MATCH_1 EQUAL CMAKE_MATCH_2)
  message(FATAL_ERROR "npa-sim-demo: ${CMAKE_MATCH_2} of ${CMAKE_MATCH_1} buffers back in the pool")
endif()
