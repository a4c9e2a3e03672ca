// The vhost-user back end's ring walk (npa/linux/vhost_user/vring.hpp) against a front end
// played in-process by the virtqueue core's driver side: frames in and out, then hostile
// descriptors (loops, indexes past the table, addresses outside the front end's memory, an
// impossible avail->idx), each refused and counted, never followed. Then the protocol side
// (back_end.hpp): a malformed message closes that connection and the port listens again.
#include <doctest/doctest.h>

#include <npa/linux/vhost_user/back_end.hpp>
#include <npa/linux/vhost_user/front_end.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <string>
#include <vector>

namespace vu = npa::vhost_user;
namespace vq = npa::virtio;

namespace {

constexpr std::uint32_t n = 8;
constexpr std::uint64_t gpa_base = 0x100000; // the front end's guest-physical view
constexpr std::size_t hdr = 12;

// One block of "front end memory" and the back end's view of it: the ring, what its walks
// counted, one frame taken at a time.
struct front_memory {
    alignas(4096) std::array<std::byte, 65536> mem{};
    vu::guest_memory gm;
    vu::vring ring;
    vu::io_stats st;

    front_memory() {
        REQUIRE(gm.add(mem.data(), gpa_base, reinterpret_cast<std::uint64_t>(mem.data()), mem.size()));
    }
    std::uint64_t gpa(std::size_t off) const { return gpa_base + off; }
    // Takes one frame through the back end.
    std::size_t take(std::vector<std::byte>& out, bool& more) {
        out.assign(2048, std::byte{0});
        const std::size_t len = vu::take_frame(ring, gm, hdr, out, st, more);
        ring.dev.publish_used();
        out.resize(std::min(len, out.size()));
        return len;
    }
};

// A split ring at 0, buffers from 4096.
struct front : front_memory {
    std::array<std::uint16_t, vq::split_driver::state_words(n)> state{};
    vq::split_driver drv;

    front() {
        const vq::split_ring r = vq::split_ring::in_block(mem.data(), n);
        REQUIRE(drv.reset(r, state, false));
        const vq::split_layout l = vq::layout_of(n);
        ring.num = n;
        ring.desc_uva = reinterpret_cast<std::uint64_t>(mem.data());
        ring.avail_uva = ring.desc_uva + l.avail;
        ring.used_uva = ring.desc_uva + l.used;
        ring.addr_set = ring.kicked = ring.enabled = true;
        REQUIRE(ring.start(gm, false));
    }
    vq::virtq_desc& desc(std::uint16_t i) { return drv.ring().desc()[i]; }
};

} // namespace

TEST_CASE("back end ring walk: a frame the front end transmits, header skipped across segments") {
    front f;
    // header 12 bytes + "hello" split as 8 | 9 bytes over two descriptors
    std::memset(f.mem.data() + 4096, 0, 8);
    std::memset(f.mem.data() + 8192, 0, 4);
    std::memcpy(f.mem.data() + 8192 + 4, "hello", 5);
    const vq::segment segs[2] = {{f.gpa(4096), 8, false}, {f.gpa(8192), 9, false}};
    REQUIRE(f.drv.add(segs) >= 0);
    (void)f.drv.publish();
    std::vector<std::byte> out;
    bool more = false;
    CHECK(f.take(out, more) == 5);
    CHECK(more);
    CHECK(std::memcmp(out.data(), "hello", 5) == 0);
    vq::used_chain u;
    CHECK(f.drv.poll_used(u) == vq::used_status::ok);
    CHECK(f.take(out, more) == 0);
    CHECK_FALSE(more);
    CHECK(f.ring.dev.errors() == 0);
}

