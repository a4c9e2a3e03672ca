// npa/linux/shm_region.hpp: a shared region (npa/shm/layout.hpp) on a memfd.
//
//   creator:  shm_region::create(layout)   memfd_create, ftruncate to the layout's size, seal
//                                           it (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL: the
//                                           peer can neither cut the mapping under us, which
//                                           would be SIGBUS, nor grow it), mmap, write the header
//            send_fd(sock, region.fd())     SCM_RIGHTS over a unix socket (or let a child
//                                           inherit the descriptor)
//   peer:     recv_fd(sock) -> shm_region::attach(fd)
//                                           refuses an unsealed memfd, then mmap + validate
//                                           before anything in it is used
//   both:     peer_watch(pid)               pidfd_open + poll: the peer's death (kill -9
//                                           included) is a readable pidfd
//
// Everything returns npa::status / npa::result with a sentence; nothing throws.
#pragma once

#include <npa/shm/region.hpp>
#include <npa/status.hpp>

#include <cerrno>
#include <cstdint>
#include <ctime>
#include <utility>

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace npa::lnx {

/// Seals a region must carry before the peer maps it.
inline constexpr int required_seals = F_SEAL_SHRINK | F_SEAL_GROW;

/// Boot-relative nanoseconds (CLOCK_BOOTTIME): a start time that, with a pid, names a
/// process across pid reuse.
[[nodiscard]] inline std::uint64_t boot_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_BOOTTIME, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
           static_cast<std::uint64_t>(ts.tv_nsec);
}

/// A mapped, validated region and the memfd behind it (owned: unmapped and closed on
/// destruction).
class shm_region {
public:
    /// Creates a sealed memfd of the layout's size, maps it and writes the header with a
    /// fresh random creator id; the objects are then built by the caller (region().ring(i,
    /// true), shm::pool::at(r, i, true)) before the fd is passed on.
    [[nodiscard]] static result<shm_region> create(shm::layout& l,
                                                   const char* name = "npa-shm") noexcept {
        const int fd = ::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0) {
            return {errc::no_memory, "shm region: memfd_create failed"};
        }
        shm_region r;
        r.fd_ = fd;
        const std::uint64_t size = l.total_bytes();
        if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
            return {errc::no_memory, "shm region: ftruncate of the memfd failed"};
        }
        if (::fcntl(fd, F_ADD_SEALS, required_seals | F_SEAL_SEAL) != 0) {
            return {errc::not_supported, "shm region: the memfd cannot be sealed"};
        }
        if (status st = r.map(size); !st) {
            return st;
        }
        std::uint64_t id = 0;
        if (::getrandom(&id, sizeof(id), 0) != static_cast<ssize_t>(sizeof(id))) {
            return {errc::not_supported, "shm region: getrandom failed"};
        }
        if (status st = l.write(r.bytes(), id, static_cast<std::uint32_t>(::getpid()), boot_ns());
            !st) {
            return st;
        }
        if (status st = r.validate(); !st) {
            return st;
        }
        return r;
    }

    /// Maps a region another process created, after checking that the memfd is sealed
    /// against shrinking and growing and that its header validates. Takes ownership of
    /// `fd` (closed on failure too).
    [[nodiscard]] static result<shm_region> attach(int fd) noexcept {
        shm_region r;
        r.fd_ = fd;
        const int seals = ::fcntl(fd, F_GET_SEALS);
        if (seals < 0 || (seals & required_seals) != required_seals) {
            return {errc::refused,
                    "shm region: the memfd is not sealed against shrinking and growing"};
        }
        struct stat sb{};
        if (::fstat(fd, &sb) != 0 || sb.st_size < static_cast<off_t>(shm::objects_offset)) {
            return {errc::invalid_argument, "shm region: the memfd is smaller than a header"};
        }
        if (status st = r.map(static_cast<std::uint64_t>(sb.st_size)); !st) {
            return st;
        }
        if (status st = r.validate(); !st) {
            return st;
        }
        return r;
    }

    shm_region(shm_region&& o) noexcept
        : fd_(std::exchange(o.fd_, -1)), base_(std::exchange(o.base_, nullptr)),
          size_(std::exchange(o.size_, 0)), view_(o.view_) {}
    shm_region(const shm_region&) = delete;
    shm_region& operator=(const shm_region&) = delete;
    shm_region& operator=(shm_region&&) = delete;
    ~shm_region() {
        if (base_ != nullptr) {
            ::munmap(base_, size_);
        }
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }

    [[nodiscard]] int fd() const noexcept { return fd_; }
    [[nodiscard]] shm::region& region() noexcept { return view_; }
    [[nodiscard]] const shm::region& region() const noexcept { return view_; }
    [[nodiscard]] std::span<std::byte> bytes() const noexcept {
        return {static_cast<std::byte*>(base_), size_};
    }

