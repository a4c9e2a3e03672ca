// npa/sim/simnic.hpp: the simnic device model (the device side of simnic_defs.hpp).
//
// It processes rings as the hardware would: it reads only descriptors the driver has
// handed over (doorbell count and generation bit), reaches buffers and rings only through
// guest-memory translation, writes one completion per descriptor and raises the queue's
// interrupt line when armed. It checks the driver as an IOMMU and a strict device would:
// a driver error (doorbell past the descriptors, an address outside guest memory, a buffer
// posted twice, a bad length) stops the queue and is recorded as a violation naming the
// ring, the slot and the rule; nothing is touched through a bad address.
//
// Time is explicit: step() runs every queue once, to completion (deterministic, for
// tests); start()/stop() run step() on a thread of its own (for throughput). One mutex
// covers the device state, so the window's commands, the fault plan and the accessors
// may be used from any thread; frames from the wire go to an inbox with its own lock.
// The parts every device model shares (stepping, inbox, faults, link, the completion
// path) are device_model's (device/base.hpp); this file is what makes the simnic itself.
#pragma once

#include <npa/sim/device/base.hpp>
#include <npa/sim/device/completion.hpp>
#include <npa/sim/device/steering.hpp>
#include <npa/sim/faults.hpp>
#include <npa/sim/guest_memory.hpp>
#include <npa/sim/simnic_defs.hpp>
#include <npa/sim/simnic_window.hpp>
#include <npa/sim/wire.hpp>
#include <npa/status.hpp>

#include <array>
#include <cinttypes>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace npa::sim {

struct simnic_config {
    std::uint16_t queues = 4;           ///< queue pairs (<= simnic_max_queues)
    std::uint32_t max_ring_size = 1024; ///< ring memory reserved per queue pair is sized for this
    const char* name = "simnic0";
    std::size_t inbox_limit = 8192;          ///< frames buffered from the wire before rx_overrun
    std::uint32_t rx_frames_per_step = 1024; ///< frames moved from the wire to RX rings per step
};

/// Device-side counters of one queue pair.
struct simnic_queue_stats {
    std::uint64_t tx_frames = 0, tx_bytes = 0;
    std::uint64_t tx_link_down = 0;  ///< consumed and completed while the link was down (not sent)
    std::uint64_t tx_dma_errors = 0; ///< completed with error: the buffer could not be read
    std::uint64_t rx_frames = 0, rx_bytes = 0;
    std::uint64_t rx_no_desc = 0;    ///< frame dropped: no RX buffer posted
    std::uint64_t rx_oversize = 0;   ///< frame dropped: larger than the posted buffer
    std::uint64_t rx_dma_errors = 0; ///< completed with error: the buffer could not be written
    std::uint64_t comp_dropped = 0, comp_delayed = 0, comp_reordered = 0, comp_corrupted = 0;
};

struct simnic_device_stats {
    std::uint64_t rx_overrun = 0;   ///< frames dropped because the inbox was full
    std::uint64_t rx_link_down = 0; ///< frames that arrived while the link was down
    std::uint64_t rx_no_queue = 0;  ///< frames that arrived with no queue active
    std::uint64_t rx_removed = 0;   ///< frames that arrived for (or waited in) a removed device
    std::uint64_t resets = 0;
    std::uint64_t violations = 0;
};

/// A driver error the device caught ("simnic0 txq 0 slot 5: buffer posted twice: ...").
using simnic_violation = device_violation;

/// The rules a driver can break, as named in violation messages.
namespace simnic_rule {
inline constexpr const char* doorbell_beyond_ring = "doorbell beyond the ring";
inline constexpr const char* doorbell_past_filled = "doorbell past the filled descriptors";
inline constexpr const char* iova_outside = "IOVA outside guest memory";
inline constexpr const char* posted_twice = "buffer posted twice";
inline constexpr const char* bad_length = "bad descriptor length";
} // namespace simnic_rule

