// The plugin image loader (npa/image/posix_loader.hpp): the simnic image loads, runs
// traffic through a loaded_plugin and gives every buffer back; each damaged or foreign
// image is refused with its own reason and nothing loaded.
#include <doctest/doctest.h>

#include <npa/endian.hpp>
#include <npa/image/loaded_plugin.hpp>
#include <npa/image/posix_loader.hpp>
#include <npa/sim/simnic_rig.hpp>

#include "image_support.hpp"

#include <cstddef>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

using namespace npa::image;
using npa::image::test::read_bytes;

namespace {

constexpr std::uint32_t simnic_id = npa::sim::simnic_window::image_device_id;

struct other_window {
    static constexpr std::uint32_t image_device_id = sim_device_id(99);
};

image_header header_of(const std::vector<std::byte>& f) {
    image_header h;
    std::memcpy(&h, f.data(), sizeof(h));
    return h;
}
void put_header(std::vector<std::byte>& f, const image_header& h) {
    std::memcpy(f.data(), &h, sizeof(h));
}
image_reloc reloc_of(const std::vector<std::byte>& f, std::uint32_t i) {
    image_reloc r;
    std::memcpy(&r, f.data() + header_of(f).reloc_offset + i * sizeof(r), sizeof(r));
    return r;
}
void put_reloc(std::vector<std::byte>& f, std::uint32_t i, const image_reloc& r) {
    std::memcpy(f.data() + header_of(f).reloc_offset + i * sizeof(r), &r, sizeof(r));
}
void resign(std::vector<std::byte>& f, const key_seed& s = test::test_seed()) {
    REQUIRE(sign_image(f, s));
}

/// `file` with its header changed by `edit`, signed again (so only the change is refused).
template <class Edit>
std::vector<std::byte> with_header(std::vector<std::byte> file, Edit edit) {
    auto h = header_of(file);
    edit(h);
    put_header(file, h);
    resign(file);
    return file;
}

/// Mappings of this process (lines of /proc/self/maps): a refused image leaves none behind.
std::size_t mappings() {
    std::ifstream in("/proc/self/maps");
    std::size_t n = 0;
    for (std::string line; std::getline(in, line);) {
        ++n;
    }
    return n;
}

/// The loader refuses `file`, says `why` (a part of its reason) and maps nothing.
void expect_refused(const std::vector<std::byte>& file, const char* why,
                    std::uint32_t device = simnic_id,
                    buffer_layout layout = buffer_layout::packet_buffer) {
    const std::vector<public_key> keys = test::trusted_keys();
    (void)mappings(); // the first read may map allocator memory of its own (ASan's)
    const std::size_t before = mappings();
    const npa::result<loaded_image> r = load_image(file, device, keys, layout);
    CHECK(mappings() == before);
    REQUIRE_FALSE(r.ok());
    const std::string reason = r.error().reason();
    INFO("reason: " << reason);
    CHECK(reason.find(why) != std::string::npos);
}

} // namespace

TEST_CASE("the simnic image loads, names its plugin and device, and is W^X") {
    const loaded_image& img = test::simnic_image();
    CHECK(std::string(img.name()) == "simnic");
    CHECK(img.ops().device_id == simnic_id);
    CHECK((img.ops().features & feature_health) != 0);
    CHECK(img.ops().abi_major == abi_major);
    const image_header h = header_of(read_bytes(NPA_SIMNIC_IMAGE));
    for (std::uint16_t i = 0; i < h.segment_count; ++i) {
        image_segment s;
        std::memcpy(&s, read_bytes(NPA_SIMNIC_IMAGE).data() + sizeof(h) + i * sizeof(s), sizeof(s));
        CHECK_FALSE(((s.prot & prot_write) != 0 && (s.prot & prot_exec) != 0));
    }
}

TEST_CASE("the header and relocations of an image are little-endian on every host") {
    // The format's byte order is its own (format.hpp), so a pack tool on any build machine
    // writes it the same way: read back here byte by byte, not through the header's types.
    const std::vector<std::byte> f = read_bytes(NPA_SIMNIC_IMAGE);
    REQUIRE(f.size() > sizeof(image_header));
    CHECK(std::memcmp(f.data(), "NPAI", 4) == 0);
    CHECK(npa::load_le16(f.data() + offsetof(image_header, machine)) == native_machine);
    CHECK(npa::load_le32(f.data() + offsetof(image_header, file_size)) == f.size());
    CHECK(npa::load_le32(f.data() + offsetof(image_header, device_id)) == simnic_id);
    // Each relocation points inside the image, read little-endian.
    const std::uint32_t relocs = npa::load_le32(f.data() + offsetof(image_header, reloc_offset));
    const std::uint32_t mem = npa::load_le32(f.data() + offsetof(image_header, mem_size));
    REQUIRE(npa::load_le32(f.data() + offsetof(image_header, reloc_count)) > 0);
    CHECK(npa::load_le64(f.data() + relocs + offsetof(image_reloc, addend)) < mem);
}

