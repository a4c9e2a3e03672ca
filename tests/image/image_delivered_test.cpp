// A plugin image delivered by the hypervisor through the emulated vmxnet3 (LOAD_PLUGIN), in
// the two-host world (npa/sim/two_hosts.hpp): the guest migrates to host B, whose
// hypervisor carries the 82576 VF plugin as an image; the shell asks for it, the loader
// verifies it, the VF's path runs it and the switch loses nothing; removing the path
// unloads it. Refused: no image for the device, an area too small or outside guest memory,
// a device that claims more bytes than the area holds, an image altered on the way (the
// loader's reason); none of them adds a path.
#include <doctest/doctest.h>

#include <npa/image/delivered.hpp>
#include <npa/sim/two_hosts.hpp>

#include "image_support.hpp"

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

using namespace npa;
using namespace npa::sim::two_hosts;
namespace img = npa::image;

namespace {

constexpr std::uint32_t vf_id = igbvf_window::image_device_id;
constexpr std::size_t area_bytes = std::size_t{1} << 20;

/// The two-host world with host B carrying `image` for its VF, the guest booted on vmxnet3
/// and migrated to host B (no VF path there yet).
struct migrated {
    world w;
    explicit migrated(std::vector<std::byte> image) {
        w.quiet = true;
        w.min_dwell_ns = 0;
        w.b_vf_delivered = true;
        if (!image.empty()) {
            w.b.plugins[vf_id] = std::move(image);
        }
        std::string err;
        REQUIRE_MESSAGE(w.build(err), err);
        REQUIRE(w.sh->start(w.vmx_path).ok());
        REQUIRE(w.sh->set_mac(guest_mac).ok());
        w.run(20);
        w.plug_vmx(w.b);
        REQUIRE(w.vmx_link_ch.submit(control_request::make_set_mac(guest_mac)).ok());
        w.run(20);
    }
    result<img::loaded_image> deliver(std::size_t bytes = area_bytes) {
        return img::load_delivered(*w.vmx_ctl, vf_id, w.plugin_area(bytes), img::test::trusted_keys());
    }
    /// Nothing was added to the shell: paths 0 and 1 (vmxnet3, host A's VF) only.
    bool no_new_path() const { return !w.sh->valid_path(2) && w.b.vf_path == shell_t::no_path; }
};

} // namespace

TEST_CASE("LOAD_PLUGIN: the VF's plugin delivered, verified, switched to; unloaded with its path") {
    migrated m(img::test::read_bytes(NPA_IGBVF_IMAGE));
    world& w = m.w;
    std::optional<img::loaded_image> loaded;
    {
        auto r = m.deliver();
        REQUIRE_MESSAGE(r.ok(), r.error().reason());
        loaded.emplace(std::move(*r));
    }
    CHECK(loaded->signer() == img::test::trusted_keys()[0]);
    CHECK(std::string(loaded->name()) == "igbvf");
    auto dev = loaded->bind(w.b.nic->vf(0).window());
    REQUIRE(dev.ok());
    const void* in_image = &loaded->ops();
    const path_id p = w.add_delivered_vf_path(w.b, std::move(*dev));
    REQUIRE(p != shell_t::no_path);
    const status st = w.switch_under_traffic(p, switch_reason::vf_arrived);
    REQUIRE_MESSAGE(st.ok(), st.reason());
    CHECK(w.sh->active_path() == p);
    CHECK(w.sh->history().recent(0).tx_lost == 0);
    w.run(100);
    REQUIRE(w.switch_under_traffic(w.vmx_path, switch_reason::vf_leaving).ok());
    CHECK(w.sh->history().recent(0).tx_lost == 0);
    w.settle();
    CHECK(w.sh->audit().ok());
    CHECK(w.sink.received(peer_flow) > 0);
    loaded.reset(); // the guest's handle goes; the path holds it
    CHECK(img::test::mapped(in_image));
    REQUIRE(w.sh->remove_path(p).ok());
    w.b.vf_image = {}; // the world's binding: the last hold
    CHECK_FALSE(img::test::mapped(in_image));
}

TEST_CASE("LOAD_PLUGIN: no image for the device is refused, nothing added") {
    migrated m({});
    auto loaded = m.deliver();
    REQUIRE_FALSE(loaded.ok());
    CHECK(loaded.error().code() == errc::not_supported);
    CHECK(std::string(loaded.error().reason()).find("holds no plugin") != std::string::npos);
    CHECK(m.no_new_path());
}

TEST_CASE("LOAD_PLUGIN: an area smaller than the image is refused") {
    migrated m(img::test::read_bytes(NPA_IGBVF_IMAGE));
    auto loaded = m.deliver(4096);
    REQUIRE_FALSE(loaded.ok());
    CHECK(loaded.error().code() == errc::no_memory);
    CHECK(m.no_new_path());
}

TEST_CASE("LOAD_PLUGIN: an area outside guest memory is refused by the device") {
    migrated m(img::test::read_bytes(NPA_IGBVF_IMAGE));
    vmxnet3::dma_block area = m.w.plugin_area(area_bytes);
    area.iova += std::uint64_t{1} << 40; // no guest memory there
    auto bytes = m.w.vmx_ctl->load_plugin(vf_id, area);
    REQUIRE_FALSE(bytes.ok());
    CHECK(bytes.error().code() == errc::invalid_argument);
    CHECK(m.no_new_path());
}

TEST_CASE("LOAD_PLUGIN: a device claiming more bytes than the area holds is refused") {
    migrated m(img::test::read_bytes(NPA_IGBVF_IMAGE));
    m.w.vmx->set_plugin_size_fault(static_cast<std::uint32_t>(area_bytes));
    auto loaded = m.deliver();
    REQUIRE_FALSE(loaded.ok());
    CHECK(loaded.error().code() == errc::device_error);
    CHECK(std::string(loaded.error().reason()).find("larger than the area") != std::string::npos);
    CHECK(m.no_new_path());
}

TEST_CASE("LOAD_PLUGIN: an image altered on the way is refused by the loader, nothing added") {
    std::vector<std::byte> image = img::test::read_bytes(NPA_IGBVF_IMAGE);
    image[image.size() / 2] ^= std::byte{0x01};
    migrated m(std::move(image));
    auto loaded = m.deliver();
    REQUIRE_FALSE(loaded.ok());
    CHECK(loaded.error().code() == errc::refused);
    CHECK(std::string(loaded.error().reason()) ==
          "image: digest mismatch (the image was altered or damaged)");
    CHECK(m.no_new_path());
}
