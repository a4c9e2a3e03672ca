// fuzz/virtio_net_device_fuzz.cpp: both sides of virtio-net's virtqueues against a
// hostile other side. The first byte picks the program:
//
//   0 mod 4: hostile driver memory against the device side, split virtqueues. A raw driver brings the sim
//         virtio-net device up (features, status and queue addresses chosen by the
//         fuzzer, most of them valid), then interleaves well-formed chains (TX frames, RX
//         buffers) with fuzzer bytes written over everything a driver may write: the
//         descriptor table (addr, len, flags NEXT/WRITE/INDIRECT, next), the available
//         ring (flags, idx, ring[], used_event), the status byte, queue re-enables with
//         any addresses; frames arrive from the wire and the device steps. Invariants: no
//         OOB/UB (sanitizers: the device reaches driver memory only through checked
//         translation), every used entry the device writes names a descriptor of the
//         table, used->idx never runs more than the queue size ahead of what the driver
//         has taken, and the device writes nothing once it is reset.
//   2 mod 4: the same on packed virtqueues (VIRTIO_F_RING_PACKED): fuzzer bytes over the
//         descriptor ring (addr, len, id, flags AVAIL/USED/NEXT/WRITE/INDIRECT) and the
//         driver's event area. Invariants: no OOB/UB; in one step the device writes only
//         used descriptors (AVAIL and USED equal) and only at positions that held the
//         available form before it, never over a descriptor already used or one the
//         driver had not made available (a step whose buffers the fuzzer aimed at the
//         rings themselves is not judged); nothing after a reset.
//   odd:  the virtio-net plugin against a hostile device (fuzz/device_fuzz.hpp's program):
//         fuzzer bytes over the used rings (flags, idx, ring[] ids and lengths), and the
//         fault plans of every model; bits 2-7 of the first byte have the device use
//         transmitq and receiveq chains in IN_ORDER batches of up to 1-8 (tx_batch,
//         rx_batch), so the bytes land among batch entries too. Invariants as
//         device_fuzz.hpp states them.
#include "device_fuzz.hpp"

#include <npa/plugins/virtio_net/plugin.hpp>
#include <npa/sim/virtio_net_rig.hpp>

#include <cstddef>
#include <cstring>
#include <vector>

namespace {

namespace vio = npa::virtio;
namespace vn = npa::virtio_net;

// ---- odd: the plugin against a hostile device ----------------------------------------------
struct virtio_hostile {
    std::uint16_t tx_batch = 1, rx_batch = 1;
    void configure(npa::sim::virtio_net_rig::config& c) const noexcept {
        c.tx_batch = tx_batch;
        c.rx_batch = rx_batch;
    }
    void install(npa::sim::virtio_net_rig&, npa::sim::register_fault) const noexcept {}