class simnic final : public frame_port, public device_model<simnic> {
    friend class device_model<simnic>;

public:
    /// Builds a device whose ring memory is carved out of `mem` (which must outlive it).
    [[nodiscard]] static result<std::unique_ptr<simnic>> create(guest_memory& mem,
                                                                const simnic_config& cfg) {
        if (cfg.queues == 0 || cfg.queues > simnic_max_queues) {
            return {errc::invalid_argument, "simnic: queues must be 1..simnic_max_queues"};
        }
        if (!simnic_ring_size_ok(cfg.max_ring_size)) {
            return {errc::invalid_argument,
                    "simnic: max_ring_size must be a power of two in 32..4096"};
        }
        std::unique_ptr<simnic> d(new (std::nothrow) simnic(mem, cfg));
        if (!d) {
            return {errc::no_memory, "simnic: out of memory"};
        }
        for (std::uint16_t q = 0; q < cfg.queues; ++q) {
            const guest_block b =
                mem.allocate(simnic_ring_bytes(cfg.max_ring_size, cfg.max_ring_size));
            if (!b) {
                return {errc::no_memory, "simnic: guest memory too small for the ring areas"};
            }
            d->window_.set_area(q, b);
        }
        return result<std::unique_ptr<simnic>>(std::move(d));
    }

    simnic(const simnic&) = delete;
    simnic& operator=(const simnic&) = delete;
    ~simnic() override { stop(); }

    [[nodiscard]] simnic_window& window() noexcept { return window_; }
    [[nodiscard]] const char* name() const noexcept { return cfg_.name; }
    [[nodiscard]] std::uint16_t queues() const noexcept { return cfg_.queues; }

    // ---- time ---------------------------------------------------------------------------
    /// Runs every queue once to completion: fetch TX and transmit, fetch RX buffers, move
    /// frames from the wire into RX buffers, write completions, raise interrupts.
    /// Returns true if anything happened.
    bool step() noexcept {
        std::lock_guard g(mu_);
        ++steps_;
        if (state_ == simnic_state::removed) {
            return false;
        }
        tick_link();
        bool work = false;
        for (std::uint16_t q = 0; q < cfg_.queues; ++q) {
            dq& d = q_[q];
            if (!d.active || d.failed) {
                continue;
            }
            work |= flush_delayed(q);
            work |= process_tx(q);
            if (state_ == simnic_state::removed || state_ == simnic_state::reset) {
                return true;
            }
            work |= fetch_rx(q);
        }
        work |= deliver_rx();
        for (std::uint16_t q = 0; q < cfg_.queues; ++q) {
            if (q_[q].wrote) {
                q_[q].wrote = false;
                window_.irq(q).raise();
            }
        }
        return work;
    }

    // ---- the wire -----------------------------------------------------------------------
    void frame_in(const frame& f) noexcept override {
        inbox_.push(f, [this] { return window_.state() == simnic_state::removed; });
    }
    [[nodiscard]] bool link_up() const {
        std::lock_guard g(mu_);
        return link_up_;
    }

    // ---- faults and events: inject(), faults(), reset() (every queue is gone) and
    // remove() (from now on nothing answers) are device_model's.

