// npa/plugins/virtio_net/rx.hpp: the virtio-net plugin's RX engine, one receiveq (the
// plugin, plugin.hpp, owns one per queue pair).
//
// One descriptor per buffer, 12 bytes in front of its data for the header. Each used
// entry is checked before anything is read (take_rx): the id, the length against what was
// posted, num_buffers; a frame spread over several buffers (MRG_RXBUF) is taken off the
// ring, dropped and counted (drop_merged), an npa buffer being one segment. An entry that
// passed over older ones, or any once the device has lied, is held until detach, since the
// device may still write it; and then nothing more is posted (refill_on).
#pragma once

#include <npa/buffer/packet_buffer.hpp>
#include <npa/concepts/plugin.hpp>
#include <npa/plugins/virtio_net/defs.hpp>
#include <npa/plugins/virtio_net/offload.hpp>
#include <npa/plugins/virtio_net/vq.hpp>
#include <npa/plugins/virtio_net/window.hpp>
#include <npa/ring/slot_ring.hpp>
#include <npa/virtio/ring_driver.hpp>

#include <array>
#include <cstdint>
#include <span>

namespace npa {

// ---- tuning constants -----------------------------------------------------------------
namespace virtio_net_tuning {
/// RX buffers taken from the shell per alloc call during a refill.
inline constexpr std::uint32_t refill_chunk = 64;
} // namespace virtio_net_tuning

/// One queue pair's receiveq. The plugin's attach sets it up; its rx_burst calls burst()
/// with the shell API, the device, and where faults are counted.
template <class Api>
struct virtio_net_rxq : virtio_net_vq<Api> {
    using buffer_type = typename Api::buffer_type;

    std::uint64_t features = 0; // the feature bits negotiated at attach
    std::uint32_t min_room = 0; // frame room an RX buffer needs (without MRG_RXBUF: a whole frame)
    std::uint32_t max_frame = 0; // the largest frame the device may send (MTU, Ethernet header, VLAN tag)

    // ---- burst: checked used entries, merged frames dropped, refill ----------------------
    std::uint16_t burst(Api& api, virtio_net::window& dev, std::uint16_t qi,
                        std::span<buffer_type> out, queue_stats& st, trust_latch& trust) noexcept {
        return this->visit([&](auto& drv) { return rx_burst_on(api, dev, qi, drv, out, st, trust); });
    }

    // Posts a buffer on every free descriptor of the receiveq, then notifies if asked.
    // Once the device has lied nothing more is posted: a chain its used entries passed over
    // may still be available to it, and posting that descriptor again would hand the
    // device more chains than the ring holds (health() says device_error: the shell
    // switches away and detach resets the device).
    void refill(Api& api, virtio_net::window& dev, std::uint16_t qi, queue_stats& st,
                trust_latch& trust) noexcept {
        this->visit([&](auto& drv) { refill_on(api, dev, qi, drv, st, trust); });
    }

    static std::uint32_t posted_len(const buffer_type& b) noexcept {
        const std::uint32_t n = b.capacity() + virtio_net::HDR_LEN;
        return n < 0xFFFFu ? n : 0xFFFFu;
    }

private:
    enum class rx_take : std::uint8_t { none, buffer, dropped };

    [[nodiscard]] bool mrg() const noexcept { return (features & virtio_net::feature::MRG_RXBUF) != 0; }
    [[nodiscard]] bool event_idx() const noexcept { return (features & virtio::feature::EVENT_IDX) != 0; }

