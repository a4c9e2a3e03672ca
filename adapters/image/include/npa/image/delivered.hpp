// npa/image/delivered.hpp: a plugin image the hypervisor delivers through the emulated
// vmxnet3 device (LOAD_PLUGIN), verified and loaded.
//
// The NPA flow: the hypervisor offers a VF the guest has no plugin for; the shell gives the
// emulated device a guest-memory area, the hypervisor copies the plugin image it holds for
// that VF into it (vmxnet3_control::load_plugin), and the shell loads it with the POSIX
// loader, which checks the header, the device, the digest and a trusted signer before any
// of it runs. The hypervisor is trusted to carry plugins, not to be right: its bytes are
// copied out of the device's reach and go through every check a file from disk does. The caller then binds the image to the VF's
// window and adds the path (README.md, "Delivered by the hypervisor").
#pragma once

#include <npa/control/vmxnet3.hpp>
#include <npa/image/posix_loader.hpp>
#include <npa/image/signing.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <span>

namespace npa::image {

/// Asks the hypervisor, through `ctl`, for the plugin of device `device_id` (copied into
/// `area`), and loads it for that device if one of `keys` signed it. Refusals: the device's
/// (none held, area too small, a bad answer) or the loader's (digest, signer, device...).
[[nodiscard]] inline result<loaded_image> load_delivered(vmxnet3_control& ctl, std::uint32_t device_id,
                                                         vmxnet3::dma_block area,
                                                         std::span<const public_key> keys) {
    result<std::span<const std::byte>> bytes = ctl.load_plugin(device_id, area);
    if (!bytes) {
        return bytes.error();
    }
    // Out of the device's reach first: the area stays writable by the device, which could
    // change the bytes between the loader's digest check and its copy into the mapping.
    const std::unique_ptr<std::byte[]> own(new (std::nothrow) std::byte[bytes->size()]);
    if (own == nullptr) {
        return status{errc::no_memory, "image: no memory for the delivered image"};
    }
    std::memcpy(own.get(), bytes->data(), bytes->size());
    return load_image(std::span<const std::byte>(own.get(), bytes->size()), device_id, keys);
}

} // namespace npa::image
