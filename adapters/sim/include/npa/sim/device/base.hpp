// npa/sim/device/base.hpp: what every sim device model has, once.
//
// device_model<Derived> holds the parts no model does differently: guest memory, the
// device lock, the fault plan (inject()), the link with its flap timer, the step count,
// stepping (run_until(), and start()/stop() for a thread of its own), the inbox from the
// wire with the RX batch taken from it each step, the countdown to a planned reset or
// surprise removal, and violations recorded with the ring, the slot and the rule. The
// completion path (completion.hpp), queue steering (steering.hpp), the Internet checksum
// (checksum.hpp) and the hypervisor's port policy (policy.hpp) sit next to it.
//
// Write jitter (set_write_jitter()): a model writes each completion as a real device may,
// the payload by DMA, then the fields one 32-bit word at a time, then the done bit with
// release ordering. With jitter on it lands each completion while the driver is polling:
// it waits (a bounded spin) for the driver's next poll to begin, then pauses a random
// while, then writes the fields with short random pauses between them and the done bit
// right after the last, so that a driver on another thread that reads a completion's
// fields before it has checked the done bit meets half-written completions (the
// conformance kit's threaded checks; write_pause() says why the pauses are so shaped).
#pragma once

#include <npa/ring/gen_ring.hpp>
#include <npa/sim/device/inbox.hpp>
#include <npa/sim/device/steering.hpp>
#include <npa/sim/faults.hpp>
#include <npa/sim/guest_memory.hpp>
#include <npa/sim/wire.hpp>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace npa::sim {

/// A driver error a device caught: which queue, ring and slot, which rule.
struct device_violation {
    std::uint16_t queue = 0;
    ring_kind ring = ring_kind::tx;
    std::uint32_t slot = 0;
    const char* rule = "";
    std::string message; ///< "<device> txq 0 slot 5: <rule>: <detail>"
};

/// What the fault plan says the next transmitted packet does to the device.
enum class tx_event : std::uint8_t { none, remove, reset };

template <class Derived>
class device_model {
public:
    device_model(const device_model&) = delete;
    device_model& operator=(const device_model&) = delete;

    // ---- time ---------------------------------------------------------------------------
    /// Steps until pred() holds (checked before each step) or max_steps ran; returns pred().
    template <class Pred>
    bool run_until(Pred pred, std::uint32_t max_steps = 10000) {
        for (std::uint32_t i = 0; i < max_steps && !pred(); ++i) {
            self().step();
        }
        return pred();
    }
    /// Free-running mode: a thread calls step() until stop().
    void start() {
        if (thread_.joinable()) {
            return;
        }
        // relaxed: the thread's start (std::thread's constructor) orders it
        running_.store(true, std::memory_order_relaxed);
        thread_ = std::thread([this] {
            // relaxed: a stop flag that publishes nothing; join() orders what follows
            while (running_.load(std::memory_order_relaxed)) {
                if constexpr (std::is_void_v<decltype(self().step())>) {
                    self().step(); // a model that does not say whether it did anything
                    std::this_thread::yield();
                } else if (!self().step()) {
                    std::this_thread::yield();
                }
            }
        });
    }
    void stop() {
        running_.store(false, std::memory_order_relaxed); // relaxed: see start()
        if (thread_.joinable()) {
            thread_.join();
        }
    }
    /// Steps taken so far (by any thread).
    [[nodiscard]] std::uint64_t steps() const {
        std::lock_guard g(mu_);
        return steps_;
    }
    /// Completions written field by field, timed against the driver's polls (write_pause());
    /// `polls`, if given, counts the polls the driver has begun (the conformance kit
    /// increments it before each rx_burst and tx_reap). 0 spins (the default): written at
    /// full speed, whole.
    void set_write_jitter(std::uint32_t max_spins,
                          const std::atomic<std::uint64_t>* polls = nullptr) {
        std::lock_guard g(mu_);
        jitter_max_ = max_spins;
        jitter_polls_ = polls;
    }

