// npa/sim/virtio_net/ctrl.hpp: the virtio-net model's controlq (5.1.6.5; part of
// virtio_net_device): each command checked and answered as QEMU's virtio_net_handle_* answer
// it, and the receive filter the commands program, applied in QEMU's receive_filter order.
#pragma once

#include <npa/sim/virtio_net/device.hpp>

namespace npa::sim {

inline bool virtio_net_device::process_ctrl() {
    if (!ctrl_.enabled || ctrl_.failed) {
        return false;
    }
    bool any = false;
    for (;;) {
        virtio::chain c;
        std::uint16_t descs = 1;
        const virtio::pop_status st = ctrl_.dev.pop(c, descs, segs_, addr_ok());
        if (st == virtio::pop_status::empty) {
            break;
        }
        any = true;
        // A command needs its header readable and its answer writable (QEMU:
        // "virtio-net ctrl missing headers", a device error).
        if (st != virtio::pop_status::ok || c.read_len < sizeof(virtio_net::ctrl_hdr) || c.write_len < 1 ||
            c.read_len > ctrl_buf_.size()) {
            violations_.push_back(make_violation(cfg_.name, 0, ring_kind::tx, c.head,
                                                 st == virtio::pop_status::ok ? "controlq command without header or answer"
                                                                              : virtio::to_string(ctrl_.dev.last_error()),
                                                 "chain refused, queue stopped (DEVICE_NEEDS_RESET)"));
            ctrl_.failed = true;
            status_ |= virtio::status_bit::DEVICE_NEEDS_RESET;
            return true;
        }
        std::uint32_t at = 0;
        bool ok = true;
        for (std::uint16_t i = 0; i < c.readable && ok; ++i) {
            ok = mem_.dma_read(segs_[i].addr, ctrl_buf_.data() + at, segs_[i].len);
            at += segs_[i].len;
        }
        ctrl_fault fault = ctrl_fault::none;
        if (ctrl_fault_skip_ != 0) {
            --ctrl_fault_skip_;
        } else if (ctrl_fault_count_ != 0) {
            --ctrl_fault_count_;
            fault = ctrl_fault_;
        }
        if (fault == ctrl_fault::no_answer) {
            continue; // taken, never used
        }
        std::uint8_t ack = virtio_net::ctrl::ERR;
        if (ok && fault == ctrl_fault::none) {
            ack = command(std::span<const std::uint8_t>(ctrl_buf_.data(), at));
        } else if (fault == ctrl_fault::garbage || fault == ctrl_fault::bad_id || fault == ctrl_fault::long_len) {
            ack = 0x5A; // and nothing applied
        }
        ++ctrl_commands_;
        ctrl_errors_ += ack == virtio_net::ctrl::ERR ? 1 : 0;
        const virtio::segment& w = segs_[c.readable];
        if (!mem_.dma_write(w.addr, &ack, 1)) {
            ++ctrl_errors_;
        }
        const std::uint32_t n = ctrl_.dev.size();
        ctrl_.dev.push_used(static_cast<std::uint16_t>(fault == ctrl_fault::bad_id ? n + 3 : c.head),
                            fault == ctrl_fault::long_len ? 64 : 1, descs);
        write_pause();
        ctrl_.dev.publish_used();
    }
    return any;
}

// One command's header and data: the answer. Everything malformed is ERR, as QEMU's
// virtio_net_handle_* answer it.
inline std::uint8_t virtio_net_device::command(std::span<const std::uint8_t> b) {
    namespace c = virtio_net::ctrl;
    const std::uint8_t cls = b[0], cmd = b[1];
    const std::span<const std::uint8_t> d = b.subspan(2);
    switch (cls) {
    case c::RX: {
        if (!has(virtio_net::feature::CTRL_RX) || d.size() != 1) {
            return c::ERR;
        }
        const bool on = d[0] != 0;
        const bool extra = has(virtio_net::feature::CTRL_RX_EXTRA);
        switch (cmd) {
        case c::RX_PROMISC: filter_.promisc = on; return c::OK;
        case c::RX_ALLMULTI: filter_.allmulti = on; return c::OK;
        case c::RX_ALLUNI: return extra ? (filter_.alluni = on, c::OK) : c::ERR;
        case c::RX_NOMULTI: return extra ? (filter_.nomulti = on, c::OK) : c::ERR;
        case c::RX_NOUNI: return extra ? (filter_.nouni = on, c::OK) : c::ERR;
        case c::RX_NOBCAST: return extra ? (filter_.nobcast = on, c::OK) : c::ERR;
        default: return c::ERR;
        }
    }
    case c::MAC:
        if (cmd == c::MAC_ADDR_SET) {
            if (!has(virtio_net::feature::CTRL_MAC_ADDR) || d.size() != 6) {
                return c::ERR;
            }
            std::memcpy(filter_.mac.data(), d.data(), 6);
            return c::OK;
        }
        if (cmd == c::MAC_TABLE_SET && has(virtio_net::feature::CTRL_RX)) {
            return mac_table(d);
        }
        return c::ERR;
    case c::VLAN: {
        if (!has(virtio_net::feature::CTRL_VLAN) || d.size() != 2 || (cmd != c::VLAN_ADD && cmd != c::VLAN_DEL)) {
            return c::ERR;
        }
        const std::uint16_t vid = load_le16(d.data());
        if (vid > max_vlan_id) {
            return c::ERR;
        }
        cmd == c::VLAN_ADD ? filter_.vlans[vid / 64] |= 1ull << (vid % 64)
                           : filter_.vlans[vid / 64] &= ~(1ull << (vid % 64));
        return c::OK;
    }
    case c::MQ: {
        if (!has(virtio_net::feature::MQ) || cmd != c::MQ_VQ_PAIRS_SET || d.size() != 2) {
            return c::ERR;
        }
        const std::uint16_t n = load_le16(d.data());
        if (n < 1 || n > cfg_.max_pairs) {
            return c::ERR;
        }
        curr_pairs_ = n;
        return c::OK;
    }
    default: return c::ERR;
    }
}

// MAC_TABLE_SET: a unicast table then a multicast one, each le32 entries and the MACs;
// more than the table holds sets its overflow (every address of that kind passes).
inline std::uint8_t virtio_net_device::mac_table(std::span<const std::uint8_t> d) {
    rx_filter f = filter_;
    f.macs.clear();
    std::size_t at = 0;
    for (int t = 0; t < 2; ++t) {
        if (d.size() - at < 4) {
            return virtio_net::ctrl::ERR;
        }
        const std::uint32_t n = load_le32(d.data() + at);
        at += 4;
        if (n > (d.size() - at) / 6) {
            return virtio_net::ctrl::ERR;
        }
        bool& overflow = t == 0 ? f.uni_overflow : f.multi_overflow;
        overflow = f.macs.size() + n > mac_table_entries;
        for (std::uint32_t i = 0; i < n && !overflow; ++i) {
            mac_addr m;
            std::memcpy(m.data(), d.data() + at + 6 * i, 6);
            f.macs.push_back(m);
        }
        at += std::size_t{n} * 6;
        if (t == 0) {
            f.first_multi = f.macs.size();
        }
    }
    if (at != d.size()) {
        return virtio_net::ctrl::ERR;
    }
    filter_ = std::move(f);
    return virtio_net::ctrl::OK;
}

// Whether the filter takes frame f (QEMU's receive_filter, in its order).
inline bool virtio_net_device::accept(const frame& f) const noexcept {
    if (filter_.promisc) {
        return true;
    }
    const auto* p = reinterpret_cast<const std::uint8_t*>(f.data.data());
    if (f.len >= 16 && p[12] == 0x81 && p[13] == 0x00) {
        const std::uint16_t vid = static_cast<std::uint16_t>((p[14] << 8 | p[15]) & 0xFFF);
        if ((filter_.vlans[vid / 64] >> (vid % 64) & 1u) == 0) {
            return false;
        }
    }
    mac_addr dst;
    std::memcpy(dst.data(), p, 6);
    auto in = [&](std::size_t from, std::size_t to) {
        for (std::size_t i = from; i < to; ++i) {
            if (filter_.macs[i] == dst) {
                return true;
            }
        }
        return false;
    };
    if ((p[0] & 1u) != 0) {
        if (dst == mac_addr{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}) {
            return !filter_.nobcast;
        }
        if (filter_.nomulti) {
            return false;
        }
        return filter_.allmulti || filter_.multi_overflow || in(filter_.first_multi, filter_.macs.size());
    }
    if (filter_.nouni) {
        return false;
    }
    return filter_.alluni || filter_.uni_overflow || dst == filter_.mac || in(0, filter_.first_multi);
}

} // namespace npa::sim