TEST_CASE("back end ring walk: indirect tables in the front end's memory, taken, given and refused") {
    front f;
    REQUIRE(f.ring.start(f.gm, false, false, true)); // VIRTIO_F_INDIRECT_DESC negotiated
    const auto entry = [&](std::size_t table, std::uint16_t i, std::size_t buf, std::uint32_t len,
                           std::uint16_t flags, std::uint16_t next) {
        std::byte* e = f.mem.data() + table + 16u * i;
        npa::store_le64(e, f.gpa(buf));
        npa::store_le32(e + 8, len);
        npa::store_le16(e + 12, flags);
        npa::store_le16(e + 14, next);
    };
    const auto post_table = [&](std::size_t table, std::uint32_t len) {
        const vq::segment s{f.gpa(table), len, false};
        const std::int32_t head = f.drv.add({&s, 1});
        REQUIRE(head >= 0);
        f.desc(static_cast<std::uint16_t>(head)).flags = vq::desc_f_indirect;
        (void)f.drv.publish();
    };
    // As DPDK's virtio PMD sends a chained mbuf: the header, then the frame in two pieces.
    std::memcpy(f.mem.data() + 8192, "indirect", 8);
    std::memcpy(f.mem.data() + 12288, " frame", 6);
    entry(4096, 0, 6000, 12, vq::desc_f_next, 1);
    entry(4096, 1, 8192, 8, vq::desc_f_next, 2);
    entry(4096, 2, 12288, 6, 0, 0);
    post_table(4096, 48);
    std::vector<std::byte> out;
    bool more = false;
    REQUIRE(f.take(out, more) == 14);
    CHECK(std::memcmp(out.data(), "indirect frame", 14) == 0);
    CHECK(f.st.indirect == 1);
    // A receive buffer as a table of two writable halves: the header and frame land in them.
    entry(4608, 0, 16384, 20, vq::desc_f_write | vq::desc_f_next, 1);
    entry(4608, 1, 20480, 100, vq::desc_f_write, 0);
    post_table(4608, 32);
    const std::array<std::byte, 30> frame{std::byte{0x5A}};
    REQUIRE(vu::give_frame(f.ring, f.gm, hdr, false, frame, f.st));
    f.ring.dev.publish_used();
    CHECK(f.mem[16384 + 12] == std::byte{0x5A}); // the frame starts after the 12-byte header
    CHECK(f.st.indirect == 2);
    vq::used_chain u;
    REQUIRE(f.drv.poll_used(u) == vq::used_status::ok);
    REQUIRE(f.drv.poll_used(u) == vq::used_status::ok);
    CHECK(u.len == 42);
    // A table running past the end of the mapped memory is refused, never read, given back.
    post_table(f.mem.size() - 16, 32);
    CHECK(f.take(out, more) == 0);
    CHECK(more);
    CHECK(f.ring.dev.errors(vq::chain_error::bad_address) == 1);
    REQUIRE(f.drv.poll_used(u) == vq::used_status::ok);
    CHECK(u.len == 0);
    CHECK(f.st.indirect == 2);
    CHECK(f.ring.dev.indirect_chains() == 2);
}