    // ---- observation --------------------------------------------------------------------
    [[nodiscard]] std::vector<simnic_violation> violations() const {
        std::lock_guard g(mu_);
        return violations_;
    }
    [[nodiscard]] simnic_queue_stats stats(std::uint16_t q) const {
        std::lock_guard g(mu_);
        return q_[q].st;
    }
    [[nodiscard]] simnic_device_stats device_stats() const {
        simnic_device_stats s;
        s.rx_overrun = inbox_.overrun();
        s.rx_removed = inbox_.removed();
        std::lock_guard g(mu_);
        s.rx_link_down = rx_link_down_;
        s.rx_no_queue = rx_no_queue_;
        s.resets = resets_;
        s.violations = violations_.size();
        return s;
    }
    /// RX buffers the device holds for queue q (fetched, not yet used).
    [[nodiscard]] std::uint32_t rx_posted(std::uint16_t q) const {
        std::lock_guard g(mu_);
        return static_cast<std::uint32_t>(q_[q].rx_posted.size());
    }
    /// TX descriptors the device has fetched from queue q since it was activated.
    [[nodiscard]] std::uint32_t tx_fetched(std::uint16_t q) const {
        std::lock_guard g(mu_);
        return q_[q].tx_fetched;
    }
    [[nodiscard]] bool queue_active(std::uint16_t q) const {
        std::lock_guard g(mu_);
        return q_[q].active && !q_[q].failed;
    }
    [[nodiscard]] std::size_t inbox() const { return inbox_.size(); }
    [[nodiscard]] simnic_state state() const noexcept { return window_.state(); }

private:
    struct rx_posted_buf {
        std::uint32_t slot, tag;
        iova_t addr;
        std::uint32_t len;
    };
    struct tx_item {
        std::uint32_t slot, tag;
        iova_t addr;
        std::uint32_t len;
    };
    struct dq {
        bool active = false, failed = false, wrote = false;
        simnic_ring_layout l{};
        gen_consumer<simnic_tx_traits> tx;
        gen_producer<simnic_comp_traits> txc;
        gen_consumer<simnic_rx_traits> rx;
        gen_producer<simnic_comp_traits> rxc;
        std::uint32_t tx_fetched = 0, rx_fetched = 0;
        std::deque<rx_posted_buf> rx_posted;
        std::unordered_map<iova_t, std::uint32_t> rx_addrs, tx_addrs;
        // What stands between a finished descriptor and its completion ring.
        std::array<comp_path<simnic_comp_desc>, 2> cp{}; // [ring_kind::tx], [ring_kind::rx]
        simnic_queue_stats st{};
    };

    simnic(guest_memory& mem, const simnic_config& cfg)
        : device_model(mem, cfg.inbox_limit), cfg_(cfg) {
        window_.bind(this, &simnic::command_thunk, cfg.queues);
        batch_.reserve(simnic_max_ring_size);
    }

    static status command_thunk(void* ctx, simnic_window::command c, std::uint16_t q) noexcept {
        auto* self = static_cast<simnic*>(ctx);
        std::lock_guard g(self->mu_);
        if (q >= self->cfg_.queues) {
            return {errc::invalid_argument, "simnic: no such queue"};
        }
        return c == simnic_window::command::activate ? self->activate(q)
                                                     : (self->quiesce(q), status::success());
    }

    // Checks the layout the driver wrote and starts the queue; the rings are translated
    // once here, whole, so every later ring access is within a checked range.
    status activate(std::uint16_t q) noexcept {
        if (state_ == simnic_state::removed) {
            return {errc::removed, "simnic: device removed"};
        }
        const simnic_ring_layout l = window_.layout(q);
        if (!simnic_ring_size_ok(l.tx_size) || !simnic_ring_size_ok(l.rx_size)) {
            return {errc::invalid_argument, "simnic: ring size not a power of two in 32..4096"};
        }
        if ((l.tx_ring | l.txc_ring | l.rx_ring | l.rxc_ring) % simnic_desc_size != 0) {
            return {errc::invalid_argument, "simnic: a ring base is not aligned to a descriptor"};
        }
        std::byte* tx = mem_.translate(l.tx_ring, std::size_t{l.tx_size} * simnic_desc_size);
        std::byte* txc = mem_.translate(l.txc_ring, std::size_t{l.tx_size} * simnic_desc_size);
        std::byte* rx = mem_.translate(l.rx_ring, std::size_t{l.rx_size} * simnic_desc_size);
        std::byte* rxc = mem_.translate(l.rxc_ring, std::size_t{l.rx_size} * simnic_desc_size);
        if (tx == nullptr || txc == nullptr || rx == nullptr || rxc == nullptr) {
            return {errc::invalid_argument, "simnic: a ring is outside guest memory"};
        }
        quiesce(q);
        dq& d = q_[q];
        d.l = l;
        d.tx.reset(reinterpret_cast<simnic_tx_desc*>(tx), l.tx_size);
        d.txc.reset(reinterpret_cast<simnic_comp_desc*>(txc), l.tx_size);
        d.rx.reset(reinterpret_cast<simnic_rx_desc*>(rx), l.rx_size);
        d.rxc.reset(reinterpret_cast<simnic_comp_desc*>(rxc), l.rx_size);
        d.tx_fetched = d.rx_fetched = 0;
        window_.reset_doorbells(q);
        d.active = true;
        d.failed = false;
        if (state_ == simnic_state::reset) {
            state_ = simnic_state::running;
            window_.set_state(state_);
        }
        return status::success();
    }

