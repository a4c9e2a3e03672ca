# virtio-net: the plugin on the sim virtio-net device model (conformance kit, the device's
# own hostile cases: num_buffers, refused chains, feature negotiation, MRG_RXBUF), and the
# plugin on packed rings against a device the test plays by hand, and the per-packet header
# against npa's offload metadata.
npa_add_test(virtio_net_conformance_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/virtio_net_conformance_test.cpp
             LIBS npa::sim LABELS "plugins;sim" TIMEOUT 300)
npa_add_test(virtio_net_packed_conformance_test
             SOURCES ${CMAKE_CURRENT_LIST_DIR}/virtio_net_packed_conformance_test.cpp
             LIBS npa::sim LABELS "plugins;sim" TIMEOUT 300)
npa_add_test(virtio_net_device_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/virtio_net_device_test.cpp
             LIBS npa::sim LABELS "plugins;sim" TIMEOUT 120)
npa_add_test(virtio_net_control_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/virtio_net_control_test.cpp
             LIBS npa::sim LABELS "plugins;sim" TIMEOUT 120)
npa_add_test(virtio_net_packed_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/virtio_net_packed_test.cpp
             LIBS npa::sim LABELS "plugins;sim" TIMEOUT 60)
npa_add_test(virtio_net_offload_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/virtio_net_offload_test.cpp
             LABELS "plugins" TIMEOUT 60)