TEST_CASE("back end ring walk: hostile descriptors are refused and counted, never followed") {
    front f;
    std::vector<std::byte> out;
    bool more = false;
    const auto post_raw = [&](std::uint16_t head) { // a head the driver side did not check
        vq::split_ring r = f.drv.ring();
        const std::uint16_t idx = r.avail()->idx.load(std::memory_order_relaxed);
        r.avail_ring(idx) = head;
        r.avail()->idx.store(static_cast<std::uint16_t>(idx + 1), std::memory_order_release);
    };

    SUBCASE("a chain that loops") {
        f.desc(0) = {f.gpa(4096), 64, vq::desc_f_next, 1};
        f.desc(1) = {f.gpa(4096), 64, vq::desc_f_next, 0};
        post_raw(0);
        CHECK(f.take(out, more) == 0);
        CHECK(more);
        CHECK(f.ring.dev.errors(vq::chain_error::loop) == 1);
        // given back unused, so the front end's ring does not leak
        CHECK(f.drv.ring().used()->idx.load(std::memory_order_acquire) == 1);
        CHECK(f.drv.ring().used_ring(0).len == 0u);
    }
    SUBCASE("an address outside the mapped regions, and one that runs past the end") {
        f.desc(0) = {0x1000, 64, 0, 0};                          // below every region
        f.desc(1) = {f.gpa(f.mem.size() - 16), 64, 0, 0};        // starts inside, ends outside
        f.desc(2) = {~0ull - 8, 64, 0, 0};                       // wraps 2^64
        post_raw(0);
        post_raw(1);
        post_raw(2);
        for (int i = 0; i < 3; ++i) {
            CHECK(f.take(out, more) == 0);
        }
        CHECK(f.ring.dev.errors(vq::chain_error::bad_address) == 3);
    }
    SUBCASE("a head and a next index past the table") {
        post_raw(n + 3);
        CHECK(f.take(out, more) == 0);
        CHECK(f.ring.dev.errors(vq::chain_error::head_range) == 1);
        CHECK(f.drv.ring().used()->idx.load(std::memory_order_acquire) == 0); // no head to give back
        f.desc(0) = {f.gpa(4096), 64, vq::desc_f_next, 200};
        post_raw(0);
        CHECK(f.take(out, more) == 0);
        CHECK(f.ring.dev.errors(vq::chain_error::next_range) == 1);
    }
    SUBCASE("lengths that overflow 32 bits, and an indirect table not negotiated") {
        f.desc(0) = {f.gpa(4096), 0xFFFFFFF0u, vq::desc_f_next, 1};
        f.desc(1) = {f.gpa(4096), 0x100, 0, 0};
        post_raw(0);
        CHECK(f.take(out, more) == 0);
        CHECK(f.ring.dev.errors(vq::chain_error::length_overflow) +
                  f.ring.dev.errors(vq::chain_error::bad_address) == 1);
        f.desc(2) = {f.gpa(4096), 64, vq::desc_f_indirect, 0};
        post_raw(2);
        CHECK(f.take(out, more) == 0);
        CHECK(f.ring.dev.errors(vq::chain_error::indirect) == 1);
    }
    SUBCASE("a chain no longer than the header is counted, not read") {
        f.desc(0) = {f.gpa(4096), 12, 0, 0};
        post_raw(0);
        CHECK(f.take(out, more) == 0);
        CHECK(f.st.short_chain == 1);
    }
    SUBCASE("an impossible avail->idx stops the ring") {
        f.drv.ring().avail()->idx.store(n + 5, std::memory_order_release);
        CHECK(f.take(out, more) == 0);
        CHECK_FALSE(more);
        CHECK(f.ring.broken);
        CHECK_FALSE(f.ring.ready());
        CHECK(f.st.broken == 1);
    }
    SUBCASE("a frame too large for the caller's buffer says so") {
        f.desc(0) = {f.gpa(4096), 4000, 0, 0};
        post_raw(0);
        CHECK(f.take(out, more) == 4000 - hdr);
    }
}

