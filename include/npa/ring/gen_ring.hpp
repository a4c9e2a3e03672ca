// npa/ring/gen_ring.hpp: cursors for descriptor rings whose ownership is carried in the
// descriptor itself.
//
// Devices hand descriptors back and forth through shared memory with a bit (or two) in
// the descriptor saying who owns it:
//   - vmxnet3: a `gen` bit; the producer writes the current generation last, the
//     consumer takes a slot only while its own generation matches, and both flip their
//     generation each time they wrap (vmxnet3_defs.h, VMXNET3_INIT_GEN = 1);
//   - Intel advanced descriptors: the DD ("descriptor done") status bit written back by
//     the device;
//   - virtio 1.1 packed rings: AVAIL/USED flag bits compared with a wrap counter.
//
// All three are "is the ownership field equal to the value expected for this lap?".
// A small traits type states where the ownership word is and what it must hold; the
// cursor code below is shared by every plugin (driver side) and every sim device model
// (device side), so they cannot disagree about the protocol.
//
// The producer writes the body of a descriptor first and the ownership word last with a
// release store; the consumer loads the ownership word with acquire and, if it says "yours",
// copies the descriptor out as one snapshot. Callers validate the snapshot, never the
// live descriptor, so a device rewriting it after the check changes nothing
// (no time-of-check/time-of-use window).
#pragma once

#include <npa/config.hpp>
#include <npa/endian.hpp>

#include <atomic>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>

namespace npa {

/// Descriptor traits: what a ring's ownership protocol is.
///
///   desc_type                   the descriptor (trivially copyable, a multiple of 4 bytes,
///                               aligned to at least 4)
///   own_word(desc&)             the 32-bit word that carries ownership, as stored
///   own_mask                    the ownership bits inside that word (stored order)
///   own_bits(gen)               what those bits hold when the slot belongs to the
///                               consumer on a lap whose generation is `gen` (stored order)
// The pieces, each named so that a diagnostic says which one a traits type breaks.
template <class Tr>
concept gen_desc_copyable = std::is_trivially_copyable_v<typename Tr::desc_type>;
// The descriptor is read and written as 32-bit words.
template <class Tr>
concept gen_desc_whole_words = sizeof(typename Tr::desc_type) % 4 == 0;
// The ownership word is accessed through std::atomic_ref, which is undefined on a
// misaligned object: a descriptor of bytes (alignof 1) must say alignas(4) or more.
template <class Tr>
concept gen_desc_aligned =
    alignof(typename Tr::desc_type) >= std::atomic_ref<std::uint32_t>::required_alignment;
template <class Tr>
concept gen_desc_own_word = requires(typename Tr::desc_type& d) {
    { Tr::own_word(d) } noexcept -> std::same_as<std::uint32_t&>;
};
template <class Tr>
concept gen_desc_own_mask = requires {
    { Tr::own_mask } -> std::convertible_to<std::uint32_t>;
};
template <class Tr>
concept gen_desc_own_bits = requires(bool gen) {
    { Tr::own_bits(gen) } noexcept -> std::same_as<std::uint32_t>;
};

template <class Tr>
concept gen_desc_traits = gen_desc_copyable<Tr> && gen_desc_whole_words<Tr> &&
                          gen_desc_aligned<Tr> && gen_desc_own_word<Tr> &&
                          gen_desc_own_mask<Tr> && gen_desc_own_bits<Tr>;

/// Ready-made traits for a single generation bit at `Bit` of word `Word` (vmxnet3 style),
/// the word stored in byte order `Order`.
template <class Desc, std::size_t Word, unsigned Bit, std::endian Order = std::endian::little>
struct gen_bit_traits {
    using desc_type = Desc;
    static_assert(sizeof(Desc) >= (Word + 1) * 4, "gen_bit_traits: word outside descriptor");
    static_assert(Bit < 32, "gen_bit_traits: bit outside a 32-bit word");
    static std::uint32_t& own_word(Desc& d) noexcept {
        return reinterpret_cast<std::uint32_t*>(&d)[Word];
    }
    static constexpr std::uint32_t own_mask = convert_order<Order>(std::uint32_t{1} << Bit);
    static constexpr std::uint32_t own_bits(bool gen) noexcept { return gen ? own_mask : 0u; }
};

/// Ready-made traits for a "done" bit written by the device (Intel DD style): the slot is
/// the consumer's whenever the bit is set, whatever the lap; the driver clears it by
/// rewriting the descriptor when it recycles the slot. The word is stored in byte order `Order`.
template <class Desc, std::size_t Word, unsigned Bit, std::endian Order = std::endian::little>
struct done_bit_traits {
    using desc_type = Desc;
    static_assert(sizeof(Desc) >= (Word + 1) * 4, "done_bit_traits: word outside descriptor");
    static_assert(Bit < 32, "done_bit_traits: bit outside a 32-bit word");
    static std::uint32_t& own_word(Desc& d) noexcept {
        return reinterpret_cast<std::uint32_t*>(&d)[Word];
    }
    static constexpr std::uint32_t own_mask = convert_order<Order>(std::uint32_t{1} << Bit);
    static constexpr std::uint32_t own_bits(bool) noexcept { return own_mask; }
};

/// Position in a ring of `size` slots: index plus the generation of the current lap.
/// Sizes need not be powers of two (vmxnet3 allows any multiple of 32; Intel any
/// multiple of 8), so the wrap is a compare, not a mask.
struct ring_cursor {
    std::uint32_t index = 0;
    bool gen = true;

