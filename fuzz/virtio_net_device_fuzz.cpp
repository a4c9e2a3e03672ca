// fuzz/virtio_net_device_fuzz.cpp: both sides of virtio-net's split virtqueues against a
// hostile other side. The first byte picks the program:
//
//   even: hostile driver memory against the device side. A raw driver brings the sim
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
//   odd:  the virtio-net plugin against a hostile device (fuzz/device_fuzz.hpp's program):
//         fuzzer bytes over the used rings (flags, idx, ring[] ids and lengths), and the
//         fault plans of every model. Invariants as device_fuzz.hpp states them.
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

// ---- even: a hostile driver against the device ----------------------------------------------
constexpr std::uint32_t qsize = 16;
constexpr std::uint32_t max_ops = 300;

int hostile_driver(npa::fuzz::input& in) {
    npa::sim::virtio_net_rig::config c;
    c.queues = 1;
    c.tx_ring = c.rx_ring = qsize;
    c.buffers = 64;
    c.guest_bytes = npa::fuzz::device_guest_bytes;
    npa::sim::virtio_net_rig rig(c);
    NPA_FUZZ_CHECK(rig.ok());
    const vio::transport& t = rig.window().transport();
    const vn::ring_memory m = rig.window().ring_area();
    const vio::split_layout l = vio::layout_of(qsize);
    // receiveq 0 and transmitq 0, one block each; buffers after them.
    struct side {
        std::byte* block;
        npa::iova_t iova;
        vio::split_driver drv;
        std::vector<std::uint16_t> state = std::vector<std::uint16_t>(vio::split_driver::state_words(qsize));
        std::uint16_t taken = 0; // used entries the driver has read
    };
    side s[2] = {{m.virt, m.iova}, {m.virt + 4096, m.iova + 4096}};
    const npa::iova_t bufs = m.iova + 8192;
    const std::size_t buf_bytes = m.size - 8192;

    auto bring_up = [&] {
        t.set_status(0);
        t.set_status(vio::status_bit::ACKNOWLEDGE | vio::status_bit::DRIVER);
        std::uint64_t f = t.device_features() & (in.flag() ? ~0ull : in.u32() | vio::feature::VERSION_1);
        t.set_driver_features(f);
        t.set_status(vio::status_bit::ACKNOWLEDGE | vio::status_bit::DRIVER | vio::status_bit::FEATURES_OK);
        for (std::uint16_t q = 0; q < 2; ++q) {
            (void)s[q].drv.reset(vio::split_ring::in_block(s[q].block, qsize), s[q].state,
                                 (f & vio::feature::EVENT_IDX) != 0);
            s[q].taken = 0;
            (void)t.queue_enable(q, {s[q].iova, s[q].iova + l.avail, s[q].iova + l.used, qsize, 0});
        }
        t.set_status(vio::status_bit::ACKNOWLEDGE | vio::status_bit::DRIVER |
                     vio::status_bit::FEATURES_OK | vio::status_bit::DRIVER_OK);
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
            const std::uint32_t k = 1 + in.below(3);
            for (std::uint32_t i = 0; i < k; ++i) {
                const std::uint32_t len = 1 + in.u16() % 2048;
                seg[i] = {bufs + in.u16() % (buf_bytes - 2048), len, q == 0};
            }
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
        default: { // reset: afterwards the device writes nothing
            bring_up();
            t.set_status(0);
            std::vector<std::byte> before(m.virt, m.virt + 8192);
            rig.far_send(rig.flow_for_queue(0), 4);
            rig.step(2);
            NPA_FUZZ_CHECK(std::memcmp(before.data(), m.virt, 8192) == 0);
            bring_up();
            checked = true;
            break;
        }
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
        return npa::fuzz::run_device_program<npa::sim::virtio_net_rig, npa::virtio_net_plugin>(
            data + 1, size - 1, virtio_hostile{});
    }
    npa::fuzz::input in(data + 1, size - 1);
    return hostile_driver(in);
}
