# npa-demo's guest is built without a VF plugin: every VF plugin it runs arrives from a
# hypervisor as an image. Checked on the binary's symbols (nm -C): nothing instantiated for
# npa::igbvf_plugin (the plugin's own members, and the shell's code for a shell that holds
# it, npa::shell<..., npa::igbvf_plugin, ...>, both name it). The VF's device model
# (npa::sim::igbvf_device: the hypervisor's side) must be there, as the demo still has the VF.
# CONTROL is a binary of the same world with the VF plugin compiled in: the check must
# find it there, or it could not fail.
#   cmake -DNM=<nm> -DDEMO=<npa-demo> -DCONTROL=<binary> -P check_demo_plugins.cmake
cmake_minimum_required(VERSION 3.21)

# count_symbols(<out var> <binary> <regex>): defined or referenced symbols matching regex.
function(count_symbols out bin regex)
  execute_process(COMMAND ${NM} -C ${bin} RESULT_VARIABLE rc OUTPUT_VARIABLE syms ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${NM} -C ${bin} failed (${rc}): ${err}")
  endif()
  string(REGEX MATCHALL "[^\n]*${regex}[^\n]*" hits "${syms}")
  list(LENGTH hits n)
  set(${out} ${n} PARENT_SCOPE)
  set(${out}_first "" PARENT_SCOPE)
  if(n GREATER 0)
    list(GET hits 0 first)
    set(${out}_first "${first}" PARENT_SCOPE)
  endif()
endfunction()

set(plugin_re "npa::igbvf_plugin[<>, ]")
set(device_re "npa::sim::igbvf_device::")

count_symbols(control ${CONTROL} "${plugin_re}")
if(control EQUAL 0)
  message(FATAL_ERROR "the check cannot see a compiled-in VF plugin: no symbol matching "
                      "'${plugin_re}' in ${CONTROL}, which is built with it (stripped?)")
endif()
count_symbols(in_demo ${DEMO} "${plugin_re}")
if(NOT in_demo EQUAL 0)
  message(FATAL_ERROR "npa-demo's guest is built with the 82576 VF plugin: ${in_demo} symbol(s) "
                      "instantiate it, e.g.\n${in_demo_first}")
endif()
count_symbols(device ${DEMO} "${device_re}")
if(device EQUAL 0)
  message(FATAL_ERROR "npa-demo has no 82576 VF device model (no '${device_re}' symbol)")
endif()
message(STATUS "npa-demo: no VF plugin compiled in (0 symbols; ${control} in ${CONTROL}); "
               "${device} symbols of the VF device model")
