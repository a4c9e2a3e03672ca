# Shared part of the cross toolchain files (aarch64-linux-gnu.cmake, s390x-linux-gnu.cmake):
# Debian's cross compiler for NPA_CROSS_TRIPLE, its sysroot for libraries, and QEMU's
# user-mode emulator to run what it builds (ctest prefixes every test program with it).
#
# Header-only dependencies come from the host's packages (libboost-dev, doctest-dev,
# libfmt-dev): they are the same on every architecture. The host's /usr/include must not
# be put on the cross compiler's path, or its C library headers would shadow the target's;
# so the build tree gets a directory holding only boost/, doctest/ and fmt/ (symlinks),
# searched after the compiler's own directories (-idirafter), and stand-in CMake packages
# for doctest and fmt ({fmt} in its header-only mode: the host's libfmt.so is x86-64).
#
# libsodium (plugin images: adapters/image) must be the target's own: its static library
# and headers from Debian's libsodium-dev:<arch>, which adapters/image/deps.sh unpacks
# into $NPA_CROSS_CACHE/<triple> (default /var/cache/npa/cross; it says why not through
# dpkg's multiarch). Static, so the emulated programs need no library path; the headers
# join the host-headers directory. Without it NPA_IMAGE=ON stops the configure.

if(NOT NPA_CROSS_TRIPLE)
  message(FATAL_ERROR "set NPA_CROSS_TRIPLE before including cmake/cross/common.cmake")
endif()

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_C_COMPILER ${NPA_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${NPA_CROSS_TRIPLE}-g++)

set(CMAKE_FIND_ROOT_PATH /usr/${NPA_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# -L: where the emulated dynamic loader finds the target's libc and libstdc++.
find_program(NPA_CROSS_QEMU qemu-${NPA_QEMU_ARCH}-static REQUIRED)
set(CMAKE_CROSSCOMPILING_EMULATOR ${NPA_CROSS_QEMU};-L;/usr/${NPA_CROSS_TRIPLE})

# The toolchain file is read again for every try_compile, in a scratch directory: only the
# top-level configure (CMAKE_BINARY_DIR is the build tree) sets up the host headers.
set(npa_host_headers ${CMAKE_BINARY_DIR}/cross-host/include)
set(npa_host_packages ${CMAKE_BINARY_DIR}/cross-host/packages)
if(NOT CMAKE_BINARY_DIR MATCHES "CMakeFiles/CMakeScratch|CMakeTmp")
  file(MAKE_DIRECTORY ${npa_host_headers} ${npa_host_packages}/doctest ${npa_host_packages}/fmt)
  foreach(lib boost doctest fmt)
    if(NOT EXISTS /usr/include/${lib})
      message(FATAL_ERROR "cross build: /usr/include/${lib} is missing (scripts/install-deps.sh installs it)")
    endif()
    if(NOT EXISTS ${npa_host_headers}/${lib})
      file(CREATE_LINK /usr/include/${lib} ${npa_host_headers}/${lib} SYMBOLIC)
    endif()
  endforeach()
  file(WRITE ${npa_host_packages}/doctest/doctestConfig.cmake
    "# doctest from the host's headers (cmake/cross/common.cmake)\n"
    "if(NOT TARGET doctest::doctest)\n"
    "  add_library(doctest::doctest INTERFACE IMPORTED)\n"
    "endif()\n")
  file(WRITE ${npa_host_packages}/fmt/fmt-config.cmake
    "# {fmt} header-only from the host's headers (cmake/cross/common.cmake)\n"
    "if(NOT TARGET fmt::fmt)\n"
    "  add_library(fmt::fmt INTERFACE IMPORTED)\n"
    "  set_target_properties(fmt::fmt PROPERTIES INTERFACE_COMPILE_DEFINITIONS FMT_HEADER_ONLY=1)\n"
    "  add_library(fmt::fmt-header-only ALIAS fmt::fmt)\n"
    "endif()\n")
  set(npa_cross_cache /var/cache/npa/cross)
  if(DEFINED ENV{NPA_CROSS_CACHE})
    set(npa_cross_cache $ENV{NPA_CROSS_CACHE})
  endif()
  set(npa_sodium_dir ${npa_cross_cache}/${NPA_CROSS_TRIPLE})
  if(EXISTS ${npa_sodium_dir}/lib/libsodium.a AND EXISTS ${npa_sodium_dir}/include/sodium.h)
    foreach(h sodium.h sodium)
      if(NOT EXISTS ${npa_host_headers}/${h})
        file(CREATE_LINK ${npa_sodium_dir}/include/${h} ${npa_host_headers}/${h} SYMBOLIC)
      endif()
    endforeach()
    set(NPA_CROSS_SODIUM ${npa_sodium_dir}/lib/libsodium.a CACHE FILEPATH
        "libsodium for the target (adapters/image/deps.sh)" FORCE)
  else()
    set(NPA_CROSS_SODIUM NPA_CROSS_SODIUM-NOTFOUND CACHE FILEPATH
        "libsodium for the target (adapters/image/deps.sh)" FORCE)
  endif()
  set(doctest_DIR ${npa_host_packages}/doctest CACHE PATH "doctest (host headers)" FORCE)
  set(fmt_DIR ${npa_host_packages}/fmt CACHE PATH "{fmt} header-only (host headers)" FORCE)
endif()
set(CMAKE_CXX_FLAGS_INIT "-idirafter ${npa_host_headers}")