TEST_CASE("a loaded plugin carries traffic and gives every buffer back on detach") {
    npa::sim::simnic_rig rig;
    REQUIRE(rig.ok());
    auto dev = test::simnic_image().bind(rig.window());
    REQUIRE(dev.ok());
    {
        loaded_plugin<npa::sim::simnic_rig::api_type> p;
        REQUIRE(p.attach(rig.api(), *dev, rig.queue_cfg()).ok());
        CHECK(std::string(p.plugin_name()) == "simnic");
        CHECK(p.capabilities().max_mtu == 1500);
        rig.step(); // the device takes what the doorbell announced
        CHECK(rig.device_rx_posted(0) == rig.cfg().rx_ring);
        CHECK(rig.api().audit().with_plugin == rig.cfg().queues * rig.cfg().rx_ring);
        CHECK(p.health() == npa::errc::ok);
        p.detach();
        CHECK(rig.device_rx_posted(0) == 0);
    }
    const auto audit = rig.api().audit();
    CHECK(audit.balanced());
    CHECK(audit.with_plugin == 0);
}

TEST_CASE("a loaded image binds only to the device it drives") {
    other_window w;
    const auto b = test::simnic_image().bind(w);
    REQUIRE_FALSE(b.ok());
    CHECK(std::string(b.error().reason()).find("another device") != std::string::npos);
}

TEST_CASE("refusals: each damaged or foreign image says why and loads nothing") {
    const std::vector<std::byte> good = read_bytes(NPA_SIMNIC_IMAGE);
    REQUIRE(good.size() > sizeof(image_header));
    REQUIRE(load_image(good, simnic_id, test::trusted_keys()).ok());

    SUBCASE("bad magic") {
        auto f = good;
        auto h = header_of(f);
        h.magic = h.magic ^ 0x20u;
        put_header(f, h);
        resign(f);
        expect_refused(f, "bad magic");
    }
    SUBCASE("wrong ABI version") {
        auto f = good;
        auto h = header_of(f);
        h.abi_major = abi_major + 1;
        put_header(f, h);
        resign(f);
        expect_refused(f, "another ABI version");
    }
    SUBCASE("truncated image") {
        auto f = good;
        f.resize(f.size() - 100);
        expect_refused(f, "truncated");
        f.resize(sizeof(image_header) - 1);
        expect_refused(f, "truncated");
    }
    SUBCASE("digest mismatch") {
        auto f = good;
        f[header_of(f).mem_offset + 0x1000] ^= std::byte{1}; // a byte of code
        expect_refused(f, "digest mismatch");
    }
    SUBCASE("unknown signer") {
        auto f = good;
        resign(f, test::other_seed());
        expect_refused(f, "unknown signer");
    }
    SUBCASE("a relocation outside the image") {
        auto f = good;
        REQUIRE(header_of(f).reloc_count > 0);
        auto r = reloc_of(f, 0);
        r.offset = std::uint64_t{header_of(f).mem_size};
        put_reloc(f, 0, r);
        resign(f);
        expect_refused(f, "relocation outside the image");
        r = reloc_of(good, 0);
        r.addend = std::uint64_t{1} << 40; // a pointer to far outside
        put_reloc(f, 0, r);
        resign(f);
        expect_refused(f, "relocation outside the image");
    }
    SUBCASE("an image that imports a symbol") {
        auto f = good;
        auto r = reloc_of(f, 0);
        r.kind = static_cast<std::uint32_t>(reloc_kind::import);
        r.symbol = 1;
        put_reloc(f, 0, r);
        resign(f);
        expect_refused(f, "imports a symbol");
    }
    SUBCASE("an image for another device") {
        expect_refused(good, "another device", sim_device_id(2));
        auto f = good;
        auto h = header_of(f);
        h.device_id = pci_device_id(0x8086, 0x10ca);
        put_header(f, h);
        resign(f);
        expect_refused(f, "another device");
    }
    SUBCASE("an image for another machine") {
        // arm64 code on x86-64 and s390x, x86-64 code on arm64: each host sees a foreign one.
        auto f = good;
        auto h = header_of(f);
        h.machine = native_machine == 183 ? std::uint16_t{62} : std::uint16_t{183};
        put_header(f, h);
        resign(f);
        expect_refused(f, "code for another machine");
    }
    SUBCASE("a writable and executable segment") {
        auto f = good;
        const auto h = header_of(f);
        for (std::uint16_t i = 0; i < h.segment_count; ++i) {
            image_segment s;
            std::memcpy(&s, f.data() + sizeof(h) + i * sizeof(s), sizeof(s));
            if ((s.prot & prot_exec) != 0) {
                s.prot |= prot_write;
                std::memcpy(f.data() + sizeof(h) + i * sizeof(s), &s, sizeof(s));
            }
        }
        resign(f);
        expect_refused(f, "both writable and executable");
    }
    SUBCASE("trailing bytes") {
        auto f = good;
        f.push_back(std::byte{0});
        expect_refused(f, "trailing bytes");
    }
}