private:
    shm_region() noexcept = default;

    status map(std::uint64_t size) noexcept {
        void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
        if (p == MAP_FAILED) {
            return {errc::no_memory, "shm region: mmap of the memfd failed"};
        }
        base_ = p;
        size_ = size;
        return status::success();
    }

    // The header, read back through the mapping (as the peer will read it).
    status validate() noexcept {
        auto v = shm::region::attach(bytes());
        if (!v) {
            return v.error();
        }
        view_ = *v;
        return status::success();
    }

    int fd_ = -1;
    void* base_ = nullptr;
    std::uint64_t size_ = 0;
    shm::region view_{};
};

/// Sends one descriptor over a connected unix socket (SCM_RIGHTS) with a one-byte payload.
[[nodiscard]] inline status send_fd(int sock, int fd) noexcept {
    char byte = 'F';
    iovec iov{&byte, 1};
    alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))]{};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctrl;
    msg.msg_controllen = sizeof(ctrl);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    __builtin_memcpy(CMSG_DATA(c), &fd, sizeof(int));
    ssize_t n;
    do {
        n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n == 1 ? status::success()
                  : status(errc::device_error, "shm region: sending the memfd failed");
}

/// Receives one descriptor sent by send_fd(); anything else (no descriptor, several,
/// truncated control data) is refused and every descriptor that came is closed.
[[nodiscard]] inline result<int> recv_fd(int sock) noexcept {
    char byte = 0;
    iovec iov{&byte, 1};
    alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * 4)]{};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctrl;
    msg.msg_controllen = sizeof(ctrl);
    ssize_t n;
    do {
        n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n != 1) {
        return {errc::device_error, "shm region: no message with the memfd"};
    }
    int got = -1;
    int extra = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        const std::size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < k; ++i) {
            int fd = -1;
            __builtin_memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (got < 0) {
                got = fd;
            } else {
                ::close(fd);
                ++extra;
            }
        }
    }
    if (got < 0 || extra != 0 || (msg.msg_flags & MSG_CTRUNC) != 0) {
        if (got >= 0) {
            ::close(got);
        }
        return {errc::invalid_argument, "shm region: expected exactly one descriptor"};
    }
    return got;
}

/// The peer's death through a pidfd (Linux 5.3+): readable once the process has exited,
/// however it died. Owns the pidfd.
class peer_watch {
public:
    [[nodiscard]] static result<peer_watch> open(pid_t pid) noexcept {
        const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
        if (fd < 0) {
            return {errc::not_supported, "shm region: pidfd_open of the peer failed"};
        }
        return peer_watch(fd);
    }
    peer_watch(peer_watch&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    peer_watch(const peer_watch&) = delete;
    peer_watch& operator=(const peer_watch&) = delete;
    peer_watch& operator=(peer_watch&&) = delete;
    ~peer_watch() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }

    /// True once the peer has exited; waits up to timeout_ms (0: just look).
    [[nodiscard]] bool dead(int timeout_ms = 0) const noexcept {
        pollfd p{fd_, POLLIN, 0};
        int n;
        do {
            n = ::poll(&p, 1, timeout_ms);
        } while (n < 0 && errno == EINTR);
        return n > 0 && (p.revents & (POLLIN | POLLHUP)) != 0;
    }
    [[nodiscard]] int fd() const noexcept { return fd_; }

private:
    explicit peer_watch(int fd) noexcept : fd_(fd) {}
    int fd_;
};

} // namespace npa::lnx