    template <class Drv>
    std::uint16_t rx_burst_on(Api& api, virtio_net::window& dev, std::uint16_t qi, Drv& drv,
                              std::span<buffer_type> out, queue_stats& st, trust_latch& trust) noexcept {
        std::uint16_t n = 0;
        while (n < out.size()) {
            buffer_type b;
            std::uint32_t len = 0;
            const rx_take r = take_rx(api, qi, drv, b, len, st, trust);
            if (r == rx_take::none) {
                // EVENT_IDX: an interrupt for the next entry after this poll; one that came
                // in meanwhile is taken now (its interrupt may have been suppressed).
                if (event_idx() && !trust.distrusted() && drv.enable_interrupts()) {
                    continue;
                }
                break;
            }
            if (r == rx_take::dropped) {
                continue;
            }
            const auto* h = reinterpret_cast<const virtio_net::net_hdr_v1*>(b.data() - virtio_net::HDR_LEN);
            const std::uint16_t nb = mrg() ? std::uint16_t{h->num_buffers} : std::uint16_t{1};
            if (nb == 0 || nb > drv.size()) {
                trust.distrust(st); // a count of buffers the ring cannot hold
                drop_rx(api, qi, b, st);
                continue;
            }
            if (nb > 1) {
                drop_merged(api, qi, drv, b, len, nb, st, trust);
                continue;
            }
            if (len < 14) {
                drop_rx(api, qi, b, st);
                continue;
            }
            b.set_length(len);
            offload_info o{};
            if (!virtio_net::rx_csum(*h, b.data(), len,
                                     (features & virtio_net::feature::GUEST_CSUM) != 0, o.csum)) {
                drop_rx(api, qi, b, st);
                continue;
            }
            b.set_offload(o);
            out[n++] = b;
            ++st.rx_packets;
            st.rx_bytes += len;
        }
        refill_on(api, dev, qi, drv, st, trust);
        return n;
    }

    // The next used entry of queue qi's receiveq, checked: the buffer and the frame bytes
    // it holds (the header excluded).
    // `first`: the first buffer of a frame, which starts with the header; a later piece of
    // a merged frame holds frame bytes only and may be shorter than a header.
    template <class Drv>
    rx_take take_rx(Api& api, std::uint16_t qi, Drv& drv, buffer_type& b, std::uint32_t& len,
                    queue_stats& st, trust_latch& trust, bool first = true) noexcept {
        for (;;) {
            virtio::used_chain u;
            bool passed = false;
            const virtio::used_status us = drv.poll_used(u, [&](std::uint16_t head) {
                passed = true;
                hold_rx(head, st, trust);
            });
            if (us == virtio::used_status::empty) {
                return rx_take::none;
            }
            if (us == virtio::used_status::broken) {
                trust.distrust(st);
                return rx_take::none;
            }
            if (us == virtio::used_status::bad_id) {
                trust.distrust(st);
                continue;
            }
            if (passed || trust.distrusted()) {
                // An entry that passed over older ones is no better than they are; and once
                // the device has lied, an entry naming the oldest buffer may be one more lie
                // (the device may still write that buffer): held until detach, not delivered.
                hold_rx(u.id, st, trust, passed);
                return rx_take::dropped;
            }
            b = this->bufs[u.id];
            if (u.whole) [[unlikely]] { // an IN_ORDER batch used it completely (2.7.9, 2.8)
                u.len = posted_len(b);
            }
            if (u.len == 0) { // the device wrote nothing (a DMA error on its side): dropped
                drop_rx(api, qi, b, st);
                return rx_take::dropped;
            }
            if ((first && u.len < virtio_net::HDR_LEN) || u.len > posted_len(b)) {
                trust.distrust(st); // a length the buffer cannot hold: never read past it
                drop_rx(api, qi, b, st);
                return rx_take::dropped;
            }
            len = first ? u.len - virtio_net::HDR_LEN : u.len;
            if (u.whole && first && !whole_frame_fits(b, len)) [[unlikely]] {
                trust.distrust(st); // a batch that cannot be: the device may still write it
                hold_rx(u.id, st, trust, false);
                return rx_take::dropped;
            }
            return rx_take::buffer;
        }
    }
    // IN_ORDER: a buffer a receiveq batch passed over holds the start of a frame that
    // filled it (2.7.9, 2.8). Alone in it (num_buffers 1, or no MRG_RXBUF) that frame must
    // be one the device may send (its MTU with the Ethernet header and a VLAN tag, 5.1.4.2,
    // 5.1.6.3.1): a longer one says the batch was a lie (a lost or reordered entry the
    // next one read as a batch). A merged frame's buffers are checked by drop_merged().
    [[nodiscard]] bool whole_frame_fits(const buffer_type& b, std::uint32_t len) const noexcept {
        const auto* h = reinterpret_cast<const virtio_net::net_hdr_v1*>(b.data() - virtio_net::HDR_LEN);
        return (mrg() && std::uint16_t{h->num_buffers} != 1) || len <= max_frame;
    }
    // An RX buffer the device may still write: under IN_ORDER one a split entry passed
    // over without used->idx moving past it (no batch, a violation), or one of a batch that
    // cannot be; any, once the device is distrusted. It is not handed back now: it is held
    // (counted as dropped) until detach, when the reset guarantees the device writes
    // nothing more.
    void hold_rx(std::uint16_t head, queue_stats& st, trust_latch& trust,
                 bool violation = true) noexcept {
        if (violation) {
            trust.distrust(st);
        }
        ++st.rx_dropped;
        this->held[head] = 1;
    }
    static void drop_rx(Api& api, std::uint16_t qi, const buffer_type& b, queue_stats& st) noexcept {
        ++st.rx_dropped;
        api.release_rx_buffers(qi, std::span<const buffer_type>(&b, 1));
    }