    // ---- faults -------------------------------------------------------------------------
    /// Replaces the fault plan (faults.hpp); DMA faults and a link flap start now.
    void inject(const fault_plan& p) {
        std::lock_guard g(mu_);
        faults_ = p;
        if (p.dma_faults != 0) {
            mem_.fail_next_dma(p.dma_faults);
        }
        if (p.link_down_steps != 0) {
            set_link_state(false);
            link_down_left_ = p.link_down_steps;
        }
    }
    [[nodiscard]] fault_plan faults() const {
        std::lock_guard g(mu_);
        return faults_;
    }

    // ---- events -------------------------------------------------------------------------
    /// The device resets itself (firmware fault, FLR): the model's do_reset().
    void reset() {
        std::lock_guard g(mu_);
        self().do_reset();
    }
    /// Surprise removal, from now on nothing answers: the model's do_remove().
    void remove() {
        std::lock_guard g(mu_);
        self().do_remove();
    }

protected:
    device_model(guest_memory& mem, std::size_t inbox_limit) : mem_(mem), inbox_(inbox_limit) {}
    ~device_model() { stop(); }

    Derived& self() noexcept { return static_cast<Derived&>(*this); }

    /// The default: a link change shows nowhere but in link_up_.
    void link_changed(bool /*up*/) noexcept {}
    void set_link_state(bool up) noexcept {
        // relaxed: under mu_ (inject(), step()), which orders it
        if (link_up_.exchange(up, std::memory_order_relaxed) != up) {
            self().link_changed(up);
        }
    }
    /// The link flap timer: the link comes back when the planned steps have passed.
    void tick_link() noexcept {
        if (link_down_left_ != 0 && --link_down_left_ == 0) {
            set_link_state(true);
        }
    }

    /// Called once per transmitted packet: a planned surprise removal or reset fires when
    /// its countdown reaches this packet (the packet is then not sent).
    tx_event next_tx_event() noexcept {
        if (faults_.remove_after_tx == 0) {
            return tx_event::remove;
        }
        if (faults_.reset_after_tx == 0) {
            faults_.reset_after_tx = -1;
            return tx_event::reset;
        }
        faults_.remove_after_tx -= faults_.remove_after_tx > 0 ? 1 : 0;
        faults_.reset_after_tx -= faults_.reset_after_tx > 0 ? 1 : 0;
        return tx_event::none;
    }

    /// Under write jitter (set_write_jitter()): before a completion's first field (`first`),
    /// a wait for the driver's next poll to begin (at most 4 * max_spins spins: a driver
    /// busy elsewhere does not stop the device), then a random pause of up to max_spins / 8;
    /// before each later field, a random pause of up to max_spins / 128. Otherwise nothing.
    ///
    /// Why so: a driver that loads a completion's fields before it loads the done bit
    /// delivers a torn completion only when the device writes a field and then the done bit
    /// while the driver is between those two loads, that is, inside a poll. So the device
    /// lands its completions just after a poll has begun, at a random point of it, and
    /// writes the last field and the done bit close together. (A wide gap before the done
    /// bit would only let the driver read the new fields before the bit turns, which hides
    /// the bug.)
    void write_pause(bool first = false) noexcept {
        if (jitter_max_ == 0) {
            return;
        }
        if (first && jitter_polls_ != nullptr) {
            // relaxed: a count that only times the device's writes; it publishes nothing
            const std::uint64_t seen = jitter_polls_->load(std::memory_order_relaxed);
            for (std::uint32_t i = 0; i < 4 * jitter_max_ && // relaxed: as above
                                      jitter_polls_->load(std::memory_order_relaxed) == seen;
                 ++i) {
                jitter_sink_ = i;
            }
        }
        jitter_rng_ ^= jitter_rng_ << 13; // xorshift32: cheap, and the same on every host
        jitter_rng_ ^= jitter_rng_ >> 17;
        jitter_rng_ ^= jitter_rng_ << 5;
        const std::uint32_t most = jitter_max_ / (first ? 8 : 128);
        const std::uint32_t spins = jitter_rng_ % (most + 1);
        for (std::uint32_t i = 0; i < spins; ++i) {
            jitter_sink_ = i; // volatile: the spin is not optimised away
        }
        if (first && (jitter_rng_ >> 28) == 0) {
            std::this_thread::yield(); // now and then the device thread gives way
        }
    }
    /// Under write jitter: the fields of the completion `c` that `p` writes next, one
    /// 32-bit word at a time in address order, each after a pause (write_pause());
    /// p.produce(c) then writes the done bit (release). Otherwise nothing (produce() writes
    /// the whole completion at once).
    template <class Tr>
    void write_fields(gen_producer<Tr>& p, const typename Tr::desc_type& c) noexcept {
        if (jitter_max_ == 0) {
            return;
        }
        auto& slot = p.ring()[p.next_to_fill()];
        auto* dst = reinterpret_cast<unsigned char*>(&slot);
        const auto* src = reinterpret_cast<const unsigned char*>(&c);
        const auto* own = reinterpret_cast<const unsigned char*>(&Tr::own_word(slot));
        for (std::size_t off = 0; off < sizeof c; off += 4) {
            if (dst + off != own) {
                write_pause(off == 0);
                std::memcpy(dst + off, src + off, 4);
            }
        }
    }

