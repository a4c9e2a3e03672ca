// npa/detail/reason_text.hpp: a status reason that names numbers ("RX buffers of 2048
// bytes, a frame needs 9018"), built without printf so that the core stays freestanding.
// npa::status keeps a pointer to its reason, so the text lives in the object that returned
// the status (a plugin) and stays valid until that object builds the next one.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace npa::detail {

template <std::size_t N>
class reason_text {
public:
    /// Starts again with `s`.
    reason_text& start(const char* s) noexcept {
        len_ = 0;
        buf_[0] = '\0';
        return add(s);
    }
    reason_text& add(const char* s) noexcept {
        while (*s != '\0' && len_ + 1 < N) {
            buf_[len_++] = *s++;
        }
        buf_[len_] = '\0';
        return *this;
    }
    reason_text& add(std::uint64_t v) noexcept {
        char digits[20];
        std::size_t k = 0;
        do {
            digits[k++] = static_cast<char>('0' + v % 10);
            v /= 10;
        } while (v != 0);
        while (k != 0 && len_ + 1 < N) {
            buf_[len_++] = digits[--k];
        }
        buf_[len_] = '\0';
        return *this;
    }
    [[nodiscard]] const char* c_str() const noexcept { return buf_.data(); }

private:
    std::array<char, N> buf_{};
    std::size_t len_ = 0;
};

} // namespace npa::detail