    void advance(std::uint32_t size) noexcept {
        if (++index == size) {
            index = 0;
            gen = !gen;
        }
    }
};

/// Producer side: writes descriptors and hands them over (driver filling a TX/RX ring,
/// device writing completions).
template <gen_desc_traits Tr>
class gen_producer {
public:
    using desc_type = typename Tr::desc_type;

    gen_producer() noexcept = default;
    gen_producer(desc_type* ring, std::uint32_t size, bool initial_gen = true) noexcept {
        reset(ring, size, initial_gen);
    }

    void reset(desc_type* ring, std::uint32_t size, bool initial_gen = true) noexcept {
        ring_ = ring;
        size_ = size;
        cur_ = ring_cursor{0, initial_gen};
    }

    [[nodiscard]] std::uint32_t size() const noexcept { return size_; }
    [[nodiscard]] std::uint32_t next_to_fill() const noexcept { return cur_.index; }
    [[nodiscard]] bool gen() const noexcept { return cur_.gen; }
    [[nodiscard]] desc_type* ring() const noexcept { return ring_; }

    /// Writes `d` into the next slot, ownership word last, and advances. The ownership
    /// bits of `d` are ignored and replaced by the current generation's.
    void produce(const desc_type& d) noexcept {
        desc_type& slot = ring_[cur_.index];
        auto* dst = reinterpret_cast<unsigned char*>(&slot);
        const auto* src = reinterpret_cast<const unsigned char*>(&d);
        desc_type tmp = d;
        const std::uint32_t word = (Tr::own_word(tmp) & ~std::uint32_t{Tr::own_mask}) |
                                   Tr::own_bits(cur_.gen);
        const std::size_t off = static_cast<std::size_t>(
            reinterpret_cast<unsigned char*>(&Tr::own_word(slot)) - dst);
        std::memcpy(dst, src, off);
        std::memcpy(dst + off + 4, src + off + 4, sizeof(desc_type) - off - 4);
        // release: the body before the ownership word; pairs with the consumer's acquire
        // in ready(), poll() and out_of_order().
        std::atomic_ref<std::uint32_t>(Tr::own_word(slot)).store(word, std::memory_order_release);
        cur_.advance(size_);
    }

    /// produce() for each descriptor of `ds`, in order. The caller has made sure that
    /// ds.size() slots are free (it knows from its completions, as every driver does).
    void produce_burst(std::span<const desc_type> ds) noexcept {
        for (const desc_type& d : ds) {
            produce(d);
        }
    }

private:
    desc_type* ring_ = nullptr;
    std::uint32_t size_ = 0;
    ring_cursor cur_{};
};

/// Consumer side: takes descriptors whose ownership word says they are ready (device
/// fetching TX/RX descriptors, driver reaping completions).
template <gen_desc_traits Tr>
class gen_consumer {
public:
    using desc_type = typename Tr::desc_type;

    gen_consumer() noexcept = default;
    gen_consumer(desc_type* ring, std::uint32_t size, bool initial_gen = true) noexcept {
        reset(ring, size, initial_gen);
    }

    void reset(desc_type* ring, std::uint32_t size, bool initial_gen = true) noexcept {
        ring_ = ring;
        size_ = size;
        cur_ = ring_cursor{0, initial_gen};
    }

    [[nodiscard]] std::uint32_t size() const noexcept { return size_; }
    [[nodiscard]] std::uint32_t next_to_clean() const noexcept { return cur_.index; }
    [[nodiscard]] bool gen() const noexcept { return cur_.gen; }
    [[nodiscard]] desc_type* ring() const noexcept { return ring_; }