TEST_CASE("back end ring walk: frames given to the front end's receive ring") {
    front f;
    const std::vector<std::byte> frame(100, std::byte{0x5a});
    SUBCASE("one chain large enough; the header the frame's whatever the buffer held") {
        // give_frame writes the header only where the buffer does not hold it already: a
        // buffer holding anything else (0xff: flags, GSO and num_buffers 0xffff; zeros:
        // num_buffers 0) gets it written, one holding it already keeps it.
        const std::array<std::uint8_t, hdr> want{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0};
        for (const int old : {0xff, 0, -1}) { // -1: the right header already there
            CAPTURE(old);
            if (old < 0) {
                std::memcpy(f.mem.data() + 4096, want.data(), hdr);
            } else {
                std::memset(f.mem.data() + 4096, old, hdr);
            }
            const vq::segment s{f.gpa(4096), 2048, true};
            REQUIRE(f.drv.add({&s, 1}) >= 0);
            (void)f.drv.publish();
            CHECK(vu::give_frame(f.ring, f.gm, hdr, false, frame, f.st));
            f.ring.dev.publish_used();
            vq::used_chain u;
            REQUIRE(f.drv.poll_used(u) == vq::used_status::ok);
            CHECK(u.len == hdr + frame.size());
            CHECK(std::memcmp(f.mem.data() + 4096, want.data(), hdr) == 0);
            CHECK(std::to_integer<int>(f.mem[4096 + hdr]) == 0x5a);
            CHECK(std::to_integer<int>(f.mem[4096 + hdr + 50]) == 0x5a);
        }
    }
    SUBCASE("without MRG_RXBUF a chain too small keeps its place; with it the frame takes two") {
        const vq::segment a{f.gpa(4096), 64, true}, b{f.gpa(8192), 64, true};
        REQUIRE(f.drv.add({&a, 1}) >= 0);
        REQUIRE(f.drv.add({&b, 1}) >= 0);
        (void)f.drv.publish();
        CHECK_FALSE(vu::give_frame(f.ring, f.gm, hdr, false, frame, f.st));
        CHECK(f.st.rx_too_big == 1);
        CHECK(f.ring.dev.base() == 0);
        CHECK(vu::give_frame(f.ring, f.gm, hdr, true, frame, f.st));
        f.ring.dev.publish_used();
        std::uint16_t num_buffers;
        std::memcpy(&num_buffers, f.mem.data() + 4096 + 10, 2);
        CHECK(num_buffers == 2);
        vq::used_chain u;
        REQUIRE(f.drv.poll_used(u) == vq::used_status::ok);
        CHECK(u.len == 64);
        REQUIRE(f.drv.poll_used(u) == vq::used_status::ok);
        CHECK(u.len == hdr + frame.size() - 64);
    }
    SUBCASE("no chain: counted, nothing taken; a read-only chain is refused") {
        CHECK_FALSE(vu::give_frame(f.ring, f.gm, hdr, true, frame, f.st));
        CHECK(f.st.rx_no_buffer == 1);
        const vq::segment s{f.gpa(4096), 2048, false};
        REQUIRE(f.drv.add({&s, 1}) >= 0);
        (void)f.drv.publish();
        CHECK_FALSE(vu::give_frame(f.ring, f.gm, hdr, true, frame, f.st));
        CHECK(f.ring.dev.errors(vq::chain_error::bad_address) == 1);
    }
}

namespace {

// The same, over a packed ring (VIRTIO_F_RING_PACKED) of a size no power of two: the
// descriptor ring at 0, the driver's event area after it, the device's after that, as
// SET_VRING_ADDR's desc, avail and used name them.
constexpr std::uint32_t pn = 6;

struct packed_front : front_memory {
    std::array<std::uint16_t, vq::packed_driver::state_words(pn)> state{};
    vq::packed_driver drv;

    packed_front() {
        const vq::packed_ring r(mem.data(), mem.data() + 16 * pn, mem.data() + 16 * pn + 4, pn);
        REQUIRE(drv.reset(r, state));
        ring.num = pn;
        ring.base = 0x8000; // position 0, wrap counter 1: what DPDK's virtio-user sends
        ring.desc_uva = reinterpret_cast<std::uint64_t>(mem.data());
        ring.avail_uva = ring.desc_uva + 16 * pn;
        ring.used_uva = ring.avail_uva + 4;
        ring.addr_set = ring.kicked = ring.enabled = true;
        REQUIRE(ring.start(gm, false, true));
    }
    vq::pvirtq_desc& desc(std::uint16_t i) { return drv.ring().desc()[i]; }
    // A frame of `len` bytes of `fill` as the front end transmits it: header | payload.
    std::int32_t send(std::size_t len, std::uint8_t fill) {
        std::memset(mem.data() + 4096, 0, hdr);
        std::memset(mem.data() + 8192, fill, len);
        const vq::segment segs[2] = {{gpa(4096), static_cast<std::uint32_t>(hdr), false},
                                     {gpa(8192), static_cast<std::uint32_t>(len), false}};
        return drv.add(segs);
    }
};

} // namespace

