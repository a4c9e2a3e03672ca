// npa/linux/pci/sysfs.hpp: the error type of the userspace PCI binding, and the small
// sysfs file operations it is made of (read a value, write a value), each failure naming
// the path and the errno.
//
// The binding runs on the control path only (open, bind, map, allocate); its errors carry
// text built at run time ("/sys/bus/pci/devices/0000:00:03.0/resource0: open: Permission
// denied (errno 13)"), which npa::status (a static reason) cannot hold, so they come back
// as a pci_error kept by the caller. No exceptions (STYLE.md point 6).
#pragma once

#include <npa/status.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstddef>
#include <cstdio>
#include <cstring>

namespace npa::lnx::pci {

/// A failure of the PCI binding: an npa error code, the errno (0 when none), and a line
/// that names the sysfs or procfs path involved.
struct pci_error {
    errc code = errc::ok;
    int sys_errno = 0;
    char text[384] = {};

    [[nodiscard]] bool ok() const noexcept { return code == errc::ok; }
    explicit operator bool() const noexcept { return !ok(); }
    /// The error as an npa::status; the reason points into this object.
    [[nodiscard]] status as_status() const noexcept { return {code, text}; }
    [[nodiscard]] const char* what() const noexcept { return ok() ? "ok" : text; }
};

/// Fills `e` with a message; `err` (an errno value, or 0) is appended with its name.
inline void fail(pci_error& e, errc code, int err, const char* fmt, ...) noexcept
    __attribute__((format(printf, 4, 5)));
inline void fail(pci_error& e, errc code, int err, const char* fmt, ...) noexcept {
    e.code = code;
    e.sys_errno = err;
    va_list ap;
    va_start(ap, fmt);
    const int n = std::vsnprintf(e.text, sizeof e.text, fmt, ap);
    va_end(ap);
    if (err != 0 && n >= 0 && static_cast<std::size_t>(n) < sizeof e.text) {
        std::snprintf(e.text + n, sizeof e.text - static_cast<std::size_t>(n), ": %s (errno %d)",
                      std::strerror(err), err);
    }
}

/// errno as an npa error code: a missing file is a missing device, a refusal is a refusal.
[[nodiscard]] inline errc errno_code(int err) noexcept {
    switch (err) {
    case ENOENT:
    case ENODEV:
    case ENXIO: return errc::removed;
    case EACCES:
    case EPERM: return errc::refused;
    case ENOMEM: return errc::no_memory;
    case EBUSY: return errc::busy;
    default: return errc::device_error;
    }
}

/// Writes `value` to a sysfs attribute (one write, as `echo -n value > path`).
[[nodiscard]] inline bool write_attr(pci_error& e, const char* path, const char* value) noexcept {
    const int fd = ::open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        const int err = errno;
        fail(e, errno_code(err), err, "%s: open for writing", path);
        return false;
    }
    const std::size_t len = std::strlen(value);
    const ssize_t n = ::write(fd, value, len);
    const int err = errno;
    ::close(fd);
    if (n != static_cast<ssize_t>(len)) {
        fail(e, errno_code(n < 0 ? err : EIO), n < 0 ? err : EIO, "%s: write \"%s\"", path, value);
        return false;
    }
    return true;
}

/// Reads a sysfs attribute into `out` (NUL-terminated, trailing newline removed).
[[nodiscard]] inline bool read_attr(pci_error& e, const char* path, char* out, std::size_t cap) noexcept {
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        const int err = errno;
        fail(e, errno_code(err), err, "%s: open for reading", path);
        return false;
    }
    const ssize_t n = ::read(fd, out, cap - 1);
    const int err = errno;
    ::close(fd);
    if (n < 0) {
        fail(e, errno_code(err), err, "%s: read", path);
        return false;
    }
    out[n] = '\0';
    for (ssize_t i = n; i > 0 && (out[i - 1] == '\n' || out[i - 1] == ' '); --i) {
        out[i - 1] = '\0';
    }
    return true;
}

/// True if `path` exists.
[[nodiscard]] inline bool exists(const char* path) noexcept { return ::access(path, F_OK) == 0; }

} // namespace npa::lnx::pci