    /// True if the slot at next_to_clean belongs to the consumer now.
    [[nodiscard]] bool ready() const noexcept {
        // acquire: pairs with the producer's release of the ownership word (produce(), or
        // a device model's own store of its done bit).
        const std::uint32_t w =
            std::atomic_ref<std::uint32_t>(Tr::own_word(ring_[cur_.index]))
                .load(std::memory_order_acquire);
        return (w & Tr::own_mask) == Tr::own_bits(cur_.gen);
    }

    /// If the next slot is ready, copies it to `out` (one snapshot), advances and returns
    /// true; otherwise returns false and touches nothing.
    [[nodiscard]] bool poll(desc_type& out) noexcept {
        desc_type& slot = ring_[cur_.index];
        // acquire: as in ready(); the body is copied only after it says "yours".
        const std::uint32_t w =
            std::atomic_ref<std::uint32_t>(Tr::own_word(slot)).load(std::memory_order_acquire);
        if ((w & Tr::own_mask) != Tr::own_bits(cur_.gen)) {
            return false;
        }
        const auto* src = reinterpret_cast<const unsigned char*>(&slot);
        auto* dst = reinterpret_cast<unsigned char*>(&out);
        const std::size_t off = static_cast<std::size_t>(
            reinterpret_cast<const unsigned char*>(&Tr::own_word(slot)) - src);
        std::memcpy(dst, src, off);
        std::memcpy(dst + off + 4, src + off + 4, sizeof(desc_type) - off - 4);
        Tr::own_word(out) = w;
        cur_.advance(size_);
        return true;
    }

    /// Polls up to out.size() consecutive slots; returns how many were ready and copied
    /// (0..n). Stops at the first slot that is not ready, so the order is the ring's.
    [[nodiscard]] std::uint32_t poll_burst(std::span<desc_type> out) noexcept {
        const auto n = static_cast<std::uint32_t>(out.size());
        std::uint32_t k = 0;
        while (k < n && poll(out[k])) {
            ++k;
        }
        return k;
    }

    /// Skips the next slot without reading it (used after a ring reset decision).
    void advance() noexcept { cur_.advance(size_); }

    /// True if the slot after next_to_clean already belongs to the consumer while
    /// next_to_clean's does not: the producer broke generation order (it handed over a
    /// later entry without the earlier one). Read in that order the answer is exact even
    /// with the producer running: the later entry's release store comes after the earlier's.
    [[nodiscard]] bool out_of_order() const noexcept {
        const std::uint32_t next = cur_.index + 1;
        const bool wraps = next == size_;
        // acquire: pairs with the producer's release of the later slot, which an in-order
        // producer makes after the earlier slot's: ready() below then sees the earlier one.
        const std::uint32_t w =
            std::atomic_ref<std::uint32_t>(Tr::own_word(ring_[wraps ? 0 : next]))
                .load(std::memory_order_acquire);
        return (w & Tr::own_mask) == Tr::own_bits(wraps ? !cur_.gen : cur_.gen) && !ready();
    }

    /// poll(), and past one stale slot: when next_to_clean is not ready but the slot after
    /// it is (out_of_order()), the stale slot is skipped, `on_stale()` is told (the
    /// device is not to be trusted), and the next slot is polled. A device that breaks
    /// generation order so cannot wedge the ring. The skipped slot is marked consumed for
    /// this lap: it still holds the previous lap's ownership bits, which on a generation
    /// ring are the next lap's, so left alone it would read as fresh one lap later.
    template <class OnStale>
    [[nodiscard]] bool poll_past_stale(desc_type& out, OnStale&& on_stale) noexcept {
        if (poll(out)) {
            return true;
        }
        if (!out_of_order()) {
            return false;
        }
        on_stale();
        std::atomic_ref<std::uint32_t> own(Tr::own_word(ring_[cur_.index]));
        // Not the next lap's bits: this lap's on a generation ring, clear on a done-bit one.
        const std::uint32_t mine = Tr::own_bits(cur_.gen);
        const std::uint32_t consumed =
            mine != Tr::own_bits(!cur_.gen) ? mine : mine ^ std::uint32_t{Tr::own_mask};
        // relaxed, load and store: the word publishes no data (what else the producer wrote
        // in it is never read), and the release that next gives the producer room (a new
        // descriptor, a doorbell) orders the mark before the producer's next lap here.
        const std::uint32_t was = own.load(std::memory_order_relaxed);
        // relaxed: as above
        own.store((was & ~std::uint32_t{Tr::own_mask}) | consumed, std::memory_order_relaxed);
        cur_.advance(size_);
        return poll(out);
    }

private:
    desc_type* ring_ = nullptr;
    std::uint32_t size_ = 0;
    ring_cursor cur_{};
};

} // namespace npa