TEST_CASE("packed ring walk: frames over many laps; GET_VRING_BASE carries the wrap counter in bit 15") {
    packed_front f;
    REQUIRE(f.ring.dev.packed());
    std::vector<std::byte> out;
    bool more = false;
    vq::used_chain u;
    for (std::uint32_t i = 0; i < 20; ++i) { // 2 positions each: 40 positions, 6 laps and 4
        const std::int32_t id = f.send(60 + i, static_cast<std::uint8_t>(i));
        REQUIRE(id >= 0);
        REQUIRE(f.take(out, more) == 60 + i);
        CHECK(std::to_integer<unsigned>(out[59 + i]) == i);
        REQUIRE(f.drv.poll_used(u) == vq::used_status::ok);
        CHECK(u.id == id);
    }
    CHECK(f.take(out, more) == 0);
    CHECK_FALSE(more);
    // stopped after 40 positions: position 4, the wrap counter back to 1 after 6 laps
    CHECK(f.ring.stop() == (4 | 0x8000));
    REQUIRE(f.ring.start(f.gm, false, true)); // SET_VRING_BASE with what GET_VRING_BASE said
    const std::int32_t id = f.send(70, 0x77);
    REQUIRE(f.take(out, more) == 70);
    REQUIRE(f.drv.poll_used(u) == vq::used_status::ok);
    CHECK(u.id == id);
    CHECK(f.ring.dev.errors() == 0);
    // a base past the ring's end starts nothing
    f.ring.base = 0x8000 | pn;
    CHECK_FALSE(f.ring.start(f.gm, false, true));
}

TEST_CASE("packed ring walk: hostile buffers are refused by cause and given back, never followed") {
    packed_front f;
    std::vector<std::byte> out;
    bool more = false;
    vq::used_chain u;
    SUBCASE("an address outside the mapped regions, then a good frame") {
        const vq::segment bad[2] = {{f.gpa(4096), 12, false}, {0x1000, 64, false}};
        const std::int32_t bad_id = f.drv.add(bad);
        const std::int32_t good_id = f.send(64, 0x11);
        REQUIRE((bad_id >= 0 && good_id >= 0));
        CHECK(f.take(out, more) == 0);
        CHECK(more);
        CHECK(f.ring.dev.errors(vq::chain_error::bad_address) == 1);
        REQUIRE(f.drv.poll_used(u) == vq::used_status::ok); // given back unused
        CHECK((u.id == bad_id && u.len == 0));
        CHECK(f.take(out, more) == 64);
        REQUIRE(f.drv.poll_used(u) == vq::used_status::ok);
        CHECK(u.id == good_id);
    }
    SUBCASE("lengths that overflow 32 bits, indirect, readable after writable") {
        const vq::segment over[2] = {{f.gpa(4096), 0xFFFFFFF0u, false}, {f.gpa(4096), 0x100, false}};
        REQUIRE(f.drv.add(over) >= 0);
        CHECK(f.take(out, more) == 0);
        CHECK(f.ring.dev.errors(vq::chain_error::length_overflow) + f.ring.dev.errors(vq::chain_error::bad_address) == 1);
        REQUIRE(f.drv.poll_used(u) == vq::used_status::ok);
        const vq::segment one{f.gpa(4096), 64, false};
        REQUIRE(f.drv.add({&one, 1}) >= 0);
        f.desc(2).flags = static_cast<std::uint16_t>(f.desc(2).flags | vq::desc_f_indirect);
        CHECK(f.take(out, more) == 0);
        CHECK(f.ring.dev.errors(vq::chain_error::indirect) == 1);
        REQUIRE(f.drv.poll_used(u) == vq::used_status::ok);
        const vq::segment raw[2] = {{f.gpa(4096), 64, true}, {f.gpa(8192), 64, false}};
        REQUIRE(f.drv.add(raw) >= 0);
        CHECK(f.take(out, more) == 0);
        CHECK(f.ring.dev.errors(vq::chain_error::read_after_write) == 1);
        REQUIRE(f.drv.poll_used(u) == vq::used_status::ok);
        CHECK(f.ring.ready());
    }
    SUBCASE("a chain with no end stops the ring") {
        const vq::segment one{f.gpa(4096), 64, false};
        REQUIRE(f.drv.add({&one, 1}) >= 0);
        f.desc(0).flags = static_cast<std::uint16_t>(f.desc(0).flags | vq::desc_f_next);
        CHECK(f.take(out, more) == 0);
        CHECK_FALSE(more);
        CHECK(f.ring.broken);
        CHECK_FALSE(f.ring.ready());
        CHECK(f.st.broken == 1);
        CHECK(f.ring.dev.errors(vq::chain_error::loop) == 1);
        CHECK(f.drv.poll_used(u) == vq::used_status::empty); // nothing written back
    }
}