    /// Up to n frames from the inbox into rx_batch_.
    void take_rx_batch(std::size_t n) { inbox_.take(n, rx_batch_); }

    /// Where a frame from the wire goes: nowhere while the link is down (rx_link_down_)
    /// or no queue is up (rx_no_queue_); otherwise the queue its RSS hash picks.
    struct steered {
        bool ok = false;
        std::uint16_t queue = 0;
        std::uint32_t hash = 0;
    };
    template <std::size_t N>
    steered steer(const frame& f, const active_queues<N>& active) noexcept {
        if (!link_up_.load(std::memory_order_relaxed)) { // relaxed: under mu_ (step())
            ++rx_link_down_;
            return {};
        }
        if (active.empty()) {
            ++rx_no_queue_;
            return {};
        }
        const std::uint32_t hash = rss_hash(f);
        return {true, active.pick(hash), hash};
    }

    /// A violation, formatted "<name> txq|rxq <q> slot <slot>: <rule>: <detail>".
    template <class... Args>
    static device_violation make_violation(const char* name, std::uint16_t q, ring_kind r,
                                           std::uint32_t slot, const char* rule,
                                           const char* fmt, Args... args) {
        char detail[160];
        if constexpr (sizeof...(Args) == 0) {
            std::snprintf(detail, sizeof detail, "%s", fmt); // a plain message, not a format
        } else {
            std::snprintf(detail, sizeof detail, fmt, args...);
        }
        char msg[256];
        std::snprintf(msg, sizeof msg, "%s %s %u slot %u: %s: %s", name,
                      r == ring_kind::tx ? "txq" : "rxq", unsigned{q}, unsigned{slot}, rule,
                      detail);
        return {q, r, slot, rule, msg};
    }

    guest_memory& mem_;
    mutable std::mutex mu_; ///< the device state; the inbox has its own lock
    fault_plan faults_{};
    /// Written and read under mu_ (models may read it without the lock: a snapshot).
    std::atomic<bool> link_up_{true};
    std::uint32_t link_down_left_ = 0;
    std::uint64_t steps_ = 0;
    std::uint64_t rx_link_down_ = 0; ///< frames that arrived while the link was down
    std::uint64_t rx_no_queue_ = 0;  ///< frames that arrived with no queue up
    frame_inbox inbox_;
    std::vector<frame> rx_batch_;
    frame scratch_{};

private:
    std::uint32_t jitter_max_ = 0; ///< set_write_jitter()
    const std::atomic<std::uint64_t>* jitter_polls_ = nullptr;
    std::uint32_t jitter_rng_ = 2463534242u;
    volatile std::uint32_t jitter_sink_ = 0;
    std::atomic<bool> running_{false};
    std::thread thread_;
};

} // namespace npa::sim
