// benchmarks/cpu_time.hpp: how long a thread was actually on a CPU, and how loaded the
// machine was, for rates per CPU-second beside wall-clock rates.
//
// On a shared machine a thread is descheduled for long stretches; a wall-clock rate then
// measures the scheduler as much as the code. The kernel counts, per thread, the
// nanoseconds it ran (sum_exec_runtime): the first field of
// /proc/self/task/<tid>/schedstat. Work divided by that time is a rate per CPU-second of
// the thread that did the work.
//
// schedstat shows the counter as of the thread's last scheduler event (a tick, a switch):
// right for a benchmark of a second, up to a tick (4 ms at HZ=250) stale for a short one.
// For its own thread a caller gets the same counter brought up to date from
// CLOCK_THREAD_CPUTIME_ID (the kernel adds the running slice), which is what
// thread_cpu_clock reads; schedstat_ns(tid) reads any thread of the process.
//
//   npa_bench::thread_cpu_clock clk;        // in the working thread
//   const auto c0 = clk.now_ns(); ...work...; const auto cpu = clk.now_ns() - c0;
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <fcntl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

namespace npa_bench {

/// The calling thread's id (what /proc/self/task/<tid> names).
inline long this_tid() noexcept { return ::syscall(SYS_gettid); }

/// On-CPU nanoseconds of thread `tid` of this process from its schedstat (first field),
/// or 0 when the file is missing (a kernel without CONFIG_SCHEDSTATS) or unreadable.
inline std::uint64_t schedstat_ns(long tid) noexcept {
    const std::string path = "/proc/self/task/" + std::to_string(tid) + "/schedstat";
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    char buf[96];
    const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
    ::close(fd);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    return std::strtoull(buf, nullptr, 10);
}

/// On-CPU nanoseconds of the calling thread, up to date (the schedstat counter plus the
/// slice running now).
struct thread_cpu_clock {
    [[nodiscard]] std::uint64_t now_ns() const noexcept {
        timespec ts{};
        ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
               static_cast<std::uint64_t>(ts.tv_nsec);
    }
};

/// The 1-minute load average (first field of /proc/loadavg), or -1 if unreadable.
inline double load_average_1min() noexcept {
    std::FILE* f = std::fopen("/proc/loadavg", "r");
    if (f == nullptr) {
        return -1.0;
    }
    double l = -1.0;
    if (std::fscanf(f, "%lf", &l) != 1) {
        l = -1.0;
    }
    std::fclose(f);
    return l;
}

} // namespace npa_bench
