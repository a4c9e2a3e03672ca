// npa/sim/test_api.hpp: a shell API for plugin unit tests that knows where every buffer is.
//
// It satisfies npa::shell_api, so a plugin under test is instantiated with it exactly as
// the shell would instantiate it with its own API. Every buffer of the pool has an owner
// at every instant: the pool, the caller (the test, standing in for the OS stack), or the
// plugin (posted on an RX ring or accepted for TX). Each hand-over checks the previous
// owner, so a buffer returned twice, returned by a plugin that never had it, or delivered
// by RX without having been posted is recorded as an error with the buffer's index; and
// audit() proves that nothing was lost. tx_unsent buffers are kept, in order, so a test can
// check the order detach handed them back in. Each buffer also remembers the last call that
// took it from the plugin (which queue, which call), and buffer_at() finds a buffer by a
// device address, so a device DMA into a buffer the plugin no longer holds can be named.
//
// Its clock (now_ns(), npa::provides_clock) is the test's: it stands still until the test
// moves it (advance_clock()), so a plugin's time bounds are tested without waiting, and
// never run out behind a test's back.
#pragma once

#include <npa/buffer/packet_buffer.hpp>
#include <npa/concepts/shell_api.hpp>
#include <npa/stats.hpp>

#include <array>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace npa::sim {

enum class owner : std::uint8_t { pool, caller, plugin };

[[nodiscard]] constexpr const char* to_string(owner o) noexcept {
    return o == owner::pool ? "the pool" : o == owner::caller ? "the caller" : "the plugin";
}

/// Who holds how many buffers, and whether anything went wrong.
struct buffer_audit {
    std::uint32_t in_pool = 0, with_caller = 0, with_plugin = 0;
    std::uint32_t total = 0;
    std::uint32_t pool_available = 0;  ///< what the pool itself says
    std::uint64_t errors = 0;          ///< ownership errors recorded
    [[nodiscard]] bool balanced() const noexcept {
        return in_pool + with_caller + with_plugin == total && in_pool == pool_available &&
               errors == 0;
    }
};

/// The last hand-over that took a buffer from the plugin: which call, on which queue.
struct hand_back {
    static constexpr std::uint16_t no_queue = 0xffff;
    const char* where = nullptr;  ///< "release_rx_buffers", "tx_unsent", ...; nullptr: never
    std::uint16_t queue = no_queue;
};

template <class Pool>
class test_api {
public:
    using buffer_type = typename Pool::buffer_type;
    /// buffer_at()'s answer for an address in no buffer.
    static constexpr std::uint32_t no_buffer = 0xffffffffu;
    /// Ownership errors kept verbatim (the first ones; the rest are counted).
    static constexpr std::size_t max_kept_errors = 16;

    explicit test_api(Pool& pool)
        : pool_(pool), owner_(pool.size(), owner::pool), hand_back_(pool.size()) {
        unsent_.reserve(pool.size());
    }

    // ---- npa::shell_api: what the plugin calls ----------------------------------------
    std::uint32_t alloc_rx_buffers(std::uint16_t q, std::span<buffer_type> out) noexcept {
        if (empty_pool_) {
            per_q(q).rx_no_buffer += out.size();
            return 0;
        }
        const std::uint32_t n = pool_.alloc_burst(out);
        per_q(q).rx_no_buffer += out.size() - n;
        for (std::uint32_t i = 0; i < n; ++i) {
            move(out[i], owner::pool, owner::plugin, "alloc_rx_buffers");
        }
        return n;
    }
    void release_rx_buffers(std::uint16_t q, std::span<const buffer_type> in) noexcept {
        for (const buffer_type& b : in) {
            if (move(b, owner::plugin, owner::pool, "release_rx_buffers", q)) {
                pool_.free(b);
            }
        }
    }
    void tx_complete(std::uint16_t q, std::span<const buffer_type> in) noexcept {
        for (const buffer_type& b : in) {
            if (move(b, owner::plugin, owner::pool, "tx_complete", q)) {
                ++per_q(q).tx_completed;
                pool_.free(b);
            }
        }
    }
    void tx_unsent(std::uint16_t q, std::span<const buffer_type> in) noexcept {
        for (const buffer_type& b : in) {
            if (move(b, owner::plugin, owner::caller, "tx_unsent", q)) {
                unsent_.push_back(b);
            }
        }
    }
    void log(log_level lvl, const char* msg) noexcept {
        ++logs_;
        if (lvl >= log_level::warning) {
            ++warnings_;
        }
        if (verbose_) {
            std::fprintf(stderr, "[plugin] %s\n", msg);
        }
    }

    /// The fake clock: starts at 1 s and moves only by advance_clock().
    [[nodiscard]] std::uint64_t now_ns() const noexcept { return clock_ns_; }
    void advance_clock(std::uint64_t ns) noexcept { clock_ns_ += ns; }

