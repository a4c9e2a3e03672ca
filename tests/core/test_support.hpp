// Helpers shared by the core suites: element types that stand for the two cases the
// rings are built for (8-byte handles, 16-byte descriptors), a small deterministic
// generator, and the stress-test item count.
#pragma once

#include <cstdint>
#include <cstdlib>

namespace npa_test {

/// A 16-byte descriptor (the size of a vmxnet3 Tx/Rx descriptor and an Intel advanced
/// descriptor). `check` is derived from `seq` so that a torn copy is detected.
struct desc16 {
    std::uint64_t seq = 0;
    std::uint32_t len = 0;
    std::uint32_t check = 0;

    friend bool operator==(const desc16&, const desc16&) = default;
};
static_assert(sizeof(desc16) == 16);

inline desc16 make_desc(std::uint64_t seq) noexcept {
    return {seq, static_cast<std::uint32_t>(seq & 0x3fff),
            static_cast<std::uint32_t>(~seq ^ (seq >> 32))};
}

/// xorshift64*: deterministic, so a failing run replays exactly.
class rng {
public:
    explicit rng(std::uint64_t seed) noexcept : s_(seed | 1) {}
    std::uint64_t next() noexcept {
        s_ ^= s_ >> 12;
        s_ ^= s_ << 25;
        s_ ^= s_ >> 27;
        return s_ * 0x2545F4914F6CDD1Dull;
    }
    /// Uniform-ish in [lo, hi].
    std::uint32_t range(std::uint32_t lo, std::uint32_t hi) noexcept {
        return lo + static_cast<std::uint32_t>(next() % (std::uint64_t{hi} - lo + 1));
    }

private:
    std::uint64_t s_;
};

/// Items each two-thread stress test moves through a ring: 10 million unless the
/// environment variable NPA_STRESS_ITEMS says otherwise (a smaller count for a quick
/// local run, a larger one for a soak).
inline std::uint64_t stress_items() noexcept {
    constexpr std::uint64_t default_items = 10'000'000;
    const char* env = std::getenv("NPA_STRESS_ITEMS");
    if (env == nullptr || *env == '\0') {
        return default_items;
    }
    char* end = nullptr;
    const unsigned long long v = std::strtoull(env, &end, 10);
    return (end != nullptr && *end == '\0' && v > 0) ? v : default_items;
}

} // namespace npa_test
