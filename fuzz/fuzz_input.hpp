// fuzz/fuzz_input.hpp: reading a libFuzzer input as a stream of small decisions.
//
// Every target turns the fuzzer's bytes into a program (an op code, then its operands).
// Past the end of the input every read returns 0, so each input is a complete program and
// the fuzzer can grow or cut it anywhere.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string_view>

namespace npa::fuzz {

class input {
public:
    input(const std::uint8_t* data, std::size_t size) noexcept : data_(data), size_(size) {}

    [[nodiscard]] bool empty() const noexcept { return pos_ >= size_; }
    [[nodiscard]] std::size_t left() const noexcept { return empty() ? 0 : size_ - pos_; }

    [[nodiscard]] std::uint8_t u8() noexcept { return empty() ? 0 : data_[pos_++]; }
    [[nodiscard]] std::uint16_t u16() noexcept {
        return static_cast<std::uint16_t>(u8() | (u8() << 8));
    }
    [[nodiscard]] std::uint32_t u32() noexcept {
        return static_cast<std::uint32_t>(u16()) | (static_cast<std::uint32_t>(u16()) << 16);
    }
    /// A value in [0, n) (n > 0).
    [[nodiscard]] std::uint32_t below(std::uint32_t n) noexcept { return u8() % n; }
    [[nodiscard]] bool flag() noexcept { return (u8() & 1) != 0; }
    /// Up to `max` raw bytes (fewer at the end of the input).
    [[nodiscard]] std::span<const std::uint8_t> bytes(std::size_t max) noexcept {
        const std::size_t n = max < left() ? max : left();
        const std::span<const std::uint8_t> s(data_ + pos_, n);
        pos_ += n;
        return s;
    }

private:
    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t pos_ = 0;
};

/// An invariant the target checks on every input. A violation aborts, so libFuzzer keeps
/// the input as a crash reproducer (the message says which invariant broke).
[[noreturn]] inline void invariant_failed(const char* what, const char* file, int line) {
    std::fprintf(stderr, "fuzz invariant broken: %s (%s:%d)\n", what, file, line);
    std::abort();
}

} // namespace npa::fuzz

#define NPA_FUZZ_CHECK(cond)                                                 \
    do {                                                                     \
        if (!(cond)) ::npa::fuzz::invariant_failed(#cond, __FILE__, __LINE__); \
    } while (false)