    // MRG_RXBUF: the nb - 1 buffers after `b` hold the rest of its frame (5.1.6.4). The
    // device fills every buffer but the last completely, so the frame is larger than `b`
    // and cannot be one npa buffer (one segment): every piece is taken off the ring and
    // the frame is dropped and counted. A first buffer that is not full, a piece missing or
    // a piece before the last that is not full is a device that lied about num_buffers.
    template <class Drv>
    void drop_merged(Api& api, std::uint16_t qi, Drv& drv, buffer_type b, std::uint32_t len,
                     std::uint16_t nb, queue_stats& st, trust_latch& trust) noexcept {
        if (len + virtio_net::HDR_LEN != posted_len(b)) {
            trust.distrust(st); // more buffers claimed than the frame needed
            drop_rx(api, qi, b, st);
            return;
        }
        drop_rx(api, qi, b, st);
        for (std::uint16_t i = 1; i < nb; ++i) {
            buffer_type p;
            std::uint32_t plen = 0;
            const rx_take r = take_rx(api, qi, drv, p, plen, st, trust, false);
            if (r != rx_take::buffer) {
                trust.distrust(st); // fewer buffers than num_buffers says
                return;
            }
            api.release_rx_buffers(qi, std::span<const buffer_type>(&p, 1));
            if (i + 1 < nb && plen != posted_len(p)) {
                trust.distrust(st);
                return;
            }
        }
    }

    template <class Drv>
    void refill_on(Api& api, virtio_net::window& dev, std::uint16_t qi, Drv& drv, queue_stats& st,
                   trust_latch& trust) noexcept {
        if (trust.distrusted()) {
            return;
        }
        std::uint32_t want = drv.free_descs();
        std::uint32_t got_total = 0;
        const std::uint32_t asked = want;
        std::array<buffer_type, virtio_net_tuning::refill_chunk> tmp{};
        while (want != 0) {
            const std::uint32_t k = want < tmp.size() ? want : static_cast<std::uint32_t>(tmp.size());
            const std::uint32_t got = api.alloc_rx_buffers(qi, std::span<buffer_type>(tmp.data(), k));
            for (std::uint32_t i = 0; i < got; ++i) {
                const buffer_type b = tmp[i];
                // no room for the header, or (no MRG_RXBUF) for a whole frame: refused
                if (b.headroom() < virtio_net::HDR_LEN || b.capacity() < min_room) {
                    api.release_rx_buffers(qi, std::span<const buffer_type>(&b, 1));
                    continue;
                }
                const virtio::segment s{b.iova() - virtio_net::HDR_LEN, posted_len(b), true};
                this->bufs[drv.add({&s, 1})] = b;
                ++got_total;
            }
            want -= k;
            if (got < k) {
                break;
            }
        }
        st.rx_no_buffer += asked - got_total;
        if (drv.publish()) {
            dev.transport().notify(this->index);
        }
    }
};

} // namespace npa
