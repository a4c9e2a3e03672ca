// npa::gen_desc_traits and the ready-made traits (ring/gen_ring.hpp), the failing way:
// the generation-bit cursors refuse descriptor traits that would make the ownership
// protocol unsound.
//
// (gen_desc_whole_words has no case of its own: a descriptor aligned to 4, which
// gen_desc_aligned demands, always has a size that is a multiple of 4.)
//
// case 0 conforming: compiles
// case 1 descriptor_misaligned: gen_desc_traits && gen_desc_aligned
// case 2 descriptor_not_trivially_copyable: gen_desc_traits && gen_desc_copyable
// case 3 own_word_by_value: gen_desc_traits && gen_desc_own_word
// case 4 own_word_may_throw: gen_desc_traits && gen_desc_own_word
// case 5 no_own_bits: gen_desc_traits && gen_desc_own_bits
// case 6 gen_bit_outside_descriptor: gen_bit_traits: word outside descriptor
// case 7 no_own_mask: gen_desc_traits && gen_desc_own_mask
#include <npa/ring/gen_ring.hpp>

#include <cstdint>

#ifndef CASE
#define CASE 0
#endif

#if CASE == 1
struct desc {
    unsigned char bytes[16]; // 16 bytes, but alignof 1: atomic_ref on word 2 is UB
};
#elif CASE == 2
struct desc {
    desc() = default;
    desc(const desc& o) : w{o.w[0], o.w[1], o.w[2], o.w[3]} {}
    std::uint32_t w[4];
};
#else
struct desc {
    std::uint32_t w[4];
};
#endif

struct traits {
    using desc_type = desc;
#if CASE == 3
    static std::uint32_t own_word(desc& d) noexcept { return reinterpret_cast<std::uint32_t*>(&d)[3]; }
#elif CASE == 4
    static std::uint32_t& own_word(desc& d) { return reinterpret_cast<std::uint32_t*>(&d)[3]; }
#else
    static std::uint32_t& own_word(desc& d) noexcept { return reinterpret_cast<std::uint32_t*>(&d)[3]; }
#endif
#if CASE != 7
    static constexpr std::uint32_t own_mask = 1u << 31;
#endif
#if CASE != 5
    static constexpr std::uint32_t own_bits(bool gen) noexcept { return gen ? (1u << 31) : 0u; }
#endif
};

#if CASE == 6
npa::gen_producer<npa::gen_bit_traits<desc, 4, 0>> bad; // word 4 of a 4-word descriptor
#else
npa::gen_producer<traits> prod;
npa::gen_consumer<traits> cons;
#endif