TEST_CASE("packed ring walk: frames given to the front end's receive ring") {
    packed_front f;
    const std::vector<std::byte> frame(100, std::byte{0x5a});
    vq::used_chain u;
    // Four 64-byte buffers: the ring wraps while the frames are given.
    std::array<std::int32_t, 4> ids{};
    for (std::size_t i = 0; i < ids.size(); ++i) {
        const vq::segment s{f.gpa(4096 + 4096 * i), 64, true};
        ids[i] = f.drv.add({&s, 1});
        REQUIRE(ids[i] >= 0);
    }
    // without MRG_RXBUF a buffer too small keeps its place
    CHECK_FALSE(vu::give_frame(f.ring, f.gm, hdr, false, frame, f.st));
    CHECK(f.st.rx_too_big == 1);
    CHECK(f.ring.dev.base() == 0x8000);
    // with it the frame takes two buffers, num_buffers 2
    CHECK(vu::give_frame(f.ring, f.gm, hdr, true, frame, f.st));
    std::uint16_t num_buffers;
    std::memcpy(&num_buffers, f.mem.data() + 4096 + 10, 2);
    CHECK(num_buffers == 2);
    REQUIRE(f.drv.poll_used(u) == vq::used_status::ok);
    CHECK((u.id == ids[0] && u.len == 64));
    REQUIRE(f.drv.poll_used(u) == vq::used_status::ok);
    CHECK((u.id == ids[1] && u.len == hdr + frame.size() - 64));
    // a frame that needs three buffers where two wait: both stay available
    const std::vector<std::byte> big(150, std::byte{0x33});
    CHECK_FALSE(vu::give_frame(f.ring, f.gm, hdr, true, big, f.st));
    CHECK(f.st.rx_no_buffer == 1);
    CHECK(f.ring.dev.base() == (0x8000 | 2));
    for (int i = 0; i < 3; ++i) { // three more buffers: positions 4, 5 and 0 of the next lap
        const vq::segment s{f.gpa(32768 + 4096 * static_cast<std::size_t>(i)), 64, true};
        REQUIRE(f.drv.add({&s, 1}) >= 0);
    }
    CHECK(vu::give_frame(f.ring, f.gm, hdr, true, big, f.st));
    CHECK(vu::give_frame(f.ring, f.gm, hdr, true, frame, f.st));
    for (int i = 0; i < 5; ++i) {
        REQUIRE(f.drv.poll_used(u) == vq::used_status::ok);
    }
    CHECK(f.drv.poll_used(u) == vq::used_status::empty);
    CHECK(f.ring.dev.base() == 1); // position 1 of lap 2: wrap counter 0
    CHECK(f.ring.dev.errors() == 0);
}