    void quiesce(std::uint16_t q) noexcept {
        dq& d = q_[q];
        d.active = false;
        d.rx_posted.clear();
        d.rx_addrs.clear();
        d.tx_addrs.clear();
        d.cp[0].clear();
        d.cp[1].clear();
    }

    void do_reset() {
        for (std::uint16_t q = 0; q < cfg_.queues; ++q) {
            quiesce(q);
            window_.reset_doorbells(q);
            window_.irq(q).reset();
        }
        ++resets_;
        state_ = simnic_state::reset;
        window_.set_state(state_);
    }
    void do_remove() {
        for (std::uint16_t q = 0; q < cfg_.queues; ++q) {
            quiesce(q);
        }
        // Frames waiting in a device that is gone count as removed.
        inbox_.remove_all([this] {
            state_ = simnic_state::removed;
            window_.set_state(state_);
        });
    }

    template <class... Args>
    void violation(std::uint16_t q, ring_kind r, std::uint32_t slot, const char* rule,
                   const char* fmt, Args... args) {
        violations_.push_back(make_violation(cfg_.name, q, r, slot, rule, fmt, args...));
        q_[q].failed = true;
        if (state_ == simnic_state::running) {
            state_ = simnic_state::failed;
            window_.set_state(state_);
        }
    }

    // Doorbell -> fetch every handed-over descriptor, checking each; then transmit and
    // complete them in ring order.
    bool process_tx(std::uint16_t q) {
        dq& d = q_[q];
        const std::uint32_t pending = window_.tx_prod(q) - d.tx_fetched;
        if (pending == 0) {
            return false;
        }
        if (pending > d.l.tx_size) {
            violation(q, ring_kind::tx, d.tx.next_to_clean(), simnic_rule::doorbell_beyond_ring,
                      "doorbell %u is %u descriptors ahead of the device; the ring holds %u",
                      window_.tx_prod(q), pending, d.l.tx_size);
            return true;
        }
        batch_.clear();
        for (std::uint32_t i = 0; i < pending; ++i) {
            const std::uint32_t slot = d.tx.next_to_clean();
            simnic_tx_desc desc;
            if (!d.tx.poll(desc)) {
                violation(q, ring_kind::tx, slot, simnic_rule::doorbell_past_filled,
                          "doorbell says %u more descriptors, but this slot is not handed over "
                          "(generation bit not flipped)",
                          pending - i);
                return true;
            }
            ++d.tx_fetched;
            if (desc.len < min_frame_size || desc.len > max_frame_size) {
                violation(q, ring_kind::tx, slot, simnic_rule::bad_length,
                          "frame length %u outside %u..%u", unsigned{desc.len}, min_frame_size,
                          max_frame_size);
                return true;
            }
            if (mem_.translate(desc.addr, desc.len) == nullptr) {
                violation(q, ring_kind::tx, slot, simnic_rule::iova_outside,
                          "IOVA 0x%" PRIx64 " + %u bytes is not guest memory", desc.addr,
                          unsigned{desc.len});
                return true;
            }
            const auto [it, fresh] = d.tx_addrs.try_emplace(desc.addr, slot);
            if (!fresh) {
                violation(q, ring_kind::tx, slot, simnic_rule::posted_twice,
                          "IOVA 0x%" PRIx64 " is already in flight in slot %u", desc.addr,
                          it->second);
                return true;
            }
            batch_.push_back({slot, desc.tag, desc.addr, desc.len});
        }
        for (const tx_item& t : batch_) {
            if (const tx_event e = next_tx_event(); e != tx_event::none) {
                // surprise removal or reset in the middle of the burst
                e == tx_event::remove ? do_remove() : do_reset();
                return true;
            }
            const bool ok = mem_.dma_read(t.addr, scratch_.data.data(), t.len);
            scratch_.len = t.len;
            if (!ok) {
                ++d.st.tx_dma_errors;
            } else if (link_up_) {
                ++d.st.tx_frames;
                d.st.tx_bytes += t.len;
                frame_out(scratch_);
            } else {
                ++d.st.tx_link_down;
            }
            d.tx_addrs.erase(t.addr);
            simnic_comp_desc c{};
            c.index = t.slot;
            c.tag = t.tag;
            c.ctrl = ok ? 0 : simnic_ctrl_error;
            complete(q, ring_kind::tx, c, 0);
        }
        flush_held(q, ring_kind::tx);
        return true;
    }

