// The virtio-pci transport (npa/linux/pci/virtio_pci.hpp) on the host, without a device:
// the capability walk over configuration spaces laid out as QEMU's virtio-net-pci lays
// them out (and broken ones, each refused with its reason), and the register accesses of
// the transport over memory standing in for the BAR: where the queue addresses, the
// notification and the device configuration land. The transport on QEMU's device runs in
// the guest rig: adapters/linux/tools/virtio_net_guest_test.cpp (guest_virtio_net).
#include <doctest/doctest.h>

#include <npa/linux/pci/virtio_pci.hpp>

#include <array>
#include <cstring>
#include <string>
#include <vector>

namespace pci = npa::lnx::pci;
namespace vp = pci::virtio_pci;

namespace {

// Configuration space with a capability list: each add() appends a capability at the
// next free offset and links it after the previous one.
struct config_space {
    std::array<std::uint8_t, 256> b{};
    std::uint32_t next = 0x40, last = 0;

    config_space() {
        b[0] = 0xf4; // vendor 1af4, device 1041
        b[1] = 0x1a;
        b[2] = 0x41;
        b[3] = 0x10;
        b[vp::pci_status] = static_cast<std::uint8_t>(vp::status_cap_list);
    }
    std::uint32_t add(std::uint8_t id, std::uint8_t len) {
        const std::uint32_t at = next;
        b[at] = id;
        b[at + 2] = len;
        if (last == 0) {
            b[vp::pci_cap_ptr] = static_cast<std::uint8_t>(at);
        } else {
            b[last + 1] = static_cast<std::uint8_t>(at);
        }
        last = at;
        next += (len + 3u) & ~3u;
        return at;
    }
    std::uint32_t virtio(std::uint8_t type, std::uint8_t bar, std::uint32_t off, std::uint32_t len,
                         std::uint32_t mult = 4) {
        const std::uint32_t at = add(vp::pci_cap_vndr, type == vp::cap_notify_cfg ? 20 : 16);
        b[at + 3] = type;
        b[at + 4] = bar;
        npa::store_le32(&b[at + 8], off);
        npa::store_le32(&b[at + 12], len);
        if (type == vp::cap_notify_cfg) {
            npa::store_le32(&b[at + 16], mult);
        }
        return at;
    }
};

// QEMU's virtio-net-pci, disable-legacy=on (hw/virtio/virtio-pci.c): an MSI-X capability,
// the four structures in BAR 4 at 0x0, 0x1000, 0x2000, 0x3000 (0x1000 each, notify
// multiplier 4), then a PCI configuration access capability (type 5).
config_space qemu_like() {
    config_space c;
    c.add(0x11, 12); // MSI-X
    c.virtio(vp::cap_common_cfg, 4, 0x0000, 0x1000);
    c.virtio(vp::cap_isr_cfg, 4, 0x1000, 0x1000);
    c.virtio(vp::cap_device_cfg, 4, 0x2000, 0x1000);
    c.virtio(vp::cap_notify_cfg, 4, 0x3000, 0x1000, 4);
    c.virtio(5, 0, 0, 0);
    return c;
}

const vp::bar_sizes qemu_bars{0, 0x1000, 0, 0, 0x4000, 0};

std::string parse_error(const config_space& c, const vp::bar_sizes& bars = qemu_bars) {
    pci::pci_error e;
    vp::layout l;
    if (vp::parse_caps(e, c.b, bars, l)) {
        return "";
    }
    return e.what();
}

} // namespace

TEST_CASE("virtio-pci: QEMU's capability layout is found") {
    const config_space c = qemu_like();
    pci::pci_error e;
    vp::layout l;
    REQUIRE(vp::parse_caps(e, c.b, qemu_bars, l));
    CHECK(l.common.bar == 4);
    CHECK(l.common.offset == 0);
    CHECK(l.common.length == 0x1000);
    CHECK(l.isr.offset == 0x1000);
    CHECK(l.device.offset == 0x2000);
    CHECK(l.notify.offset == 0x3000);
    CHECK(l.notify_off_multiplier == 4);
}