TEST_CASE("back end protocol: negotiation with npa's front end; a malformed message closes only that connection; "
          "a ring stopped by SET_VRING_ENABLE 0 or GET_VRING_BASE is walked first; a ring past the port's "
          "ignored, enabling it refused") {
    char dir[] = "/tmp/npa-vu-be-XXXXXX";
    REQUIRE(::mkdtemp(dir) != nullptr);
    const std::string path = std::string(dir) + "/p.sock";
    std::vector<std::string> logs;
    vu::back_end be(1, [&](const std::string& s) { logs.push_back(s); });
    REQUIRE(be.listen(path));

    // A raw client sends garbage: a version-2 header.
    {
        const int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
        REQUIRE(::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        (void)be.service(); // accepts
        CHECK(be.connected());
        const vu::header h{1, 2, 0};
        REQUIRE(::write(s, &h, sizeof h) == sizeof h);
        CHECK_FALSE(be.service());
        CHECK_FALSE(be.connected());
        CHECK(be.protocol_errors() == 1);
        REQUIRE_FALSE(logs.empty());
        CHECK(logs.back().find("protocol version") != std::string::npos);
        ::close(s);
    }
    // npa's own front end then sets up both rings (the back end served from a thread).
    std::atomic<bool> stop{false};
    std::atomic<unsigned> walked{0}; // a bit a ring, set by before_ring_stop
    be.before_ring_stop = [&](std::uint32_t ring) {
        if (be.rings()[ring].ready()) { // called while the ring still runs
            walked |= 1u << ring;
        }
    };
    const auto serve = [&] {
        while (!stop.load()) {
            (void)be.service();
            std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
    };
    std::thread t(serve);
    vu::shared_memory mem;
    REQUIRE(mem.create(65536));
    vu::front_end fe;
    REQUIRE(fe.connect(path));
    REQUIRE(fe.negotiate(vu::feature::version_1 | vu::feature::net_mrg_rxbuf, mem));
    const vq::split_layout l = vq::layout_of(256);
    for (std::uint32_t i = 0; i < 2; ++i) {
        vu::ring_layout r;
        r.size = 256;
        r.desc = i * 16384;
        r.avail = r.desc + l.avail;
        r.used = r.desc + l.used;
        REQUIRE(fe.set_ring(i, r, mem));
    }
    CHECK((fe.protocol_features() & vu::protocol::reply_ack) != 0);
    CHECK(walked.load() == 0);
    // disabling the receiveq walks it first (as any running ring), once: disabled, it no
    // longer runs, so GET_VRING_BASE does not walk it again
    REQUIRE(fe.enable_ring(0, false));
    CHECK(walked.load() == 1u);
    std::uint32_t base = 99;
    REQUIRE(fe.get_ring_base(0, base));
    CHECK(walked.load() == 1u);
    REQUIRE(fe.get_ring_base(1, base)); // the running transmitq: walked before it stops
    CHECK(walked.load() == 3u);
    CHECK(base == 0);
    stop = true;
    t.join();
    CHECK(be.connected());
    CHECK(be.has(vu::feature::version_1));
    // multiqueue offered only with more than one pair
    CHECK((be.offered & npa::virtio_net::feature::MQ) == 0);
    CHECK((vu::back_end(2).offered & npa::virtio_net::feature::MQ) != 0);
    CHECK_FALSE(be.rings()[0].enabled);
    CHECK_FALSE(be.rings()[1].started); // stopped by GET_VRING_BASE

    // A ring past the port's one pair, as DPDK's virtio-user with queues=2 sets up when MQ
    // was not negotiated: its setup accepted and ignored (GET_VRING_BASE answered 0),
    // disabling it fine, enabling it refused: that connection closes, said why.
    stop = false;
    std::thread t2(serve);
    std::uint32_t past = 99;
    REQUIRE(fe.get_ring_base(2, past));
    CHECK(past == 0);
    REQUIRE(fe.enable_ring(3, false));
    CHECK_FALSE(fe.enable_ring(2, true));
    stop = true;
    t2.join();
    CHECK_FALSE(be.connected());
    CHECK(be.protocol_errors() == 2);
    REQUIRE(logs.size() >= 2);
    CHECK(logs[logs.size() - 2].find("ring 2 is past the port's 1 queue pair(s)") != std::string::npos);
    CHECK(logs.back().find("beyond the port's queue pairs enabled") != std::string::npos);
    ::unlink(path.c_str());
    ::rmdir(dir);
}
