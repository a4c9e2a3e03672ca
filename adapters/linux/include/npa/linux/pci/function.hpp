// npa/linux/pci/function.hpp: one PCI function driven from user space through sysfs.
//
//   open("0000:00:03.0")   the function's sysfs directory, vendor and device ids;
//   bind_uio()             hands it to uio_pci_generic: the current driver (if any) is
//                          unbound, driver_override names uio_pci_generic and drivers_probe
//                          binds it (new_id + bind where driver_override is missing);
//                          uio_pci_generic enables the device (memory decoding) and leaves
//                          its registers to whoever maps them;
//   map_bar(n)             resourceN mapped shared, its size the file's size (the BAR's);
//   enable_bus_master()    PCI command register bit 2 (and bit 1, memory space) set through
//                          the config file, so that the device may DMA.
// Needs root (sysfs writes, resource mmap). Every failure names the path and errno.
// Control path only: nothing here is called per packet.
#pragma once

#include <npa/linux/pci/sysfs.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace npa::lnx::pci {

inline constexpr const char* sysfs_devices = "/sys/bus/pci/devices";
inline constexpr const char* sysfs_drivers = "/sys/bus/pci/drivers";
inline constexpr const char* uio_driver = "uio_pci_generic";

/// PCI configuration space: the command register and its bits (PCI Local Bus spec 6.2.2).
inline constexpr std::uint32_t cfg_command = 0x04;
inline constexpr std::uint16_t cmd_memory_space = 1u << 1;
inline constexpr std::uint16_t cmd_bus_master = 1u << 2;

/// A mapped BAR: its registers, `size` bytes at `base`. Unmapped by its pci_function.
struct bar_map {
    volatile std::byte* base = nullptr;
    std::size_t size = 0;
    [[nodiscard]] explicit operator bool() const noexcept { return base != nullptr; }
};

class pci_function {
public:
    static constexpr unsigned max_bars = 6;

    pci_function() noexcept = default;
    pci_function(const pci_function&) = delete;
    pci_function& operator=(const pci_function&) = delete;
    pci_function(pci_function&& o) noexcept { *this = std::move(o); }
    pci_function& operator=(pci_function&& o) noexcept {
        if (this != &o) {
            unmap_all();
            std::memcpy(addr_, o.addr_, sizeof addr_);
            std::memcpy(dir_, o.dir_, sizeof dir_);
            vendor_ = o.vendor_;
            device_ = o.device_;
            bars_ = std::exchange(o.bars_, {});
        }
        return *this;
    }
    ~pci_function() { unmap_all(); }

    /// Opens the function at `address` (domain:bus:device.function, e.g. "0000:00:03.0").
    [[nodiscard]] bool open(pci_error& e, const char* address) noexcept {
        unmap_all();
        if (address == nullptr || std::strlen(address) != 12 || address[4] != ':' ||
            address[7] != ':' || address[10] != '.') {
            fail(e, errc::invalid_argument, 0,
                 "pci: \"%s\" is not a PCI address of the form 0000:00:03.0",
                 address != nullptr ? address : "(null)");
            return false;
        }
        std::snprintf(addr_, sizeof addr_, "%s", address);
        std::snprintf(dir_, sizeof dir_, "%s/%s", sysfs_devices, addr_);
        if (!exists(dir_)) {
            const int err = errno;
            fail(e, errc::removed, err, "%s: no such PCI function", dir_);
            return false;
        }
        return read_hex(e, "vendor", vendor_) && read_hex(e, "device", device_);
    }

    [[nodiscard]] const char* address() const noexcept { return addr_; }
    [[nodiscard]] const char* sysfs_dir() const noexcept { return dir_; }
    [[nodiscard]] std::uint16_t vendor() const noexcept { return static_cast<std::uint16_t>(vendor_); }
    [[nodiscard]] std::uint16_t device() const noexcept { return static_cast<std::uint16_t>(device_); }

    /// The name of the driver bound now ("" when none).
    [[nodiscard]] bool current_driver(pci_error& e, char* out, std::size_t cap) const noexcept {
        char link[320];
        path(link, sizeof link, "driver");
        char target[320];
        const ssize_t n = ::readlink(link, target, sizeof target - 1);
        if (n < 0) {
            if (errno == ENOENT) {
                out[0] = '\0';
                return true;
            }
            const int err = errno;
            fail(e, errno_code(err), err, "%s: readlink", link);
            return false;
        }
        target[n] = '\0';
        const char* slash = std::strrchr(target, '/');
        std::snprintf(out, cap, "%s", slash != nullptr ? slash + 1 : target);
        return true;
    }