    // The used ring of one of the attached queues (the plugin's layout: per pair, the
    // receiveq's block then the transmitq's, each at a multiple of vq_align).
    void memory(npa::sim::virtio_net_rig& rig, bool attached, std::uint16_t queues,
                npa::fuzz::input& in) const {
        if (!attached) {
            return;
        }
        const auto& c = rig.cfg();
        const auto q = in.below(queues);
        const bool tx = in.flag();
        constexpr std::size_t a = npa::virtio_net_tuning::vq_align;
        auto up = [](std::size_t n) { return (n + a - 1) / a * a; };
        std::size_t at = q * npa::virtio_net_queue_bytes(c.tx_ring, c.rx_ring);
        at += tx ? up(vio::layout_of(c.rx_ring).total) : 0;
        const std::uint32_t n = tx ? c.tx_ring : c.rx_ring;
        const vio::split_layout l = vio::layout_of(n);
        std::byte* used = rig.window().ring_area().virt + at + l.used;
        const std::size_t bytes = vio::used_bytes(n);
        const std::size_t off = in.u16() % bytes;
        const auto b = in.bytes(bytes - off < 8 ? bytes - off : 8);
        for (std::size_t i = 0; i < b.size(); ++i) {
            used[off + i] = static_cast<std::byte>(b[i]);
        }
    }
    void registers(npa::sim::virtio_net_rig&, npa::fuzz::register_lies&, std::uint16_t,
                   npa::fuzz::input&) const {}
    void control(npa::sim::virtio_net_rig&, npa::fuzz::input&) const {}
};

// ---- 0 mod 4: a hostile driver against the device, split rings ------------------------------
constexpr std::uint32_t qsize = 16;
constexpr std::uint32_t max_ops = 300;
struct pvirtq_snapshot {
    std::byte d[16 * qsize];
};

// The rig both driver programs bring up: one pair of qsize-entry queues, each ring in a
// 4 KiB block at the start of the ring area, the buffers after them.
npa::sim::virtio_net_rig::config driver_rig(bool packed) {
    npa::sim::virtio_net_rig::config c;
    c.queues = 1;
    c.tx_ring = c.rx_ring = qsize;
    c.buffers = 64;
    c.guest_bytes = npa::fuzz::device_guest_bytes;
    c.packed_ring = packed;
    return c;
}
constexpr std::size_t rings_bytes = 8192;

// A well-formed chain of 1-3 buffers in the buffer area, writable on the receiveq (q 0).
std::uint32_t fuzz_chain(npa::fuzz::input& in, const vn::ring_memory& m, std::uint16_t q, vio::segment (&seg)[3]) {
    const std::uint32_t k = 1 + in.below(3);
    for (std::uint32_t i = 0; i < k; ++i) {
        const std::uint32_t len = 1 + in.u16() % 2048;
        seg[i] = {m.iova + rings_bytes + in.u16() % (m.size - rings_bytes - 2048), len, q == 0};
    }
    return k;
}

// One side of the rig as a driver: receiveq 0 or transmitq 0 in its 4 KiB block.
template <class Driver>
struct driver_side {
    std::byte* block;
    npa::iova_t iova;
    Driver drv;
    std::vector<std::uint16_t> state = std::vector<std::uint16_t>(Driver::state_words(qsize));
    std::uint16_t taken = 0; // split: used entries the driver has read
};

// Reset, ACKNOWLEDGE, DRIVER, the features (all the device offers, or fuzzer bits with
// VERSION_1; `always` added), FEATURES_OK, set_up(features) for the queues, DRIVER_OK.
template <class SetUp>
void start_device(const vio::transport& t, npa::fuzz::input& in, std::uint64_t always, SetUp&& set_up) {
    namespace st = vio::status_bit;
    t.set_status(0);
    t.set_status(st::ACKNOWLEDGE | st::DRIVER);
    const std::uint64_t f = (t.device_features() & (in.flag() ? ~0ull : in.u32() | vio::feature::VERSION_1)) | always;
    t.set_driver_features(f);
    t.set_status(st::ACKNOWLEDGE | st::DRIVER | st::FEATURES_OK);
    set_up(f);
    t.set_status(st::ACKNOWLEDGE | st::DRIVER | st::FEATURES_OK | st::DRIVER_OK);
}

// A reset, then frames from the wire and steps: the device writes nothing to the rings.
template <class BringUp>
void check_reset_silent(npa::sim::virtio_net_rig& rig, const vn::ring_memory& m, BringUp&& bring_up) {
    bring_up();
    rig.window().transport().set_status(0);
    std::vector<std::byte> before(m.virt, m.virt + rings_bytes);
    rig.far_send(rig.flow_for_queue(0), 4);
    rig.step(2);
    NPA_FUZZ_CHECK(std::memcmp(before.data(), m.virt, rings_bytes) == 0);
    bring_up();
}

int hostile_driver(npa::fuzz::input& in) {
    npa::sim::virtio_net_rig rig(driver_rig(false));
    NPA_FUZZ_CHECK(rig.ok());
    const vio::transport& t = rig.window().transport();
    const vn::ring_memory m = rig.window().ring_area();
    const vio::split_layout l = vio::layout_of(qsize);
    // receiveq 0 and transmitq 0, one block each; buffers after them.
    using side = driver_side<vio::split_driver>;
    side s[2] = {{m.virt, m.iova}, {m.virt + 4096, m.iova + 4096}};
    auto bring_up = [&] {
        start_device(t, in, 0, [&](std::uint64_t f) {
            for (std::uint16_t q = 0; q < 2; ++q) {
                (void)s[q].drv.reset(vio::split_ring::in_block(s[q].block, qsize), s[q].state,
                                     (f & vio::feature::EVENT_IDX) != 0);
                s[q].taken = 0;
                (void)t.queue_enable(q, {s[q].iova, s[q].iova + l.avail, s[q].iova + l.used, qsize, 0});
            }
        });
    };
    bool checked = true; // false once a queue was re-enabled at fuzzer addresses (it may
                         // then write its used ring over ours: not a device error)
    bring_up();
    // What the device wrote to a used ring: every entry names a descriptor of the table,
    // and the index runs no more than the queue size ahead of what was read.
    auto check_used = [&](side& x) {
        if (!checked) {
            return;
        }
        const vio::split_ring& r = x.drv.ring();
        const std::uint16_t idx = r.used()->idx;
        const auto ahead = static_cast<std::uint16_t>(idx - x.taken);
        NPA_FUZZ_CHECK(ahead <= qsize);
        for (; x.taken != idx; ++x.taken) {
            NPA_FUZZ_CHECK(r.used_ring(x.taken).id.get() < qsize);
        }
    };
    for (std::uint32_t op = 0; op < max_ops && !in.empty(); ++op) {
        const auto q = static_cast<std::uint16_t>(in.below(2));
        side& x = s[q];
        switch (in.below(9)) {
        case 0:
        case 1: { // a well-formed chain: 1-3 buffers in the buffer area
            vio::segment seg[3];
            const std::uint32_t k = fuzz_chain(in, m, q, seg);
            (void)x.drv.add({seg, k});
            if (x.drv.publish()) {
                t.notify(q);
            }
            break;
        }
        case 2: { // fuzzer bytes over the descriptor table
            const std::size_t off = in.u16() % vio::desc_bytes(qsize);
            const auto b = in.bytes(16);
            for (std::size_t i = 0; i < b.size() && off + i < vio::desc_bytes(qsize); ++i) {
                x.block[off + i] = static_cast<std::byte>(b[i]);
            }
            break;
        }
        case 3: { // ... over the available ring (flags, idx, ring[], used_event)
            const std::size_t off = in.u16() % vio::avail_bytes(qsize);
            const auto b = in.bytes(4);
            for (std::size_t i = 0; i < b.size() && off + i < vio::avail_bytes(qsize); ++i) {
                x.block[l.avail + off + i] = static_cast<std::byte>(b[i]);
            }
            break;
        }
        case 4: rig.far_send(rig.flow_for_queue(0), 1 + in.below(8)); break;
        case 5:
        case 6:
            rig.step(1 + in.below(3));
            check_used(s[0]);
            check_used(s[1]);
            break;
        case 7:
            if (in.flag()) { // a queue re-enabled anywhere
                const vio::queue_setup qs{in.u32() | (std::uint64_t{in.u8()} << 32), m.iova + in.u16(),
                                          m.iova + in.u16(), static_cast<std::uint16_t>(1u << in.below(16)), 0};
                checked = !t.queue_enable(q, qs) && checked;
            } else {
                t.set_status(in.u8());
            }
            break;
        default: // reset: afterwards the device writes nothing
            check_reset_silent(rig, m, bring_up);
            checked = true;
            break;
        }
    }
    return 0;
}

// ---- 2 mod 4: a hostile driver against the device, packed rings -----------------------------
int hostile_packed_driver(npa::fuzz::input& in) {
    npa::sim::virtio_net_rig rig(driver_rig(true));
    NPA_FUZZ_CHECK(rig.ok());
    const vio::transport& t = rig.window().transport();
    const vn::ring_memory m = rig.window().ring_area();
    const vio::packed_layout l = vio::packed_layout_of(qsize);
    using side = driver_side<vio::packed_driver>;
    side s[2] = {{m.virt, m.iova}, {m.virt + 4096, m.iova + 4096}};
    auto bring_up = [&] { // RING_PACKED always: the driver side here lays packed rings out
        start_device(t, in, vio::feature::RING_PACKED, [&](std::uint64_t f) {
            for (std::uint16_t q = 0; q < 2; ++q) {
                (void)s[q].drv.reset(vio::packed_ring::in_block(s[q].block, qsize), s[q].state,
                                     (f & vio::feature::EVENT_IDX) != 0);
                (void)t.queue_enable(q, {s[q].iova, s[q].iova + l.driver, s[q].iova + l.device, qsize, 0});
            }
        });
    };
    bool checked = true; // false once a queue was re-enabled at fuzzer addresses
    bring_up();
    // One device step with both descriptor rings watched: each position it changed held
    // the available form (AVAIL != USED) before, and holds a used descriptor after.
    auto step = [&](std::uint32_t n) {
        pvirtq_snapshot before[2];
        for (int q = 0; q < 2; ++q) {
            std::memcpy(before[q].d, s[q].block, sizeof before[q].d);
        }
        // A descriptor whose buffer the fuzzer aimed at the rings themselves: the device
        // then writes a frame there, the driver's doing; that step is not judged.
        bool aimed = false;
        for (int q = 0; q < 2; ++q) {
            for (std::uint32_t i = 0; i < qsize; ++i) {
                std::uint64_t addr;
                std::uint32_t len;
                std::memcpy(&addr, before[q].d + 16 * i, 8);
                std::memcpy(&len, before[q].d + 16 * i + 8, 4);
                aimed |= addr < m.iova + rings_bytes && addr + len > m.iova;
            }
        }
        rig.step(n);
        if (!checked || aimed) {
            return;
        }
        for (int q = 0; q < 2; ++q) {
            for (std::uint32_t i = 0; i < qsize; ++i) {
                const std::byte* now = s[q].block + 16 * i;
                if (std::memcmp(now, before[q].d + 16 * i, 16) == 0) {
                    continue;
                }
                const auto flags = [](const std::byte* d) {
                    return static_cast<std::uint16_t>(std::to_integer<unsigned>(d[14]) |
                                                      std::to_integer<unsigned>(d[15]) << 8);
                };
                const std::uint16_t was = flags(before[q].d + 16 * i), is = flags(now);
                NPA_FUZZ_CHECK(((was & vio::desc_f_avail) != 0) != ((was & vio::desc_f_used) != 0));
                NPA_FUZZ_CHECK(((is & vio::desc_f_avail) != 0) == ((is & vio::desc_f_used) != 0));
            }
        }
    };
    for (std::uint32_t op = 0; op < max_ops && !in.empty(); ++op) {
        const auto q = static_cast<std::uint16_t>(in.below(2));
        side& x = s[q];
        switch (in.below(9)) {
        case 0:
        case 1: { // a well-formed buffer of 1-3 descriptors; used ones read back first
            vio::used_chain u;
            while (x.drv.poll_used(u) == vio::used_status::ok) {
            }
            vio::segment seg[3];
            const std::uint32_t k = fuzz_chain(in, m, q, seg);
            (void)x.drv.add({seg, k});
            if (x.drv.publish()) {
                t.notify(q);
            }
            break;
        }
        case 2:
        case 3: { // fuzzer bytes over the descriptor ring, flags included
            const std::size_t off = in.u16() % vio::packed_desc_bytes(qsize);
            const auto b = in.bytes(16);
            for (std::size_t i = 0; i < b.size() && off + i < vio::packed_desc_bytes(qsize); ++i) {
                x.block[off + i] = static_cast<std::byte>(b[i]);
            }
            break;
        }
        case 4: { // ... over the driver's event area, or frames from the wire
            if (in.flag()) {
                const auto b = in.bytes(4);
                for (std::size_t i = 0; i < b.size(); ++i) {
                    x.block[l.driver + i] = static_cast<std::byte>(b[i]);
                }
            } else {
                rig.far_send(rig.flow_for_queue(0), 1 + in.below(8));
            }
            break;
        }
        case 5:
        case 6: step(1 + in.below(3)); break;
        case 7:
            if (in.flag()) { // a queue re-enabled anywhere, of any size
                const vio::queue_setup qs{in.u32() | (std::uint64_t{in.u8()} << 32), m.iova + in.u16(),
                                          m.iova + in.u16(), static_cast<std::uint16_t>(1 + in.below(64)), 0};
                checked = !t.queue_enable(q, qs) && checked;
            } else {
                t.set_status(in.u8());
            }
            break;
        default: // reset: afterwards the device writes nothing
            check_reset_silent(rig, m, bring_up);
            checked = true;
            break;
        }
    }
    return 0;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    if ((data[0] & 1) != 0) {
        const virtio_hostile h{static_cast<std::uint16_t>(1 + ((data[0] >> 2) & 7)),
                               static_cast<std::uint16_t>(1 + ((data[0] >> 5) & 7))};
        return npa::fuzz::run_device_program<npa::sim::virtio_net_rig, npa::virtio_net_plugin>(
            data + 1, size - 1, h);
    }
    npa::fuzz::input in(data + 1, size - 1);
    return (data[0] & 2) != 0 ? hostile_packed_driver(in) : hostile_driver(in);
}