    // A finished descriptor's completion goes through the ring's planned faults
    // (device/completion.hpp): dropped, delayed, or held back and swapped with the next.
    comp_path<simnic_comp_desc>& path(std::uint16_t q, ring_kind r) noexcept {
        return q_[q].cp[static_cast<std::size_t>(r)];
    }
    auto writer(std::uint16_t q, ring_kind r) noexcept {
        return [this, q, r](const simnic_comp_desc& c, std::uint32_t buf_len) {
            write_comp(q, r, c, buf_len);
        };
    }
    void complete(std::uint16_t q, ring_kind r, const simnic_comp_desc& c, std::uint32_t buf_len) {
        path(q, r).complete(c, buf_len, comp_faults::of(faults_, r), steps_, q_[q].st, writer(q, r));
    }
    // An odd completion left over from a reorder at the end of a batch: written as it is.
    void flush_held(std::uint16_t q, ring_kind r) { (void)path(q, r).flush_held(writer(q, r)); }

    bool flush_delayed(std::uint16_t q) {
        bool any = false;
        for (const ring_kind r : {ring_kind::tx, ring_kind::rx}) {
            any |= path(q, r).flush_due(steps_, writer(q, r));
        }
        return any;
    }

    // Writes a completion, applying the corruption fault if one is planned for this ring.
    void write_comp(std::uint16_t q, ring_kind r, simnic_comp_desc c, std::uint32_t buf_len) {
        dq& d = q_[q];
        auto& p = r == ring_kind::tx ? d.txc : d.rxc;
        d.wrote = true;
        write_fields(p, c); // under write jitter: field by field, before the done bit
        produce_corrupted(p, c, take_corruption(faults_, r, d.st),
                          [&](simnic_comp_desc& x, comp_fault f) {
                              if (f == comp_fault::index_out_of_range) {
                                  x.index = p.size() + 7;
                              } else if (f == comp_fault::length_too_large) {
                                  x.len = static_cast<std::uint16_t>(buf_len + 512);
                              } else { // never posted: a slot half a ring away, a fresh tag
                                  x.index = (x.index + p.size() / 2) % p.size();
                                  x.tag = x.tag + 0x10000;
                              }
                          });
    }

