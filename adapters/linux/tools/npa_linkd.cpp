// npa-linkd: binds a TAP interface to an ordered list of lower interfaces through an npa
// shell, switches between them while traffic flows, and answers npactl.
#include "config.hpp"
#include "linkd.hpp"

#include <csignal>
#include <cstdio>

namespace {
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
