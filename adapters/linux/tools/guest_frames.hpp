// guest_frames.hpp: what the guest test programs (vmxnet3_guest_test, switch_guest_test)
// share: numbered test frames of 60 .. 1514 bytes with a payload derived from the number,
// their check, the vmxnet3 functions found in sysfs, failure collection and a clock.
#pragma once

#include <npa/control.hpp>
#include <npa/linux/pci/function.hpp>
#include <npa/plugins/vmxnet3/defs.hpp>

#include <dirent.h>
#include <time.h>

#include <algorithm>
#include <cinttypes>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace npa::guest {

inline constexpr std::uint32_t min_len = 60, max_len = 1514;
inline constexpr std::uint16_t ethertype = 0x88b5;  // IEEE local experimental

inline double now_s() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

/// Failures, printed as they happen; the first 16 kept for the result line.
inline std::vector<std::string>& failures() {
    static std::vector<std::string> f;
    return f;
}
inline void failf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
inline void failf(const char* fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    std::printf("FAIL: %s\n", line);
    if (failures().size() < 16) {
        failures().emplace_back(line);
    }
}

/// A failure line as a JSON string body: quotes, backslashes and controls become '.
inline std::string json_text(const std::string& s) {
    std::string o = s;
    for (char& c : o) {
        if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
            c = '\'';
        }
    }
    return o;
}

inline std::uint32_t frame_len(std::uint64_t seq) {
    return min_len + static_cast<std::uint32_t>((seq * 7919) % (max_len - min_len + 1));
}
inline std::uint8_t pattern(std::uint64_t seq, std::uint32_t i) {
    return static_cast<std::uint8_t>((seq * 131 + i * 7 + (seq >> 8)) & 0xff);
}

/// Writes frame `seq` (frame_len(seq) bytes) at p.
inline void build(std::byte* p, const npa::mac_addr& dst, const npa::mac_addr& src, std::uint64_t seq) {
    auto* b = reinterpret_cast<std::uint8_t*>(p);
    const std::uint32_t len = frame_len(seq);
    std::memcpy(b, dst.data(), 6);
    std::memcpy(b + 6, src.data(), 6);
    b[12] = ethertype >> 8;
    b[13] = ethertype & 0xff;
    for (int i = 0; i < 8; ++i) {
        b[14 + i] = static_cast<std::uint8_t>(seq >> (8 * i));
    }
    for (std::uint32_t i = 22; i < len; ++i) {
        b[i] = pattern(seq, i);
    }
}

/// The sequence number a frame carries (0 when it is too short to carry one).
inline std::uint64_t seq_of(const std::byte* p, std::uint32_t len) {
    const auto* b = reinterpret_cast<const std::uint8_t*>(p);
    std::uint64_t seq = 0;
    for (int i = 0; len >= 22 && i < 8; ++i) {
        seq |= std::uint64_t{b[14 + i]} << (8 * i);
    }
    return seq;
}

/// Checks a received frame: length, addresses, ethertype and every payload byte against
/// what build() wrote for the number it carries; a failure and false if anything differs.
inline bool check_intact(const std::byte* p, std::uint32_t len, const npa::mac_addr& dst,
                         const npa::mac_addr& src) {
    const auto* b = reinterpret_cast<const std::uint8_t*>(p);
    if (len < 22) {
        failf("frame of %u bytes, shorter than its header", len);
        return false;
    }
    const std::uint64_t seq = seq_of(p, len);
    if (len != frame_len(seq)) {
        failf("frame %" PRIu64 ": %u bytes, sent %u", seq, len, frame_len(seq));
        return false;
    }
    if (std::memcmp(b, dst.data(), 6) != 0 || std::memcmp(b + 6, src.data(), 6) != 0 ||
        b[12] != (ethertype >> 8) || b[13] != (ethertype & 0xff)) {
        failf("frame %" PRIu64 ": addresses or ethertype changed", seq);
        return false;
    }
    for (std::uint32_t i = 22; i < len; ++i) {
        if (b[i] != pattern(seq, i)) {
            failf("frame %" PRIu64 ": byte %u is 0x%02x, sent 0x%02x", seq, i, b[i], pattern(seq, i));
            return false;
        }
    }
    return true;
}

/// check_intact() and the frame is number `want`.
inline bool check(const std::byte* p, std::uint32_t len, const npa::mac_addr& dst, const npa::mac_addr& src,
                  std::uint64_t want) {
    if (len >= 22 && seq_of(p, len) != want) {
        failf("frame %" PRIu64 " expected, frame %" PRIu64 " received (%u bytes)", want, seq_of(p, len), len);
        return false;
    }
    return check_intact(p, len, dst, src);
}

/// The PCI addresses of the vmxnet3 functions (15ad:07b0), in bus order.
inline std::vector<std::string> find_vmxnet3() {
    namespace pci = npa::lnx::pci;
    std::vector<std::string> out;
    DIR* d = ::opendir(pci::sysfs_devices);
    if (d == nullptr) {
        return out;
    }
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') {
            continue;
        }
        pci::pci_function f;
        pci::pci_error err;
        if (f.open(err, e->d_name) && f.vendor() == npa::vmxnet3::pci_vendor_vmware &&
            f.device() == npa::vmxnet3::pci_device_vmxnet3) {
            out.emplace_back(e->d_name);
        }
    }
    ::closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

} // namespace npa::guest
