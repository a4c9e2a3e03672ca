# Cross toolchain: s390x (IBM Z, big-endian), Debian's g++-s390x-linux-gnu, tests run under
# qemu-s390x-static. Used by the cross-s390x preset (make test-cross): every byte swap a
# device layout needs is exercised here.
set(CMAKE_SYSTEM_PROCESSOR s390x)
set(NPA_CROSS_TRIPLE s390x-linux-gnu)
set(NPA_QEMU_ARCH s390x)
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)
