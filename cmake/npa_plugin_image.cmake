# npa_add_plugin_image(<name> SOURCE <file.cpp> [LIBS <interface targets for includes>]
#                      [KEY <seed file>])
#
# Builds a plugin as a plugin image <build>/images/<name>.npai (npa/image/format.hpp):
#   1. compiles SOURCE (which ends in NPA_PLUGIN_IMAGE(plugin_template)) and the image
#      runtime (the four memory functions, operator new/delete through the host table)
#      freestanding: no exceptions, RTTI, thread-safe statics, stack protector or
#      sanitizers; position independent; hidden visibility but for the entry;
#   2. links them with -nostdlib -shared -z now -Bsymbolic --no-undefined, one segment per
#      protection (-z separate-code), without a build id, so the same source gives the
#      same bytes;
#   3. packs and signs the result with npa-pack-image (the build machine's, also in a
#      cross build: adapters/image/CMakeLists.txt), which refuses undefined symbols,
#      relocations other than RELATIVE, writable-and-executable segments and constructors,
#      and prints the image's digest.
# The target <name> builds the image; its path is in the target property NPA_IMAGE_FILE.
function(npa_add_plugin_image name)
  cmake_parse_arguments(I "" "SOURCE;KEY" "LIBS" ${ARGN})
  if(NOT I_KEY)
    set(I_KEY ${NPA_IMAGE_TEST_KEY})
  endif()
  set(objs ${name}_objs)
  add_library(${objs} OBJECT ${I_SOURCE} ${NPA_IMAGE_RUNTIME_DIR}/image_new.cpp
              ${PROJECT_SOURCE_DIR}/cmake/freestanding/memory_functions.cpp)
  target_link_libraries(${objs} PRIVATE npa::npa ${I_LIBS})
  target_compile_features(${objs} PRIVATE cxx_std_20)
  # Optimised as the build type says (CMAKE_CXX_FLAGS_<type>), like the compiled-in plugin.
  set(flags -ffreestanding -fno-exceptions -fno-rtti -fno-threadsafe-statics -fPIC
            -fno-stack-protector -fno-sanitize=all -fvisibility=hidden
            -fvisibility-inlines-hidden -fno-plt -fno-asynchronous-unwind-tables
            -fno-unwind-tables -ffile-prefix-map=${PROJECT_SOURCE_DIR}=.)
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
    # A kernel host has no red zone: the same image must run there.
    list(APPEND flags -mno-red-zone)
  elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64)$")
    # Atomics inline, not through libgcc's outline helpers (which an image cannot import).
    list(APPEND flags -mno-outline-atomics)
  endif()
  target_compile_options(${objs} PRIVATE ${flags})
  set_target_properties(${objs} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  set_source_files_properties(${PROJECT_SOURCE_DIR}/cmake/freestanding/memory_functions.cpp
    TARGET_DIRECTORY ${objs} PROPERTIES COMPILE_OPTIONS
    "-fno-builtin;$<$<CXX_COMPILER_ID:GNU>:-fno-tree-loop-distribute-patterns>")

  set(dir ${CMAKE_BINARY_DIR}/images)
  set(so ${dir}/${name}.so)
  set(img ${dir}/${name}.npai)
  # A custom link, so that no preset's linker flags (sanitizer runtimes) reach it.
  add_custom_command(
    OUTPUT ${img}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${dir}
    COMMAND ${CMAKE_CXX_COMPILER} -shared -nostdlib -o ${so} $<TARGET_OBJECTS:${objs}>
            -Wl,--no-undefined -Wl,-z,now -Wl,-Bsymbolic -Wl,-z,separate-code
            -Wl,-z,max-page-size=4096 -Wl,-z,common-page-size=4096 -Wl,-z,noexecstack
            -Wl,--build-id=none -Wl,--hash-style=gnu -Wl,--no-eh-frame-hdr
    COMMAND ${NPA_PACK_IMAGE_COMMAND} ${so} ${img} ${I_KEY}
    DEPENDS $<TARGET_OBJECTS:${objs}> ${NPA_PACK_IMAGE_DEPENDS} ${I_KEY}
    COMMENT "Building plugin image ${name}"
    COMMAND_EXPAND_LISTS VERBATIM)
  add_custom_target(${name} ALL DEPENDS ${img})
  set_target_properties(${name} PROPERTIES NPA_IMAGE_FILE ${img} NPA_IMAGE_SO ${so})
endfunction()
