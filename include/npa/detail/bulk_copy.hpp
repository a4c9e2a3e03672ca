// npa/detail/bulk_copy.hpp: the copy behind a ring burst of 256 bytes or more.
//
// A ring moves bursts of handles or descriptors between its slots and a caller's array:
// the two never overlap and every copy is at least 256 bytes (index_ring.hpp moves smaller
// ones inline). For that one job the C library's memcpy does more than needed: its path for
// more than eight vectors checks for overlap, aligns the destination and loops four vectors
// at a time, about 76 instructions for 512 bytes (16-byte descriptors at burst 32) where the
// moves themselves are 32. bulk_copy() moves whole 512-byte blocks with 32-byte vectors and
// covers the rest with blocks that end exactly at the end of the range (overlapping bytes
// already copied, which is harmless because source and destination are disjoint).
//
// The 32-byte moves need AVX2, which a header compiled for a baseline target (x86-64, or
// DPDK's corei7) cannot assume. The AVX2 routine carries its own target attribute and is
// chosen at run time from the CPU's feature bits (__builtin_cpu_supports, set up by the
// compiler runtime before static constructors run); on a CPU without AVX2, or where the
// attribute is not available, the copy is memcpy. A translation unit compiled for AVX2
// calls the routine directly. Freestanding and kernel builds (no compiler runtime to read
// the feature bits, no vector registers without the kernel's FPU bracket) always use
// memcpy.
//
// From 2 KiB on (256 handles, 128 descriptors) the copy is one string move, `rep movsq`,
// on every x86-64 CPU, which the core carries out a line at a time in microcode (fast
// strings) and which measured faster where the other core reads the lines. Streaming across
// cores on the reference VM (benchmarks/ring_stream.cpp, burst 256, far floor, same runs):
// 16-byte descriptors 2.8-3.1 -> 1.5-1.8 ns per element, 8-byte handles 2.0-2.1 -> 1.4-1.6,
// where Boost's spsc_queue (glibc memmove) took 1.8-2.3. callgrind counts one instruction
// per 8 bytes a string move copies; the 32-byte vectors count one per 32 (load and store).
#pragma once

#include <cstddef>
#include <cstring>

// -DNPA_BULK_COPY_AVX2=0 on the command line keeps memcpy everywhere (no vectors, no string
// move).
#ifndef NPA_BULK_COPY_AVX2
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && defined(__SSE2__) && \
    __STDC_HOSTED__ && !defined(__KERNEL__)
#define NPA_BULK_COPY_AVX2 1
#else
#define NPA_BULK_COPY_AVX2 0
#endif
#endif

namespace npa::detail {

/// Smallest copy bulk_copy() accepts: the overlapping tail blocks reach back this far.
inline constexpr std::size_t bulk_copy_min_bytes = 256;
/// From this size on bulk_copy() uses a string move (x86-64 hosted builds): measured
/// faster at 2 KiB and 4 KiB, slower at 512 bytes (16-byte descriptors at burst 32 took
/// 7.0 ns per element against 5.3 with the vectors).
inline constexpr std::size_t bulk_copy_string_min_bytes = 2048;

#if NPA_BULK_COPY_AVX2

// GCC tunes for the command line's -march unless told otherwise, and for corei7 it splits
// every unaligned 32-byte load and store into two 16-byte halves; tune=generic keeps them
// whole. Clang never splits them and does not take tune= here.
#if defined(__clang__)
#define NPA_BULK_COPY_TARGET __attribute__((target("avx2")))
#else
#define NPA_BULK_COPY_TARGET __attribute__((target("avx2,tune=generic")))
#endif

/// 32 bytes, any alignment, may alias anything (the element type is the caller's).
typedef long long bulk_copy_vec __attribute__((vector_size(32), aligned(1), may_alias));

/// 256 bytes, each vector stored right after it is loaded. Eight loads first and then
/// eight stores counts the same instructions but streamed slower across cores
/// (benchmarks/ring_stream.cpp, 16-byte descriptors at burst 32: about 6.4 against 5.9 ns
/// per element in the same runs, see docs/benchmarks.md).
NPA_BULK_COPY_TARGET __attribute__((always_inline)) inline void bulk_copy_256(
    char* dst, const char* src) noexcept {
    using v = bulk_copy_vec;
    for (std::size_t off = 0; off < 256; off += 32) {
        *reinterpret_cast<v*>(dst + off) = *reinterpret_cast<const v*>(src + off);
    }
}

/// Copies bytes (>= bulk_copy_min_bytes) from src to dst, which do not overlap.
NPA_BULK_COPY_TARGET inline void bulk_copy_avx2(void* dst_v, const void* src_v,
                                                 std::size_t bytes) noexcept {
    auto* dst = static_cast<char*>(dst_v);
    const auto* src = static_cast<const char*>(src_v);
    // 1. 512-byte blocks while more than 512 bytes are left
    std::size_t rest = bytes;
    for (; rest > 512; rest -= 512, src += 512, dst += 512) {
        bulk_copy_256(dst, src);
        bulk_copy_256(dst + 256, src + 256);
    }
    // 2. 1..512 bytes left: the first 256 if more than 256 are left, then the 256 that end
    //    at the end. Those start inside the range because bytes >= 256, and what they
    //    overlap was copied from the same source bytes a moment ago.
    if (rest > 256) {
        bulk_copy_256(dst, src);
    }
    bulk_copy_256(dst + rest - 256, src + rest - 256);
}

#undef NPA_BULK_COPY_TARGET

/// Copies bytes (>= 8) from src to dst, which do not overlap, with one `rep movsq` and, for
/// a length that is not a multiple of 8, a last 8-byte move that ends at the end. Kept out
/// of line: inlined, its fixed registers (rdi, rsi, rcx) cost the shorter copies' callers
/// register moves and spills on every burst.
__attribute__((noinline)) inline void bulk_copy_string(void* dst_v, const void* src_v, std::size_t bytes) noexcept {
    auto* dst = static_cast<char*>(dst_v);
    const auto* src = static_cast<const char*>(src_v);
    char* const dst_end = dst + bytes;
    const char* const src_end = src + bytes;
    std::size_t words = bytes / 8;
    // The direction flag is clear at every call boundary (System V ABI), so the move goes
    // upwards; "memory": it reads and writes memory the compiler cannot see in the operands.
    asm volatile("rep movsq" : "+D"(dst), "+S"(src), "+c"(words) : : "memory");
    if (bytes % 8 != 0) {
        std::memcpy(dst_end - 8, src_end - 8, 8);
    }
}
#endif

/// Copies bytes (>= bulk_copy_min_bytes) from src to dst, which do not overlap.
inline void bulk_copy(void* dst, const void* src, std::size_t bytes) noexcept {
#if NPA_BULK_COPY_AVX2
    if (bytes >= bulk_copy_string_min_bytes) {
        bulk_copy_string(dst, src, bytes);
        return;
    }
#endif
#if NPA_BULK_COPY_AVX2 && defined(__AVX2__)
    bulk_copy_avx2(dst, src, bytes);
#elif NPA_BULK_COPY_AVX2
    if (__builtin_cpu_supports("avx2")) {
        bulk_copy_avx2(dst, src, bytes);
    } else {
        std::memcpy(dst, src, bytes);
    }
#else
    std::memcpy(dst, src, bytes);
#endif
}

} // namespace npa::detail
