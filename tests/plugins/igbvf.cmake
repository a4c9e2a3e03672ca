# 82576 VF plugin: conformance kit on the sim VF, descriptor layouts and offload bits, mailbox and PF
# policy, embedded-switch anti-spoofing, and switching under traffic in npa::shell.
npa_add_test(igbvf_conformance_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/igbvf_conformance_test.cpp
             LIBS npa::sim LABELS "plugins;sim" TIMEOUT 300)
npa_add_test(igbvf_layout_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/igbvf_layout_test.cpp
             LABELS plugins TIMEOUT 60)
npa_add_test(igbvf_offload_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/igbvf_offload_test.cpp
             LABELS plugins TIMEOUT 60)
npa_add_test(igbvf_mailbox_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/igbvf_mailbox_test.cpp
             LIBS npa::sim LABELS "plugins;sim" TIMEOUT 120)
npa_add_test(igbvf_shell_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/igbvf_shell_test.cpp
             LIBS npa::sim LABELS "plugins;sim;shell" TIMEOUT 300)
npa_add_test(igbvf_hostile_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/igbvf_hostile_test.cpp
             LIBS npa::sim LABELS "plugins;sim" TIMEOUT 120)
npa_add_test(igbvf_threaded_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/igbvf_threaded_test.cpp
             LIBS npa::sim LABELS "plugins;sim;concurrent" TIMEOUT 300)
