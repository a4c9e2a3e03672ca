// fuzz/vhost_user_ring_fuzz.cpp: the vhost-user back end's ring walk (npa-vswitchd's data
// path, adapters/linux/include/npa/linux/vhost_user/vring.hpp) against a front end that
// writes anything into its rings, split or packed (VIRTIO_F_RING_PACKED), with or without
// indirect descriptor tables (VIRTIO_F_INDIRECT_DESC).
//
// The front end's memory is one heap block of exactly the region's size, the ring at its
// start: a descriptor address the back end followed outside the region would be a heap
// overflow (ASan). Input: a first byte (bit 0: EVENT_IDX; bit 1: a packed ring, whose size
// (any, 1..16) and starting base (position and wrap counter, as SET_VRING_BASE carries
// them) come next; bit 2: INDIRECT_DESC negotiated, and op 6 exists), then a program of
// ops (fuzz_input.hpp):
//   split:  0 desc i = {addr, len, flags, next}  (addr inside the region or raw)
//           1 post a head (any 16-bit value) on the available ring
//           2 set avail->idx to any value
//   packed: 0 desc i = {addr, len, id, flags}  (any flags: AVAIL/USED against either lap,
//             NEXT, WRITE, INDIRECT)
//           1 the front end's next descriptor made available on its lap (NEXT, WRITE from
//             the input): chains as a driver writes them, and ones that never end
//           2 the front end's lap counter flipped, or its event suppression area written
//   both:   3 take a transmitted frame (copied, or in place: then it must lie inside the memory)
//           4 give a frame (length, MRG_RXBUF and where it is cut in two from the input)
//           5 publish used entries, ask need_interrupt() and enable_notify()
//           6 an indirect table entry written anywhere in the memory (16-byte slots or any
//             offset; any flags, NEXT, WRITE and INDIRECT among them; next small or any),
//             for a descriptor whose address lands there (op 0 and 1 write INDIRECT too)
// Invariants: no out-of-bounds access or undefined behaviour; a broken ring stays broken
// (nothing more is taken from it); split: the back end never publishes more used entries
// than chains it took; packed: every buffer taken is marked used before the walk returns
// (the used position is the available one), so GET_VRING_BASE's answer is always true;
// no chain is taken through a table unless INDIRECT_DESC was negotiated, and no more
// frames are counted as indirect than chains the ring's device side walked through one.
#include "fuzz_input.hpp"

#include <npa/linux/vhost_user/vring.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <span>
#include <utility>
#include <vector>

namespace {

constexpr std::uint32_t n = 16; // the split ring's size; a packed ring's is at most this
constexpr std::size_t region_size = 8192;
constexpr std::uint64_t gpa_base = 0x40000000;
constexpr std::size_t hdr = 12;

} // namespace

