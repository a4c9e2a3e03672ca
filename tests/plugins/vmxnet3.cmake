# vmxnet3: the plugin on the sim vmxnet3 device model (conformance kit, ABI layout,
# control path through the register interface, shell switching under traffic), and its
# offload fields against the device's bit positions.
npa_add_test(vmxnet3_conformance_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/vmxnet3_conformance_test.cpp
             LIBS npa::sim LABELS "plugins;sim" TIMEOUT 300)
npa_add_test(vmxnet3_device_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/vmxnet3_device_test.cpp
             LIBS npa::sim LABELS "plugins;sim" TIMEOUT 120)
npa_add_test(vmxnet3_qemu_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/vmxnet3_qemu_test.cpp
             LIBS npa::sim LABELS "plugins;sim" TIMEOUT 120)
npa_add_test(vmxnet3_offload_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/vmxnet3_offload_test.cpp
             LABELS plugins TIMEOUT 60)
