// npa/status.hpp: error codes and a small result type for the control path.
//
// The data path never returns errors (it returns counts and bumps named counters); the
// control path (attach, configure, control requests, switches) returns a status that the
// caller must look at. No exceptions anywhere in include/npa (STYLE.md point 6).
#pragma once

#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

namespace npa {

enum class errc : std::uint8_t {
    ok = 0,
    invalid_argument, ///< the request is malformed (bad size, bad value)
    not_supported,    ///< the device or plugin cannot do this
    refused,          ///< policy said no (hypervisor / PF)
    no_memory,        ///< a pool or ring could not supply what was needed
    busy,             ///< try later (a switch is in progress, hysteresis hold-off)
    device_error,     ///< the device misbehaved or reported an error
    removed,          ///< the device is gone
    timeout,          ///< the device or peer did not answer in time
    bad_state,        ///< the operation is not valid in the current state
    reset,            ///< the device was reset under the driver (its rings are gone)
};

[[nodiscard]] constexpr const char* to_string(errc e) noexcept {
    switch (e) {
    case errc::ok: return "ok";
    case errc::invalid_argument: return "invalid argument";
    case errc::not_supported: return "not supported";
    case errc::refused: return "refused by policy";
    case errc::no_memory: return "out of buffers or memory";
    case errc::busy: return "busy";
    case errc::device_error: return "device error";
    case errc::removed: return "device removed";
    case errc::timeout: return "timeout";
    case errc::bad_state: return "bad state";
    case errc::reset: return "device reset";
    }
    return "unknown";
}

/// An error code plus a static, human-readable reason ("MAC not allowed by policy").
/// `reason` must point to storage that outlives the status (a string literal).
class [[nodiscard]] status {
public:
    constexpr status() noexcept = default;
    constexpr status(errc code, const char* reason = nullptr) noexcept
        : code_(code), reason_(reason) {}

    [[nodiscard]] static constexpr status success() noexcept { return {}; }

    [[nodiscard]] constexpr bool ok() const noexcept { return code_ == errc::ok; }
    constexpr explicit operator bool() const noexcept { return ok(); }
    [[nodiscard]] constexpr errc code() const noexcept { return code_; }
    [[nodiscard]] constexpr const char* reason() const noexcept {
        return reason_ != nullptr ? reason_ : to_string(code_);
    }

    friend constexpr bool operator==(const status& a, errc b) noexcept { return a.code_ == b; }

private:
    errc code_ = errc::ok;
    const char* reason_ = nullptr;
};

/// A value or a status (C++23 std::expected without the exceptions).
template <class T>
class [[nodiscard]] result {
public:
    result(T value) noexcept(std::is_nothrow_move_constructible_v<T>) : has_(true) {
        ::new (static_cast<void*>(&storage_)) T(std::move(value));
    }
    /// An error. A success status carries no value, so it becomes errc::bad_state rather
    /// than a result whose ok() is false while error().ok() is true.
    result(status st) noexcept : status_(checked_error(st)), has_(false) {}
    result(errc code, const char* reason = nullptr) noexcept
        : status_(checked_error(status(code, reason))), has_(false) {}

    result(result&& o) noexcept(std::is_nothrow_move_constructible_v<T>)
        : status_(o.status_), has_(o.has_) {
        if (has_) {
            ::new (static_cast<void*>(&storage_)) T(std::move(*o));
        }
    }
    result(const result&) = delete;
    result& operator=(const result&) = delete;
    result& operator=(result&&) = delete;
    ~result() {
        if (has_) {
            value_ptr()->~T();
        }
    }

    [[nodiscard]] bool ok() const noexcept { return has_; }
    explicit operator bool() const noexcept { return has_; }
    [[nodiscard]] status error() const noexcept { return status_; }

    [[nodiscard]] T& operator*() noexcept { return *value_ptr(); }
    [[nodiscard]] const T& operator*() const noexcept { return *value_ptr(); }
    [[nodiscard]] T* operator->() noexcept { return value_ptr(); }
    [[nodiscard]] const T* operator->() const noexcept { return value_ptr(); }

private:
    static constexpr status checked_error(status st) noexcept {
        return st.ok() ? status(errc::bad_state, "result: built from a success status, no value")
                       : st;
    }

    T* value_ptr() noexcept { return std::launder(reinterpret_cast<T*>(&storage_)); }
    const T* value_ptr() const noexcept {
        return std::launder(reinterpret_cast<const T*>(&storage_));
    }

    alignas(T) unsigned char storage_[sizeof(T)];
    status status_{};
    bool has_;
};

} // namespace npa