namespace {

namespace vu = npa::vhost_user;
namespace vq = npa::virtio;

// The data path's ops, the same for both layouts; false for an op of the layout's own.
using region_list = std::span<const std::pair<const std::byte*, std::size_t>>;

bool walk_op(std::uint32_t op, vu::vring& r, const vu::guest_memory& gm, region_list regions, npa::fuzz::input& in,
             vu::io_stats& st) {
    static std::array<std::byte, 4096> out{};
    static const std::vector<std::byte> frame(3000, std::byte{0x42});
    switch (op) {
    case 3: {
        const bool was_broken = r.broken;
        const std::uint16_t before = r.dev.base();
        bool more = false;
        std::size_t len = 0;
        if (in.flag()) {
            len = was_broken ? 0 : vu::take_frame(r, gm, hdr, out, st, more);
        } else if (!was_broken) {
            // In place: a frame left in the front end's memory lies whole inside one of its
            // regions; every byte is read, so ASan sees any that does not.
            const vu::tx_frame f = vu::take_frame_in_place(r, gm, hdr, out, st, more);
            len = f.len;
            if (f.data != nullptr && f.data != out.data()) {
                NPA_FUZZ_CHECK(!r.dev.packed()); // a packed ring's frame is always copied out
                NPA_FUZZ_CHECK(std::any_of(regions.begin(), regions.end(), [&](const auto& g) {
                    return f.data >= g.first && f.len <= g.second &&
                           static_cast<std::size_t>(f.data - g.first) <= g.second - f.len;
                }));
                std::memcpy(out.data(), f.data, std::min(f.len, out.size()));
            }
        }
        NPA_FUZZ_CHECK(len <= 0xFFFFFFFFull);
        NPA_FUZZ_CHECK(!was_broken || r.dev.base() == before);
        return true;
    }
    case 4: {
        if (r.broken) {
            return true;
        }
        const std::size_t len = in.u16() % frame.size();
        const bool mrg = in.flag();
        const std::size_t cut = in.u16() % (len + 1); // a head and a tail, as the switch gives
        (void)vu::give_frame(r, gm, hdr, mrg, vu::frame_parts{{frame.data(), cut}, {frame.data() + cut, len - cut}},
                             st);
        return true;
    }
    case 5:
        r.dev.publish_used();
        (void)r.dev.need_interrupt();
        (void)r.dev.enable_notify(in.flag());
        return true;
    default:
        return false;
    }
}

// Op 6: one 16-byte table entry in the front end's memory, laid out as a split table's
// (virtq_desc) or a packed one's (pvirtq_desc): the same bytes, flags and next/id swapped.
void table_entry(npa::fuzz::input& in, std::byte* mem, bool packed) {
    const std::size_t slots = region_size / 16;
    std::size_t off = in.u16() % slots * 16;
    if (!in.flag()) {
        off = std::min<std::size_t>(off + in.below(16), region_size - 16); // any alignment
    }
    std::byte* e = mem + off;
    npa::store_le64(e, in.flag() ? gpa_base + in.u16() % region_size : in.u32());
    npa::store_le32(e + 8, in.flag() ? in.u16() % 512 : in.u32());
    const auto flags = static_cast<std::uint16_t>(in.u8() & 7);
    const auto next = static_cast<std::uint16_t>(in.flag() ? in.below(8) : in.u16());
    npa::store_le16(e + 12, packed ? next : flags);
    npa::store_le16(e + 14, packed ? flags : next);
}

// Invariants of the walks through tables, for both layouts.
void check_tables(const vu::vring& r, const vu::io_stats& st, bool indirect) {
    NPA_FUZZ_CHECK(indirect || r.dev.indirect_chains() == 0);
    NPA_FUZZ_CHECK(st.indirect <= r.dev.indirect_chains());
}

std::uint64_t any_addr(npa::fuzz::input& in) {
    return in.flag() ? gpa_base + in.u16() % region_size : (static_cast<std::uint64_t>(in.u32()) << in.below(33));
}

void run_split(npa::fuzz::input& in, bool event_idx, bool indirect) {
    const std::unique_ptr<std::byte[]> mem(new std::byte[region_size]());
    vu::guest_memory gm;
    if (!gm.add(mem.get(), gpa_base, reinterpret_cast<std::uint64_t>(mem.get()), region_size)) {
        return;
    }
    const vq::split_layout l = vq::layout_of(n);
    vu::vring r;
    r.num = n;
    r.desc_uva = reinterpret_cast<std::uint64_t>(mem.get());
    r.avail_uva = r.desc_uva + l.avail;
    r.used_uva = r.desc_uva + l.used;
    r.addr_set = r.kicked = r.enabled = true;
    NPA_FUZZ_CHECK(r.start(gm, event_idx, false, indirect));
    const vq::split_ring ring = r.dev.split_side().ring();
    vu::io_stats st;
    const std::array<std::pair<const std::byte*, std::size_t>, 1> regions{{{mem.get(), region_size}}};

    for (int ops = 0; !in.empty() && ops < 256; ++ops) {
        const std::uint32_t op = in.below(indirect ? 7 : 6);
        if (walk_op(op, r, gm, regions, in, st)) {
        } else if (op == 6) {
            table_entry(in, mem.get(), false);
        } else if (op == 0) {
            const std::uint32_t i = in.below(n);
            vq::virtq_desc& d = ring.desc()[i];
            d.addr = any_addr(in);
            d.len = in.flag() ? in.u16() % 512 : in.u32();
            d.flags = static_cast<std::uint16_t>(in.u8() & 7);
            d.next = in.flag() ? in.below(n) : in.u16();
        } else if (op == 1) {
            const std::uint16_t idx = ring.avail()->idx.load(std::memory_order_relaxed);
            ring.avail_ring(idx) = in.flag() ? in.below(n) : in.u16();
            ring.avail()->idx.store(static_cast<std::uint16_t>(idx + 1), std::memory_order_release);
        } else {
            ring.avail()->idx.store(in.u16(), std::memory_order_release);
        }
        // Used entries never run ahead of the chains taken (a head past the table is taken and
        // not given back, so the used index may lag, never lead).
        const vq::split_device& d = r.dev.split_side();
        NPA_FUZZ_CHECK(static_cast<std::uint16_t>(d.last_avail() - d.used_idx()) < 0x8000);
        check_tables(r, st, indirect);
    }
}

void run_packed(npa::fuzz::input& in, bool event_idx, bool indirect) {
    const std::uint32_t pn = 1 + in.below(n);
    const std::uint16_t base = static_cast<std::uint16_t>(in.below(pn) | (in.flag() ? 0x8000u : 0u));
    // The block holds the descriptor ring and the two event areas, and no more: a walk past
    // the ring's end is a heap overflow.
    const std::size_t ring_bytes = vq::packed_desc_bytes(pn) + 8;
    const std::unique_ptr<std::byte[]> mem(new std::byte[region_size]());
    const std::unique_ptr<std::byte[]> rmem(new std::byte[ring_bytes]());
    vu::guest_memory gm;
    if (!gm.add(mem.get(), gpa_base, reinterpret_cast<std::uint64_t>(mem.get()), region_size) ||
        !gm.add(rmem.get(), gpa_base + 2 * region_size, reinterpret_cast<std::uint64_t>(rmem.get()), ring_bytes)) {
        return;
    }
    vu::vring r;
    r.num = pn;
    r.base = base;
    r.desc_uva = reinterpret_cast<std::uint64_t>(rmem.get());
    r.avail_uva = r.desc_uva + vq::packed_desc_bytes(pn);
    r.used_uva = r.avail_uva + 4;
    r.addr_set = r.kicked = r.enabled = true;
    NPA_FUZZ_CHECK(r.start(gm, event_idx, true, indirect));
    NPA_FUZZ_CHECK(r.dev.base() == base);
    const vq::packed_ring ring = r.dev.packed_side().ring();
    vq::packed_cursor drv = vu::decode_base(base); // the front end's next position and lap
    vu::io_stats st;
    const std::array<std::pair<const std::byte*, std::size_t>, 2> regions{
        {{mem.get(), region_size}, {rmem.get(), ring_bytes}}};

    for (int ops = 0; !in.empty() && ops < 256; ++ops) {
        const std::uint32_t op = in.below(indirect ? 7 : 6);
        if (walk_op(op, r, gm, regions, in, st)) {
        } else if (op == 6) {
            table_entry(in, mem.get(), true);
        } else if (op == 0) {
            vq::pvirtq_desc& d = ring.desc()[in.below(pn)];
            d.addr = any_addr(in);
            d.len = in.flag() ? in.u16() % 512 : in.u32();
            d.id = in.u16();
            d.flags = in.u16();
        } else if (op == 1) {
            vq::pvirtq_desc& d = ring.desc()[drv.index];
            d.addr = any_addr(in);
            d.len = in.flag() ? in.u16() % 512 : in.u32();
            d.id = in.u16();
            const std::uint8_t f = in.u8();
            d.flags.store(static_cast<std::uint16_t>((f & 7) | (drv.wrap ? vq::desc_f_avail : vq::desc_f_used)),
                          std::memory_order_release);
            drv.advance(1, pn);
        } else if (in.flag()) {
            drv.wrap = !drv.wrap;
        } else {
            ring.driver_event()->flags = in.u16();
            ring.driver_event()->off_wrap = in.u16();
        }
        const vq::packed_device& d = r.dev.packed_side();
        NPA_FUZZ_CHECK(d.used_pos().index == d.last_avail().index && d.used_pos().wrap == d.last_avail().wrap);
        NPA_FUZZ_CHECK(d.last_avail().index < pn);
        check_tables(r, st, indirect);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    npa::fuzz::input in(data, size);
    const std::uint8_t mode = in.u8();
    const bool indirect = (mode & 4) != 0;
    if ((mode & 2) != 0) {
        run_packed(in, (mode & 1) != 0, indirect);
    } else {
        run_split(in, (mode & 1) != 0, indirect);
    }
    return 0;
}