    /// Binds the function to uio_pci_generic (unbinding its current driver first). The
    /// module must be loaded (modprobe uio_pci_generic); it is not loaded from here.
    [[nodiscard]] bool bind_uio(pci_error& e) noexcept {
        char drv_dir[320];
        std::snprintf(drv_dir, sizeof drv_dir, "%s/%s", sysfs_drivers, uio_driver);
        if (!exists(drv_dir)) {
            fail(e, errc::not_supported, ENOENT,
                 "%s: missing; load the module first (modprobe uio_pci_generic)", drv_dir);
            return false;
        }
        char cur[320];
        if (!current_driver(e, cur, sizeof cur)) {
            return false;
        }
        if (std::strcmp(cur, uio_driver) == 0) {
            return true;
        }
        if (cur[0] != '\0') {
            char unbind[320];
            path(unbind, sizeof unbind, "driver/unbind");
            if (!write_attr(e, unbind, addr_)) {
                return false;
            }
        }
        char ovr[320];
        path(ovr, sizeof ovr, "driver_override");
        if (exists(ovr)) {
            if (!write_attr(e, ovr, uio_driver)) {
                return false;
            }
            char probe[320];
            std::snprintf(probe, sizeof probe, "/sys/bus/pci/drivers_probe");
            if (!write_attr(e, probe, addr_)) {
                return false;
            }
        } else {
            // Older kernels: teach the driver this id; it then binds every unbound match.
            char new_id[400], id[32];
            std::snprintf(new_id, sizeof new_id, "%s/new_id", drv_dir);
            std::snprintf(id, sizeof id, "%04x %04x", vendor(), device());
            pci_error ignored;
            (void)write_attr(ignored, new_id, id);  // EEXIST when already known: fine
            if (!current_driver(e, cur, sizeof cur)) {
                return false;
            }
            if (std::strcmp(cur, uio_driver) != 0) {
                char bind[400];
                std::snprintf(bind, sizeof bind, "%s/bind", drv_dir);
                if (!write_attr(e, bind, addr_)) {
                    return false;
                }
            }
        }
        if (!current_driver(e, cur, sizeof cur)) {
            return false;
        }
        if (std::strcmp(cur, uio_driver) != 0) {
            fail(e, errc::refused, 0, "%s/driver: bound to \"%s\", not %s after the bind", dir_,
                 cur[0] != '\0' ? cur : "(none)", uio_driver);
            return false;
        }
        return true;
    }

    /// Maps BAR `n` (resourceN), read and write, shared with the device.
    [[nodiscard]] bar_map map_bar(pci_error& e, unsigned n) noexcept {
        if (n >= max_bars) {
            fail(e, errc::invalid_argument, 0, "%s: no BAR %u", dir_, n);
            return {};
        }
        if (bars_[n]) {
            return bars_[n];
        }
        char res[320], name[16];
        std::snprintf(name, sizeof name, "resource%u", n);
        path(res, sizeof res, name);
        const int fd = ::open(res, O_RDWR | O_SYNC | O_CLOEXEC);
        if (fd < 0) {
            const int err = errno;
            fail(e, errno_code(err), err, "%s: open (BAR %u; is it a memory BAR?)", res, n);
            return {};
        }
        struct stat st{};
        if (::fstat(fd, &st) != 0 || st.st_size <= 0) {
            const int err = st.st_size <= 0 ? EINVAL : errno;
            ::close(fd);
            fail(e, errc::device_error, err, "%s: size", res);
            return {};
        }
        const auto size = static_cast<std::size_t>(st.st_size);
        void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        const int err = errno;
        ::close(fd);
        if (p == MAP_FAILED) {
            fail(e, errno_code(err), err, "%s: mmap %zu bytes", res, size);
            return {};
        }
        bars_[n] = {static_cast<volatile std::byte*>(p), size};
        return bars_[n];
    }

