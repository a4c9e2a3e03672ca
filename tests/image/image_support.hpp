// The images and keys the image tests use: paths come from the build (CMake definitions).
#pragma once

#include <npa/image/image_files.hpp>
#include <npa/image/posix_loader.hpp>
#include <npa/image/signing.hpp>
#include <npa/plugins/igbvf/window.hpp>
#include <npa/sim/simnic_window.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace npa::image::test {

inline std::vector<std::byte> read_bytes(const char* path) {
    auto b = read_file(path);
    if (!b) {
        std::fprintf(stderr, "cannot read %s\n", path);
        std::abort();
    }
    return std::move(*b);
}

inline key_seed seed_from(const char* path) {
    const auto s = read_seed(path);
    if (!s) {
        std::fprintf(stderr, "cannot read the key seed %s\n", path);
        std::abort();
    }
    return *s;
}

/// Whether the page holding `p` is mapped in this process (an unloaded image's is not).
inline bool mapped(const void* p) {
    const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    void* at = reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(p) / page * page);
    return ::msync(at, page, MS_ASYNC) == 0;
}

/// The test signing key (adapters/image/keys: a TEST key) and the one other signer.
inline key_seed test_seed() { return seed_from(NPA_IMAGE_TEST_KEY); }
inline key_seed other_seed() { return seed_from(NPA_IMAGE_OTHER_KEY); }
/// The keys a test host trusts: the test key only.
inline std::vector<public_key> trusted_keys() { return {public_key_of(test_seed())}; }

/// The image at `path` for device `id`, loaded or aborting with the loader's reason.
inline result<loaded_image> load_or_abort(const char* path, std::uint32_t id) {
    result<loaded_image> img = load_image(read_bytes(path), id, trusted_keys());
    if (!img) {
        std::fprintf(stderr, "cannot load %s: %s\n", path, img.error().reason());
        std::abort();
    }
    return img;
}

/// The simnic image, loaded once for the process.
inline const loaded_image& simnic_image() {
    static result<loaded_image> img = load_or_abort(NPA_SIMNIC_IMAGE, sim::simnic_window::image_device_id);
    return *img;
}

#ifdef NPA_IGBVF_IMAGE
/// The 82576 VF image, loaded once for the process.
inline const loaded_image& igbvf_image() {
    static result<loaded_image> img = load_or_abort(NPA_IGBVF_IMAGE, igbvf_window::image_device_id);
    return *img;
}
#endif

} // namespace npa::image::test