TEST_CASE("virtio-pci: the first usable capability of a type counts; unknown BARs and I/O BARs are "
          "skipped") {
    config_space c;
    c.virtio(vp::cap_notify_cfg, 7, 0x10, 0x10, 2);  // BAR 7: ignored (4.1.4)
    c.virtio(vp::cap_notify_cfg, 2, 0x0, 0x4, 0);    // BAR 2 is an I/O BAR here: skipped
    c.virtio(vp::cap_notify_cfg, 4, 0x3000, 0x1000); // this one
    c.virtio(vp::cap_common_cfg, 4, 0x0, 0x1000);
    c.virtio(vp::cap_isr_cfg, 4, 0x1000, 0x1000);
    c.virtio(vp::cap_device_cfg, 4, 0x2000, 0x1000);
    c.virtio(vp::cap_device_cfg, 4, 0x2800, 0x100); // a second one: not taken
    pci::pci_error e;
    vp::layout l;
    REQUIRE(vp::parse_caps(e, c.b, qemu_bars, l));
    CHECK(l.notify.bar == 4);
    CHECK(l.notify.offset == 0x3000);
    CHECK(l.notify_off_multiplier == 4);
    CHECK(l.device.offset == 0x2000);
}

TEST_CASE("virtio-pci: a missing structure is named") {
    config_space c;
    c.virtio(vp::cap_common_cfg, 4, 0x0, 0x1000);
    c.virtio(vp::cap_isr_cfg, 4, 0x1000, 0x1000);
    c.virtio(vp::cap_notify_cfg, 4, 0x3000, 0x1000);
    CHECK(parse_error(c).find("device configuration (type 4)") != std::string::npos);
    // Every structure in a BAR that is not mapped (a legacy-only function would have none).
    const config_space q = qemu_like();
    CHECK(parse_error(q, vp::bar_sizes{}).find("common configuration (type 1)") !=
          std::string::npos);
    config_space none;
    none.b[vp::pci_status] = 0;
    CHECK(parse_error(none).find("no capability list") != std::string::npos);
}

TEST_CASE("virtio-pci: malformed capabilities are refused with the reason") {
    SUBCASE("a region past its BAR") {
        config_space c = qemu_like();
        c.virtio(vp::cap_common_cfg, 4, 0x3800, 0x1000); // after the good one: never reached
        CHECK(parse_error(c).empty());
        config_space d;
        d.virtio(vp::cap_common_cfg, 4, 0x3800, 0x1000);
        CHECK(parse_error(d).find("run past BAR 4") != std::string::npos);
        config_space w; // offset + length wraps 32 bits: still past the BAR
        w.virtio(vp::cap_device_cfg, 4, 0xFFFFF000u, 0x2000);
        CHECK(parse_error(w).find("run past BAR 4") != std::string::npos);
    }
    SUBCASE("a common structure shorter than virtio 1.0's, or misaligned") {
        config_space c;
        c.virtio(vp::cap_common_cfg, 4, 0x0, 0x30);
        CHECK(parse_error(c).find("at least 0x38") != std::string::npos);
        config_space d;
        d.virtio(vp::cap_common_cfg, 4, 0x2, 0x100);
        CHECK(parse_error(d).find("4-byte aligned") != std::string::npos);
    }
    SUBCASE("a notify multiplier that is not an even power of two") {
        config_space c;
        c.virtio(vp::cap_notify_cfg, 4, 0x3000, 0x1000, 6);
        CHECK(parse_error(c).find("notify_off_multiplier 6") != std::string::npos);
        config_space d;
        d.virtio(vp::cap_notify_cfg, 4, 0x3000, 0x1000, 1);
        CHECK(parse_error(d).find("notify_off_multiplier 1") != std::string::npos);
    }
    SUBCASE("a capability shorter than its structure") {
        config_space c;
        const std::uint32_t at = c.virtio(vp::cap_notify_cfg, 4, 0x3000, 0x1000);
        c.b[at + 2] = 16; // a notify capability without notify_off_multiplier
        CHECK(parse_error(c).find("cap_len 16 (needs 20") != std::string::npos);
    }
    SUBCASE("a pointer into the header, past the end, or a loop") {
        config_space c;
        c.b[vp::pci_cap_ptr] = 0x20;
        CHECK(parse_error(c).find("pointer 0x20") != std::string::npos);
        config_space d;
        const std::uint32_t at = d.virtio(vp::cap_isr_cfg, 4, 0x1000, 0x10);
        d.b[at + 1] = static_cast<std::uint8_t>(at); // points at itself
        CHECK(parse_error(d).find("loops") != std::string::npos);
        config_space e;
        e.b[vp::pci_cap_ptr] = 0xF8;
        e.b[0xF8] = vp::pci_cap_vndr; // a vendor capability with no room for its 16 bytes
        CHECK(parse_error(e).find("runs past configuration space") != std::string::npos);
    }
    SUBCASE("configuration space shorter than the header") {
        pci::pci_error e;
        vp::layout l;
        const std::array<std::uint8_t, 32> tiny{};
        CHECK_FALSE(vp::parse_caps(e, tiny, qemu_bars, l));
        CHECK(e.code == npa::errc::invalid_argument);
    }
}