    // ---- the caller's side (the test standing in for the OS stack) ---------------------
    /// Takes buffers for TX from the pool.
    std::uint32_t alloc_tx(std::span<buffer_type> out) noexcept {
        const std::uint32_t n = pool_.alloc_burst(out);
        for (std::uint32_t i = 0; i < n; ++i) {
            move(out[i], owner::pool, owner::caller, "alloc_tx");
        }
        return n;
    }
    /// Before tx_burst: the plugin may take these (it owns them during the call).
    void offer(std::span<const buffer_type> in) noexcept {
        for (const buffer_type& b : in) {
            move(b, owner::caller, owner::plugin, "tx_burst (offered)");
        }
    }
    /// After tx_burst: these were not accepted and stay with the caller.
    void not_accepted(std::span<const buffer_type> in) noexcept {
        for (const buffer_type& b : in) {
            move(b, owner::plugin, owner::caller, "tx_burst (not accepted)");
        }
    }
    /// rx_burst delivered these.
    void received(std::span<const buffer_type> in) noexcept {
        for (const buffer_type& b : in) {
            move(b, owner::plugin, owner::caller, "rx_burst (delivered)");
        }
    }
    /// The caller is done with these.
    void free(std::span<const buffer_type> in) noexcept {
        for (const buffer_type& b : in) {
            if (move(b, owner::caller, owner::pool, "free")) {
                pool_.free(b);
            }
        }
    }
    /// Buffers handed back through tx_unsent, in order; take() empties the list (the caller
    /// now owns them and frees or resends them).
    [[nodiscard]] const std::vector<buffer_type>& unsent() const noexcept { return unsent_; }
    std::vector<buffer_type> take_unsent() { return std::exchange(unsent_, {}); }

    /// While set, alloc_rx_buffers gives nothing (the pool looks empty to the plugin).
    void set_empty_pool(bool v) noexcept { empty_pool_ = v; }
    void set_verbose(bool v) noexcept { verbose_ = v; }

    [[nodiscard]] buffer_audit audit() const noexcept {
        buffer_audit a;
        a.total = static_cast<std::uint32_t>(owner_.size());
        for (owner o : owner_) {
            (o == owner::pool ? a.in_pool : o == owner::caller ? a.with_caller : a.with_plugin)++;
        }
        a.pool_available = pool_.available();
        a.errors = errors_;
        return a;
    }
    [[nodiscard]] owner owner_of(const buffer_type& b) const noexcept {
        return owner_[b.get()->index];
    }
    /// The pool buffer whose memory holds device address `iova`, or no_buffer. The pool's
    /// buffers lie in IOVA order, so this is a binary search.
    [[nodiscard]] std::uint32_t buffer_at(iova_t iova) const noexcept {
        std::uint32_t lo = 0, hi = pool_.size();
        while (lo < hi) {  // the first buffer that starts after iova
            const std::uint32_t mid = lo + (hi - lo) / 2;
            if (pool_.at(mid).get()->buf_iova <= iova) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if (lo == 0) {
            return no_buffer;
        }
        const packet_buffer* p = pool_.at(lo - 1).get();
        return iova - p->buf_iova < p->buf_len ? lo - 1 : no_buffer;
    }
    [[nodiscard]] owner owner_of(std::uint32_t index) const noexcept { return owner_[index]; }
    /// The last call that took buffer `index` from the plugin.
    [[nodiscard]] hand_back handed_back(std::uint32_t index) const noexcept {
        return hand_back_[index];
    }
    [[nodiscard]] std::uint64_t errors() const noexcept { return errors_; }
    [[nodiscard]] const std::vector<std::string>& error_messages() const noexcept {
        return messages_;
    }
    [[nodiscard]] std::uint64_t tx_completed(std::uint16_t q) const noexcept {
        return q < q_.size() ? q_[q].tx_completed : 0;
    }
    [[nodiscard]] std::uint64_t rx_no_buffer(std::uint16_t q) const noexcept {
        return q < q_.size() ? q_[q].rx_no_buffer : 0;
    }
    [[nodiscard]] std::uint64_t warnings() const noexcept { return warnings_; }
    [[nodiscard]] Pool& pool() noexcept { return pool_; }

private:
    struct queue_counts {
        std::uint64_t tx_completed = 0, rx_no_buffer = 0;
    };

    queue_counts& per_q(std::uint16_t q) noexcept {
        return q < q_.size() ? q_[q] : q_.back();
    }

    // One hand-over: checks that `b` is one of the pool's buffers and is held by `from`.
    bool move(const buffer_type& b, owner from, owner to, const char* where,
              std::uint16_t q = hand_back::no_queue) noexcept {
        if (!pool_.owns(b)) {
            error("%s: a buffer that is not from the pool (%p)", where,
                  static_cast<const void*>(b.get()));
            return false;
        }
        owner& o = owner_[b.get()->index];
        if (o != from) {
            error("%s: buffer #%u is held by %s, not %s (%s)", where, b.get()->index, to_string(o),
                  to_string(from),
                  o == to ? "handed over twice" : "handed over by a party that does not hold it");
            return false;
        }
        o = to;
        if (from == owner::plugin) {
            hand_back_[b.get()->index] = {where, q};
        }
        return true;
    }

    template <class... Args>
    void error(const char* fmt, Args... args) noexcept {
        ++errors_;
        if (messages_.size() < max_kept_errors) {
            char buf[200];
            std::snprintf(buf, sizeof buf, fmt, args...);
            messages_.emplace_back(buf);
        }
    }

    Pool& pool_;
    std::vector<owner> owner_;
    std::vector<hand_back> hand_back_;
    std::vector<buffer_type> unsent_;
    std::array<queue_counts, 16> q_{};
    std::vector<std::string> messages_;
    std::uint64_t errors_ = 0, logs_ = 0, warnings_ = 0;
    std::uint64_t clock_ns_ = 1'000'000'000;
    bool empty_pool_ = false, verbose_ = false;
};

} // namespace npa::sim
