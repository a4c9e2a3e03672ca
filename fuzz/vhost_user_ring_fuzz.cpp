// fuzz/vhost_user_ring_fuzz.cpp: the vhost-user back end's ring walk (npa-vswitchd's data
// path, adapters/linux/include/npa/linux/vhost_user/vring.hpp) against a front end that
// writes anything into its rings: descriptors, available heads, avail->idx.
//
// The front end's memory is one heap block of exactly the region's size, the ring at its
// start: a descriptor address the back end followed outside the region would be a heap
// overflow (ASan). Input: a program of ops (fuzz_input.hpp):
//   0 desc i = {addr, len, flags, next}  (addr inside the region or raw, as byte 0 says)
//   1 post a head (any 16-bit value) on the available ring
//   2 set avail->idx to any value
//   3 take a transmitted frame (copied, or in place: it must lie inside the region)
//   4 give a frame (length, MRG_RXBUF and where it is cut in two from the input)
//   5 publish used entries, ask need_interrupt() and enable_notify()
// Invariants: no out-of-bounds access or undefined behaviour; a frame taken is no longer
// than the chain's bytes past the header; the back end never publishes more used entries
// than chains it took; a broken ring stays broken (nothing more is taken from it).
#include "fuzz_input.hpp"

#include <npa/linux/vhost_user/vring.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <vector>

namespace {

constexpr std::uint32_t n = 16;
constexpr std::size_t region_size = 8192;
constexpr std::uint64_t gpa_base = 0x40000000;
constexpr std::size_t hdr = 12;

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace vu = npa::vhost_user;
    namespace vq = npa::virtio;
    npa::fuzz::input in(data, size);
    // operator new[] gives a block aligned for max_align_t (16), what the descriptor table needs
    const std::unique_ptr<std::byte[]> mem(new std::byte[region_size]());
    vu::guest_memory gm;
    if (!gm.add(mem.get(), gpa_base, reinterpret_cast<std::uint64_t>(mem.get()), region_size)) {
        return 0;
    }
    const vq::split_layout l = vq::layout_of(n);
    vu::vring r;
    r.num = n;
    r.desc_uva = reinterpret_cast<std::uint64_t>(mem.get());
    r.avail_uva = r.desc_uva + l.avail;
    r.used_uva = r.desc_uva + l.used;
    r.addr_set = r.kicked = r.enabled = true;
    NPA_FUZZ_CHECK(r.start(gm, in.flag()));
    const vq::split_ring ring = r.dev.ring();
    vu::io_stats st;
    std::array<std::byte, 4096> out{};
    std::vector<std::byte> frame(3000, std::byte{0x42});

    for (int ops = 0; !in.empty() && ops < 256; ++ops) {
        switch (in.below(6)) {
        case 0: {
            const std::uint32_t i = in.below(n);
            const bool inside = in.flag();
            const std::uint64_t addr = inside ? gpa_base + in.u16() % region_size
                                              : (static_cast<std::uint64_t>(in.u32()) << in.below(33));
            vq::virtq_desc& d = ring.desc()[i];
            d.addr = addr;
            d.len = in.flag() ? in.u16() % 512 : in.u32();
            d.flags = static_cast<std::uint16_t>(in.u8() & 7);
            d.next = in.flag() ? in.below(n) : in.u16();
            break;
        }
        case 1: {
            const std::uint16_t idx = ring.avail()->idx.load(std::memory_order_relaxed);
            ring.avail_ring(idx) = in.flag() ? in.below(n) : in.u16();
            ring.avail()->idx.store(static_cast<std::uint16_t>(idx + 1), std::memory_order_release);
            break;
        }
        case 2:
            ring.avail()->idx.store(in.u16(), std::memory_order_release);
            break;
        case 3: {
            const bool was_broken = r.broken;
            const std::uint16_t before = r.dev.last_avail();
            bool more = false;
            std::size_t len = 0;
            if (in.flag()) {
                len = was_broken ? 0 : vu::take_frame(r, gm, hdr, out, st, more);
            } else if (!was_broken) {
                // In place: a frame left in the front end's memory lies whole inside it;
                // every byte is read, so ASan sees any that does not.
                const vu::tx_frame f = vu::take_frame_in_place(r, gm, hdr, out, st, more);
                len = f.len;
                if (f.data != nullptr && f.data != out.data()) {
                    NPA_FUZZ_CHECK(f.data >= mem.get() && f.len <= region_size &&
                                   static_cast<std::size_t>(f.data - mem.get()) <= region_size - f.len);
                    std::memcpy(out.data(), f.data, std::min(f.len, out.size()));
                }
            }
            NPA_FUZZ_CHECK(len <= 0xFFFFFFFFull);
            NPA_FUZZ_CHECK(!was_broken || r.dev.last_avail() == before);
            break;
        }
        case 4: {
            if (r.broken) {
                break;
            }
            const std::size_t len = in.u16() % frame.size();
            const bool mrg = in.flag();
            const std::size_t cut = in.u16() % (len + 1); // a head and a tail, as the switch gives
            (void)vu::give_frame(r, gm, hdr, mrg, vu::frame_parts{{frame.data(), cut}, {frame.data() + cut, len - cut}},
                                 st);
            break;
        }
        default:
            r.dev.publish_used();
            (void)r.dev.need_interrupt();
            (void)r.dev.enable_notify(in.flag());
            break;
        }
        // Used entries never run ahead of the chains taken (a head past the table is taken and
        // not given back, so the used index may lag, never lead).
        NPA_FUZZ_CHECK(static_cast<std::uint16_t>(r.dev.last_avail() - r.dev.used_idx()) < 0x8000);
    }
    return 0;
}