namespace {

// Memory standing in for BAR 4 of the QEMU layout. It is not a device (a write to
// queue_select selects nothing), so a test puts in it what the device would answer.
struct fake_bar4 {
    alignas(4096) std::array<std::uint8_t, 0x4000> m{};
    pci::virtio_net_function f;
    alignas(64) std::array<std::byte, 0x4000> rings{};

    fake_bar4() {
        const config_space c = qemu_like();
        pci::pci_error e;
        vp::layout l;
        REQUIRE(vp::parse_caps(e, c.b, qemu_bars, l));
        std::array<pci::bar_map, pci::pci_function::max_bars> maps{};
        maps[4] = {reinterpret_cast<volatile std::byte*>(m.data()), m.size()};
        f.bind(l, maps, {rings.data(), 0x10000000, rings.size()});
    }
    std::uint16_t u16(std::uint32_t off) const { return npa::load_le16(&m[off]); }
    std::uint32_t u32(std::uint32_t off) const { return npa::load_le32(&m[off]); }
};

} // namespace

TEST_CASE("virtio-pci transport: queue addresses in two halves, notification at queue_notify_off * "
          "multiplier") {
    fake_bar4 d;
    npa::store_le16(&d.m[vp::common::num_queues], 3);
    npa::store_le16(&d.m[vp::common::queue_size], 256);
    npa::store_le16(&d.m[vp::common::queue_notify_off], 2);
    const npa::virtio::transport& t = d.f.window().transport();
    CHECK(t.queue_max(2) == 256);
    CHECK(t.queue_max(3) == 0); // num_queues is 3
    const npa::virtio::queue_setup s{0x1'2345'6000ull, 0x1'2345'7000ull, 0x1'2345'8000ull, 128, 0};
    REQUIRE(t.queue_enable(2, s));
    CHECK(d.u16(vp::common::queue_select) == 2);
    CHECK(d.u16(vp::common::queue_size) == 128);
    CHECK(d.u16(vp::common::queue_msix_vector) == vp::no_vector); // polled
    CHECK(d.u32(vp::common::queue_desc) == 0x23456000u);
    CHECK(d.u32(vp::common::queue_desc + 4) == 1);
    CHECK(d.u32(vp::common::queue_driver) == 0x23457000u);
    CHECK(d.u32(vp::common::queue_device) == 0x23458000u);
    CHECK(d.u32(vp::common::queue_device + 4) == 1);
    CHECK(d.u16(vp::common::queue_enable) == 1);
    t.notify(2);
    CHECK(d.u16(0x3000 + 2 * 4) == 2); // notify region + queue_notify_off * 4: the queue index
    CHECK(d.f.notifies() == 1);
    t.notify(1); // never enabled: nothing written
    CHECK(d.f.notifies() == 1);
    // A ring larger than queue_size is refused before anything is written.
    npa::store_le16(&d.m[vp::common::queue_size], 64);
    CHECK_FALSE(t.queue_enable(0, s));
}

TEST_CASE("virtio-pci transport: a notify offset outside the notify region refuses the queue") {
    fake_bar4 d;
    npa::store_le16(&d.m[vp::common::num_queues], 3);
    npa::store_le16(&d.m[vp::common::queue_size], 256);
    npa::store_le16(&d.m[vp::common::queue_notify_off], 0x400); // 0x400 * 4 = the region's end
    const npa::virtio::transport& t = d.f.window().transport();
    CHECK_FALSE(t.queue_enable(0, {0x1000, 0x2000, 0x3000, 256, 0}));
    CHECK(std::string(d.f.last_error()).find("outside the notify region") != std::string::npos);
    CHECK(d.u16(vp::common::queue_enable) == 0);                // nothing enabled
    npa::store_le16(&d.m[vp::common::queue_notify_off], 0x3FF); // the last slot fits
    CHECK(t.queue_enable(0, {0x1000, 0x2000, 0x3000, 256, 0}));
}