TEST_CASE("an image carries both buffer layouts and enters with the host's") {
    const std::vector<std::byte> file = read_bytes(NPA_SIMNIC_IMAGE);
    CHECK(header_of(file).buffer_layout ==
          (layout_bit(buffer_layout::packet_buffer) | layout_bit(buffer_layout::rte_mbuf)));
    CHECK(header_of(file).abi_minor == abi_minor);
    auto as_pb = load_image(file, simnic_id, test::trusted_keys());
    auto as_mbuf = load_image(file, simnic_id, test::trusted_keys(), buffer_layout::rte_mbuf);
    REQUIRE(as_pb.ok());
    REQUIRE(as_mbuf.ok());
    // The same bytes, two instantiations of the plugin: each layout its own operations.
    CHECK(std::string(as_mbuf->name()) == "simnic");
    CHECK(as_mbuf->ops().instance_size != 0);
    CHECK(as_pb->digest() == as_mbuf->digest());
    CHECK(reinterpret_cast<const void*>(as_pb->ops().tx_burst) !=
          reinterpret_cast<const void*>(as_mbuf->ops().tx_burst));
    // The 82576 VF image too: every image carries both.
    const auto igbvf = load_image(read_bytes(NPA_IGBVF_IMAGE), npa::igbvf_window::image_device_id,
                                  test::trusted_keys(), buffer_layout::rte_mbuf);
    CHECK(igbvf.ok());

    // A shell of npa::packet_buffer refuses a device bound through the rte_mbuf entry.
    npa::sim::simnic_rig rig;
    REQUIRE(rig.ok());
    auto dev = as_mbuf->bind(rig.window());
    REQUIRE(dev.ok());
    CHECK(dev->layout == buffer_layout::rte_mbuf);
    loaded_plugin<npa::sim::simnic_rig::api_type> p;
    const npa::status st = p.attach(rig.api(), *dev, rig.queue_cfg());
    CHECK_FALSE(st.ok());
    CHECK(std::string(st.reason()).find("another buffer layout") != std::string::npos);
    CHECK(rig.api().audit().with_plugin == 0);
}

TEST_CASE("refusals: a host whose buffer layout the image does not list") {
    const std::vector<std::byte> good = read_bytes(NPA_SIMNIC_IMAGE);
    SUBCASE("an image of npa::packet_buffer only, in an rte_mbuf host") {
        const auto f = with_header(good, [](image_header& h) {
            h.buffer_layout = layout_bit(buffer_layout::packet_buffer);
        });
        REQUIRE(load_image(f, simnic_id, test::trusted_keys()).ok());
        expect_refused(f, "without this host's buffer layout", simnic_id, buffer_layout::rte_mbuf);
    }
    SUBCASE("an image of rte_mbuf only, in a packet_buffer host") {
        const auto f = with_header(
            good, [](image_header& h) { h.buffer_layout = layout_bit(buffer_layout::rte_mbuf); });
        expect_refused(f, "without this host's buffer layout");
    }
    SUBCASE("a layout this host does not know") {
        const auto f = with_header(good, [](image_header& h) { h.buffer_layout |= 1u << 7; });
        expect_refused(f, "a buffer layout this host does not know");
    }
    SUBCASE("no layout at all") {
        const auto f = with_header(good, [](image_header& h) { h.buffer_layout = 0; });
        expect_refused(f, "a buffer layout this host does not know");
    }
    SUBCASE("a newer minor ABI than this host's") {
        const auto f = with_header(good, [](image_header& h) { h.abi_minor = abi_minor + 1; });
        expect_refused(f, "another ABI version");
    }
}
