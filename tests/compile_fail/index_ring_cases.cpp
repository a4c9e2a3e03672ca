// npa::index_ring's static_asserts (ring/index_ring.hpp), the failing way: the ring
// refuses, with its own message, a capacity that cannot be masked and an element type
// that cannot be copied as bytes.
//
// case 0 conforming: compiles
// case 1 capacity_not_power_of_two: npa::index_ring: Capacity must be a power of two
// case 2 capacity_zero: npa::index_ring: Capacity must be a power of two
// case 3 element_not_trivially_copyable: T must be trivially copyable
#include <npa/ring/index_ring.hpp>

#include <cstdint>

#ifndef CASE
#define CASE 0
#endif

struct desc16 {
    std::uint64_t addr;
    std::uint64_t meta;
};

/// Owns something: copying it needs code, so memcpy through a ring would be wrong.
struct owning {
    owning() = default;
    owning(const owning& o) : p(o.p) {}
    owning& operator=(const owning& o) {
        p = o.p;
        return *this;
    }
    int* p = nullptr;
};

#if CASE == 1
npa::index_ring<desc16, 1000> ring;
#elif CASE == 2
npa::index_ring<std::uint64_t, 0> ring;
#elif CASE == 3
npa::index_ring<owning, 64> ring;
#else
npa::index_ring<std::uint64_t, 8> ring8;
npa::index_ring<desc16, 1024> ring16;
npa::index_ring<std::uint64_t, (1u << 31)>* largest = nullptr; // the largest allowed
static_assert(sizeof(*largest) > (1u << 31));
#endif