    // Doorbell -> fetch the RX buffers the driver handed over, checking each.
    bool fetch_rx(std::uint16_t q) {
        dq& d = q_[q];
        const std::uint32_t pending = window_.rx_prod(q) - d.rx_fetched;
        if (pending == 0) {
            return false;
        }
        if (pending > d.l.rx_size) {
            violation(q, ring_kind::rx, d.rx.next_to_clean(), simnic_rule::doorbell_beyond_ring,
                      "doorbell %u is %u descriptors ahead of the device; the ring holds %u",
                      window_.rx_prod(q), pending, d.l.rx_size);
            return true;
        }
        for (std::uint32_t i = 0; i < pending; ++i) {
            const std::uint32_t slot = d.rx.next_to_clean();
            simnic_rx_desc desc;
            if (!d.rx.poll(desc)) {
                violation(q, ring_kind::rx, slot, simnic_rule::doorbell_past_filled,
                          "doorbell says %u more descriptors, but this slot is not handed over "
                          "(generation bit not flipped)",
                          pending - i);
                return true;
            }
            ++d.rx_fetched;
            if (desc.len < simnic_min_rx_buf) {
                violation(q, ring_kind::rx, slot, simnic_rule::bad_length,
                          "buffer of %u bytes is smaller than a frame (%u)", unsigned{desc.len},
                          simnic_min_rx_buf);
                return true;
            }
            if (mem_.translate(desc.addr, desc.len) == nullptr) {
                violation(q, ring_kind::rx, slot, simnic_rule::iova_outside,
                          "IOVA 0x%" PRIx64 " + %u bytes is not guest memory", desc.addr,
                          unsigned{desc.len});
                return true;
            }
            const auto [it, fresh] = d.rx_addrs.try_emplace(desc.addr, slot);
            if (!fresh) {
                violation(q, ring_kind::rx, slot, simnic_rule::posted_twice,
                          "IOVA 0x%" PRIx64 " is already posted in slot %u", desc.addr, it->second);
                return true;
            }
            d.rx_posted.push_back({slot, desc.tag, desc.addr, desc.len});
        }
        return true;
    }

public:
    // RSS for the sim (eth::flow_hash): one flow always lands on one queue.
    static std::uint32_t flow_hash(const frame& f) noexcept { return rss_hash(f); }

private:
    // Wire -> RX buffers, in arrival order, up to rx_frames_per_step.
    bool deliver_rx() {
        take_rx_batch(cfg_.rx_frames_per_step);
        active_queues<simnic_max_queues> active;
        for (std::uint16_t q = 0; q < cfg_.queues; ++q) {
            if (q_[q].active) {
                active.add(q);
            }
        }
        for (const frame& f : rx_batch_) {
            const auto [ok, q, hash] = steer(f, active);
            if (!ok) {
                continue;
            }
            dq& d = q_[q];
            if (!d.failed && d.rx_posted.empty()) {
                // Out of fetched buffers: re-read the doorbell before dropping, as a NIC
                // re-reads the tail register; the driver may have posted since this step began.
                (void)fetch_rx(q);
            }
            if (d.failed || d.rx_posted.empty()) {
                ++d.st.rx_no_desc;
                continue;
            }
            const rx_posted_buf b = d.rx_posted.front();
            if (f.len > b.len) {
                ++d.st.rx_oversize;
                continue;
            }
            d.rx_posted.pop_front();
            d.rx_addrs.erase(b.addr);
            simnic_comp_desc c{};
            c.index = b.slot;
            c.tag = b.tag;
            c.rss_hash = hash;
            if (mem_.dma_write(b.addr, f.data.data(), f.len)) {
                c.len = static_cast<std::uint16_t>(f.len);
                ++d.st.rx_frames;
                d.st.rx_bytes += f.len;
            } else {
                c.ctrl = simnic_ctrl_error;
                ++d.st.rx_dma_errors;
            }
            complete(q, ring_kind::rx, c, b.len);
        }
        for (std::uint16_t q = 0; q < cfg_.queues; ++q) {
            flush_held(q, ring_kind::rx);
        }
        const bool any = !rx_batch_.empty();
        rx_batch_.clear();
        return any;
    }

    simnic_config cfg_;
    simnic_window window_;
    std::array<dq, simnic_max_queues> q_{};
    simnic_state state_ = simnic_state::running;
    std::uint64_t resets_ = 0;
    std::vector<simnic_violation> violations_;
    std::vector<tx_item> batch_;
};

} // namespace npa::sim
