// npa-linkd: binds a TAP interface to an ordered list of lower interfaces through an npa
// shell, switches between them while traffic flows, and answers npactl.
#include "config.hpp"
#include "linkd.hpp"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace {

/// What the daemon still needs once it runs (switches attach plugins, the TAP follows
/// policy): CAP_NET_ADMIN (TAP MAC/MTU/carrier, VLAN links, XDP attach), CAP_NET_RAW
/// (AF_PACKET and AF_XDP sockets), CAP_IPC_LOCK (locked UMEM and ring memory), CAP_BPF
/// and CAP_SYS_ADMIN (loading libxdp's XDP program and its pinned maps on an AF_XDP
/// switch; kernels before 5.8 have no CAP_BPF and ask for CAP_SYS_ADMIN).
constexpr int kept_caps[] = {CAP_NET_ADMIN, CAP_NET_RAW, CAP_IPC_LOCK, CAP_SYS_ADMIN,
                             39 /* CAP_BPF */};

/// Drops every other capability from the effective, permitted, inheritable and bounding
/// sets, and forbids gaining any back (no_new_privs). Returns false with errno if the
/// kernel refused; a daemon not started as root has nothing to drop.
bool drop_capabilities() {
    std::uint64_t keep = 0;
    for (const int c : kept_caps)
        keep |= std::uint64_t{1} << c;
    for (int c = 0; c <= 63; ++c) {
        if ((keep >> c & 1) == 0 && ::prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1)
            (void)::prctl(PR_CAPBSET_DROP, c, 0, 0, 0);
    }
    __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct d[2]{};
    if (::syscall(SYS_capget, &h, d) != 0)
        return false;
    for (int i = 0; i < 2; ++i) {
        const auto k = static_cast<std::uint32_t>(keep >> (32 * i));
        d[i].effective &= k;
        d[i].permitted &= k;
        d[i].inheritable = 0;
    }
    if (::syscall(SYS_capset, &h, d) != 0)
        return false;
    return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0;
}

npa::lnx::tools::linkd* g_daemon = nullptr;
void on_signal(int) {
    if (g_daemon != nullptr)
        g_daemon->stop();
}
} // namespace

int main(int argc, char** argv) {
    npa::lnx::tools::daemon_config cfg;
    std::string err;
    if (!npa::lnx::tools::parse_args(argc, argv, cfg, err)) {
        std::fprintf(stderr, "npa-linkd: %s\n", err.c_str());
        return 2;
    }
    if (cfg.help) {
        std::fputs(npa::lnx::tools::usage(), stdout);
        return 0;
    }
    npa::lnx::tools::linkd d(std::move(cfg));
    if (!d.init(err)) {
        std::fprintf(stderr, "npa-linkd: %s\n", err.c_str());
        return 1;
    }
    // Set up: keep only the capabilities the running daemon uses.
    if (!drop_capabilities())
        std::fprintf(stderr, "npa-linkd: warning: could not drop capabilities: %s\n",
                     std::strerror(errno));
    g_daemon = &d;
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
    std::fprintf(stderr, "npa-linkd: running\n");
    d.run();
    g_daemon = nullptr;
    std::fprintf(stderr, "npa-linkd: stopped\n");
    return 0;
}
