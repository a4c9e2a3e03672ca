# Cross toolchain: arm64 (little-endian, weakly ordered), Debian's g++-aarch64-linux-gnu,
# tests run under qemu-aarch64-static. Used by the cross-arm64 preset (make test-cross).
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(NPA_CROSS_TRIPLE aarch64-linux-gnu)
set(NPA_QEMU_ARCH aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)
