// npa/sim/vmxnet3/commands.hpp: the vmxnet3 backend's commands (part of vmxnet3_device).
//
// BAR1 CMD: each command runs at once and leaves its answer in CMD. Those that read the
// driver's shared area need the revisions selected and DSAL/DSAH registered. ACTIVATE_DEV
// checks the whole configuration (queue counts, MTU, ring sizes and alignment, vectors)
// before it takes any of it; RESET_DEV and a hypervisor reset drop every queue.
#pragma once

#include <npa/sim/vmxnet3/device.hpp>

namespace npa::sim {

// intrConf.modLevels of every vector the driver configured: each a level the ABI knows,
// or none is taken (a protocol violation).
inline bool vmxnet3_device::read_mod_levels(const vmxnet3::intr_conf& ic) {
    if (const int v = moderation_.take_levels(ic); v >= 0) {
        protocol_violation("intrConf.modLevels[%u] = %u is no moderation level (0..8)",
                           static_cast<unsigned>(v), unsigned{ic.modLevels[v]});
        return false;
    }
    return true;
}

// With UPT1_F_RSS, the UPT1_RSSConf rssConfDesc names (Linux's and DPDK's drivers hand
// one over whenever they ask for the feature), read at ACTIVATE_DEV, UPDATE_FEATURE and
// UPDATE_RSSIDT: version 1 and its size, Toeplitz, a key of 1..40 bytes, 1..128 table
// entries each naming one of `nrx` RX queues, no hash type the ABI lacks. It is copied
// once and the copy checked. Returns why it is refused, or nullptr.
inline const char* vmxnet3_device::read_rss(const vmxnet3::driver_shared* sh,
                                            std::uint32_t nrx) noexcept {
    using namespace vmxnet3;
    const var_len_conf_desc d = sh->devRead.rssConfDesc;
    if (d.confVer != rss::CONF_VERSION || d.confLen < sizeof(rss_conf)) {
        return "UPT1_F_RSS with no UPT1_RSSConf (rssConfDesc: version 1, 176 bytes)";
    }
    const std::byte* at = map(d.confPA, sizeof(rss_conf), alignof(rss_conf));
    if (at == nullptr) {
        return "UPT1_RSSConf not in guest memory";
    }
    rss_conf c;
    std::memcpy(&c, at, sizeof c);
    const std::uint32_t known =
        rss::HASH_IPV4 | rss::HASH_TCP_IPV4 | rss::HASH_IPV6 | rss::HASH_TCP_IPV6;
    if (c.hashFunc != rss::FUNC_TOEPLITZ || c.hashKeySize == 0 ||
        c.hashKeySize > rss::MAX_KEY_SIZE || c.indTableSize == 0 ||
        c.indTableSize > rss::MAX_IND_TABLE_SIZE || (c.hashType & ~known) != 0) {
        return "UPT1_RSSConf: a hash function, key size, table size or hash type the device "
               "does not take";
    }
    for (std::uint32_t i = 0; i < c.indTableSize; ++i) {
        if (c.indTable[i] >= nrx) {
            return "UPT1_RSSConf: the indirection table names a queue past numRxQueues";
        }
    }
    std::memcpy(rss_ind_.data(), c.indTable, c.indTableSize);
    rss_ind_n_ = c.indTableSize;
    return nullptr;
}

// UPDATE_FEATURE turning RSS on, and UPDATE_RSSIDT with it on, read the guest's
// UPT1_RSSConf again; one it cannot take is refused as a protocol violation.
inline bool vmxnet3_device::rss_refused(const vmxnet3::driver_shared* sh, std::uint32_t c) noexcept {
    const char* why = sh != nullptr ? read_rss(sh, nrx_) : "no driver shared area";
    if (why != nullptr) {
        protocol_violation("%s refused: %s", command_name(c), why);
    }
    return why != nullptr;
}

inline std::uint32_t vmxnet3_device::run_command(std::uint32_t c) noexcept {
    using namespace vmxnet3;
    if (rev_ == 0 || upt_rev_ == 0) {
        protocol_violation("command 0x%x before the revisions were selected (VRRS, UVRS)", c);
        return 1;
    }
    if (reads_shared_area(c) && dsa_halves_ != 3u) {
        protocol_violation("%s before the driver registered its shared area (DSAL, DSAH)",
                           command_name(c));
        return 1;
    }
    vmxnet3::driver_shared* sh = shared();
    if (reads_shared_area(c) && sh == nullptr) {
        protocol_violation("%s: DSAL/DSAH 0x%" PRIx64
                           " is not a driver shared area in guest memory",
                           command_name(c), dsa_);
        return 1;
    }
    switch (c) {
    case cmd::ACTIVATE_DEV: return activate(sh);
    case cmd::QUIESCE_DEV:
        active_ = false;
        for (dq& d : q_) {
            d.txp.clear();
            d.rxp.clear();
            d.chain.clear();
        }
        return 0;
    case cmd::RESET_DEV: do_reset(); return 0;
    case cmd::UPDATE_RX_MODE: {
        if (sh == nullptr) return 1;
        const std::uint32_t m = sh->devRead.rxFilterConf.rxMode;
        if (const char* why = filter_.check_rx_mode(m); why != nullptr) {
            refuse(why);
            return 1;
        }
        filter_.rx_mode = m;
        return 0;
    }
    case cmd::UPDATE_VLAN_FILTERS: {
        if (sh == nullptr) return 1;
        const rx_filter_conf& f = sh->devRead.rxFilterConf;
        // VID 0 is untagged frames, which no VLAN policy governs (Linux's vmxnet3 always sets
        // it); every other VID in the table must be one the policy gives this guest.
        for (std::uint32_t vid = 1; vid <= max_vlan_id; ++vid) {
            if (f.vlan(static_cast<std::uint16_t>(vid))) {
                if (const char* why = filter_.check_vlan(static_cast<std::uint16_t>(vid)); why != nullptr) {
                    refuse(why);
                    return 1;
                }
            }
        }
        std::copy(std::begin(f.vfTable), std::end(f.vfTable), filter_.vft);  // le32 -> host order
        return 0;
    }
    case cmd::UPDATE_MAC_FILTERS: {
        if (sh == nullptr) return 1;
        const rx_filter_conf& f = sh->devRead.rxFilterConf;
        if (f.mfTableLen % 6 != 0 || f.mfTableLen > max_mcast_addrs * 6) {
            return 1;
        }
        filter_.mcast.clear();
        if (f.mfTableLen != 0) {
            const std::byte* t = mem_.translate(f.mfTablePA, f.mfTableLen);
            if (t == nullptr) {
                return 1;
            }
            for (std::uint32_t i = 0; i < f.mfTableLen / 6u; ++i) {
                mac_addr m;
                std::memcpy(m.data(), t + i * 6, 6);
                filter_.mcast.push_back(m);
            }
        }
        return 0;
    }
    case cmd::UPDATE_FEATURE: {
        if (sh == nullptr) return 1;
        const std::uint64_t f = sh->devRead.misc.uptFeatures & cfg_.profile.upt_features;
        if ((f & upt1::F_RSS) != 0 && (features_ & upt1::F_RSS) == 0 && rss_refused(sh, c)) {
            return 1;
        }
        features_ = f;
        return 0;
    }
    case cmd::UPDATE_IML: return read_mod_levels(sh->devRead.intrConf) ? 0 : 1;
    case cmd::LOAD_PLUGIN: return load_plugin(sh);
    case cmd::UPDATE_RSSIDT: return (features_ & upt1::F_RSS) != 0 && rss_refused(sh, c) ? 1 : 0;
    case cmd::UPDATE_PMCFG: return 0;
    case cmd::GET_QUEUE_STATUS:
        if (active_ || table_ != nullptr) {
            for (std::uint32_t q = 0; q < ntx_; ++q) {
                txqd(q)->status.stopped = q_[q].tx_failed || !active_;
            }
            for (std::uint32_t q = 0; q < nrx_; ++q) {
                rxqd(q)->status.stopped = q_[q].rx_failed || !active_;
            }
        }
        return 0;
    case cmd::GET_STATS:
        if (table_ != nullptr) {
            for (std::uint32_t q = 0; q < ntx_; ++q) {
                txqd(q)->stats.ucastPktsTxOK = q_[q].st.tx_frames;
                txqd(q)->stats.ucastBytesTxOK = q_[q].st.tx_bytes;
                txqd(q)->stats.pktsTxError = q_[q].st.tx_dma_errors;
                txqd(q)->stats.pktsTxDiscard = q_[q].st.tx_link_down;
            }
            for (std::uint32_t q = 0; q < nrx_; ++q) {
                rxqd(q)->stats.ucastPktsRxOK = q_[q].st.rx_frames;
                rxqd(q)->stats.ucastBytesRxOK = q_[q].st.rx_bytes;
                rxqd(q)->stats.pktsRxOutOfBuf = q_[q].st.rx_no_desc;
                rxqd(q)->stats.pktsRxError = q_[q].st.rx_dma_errors;
            }
        }
        return 0;
    case cmd::GET_LINK: return link_up_.load() ? link_up_10g : link_down;
    case cmd::GET_CONF_INTR: return cfg_.conf_intr;
    case cmd::GET_PERM_MAC_LO:
        return std::uint32_t{cfg_.perm_mac[0]} | std::uint32_t{cfg_.perm_mac[1]} << 8 |
               std::uint32_t{cfg_.perm_mac[2]} << 16 | std::uint32_t{cfg_.perm_mac[3]} << 24;
    case cmd::GET_PERM_MAC_HI: return std::uint32_t{cfg_.perm_mac[4]} | std::uint32_t{cfg_.perm_mac[5]} << 8;
    default: return 1;
    }
}

inline std::uint32_t vmxnet3_device::activate(vmxnet3::driver_shared* sh) noexcept {
    using namespace vmxnet3;
    if (active_) {
        protocol_violation("ACTIVATE_DEV while active (QUIESCE_DEV or RESET_DEV first)");
        return 1;
    }
    if (sh->magic != REV1_MAGIC) {
        protocol_violation(
            "ACTIVATE_DEV: shared area magic 0x%x, not 0x%x (a revision 1 driver)", sh->magic,
            REV1_MAGIC);
        return 1;
    }
    const misc_conf& m = sh->devRead.misc;
    const std::uint32_t ntx = m.numTxQueues, nrx = m.numRxQueues;
    if (ntx == 0 || nrx == 0 || ntx > cfg_.profile.max_queues || nrx > cfg_.profile.max_queues ||
        m.mtu < MIN_MTU || m.mtu > cfg_.profile.max_mtu) {
        return refuse_activation("%u TX / %u RX queues or MTU %u outside the device's range",
                                 ntx, nrx, m.mtu);
    }
    std::byte* table = map(m.queueDescPA, (ntx + nrx) * sizeof(tx_queue_desc), QUEUE_DESC_ALIGN);
    if (table == nullptr) {
        return refuse_activation("queue table 0x%" PRIx64 " not aligned guest memory",
                                 m.queueDescPA);
    }
    if ((m.uptFeatures & cfg_.profile.upt_features & upt1::F_RSS) != 0) {
        if (const char* why = read_rss(sh, nrx); why != nullptr) {
            return refuse_activation("%s", why);
        }
    }
    const std::uint32_t max = cfg_.profile.max_ring_size;
    // The vectors the interrupt type it answered gives: QEMU's vmxnet3_validate_interrupts
    // holds every intrIdx and eventIntrIdx to 25 with MSI-X and to 1 without (and stops the
    // emulation on one past them); here the activation is refused.
    const intr_conf& ic = sh->devRead.intrConf;
    const std::uint32_t type = it::of(cfg_.conf_intr);
    const std::uint32_t vectors = type == it::INTX || type == it::MSI ? 1 : MAX_INTRS;
    const std::uint8_t nintr = ic.numIntrs;
    if (nintr == 0 || nintr > vectors || ic.eventIntrIdx >= nintr) {
        return refuse_activation("intrConf: %u vectors, event vector %u, on a device that gives %u",
                                 unsigned{nintr}, unsigned{ic.eventIntrIdx}, vectors);
    }
    active_ = false;
    mtu_ = m.mtu;
    table_ = table;
    ntx_ = ntx;
    nrx_ = nrx;
    for (std::uint32_t q = 0; q < ntx; ++q) {
        const tx_queue_conf& c = txqd(q)->conf;
        const std::uint32_t t = c.txRingSize;
        const std::uint32_t dsz = c.txDataRingDescSize == 0 ? HDR_COPY_SIZE : c.txDataRingDescSize.get();
        if (!ring_size_ok(t, max) || c.compRingSize != t || c.dataRingSize != t || dsz != HDR_COPY_SIZE ||
            c.intrIdx >= nintr || c.txRingBasePA % RING_BA_ALIGN != 0) {
            return refuse_activation("txq %u: ring sizes %u/%u/%u, data entry %u, vector %u", q,
                                     t, c.compRingSize, c.dataRingSize, dsz, c.intrIdx);
        }
        std::byte* tx = map(c.txRingBasePA, t * 16ull, RING_BA_ALIGN);
        std::byte* txc = map(c.compRingBasePA, t * 16ull, RING_BA_ALIGN);
        if (tx == nullptr || txc == nullptr || mem_.translate(c.dataRingBasePA, std::size_t{t} * dsz) == nullptr) {
            return refuse_activation("txq %u: a ring is not aligned guest memory", q);
        }
        dq& d = q_[q];
        d.tx.reset(reinterpret_cast<tx_desc*>(tx), t);
        d.txc.reset(reinterpret_cast<tx_comp_desc*>(txc), t);
        d.tx_size = t;
        d.tx_vec = c.intrIdx;
        d.tx_failed = false;
        d.txp.clear();
        d.chain.clear();
        d.last_tx_step = steps_;
        txqd(q)->ctrl.txNumDeferred = 0;
        txqd(q)->ctrl.txThreshold = cfg_.tx_threshold;
        txqd(q)->status = {};
        kick_[q].store(false);
    }
    for (std::uint32_t q = 0; q < nrx; ++q) {
        const rx_queue_conf& c = rxqd(q)->conf;
        const std::uint32_t r0 = c.rxRingSize[0], r1 = c.rxRingSize[1];
        if (!ring_size_ok(r0, max) || !ring_size_ok(r1, RX_RING2_MAX_SIZE) ||
            c.compRingSize != r0 + r1 || c.intrIdx >= nintr) {
            return refuse_activation("rxq %u: ring sizes %u/%u/%u, vector %u", q, r0, r1,
                                     c.compRingSize, c.intrIdx);
        }
        std::byte* a = map(c.rxRingBasePA[0], r0 * 16ull, RING_BA_ALIGN);
        std::byte* b = map(c.rxRingBasePA[1], r1 * 16ull, RING_BA_ALIGN);
        std::byte* cc = map(c.compRingBasePA, (r0 + r1) * 16ull, RING_BA_ALIGN);
        if (a == nullptr || b == nullptr || cc == nullptr) {
            return refuse_activation("rxq %u: a ring is not aligned guest memory", q);
        }
        dq& d = q_[q];
        d.rx[0].reset(reinterpret_cast<rx_desc*>(a), r0);
        d.rx[1].reset(reinterpret_cast<rx_desc*>(b), r1);
        d.rxc.reset(reinterpret_cast<rx_comp_desc*>(cc), r0 + r1);
        d.posted[0].clear();
        d.posted[1].clear();
        d.rx_addrs.clear();
        d.rx_vec = c.intrIdx;
        d.rx_failed = false;
        d.rxp.clear();
        rxqd(q)->ctrl.updateRxProd = cfg_.update_rx_prod ? 1 : 0;
        rxqd(q)->status = {};
        rxprod_[q][0].store(0);
        rxprod_[q][1].store(0);
    }
    features_ = m.uptFeatures & cfg_.profile.upt_features;
    intr_ctrl_ = ic.intrCtrl;
    auto_mask_ = ic.autoMask != 0;
    event_vec_ = ic.eventIntrIdx;
    if (!read_mod_levels(sh->devRead.intrConf)) {
        return 1;
    }
    moderation_.restart(); // causes latched by moderation belong to the old queues
    // The RX filter the guest left in the shared area applies from activation on.
    filter_.activate(sh->devRead.rxFilterConf);
    if (cfg_.perm_mac_at_activate) {
        filter_.mac = cfg_.perm_mac;  // QEMU: vmxnet3_activate_device ends in vmxnet3_reset_mac
    }
    ecr_ = 0;
    publish_ecr();
    active_ = true;
    return 0;
}

// LOAD_PLUGIN (defs.hpp, load_plugin_info): the hypervisor copies the image it holds for
// the device id into the guest's area and writes its size back, or answers why not.
inline std::uint32_t vmxnet3_device::load_plugin(vmxnet3::driver_shared* sh) noexcept {
    using namespace vmxnet3;
    load_plugin_info a = get_load_plugin(sh->cmdInfo);
    const std::uint32_t want = a.areaLen;
    a.areaLen = 0;
    std::uint32_t res = 0;
    const std::vector<std::byte>* img = nullptr;
    if (plugins_ != nullptr) {
        if (const auto it = plugins_->find(a.deviceId); it != plugins_->end()) {
            img = &it->second;
        }
    }
    if (img == nullptr) {
        res = plugin_err::NO_PLUGIN;
    } else if (img->size() > want) {
        a.areaLen = static_cast<std::uint32_t>(img->size());
        res = plugin_err::TOO_SMALL;
    } else if (std::byte* to = mem_.translate(a.areaPA, img->size()); to == nullptr) {
        res = plugin_err::BAD_AREA;
    } else {
        std::memcpy(to, img->data(), img->size());
        a.areaLen = static_cast<std::uint32_t>(img->size()) + plugin_size_fault_;
    }
    put_load_plugin(sh->cmdInfo, a);
    return res;
}

inline void vmxnet3_device::do_reset() noexcept {
    active_ = false;
    for (std::uint32_t q = 0; q < max_queues; ++q) {
        dq& d = q_[q];
        d.posted[0].clear();
        d.posted[1].clear();
        d.rx_addrs.clear();
        d.txp.clear();
        d.rxp.clear();
        d.chain.clear();
    }
    for (sim_irq& i : irqs_) {
        i.reset();
    }
    // The queues the guest had are gone: it sees queue errors until it re-activates.
    raise_events(vmxnet3::ecr::TQERR | vmxnet3::ecr::RQERR);
    if (cfg_.reset_forgets_shared_area) {
        dsa_halves_ = 0;  // QEMU vmxnet3_reset: drv_shmem = 0 until DSAL/DSAH are written again
    }
    ++resets_;
}

// A driver error: the queue stops, the guest learns it from ECR and GET_QUEUE_STATUS.
template <class... Args>
void vmxnet3_device::violation(std::uint32_t q, bool tx, std::uint32_t slot, std::uint32_t code,
                               const char* fmt, Args... args) {
    char detail[200];
    std::snprintf(detail, sizeof detail, fmt, args...);
    char msg[300];
    std::snprintf(msg, sizeof msg, "%s %s %u slot %u: %s", cfg_.name, tx ? "txq" : "rxq", q, slot, detail);
    violations_.emplace_back(msg);
    (tx ? q_[q].tx_failed : q_[q].rx_failed) = true;
    if (table_ != nullptr) {
        (tx ? txqd(q)->status.error : rxqd(q)->status.error) = code;
    }
    raise_events(tx ? vmxnet3::ecr::TQERR : vmxnet3::ecr::RQERR);
}

} // namespace npa::sim
