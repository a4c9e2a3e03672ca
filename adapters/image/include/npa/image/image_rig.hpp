// npa/image/image_rig.hpp: a sim rig whose plugin comes from a plugin image, for the
// conformance kit: conformance<loaded_plugin, image_rig<simnic_rig, &simnic_image>>
// runs every check of the kit through the loader's operations table.
//
// The rig is the device's own (simnic_rig ...); only window() differs: it gives the
// image_device that binds the loaded image to that device's window. `Image` returns the
// loaded image, which outlives every rig (a function-local static in a test).
#pragma once

#include <npa/image/loaded_plugin.hpp>
#include <npa/image/posix_loader.hpp>

namespace npa::image {

template <class Rig, const loaded_image& (*Image)()>
class image_rig : public Rig {
public:
    using device_type = image_device;
    using Rig::Rig;

    [[nodiscard]] device_type& window() noexcept {
        auto bound = Image().bind(Rig::window());
        dev_ = bound ? *bound : image_device{};
        return dev_;
    }

private:
    image_device dev_{};
};

} // namespace npa::image