TEST_CASE("virtio-pci transport: features from both selector halves, ACCESS_PLATFORM not carried") {
    fake_bar4 d;
    // The fake keeps one word for both halves: half 0 and half 1 read the same value.
    npa::store_le32(&d.m[vp::common::device_feature],
                    0x3 | (1u << 5) | (1u << 1)); // bit 33 in half 1
    const npa::virtio::transport& t = d.f.window().transport();
    const std::uint64_t f = t.device_features();
    CHECK((f & (1ull << 5)) != 0);
    CHECK((f & npa::virtio::feature::VERSION_1) != 0);       // bit 32: half 1, bit 0
    CHECK((f & npa::virtio::feature::ACCESS_PLATFORM) == 0); // bit 33 offered, not carried
    CHECK((d.f.offered() & npa::virtio::feature::ACCESS_PLATFORM) != 0);
    t.set_driver_features(npa::virtio::feature::VERSION_1 | npa::virtio::feature::ACCESS_PLATFORM |
                          0x20);
    CHECK(d.u32(vp::common::driver_feature_select) == 1); // the high half written last
    CHECK(d.u32(vp::common::driver_feature) == 1);        // VERSION_1 only: ACCESS_PLATFORM dropped
}

TEST_CASE("virtio-pci transport: RING_PACKED carried only after offer_packed_ring(true)") {
    fake_bar4 d;
    namespace vf = npa::virtio::feature;
    // Bits 0 and 2 in both halves: VERSION_1 (32) and RING_PACKED (34) in half 1.
    npa::store_le32(&d.m[vp::common::device_feature], 0x5);
    const npa::virtio::transport& t = d.f.window().transport();
    CHECK_FALSE(d.f.packed_ring_offered()); // split rings by default
    CHECK((t.device_features() & vf::RING_PACKED) == 0);
    CHECK((t.device_features() & vf::VERSION_1) != 0);
    t.set_driver_features(vf::VERSION_1 | vf::RING_PACKED);
    CHECK(d.u32(vp::common::driver_feature) == 1); // high half: RING_PACKED dropped
    d.f.offer_packed_ring(true);
    CHECK((t.device_features() & vf::RING_PACKED) != 0);
    t.set_driver_features(vf::VERSION_1 | vf::RING_PACKED);
    CHECK(d.u32(vp::common::driver_feature) == 5); // VERSION_1 | RING_PACKED
    // Read back through the selector (the fake keeps one word for both halves).
    CHECK(d.f.driver_features() == (5ull << 32 | 5));
    d.f.offer_packed_ring(false);
    CHECK((t.device_features() & vf::RING_PACKED) == 0);
}

TEST_CASE("virtio-pci transport: device configuration and status") {
    fake_bar4 d;
    const std::uint8_t mac[6] = {0x52, 0x54, 0x00, 0x00, 0x03, 0x00};
    std::memcpy(&d.m[0x2000], mac, 6);
    npa::store_le16(&d.m[0x2000 + 6], npa::virtio_net::S_LINK_UP);
    const auto got = d.f.mac();
    CHECK(std::memcmp(got.data(), mac, 6) == 0);
    CHECK(d.f.window().net_status() == npa::virtio_net::S_LINK_UP);
    // Bytes past the device capability's length read as 0, not the next region.
    std::uint8_t past[4] = {1, 1, 1, 1};
    d.m[0x3000] = 0xAA;
    d.f.window().transport().read_config(0xFFE, past, 4);
    CHECK(past[2] == 0);
    CHECK(past[3] == 0);
    // Status is device_status; the ISR byte is read where the ISR capability says.
    const npa::virtio::transport& t = d.f.window().transport();
    t.set_status(npa::virtio::status_bit::ACKNOWLEDGE);
    CHECK(d.m[vp::common::device_status] == npa::virtio::status_bit::ACKNOWLEDGE);
    CHECK(t.status() == npa::virtio::status_bit::ACKNOWLEDGE);
    d.m[0x1000] = 3;
    CHECK(d.f.isr() == 3);
    t.set_status(0); // reset: reads 0 at once here; the config vector goes to NO_VECTOR
    CHECK(d.u16(vp::common::config_msix_vector) == vp::no_vector);
}