    /// Reads `len` bytes of configuration space at `off` (the sysfs config file: all 256
    /// bytes, or 4096 on PCI Express, for root; the first 64 otherwise). Fewer bytes than
    /// asked is an error naming the file.
    [[nodiscard]] bool read_config(pci_error& e, std::uint32_t off, void* out, std::size_t len) const noexcept {
        char cfg[320];
        path(cfg, sizeof cfg, "config");
        const int fd = ::open(cfg, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            const int err = errno;
            fail(e, errno_code(err), err, "%s: open", cfg);
            return false;
        }
        const ssize_t n = ::pread(fd, out, len, off);
        const int err = errno;
        ::close(fd);
        if (n < 0 || static_cast<std::size_t>(n) != len) {
            fail(e, n < 0 ? errno_code(err) : errc::device_error, n < 0 ? err : EIO,
                 "%s: read %zu bytes at 0x%x (got %zd)", cfg, len, off, n);
            return false;
        }
        return true;
    }

    /// Reads the PCI command register.
    [[nodiscard]] bool read_command(pci_error& e, std::uint16_t& out) const noexcept {
        return config_io(e, false, out);
    }

    /// Sets bus mastering (and memory space decoding) in the command register.
    [[nodiscard]] bool enable_bus_master(pci_error& e) noexcept {
        std::uint16_t c = 0;
        if (!config_io(e, false, c)) {
            return false;
        }
        std::uint16_t want = c | cmd_bus_master | cmd_memory_space;
        if (want == c) {
            return true;
        }
        if (!config_io(e, true, want)) {
            return false;
        }
        std::uint16_t back = 0;
        if (!config_io(e, false, back)) {
            return false;
        }
        if ((back & cmd_bus_master) == 0) {
            char cfg[320];
            path(cfg, sizeof cfg, "config");
            fail(e, errc::refused, 0, "%s: bus master bit did not stick (command 0x%04x)", cfg, back);
            return false;
        }
        return true;
    }

    /// Clears bus mastering: after this the device can no longer reach memory.
    [[nodiscard]] bool disable_bus_master(pci_error& e) noexcept {
        std::uint16_t c = 0;
        if (!config_io(e, false, c)) {
            return false;
        }
        std::uint16_t want = static_cast<std::uint16_t>(c & ~cmd_bus_master);
        return want == c || config_io(e, true, want);
    }

private:
    void path(char* out, std::size_t cap, const char* leaf) const noexcept {
        std::snprintf(out, cap, "%s/%s", dir_, leaf);
    }

    bool read_hex(pci_error& e, const char* leaf, unsigned& out) noexcept {
        char p[320], v[32];
        path(p, sizeof p, leaf);
        if (!read_attr(e, p, v, sizeof v)) {
            return false;
        }
        char* end = nullptr;
        const unsigned long x = std::strtoul(v, &end, 16);
        if (end == v) {
            fail(e, errc::device_error, 0, "%s: \"%s\" is not a hex number", p, v);
            return false;
        }
        out = static_cast<unsigned>(x);
        return true;
    }

    // The 16-bit command register, little-endian in the config file.
    bool config_io(pci_error& e, bool write, std::uint16_t& v) const noexcept {
        char cfg[320];
        path(cfg, sizeof cfg, "config");
        const int fd = ::open(cfg, (write ? O_RDWR : O_RDONLY) | O_CLOEXEC);
        if (fd < 0) {
            const int err = errno;
            fail(e, errno_code(err), err, "%s: open", cfg);
            return false;
        }
        std::uint8_t b[2] = {static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8)};
        const ssize_t n = write ? ::pwrite(fd, b, 2, cfg_command) : ::pread(fd, b, 2, cfg_command);
        const int err = errno;
        ::close(fd);
        if (n != 2) {
            fail(e, errno_code(n < 0 ? err : EIO), n < 0 ? err : EIO, "%s: %s of the command register",
                 cfg, write ? "write" : "read");
            return false;
        }
        if (!write) {
            v = static_cast<std::uint16_t>(b[0] | (b[1] << 8));
        }
        return true;
    }

    void unmap_all() noexcept {
        for (bar_map& b : bars_) {
            if (b) {
                ::munmap(const_cast<std::byte*>(b.base), b.size);
                b = {};
            }
        }
    }

    char addr_[16] = {};
    char dir_[96] = {};
    unsigned vendor_ = 0, device_ = 0;
    std::array<bar_map, max_bars> bars_{};
};

} // namespace npa::lnx::pci
