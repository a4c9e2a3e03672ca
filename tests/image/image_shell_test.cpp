// A loaded plugin image in the shell behaves as the compiled-in plugin does: both paths of
// the sim world (npa/sim/shell_rig.hpp) run the simnic image; switches under numbered
// traffic lose, duplicate and reorder nothing, the audit balances after every round,
// a removed VF's path is removed with its plugin instance, and the image is unloaded
// after its last path is gone.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <npa/image/loaded_plugin.hpp>
#include <npa/image/posix_loader.hpp>
#include <npa/sim/shell_rig.hpp>

#include "image_support.hpp"

#include <optional>

namespace sim = npa::sim;
using namespace npa::image;
using npa::switch_reason;

namespace {

/// The image the rigs bind their paths to (a test may load a fresh one).
const loaded_image* bound_image = &test::simnic_image();

struct image_binding {
    static image_device device(sim::simnic_window& w) {
        auto d = bound_image->bind(w);
        return d ? *d : image_device{};
    }
};
using image_rig = sim::basic_shell_rig<loaded_plugin, image_binding>;

void check_clean(const image_rig& r) {
    for (std::uint16_t q = 0; q < r.queues(); ++q) {
        const auto rep = r.tx_report(q);
        INFO("queue " << q << ": sent " << rep.sent << " received " << rep.received);
        CHECK(rep.sent > 0);
        CHECK(rep.lost == 0);
        CHECK(rep.reordered == 0);
        CHECK(rep.duplicates == 0);
        CHECK(rep.corrupt == 0);
    }
    const auto rx = r.rx_report();
    CHECK(rx.duplicates == 0);
    CHECK(rx.corrupt == 0);
    CHECK(rx.lost == r.device_rx_drops());
}

} // namespace

TEST_CASE("image paths: switches to and from under traffic, audit after every round") {
    image_rig r;
    REQUIRE(r.error().ok());
    for (int i = 0; i < 400; ++i) {
        r.round(16, 16);
        if (i % 20 == 5 && !r.sh().switching()) {
            REQUIRE(r.request_flip().ok());
        }
        REQUIRE(r.sh().audit().ok());
    }
    r.settle();
    CHECK(r.sh().history().switches() > 10);
    CHECK(r.sh().history().total_tx_lost() == 0);
    CHECK(r.sh().audit().ok());
    check_clean(r);
}

TEST_CASE("image paths: surprise removal, fallback, and the VF's path removed and added again") {
    image_rig r;
    REQUIRE(r.error().ok());
    r.sh().set_fallback(r.emu_path());
    REQUIRE(r.flip().ok());
    for (int i = 0; i < 50; ++i) r.round(16, 16);
    r.offer(32);
    r.vf().remove();
    CHECK(r.sh().service()); // the image's health() says removed
    for (int i = 0; i < 100; ++i) r.round(16, 16);
    r.settle();
    CHECK(r.sh().active_path() == r.emu_path());
    CHECK(r.sh().history().recent(0).reason == switch_reason::surprise_removal);
    CHECK(r.sh().audit().ok());
    REQUIRE(r.replug_vf().ok()); // remove_path: the old plugin instance is destroyed
    sim::shell_rig_env::advance(1'000'000'000);
    REQUIRE(r.flip().ok());
    for (int i = 0; i < 50; ++i) r.round(16, 16);
    r.settle();
    CHECK(r.sh().audit().ok());
    check_clean(r);
}

TEST_CASE("an image is unloaded after the shell that used it is gone") {
    auto img = load_image(test::read_bytes(NPA_SIMNIC_IMAGE), sim::simnic_window::image_device_id,
                          test::trusted_keys());
    REQUIRE(img.ok());
    bound_image = &*img;
    {
        image_rig r;
        REQUIRE(r.error().ok());
        for (int i = 0; i < 50; ++i) r.round(8, 8);
        r.settle();
        CHECK(r.sh().audit().ok());
        check_clean(r);
    } // the shell detaches and destroys both paths' plugins here
    bound_image = &test::simnic_image();
    // img unmaps at the end of scope: nothing may call into it after (ASan would say).
}
