// A loaded plugin image in the shell behaves as the compiled-in plugin does: both paths of
// the sim world (npa/sim/shell_rig.hpp) run the simnic image; switches under numbered
// traffic lose, duplicate and reorder nothing, the audit balances after every round,
// a removed VF's path is removed with its plugin instance, and an image is unloaded when
// the last path using it is removed.
#include <doctest/doctest.h>

#include <npa/image/loaded_plugin.hpp>
#include <npa/image/posix_loader.hpp>
#include <npa/sim/shell_rig.hpp>

#include "image_support.hpp"

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace sim = npa::sim;
using namespace npa::image;
using npa::switch_reason;

namespace {

/// Images for the paths the rigs bind, in the order they bind them (emu, vf, a re-plugged
/// vf); once used up, every path binds the process's simnic image.
std::vector<const loaded_image*> bind_order;

struct image_binding {
    static image_device device(sim::simnic_window& w) {
        const loaded_image* img = &test::simnic_image();
        if (!bind_order.empty()) {
            img = bind_order.front();
            bind_order.erase(bind_order.begin());
        }
        auto d = img->bind(w);
        return d ? std::move(*d) : image_device{};
    }
};
using image_rig = sim::basic_shell_rig<loaded_plugin, image_binding>;

std::unique_ptr<npa::result<loaded_image>> fresh_image() {
    return std::make_unique<npa::result<loaded_image>>(
        test::load_or_abort(NPA_SIMNIC_IMAGE, sim::simnic_window::image_device_id));
}

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

TEST_CASE("an image is unloaded when the last path using it is removed") {
    auto a = fresh_image();
    auto b = fresh_image();
    const void* in_b = &(**b).ops(); // an address inside b's mapping
    bind_order = {&**a, &**b, &**a};  // emu on a, vf on b, the re-plugged vf on a
    image_rig r;
    REQUIRE(r.error().ok());
    for (int i = 0; i < 50; ++i) r.round(8, 8);
    b.reset(); // the loader's handle goes; the vf path still holds the image
    CHECK(test::mapped(in_b));
    REQUIRE(r.flip().ok()); // the vf path runs on b
    for (int i = 0; i < 50; ++i) r.round(8, 8);
    REQUIRE(r.flip().ok()); // back to emu: the vf path is idle
    CHECK(test::mapped(in_b));
    REQUIRE(r.replug_vf().ok()); // remove_path: the last hold on b goes with the path
    CHECK_FALSE(test::mapped(in_b));
    sim::shell_rig_env::advance(1'000'000'000);
    REQUIRE(r.flip().ok()); // the new vf path runs on a
    for (int i = 0; i < 50; ++i) r.round(8, 8);
    r.settle();
    CHECK(r.sh().audit().ok());
    check_clean(r);
}

TEST_CASE("an image is unloaded after the shell that used it is gone") {
    auto a = fresh_image();
    const void* in_a = &(**a).ops();
    bind_order = {&**a, &**a};
    {
        image_rig r;
        REQUIRE(r.error().ok());
        for (int i = 0; i < 50; ++i) r.round(8, 8);
        r.settle();
        CHECK(r.sh().audit().ok());
        check_clean(r);
        a.reset(); // both paths still hold it
        CHECK(test::mapped(in_a));
    } // the shell detaches and destroys both paths' plugins, the rig drops its bindings
    CHECK_FALSE(test::mapped(in_a));
}
