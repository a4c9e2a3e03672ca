// npa_ethtool.cpp: the two ethtool queries the guest test needs, as a static program (the
// guest has busybox, which has no ethtool, and no C library for the real one):
//
//   npa_ethtool -i DEV    driver, version, bus-info   (ETHTOOL_GDRVINFO)
//   npa_ethtool -S DEV    NIC statistics: name: value  (ETHTOOL_GSSET_INFO, GSTRINGS, GSTATS)
//
// Output as ethtool's own. Exit 0, or 1 with the failing request on stderr.
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

namespace {

int request(int fd, const char* dev, void* data, const char* what) {
    ifreq ifr{};
    std::snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", dev);
    ifr.ifr_data = static_cast<char*>(data);
    if (ioctl(fd, SIOCETHTOOL, &ifr) != 0) {
        std::fprintf(stderr, "npa_ethtool: %s on %s: %s\n", what, dev, std::strerror(errno));
        return -1;
    }
    return 0;
}

int drvinfo(int fd, const char* dev) {
    ethtool_drvinfo info{};
    info.cmd = ETHTOOL_GDRVINFO;
    if (request(fd, dev, &info, "ETHTOOL_GDRVINFO") != 0) {
        return 1;
    }
    std::printf("driver: %s\nversion: %s\nbus-info: %s\n", info.driver, info.version, info.bus_info);
    return 0;
}

int stats(int fd, const char* dev) {
    // ethtool_sset_info is followed by one u32 per set asked for.
    std::vector<std::uint8_t> info(sizeof(ethtool_sset_info) + sizeof(std::uint32_t));
    auto* sset = reinterpret_cast<ethtool_sset_info*>(info.data());
    sset->cmd = ETHTOOL_GSSET_INFO;
    sset->sset_mask = 1ull << ETH_SS_STATS;
    if (request(fd, dev, sset, "ETHTOOL_GSSET_INFO") != 0) {
        return 1;
    }
    std::uint32_t n = 0;
    if (sset->sset_mask != 0) {
        std::memcpy(&n, info.data() + sizeof(ethtool_sset_info), sizeof n);
    }
    std::vector<std::uint8_t> names(sizeof(ethtool_gstrings) + std::size_t{n} * ETH_GSTRING_LEN);
    auto* gs = reinterpret_cast<ethtool_gstrings*>(names.data());
    gs->cmd = ETHTOOL_GSTRINGS;
    gs->string_set = ETH_SS_STATS;
    gs->len = n;
    std::vector<std::uint8_t> values(sizeof(ethtool_stats) + std::size_t{n} * sizeof(std::uint64_t));
    auto* st = reinterpret_cast<ethtool_stats*>(values.data());
    st->cmd = ETHTOOL_GSTATS;
    st->n_stats = n;
    if (request(fd, dev, gs, "ETHTOOL_GSTRINGS") != 0 || request(fd, dev, st, "ETHTOOL_GSTATS") != 0) {
        return 1;
    }
    std::printf("NIC statistics:\n");
    for (std::uint32_t i = 0; i < n; ++i) {
        char name[ETH_GSTRING_LEN + 1] = {};
        std::memcpy(name, gs->data + std::size_t{i} * ETH_GSTRING_LEN, ETH_GSTRING_LEN);
        std::uint64_t v = 0;
        std::memcpy(&v, values.data() + sizeof(ethtool_stats) + std::size_t{i} * sizeof v, sizeof v);
        std::printf("     %s: %llu\n", name, static_cast<unsigned long long>(v));
    }
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 3 || (std::strcmp(argv[1], "-i") != 0 && std::strcmp(argv[1], "-S") != 0)) {
        std::fprintf(stderr, "usage: npa_ethtool -i|-S DEV\n");
        return 2;
    }
    const int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        std::perror("npa_ethtool: socket");
        return 1;
    }
    const int rc = argv[1][1] == 'i' ? drvinfo(fd, argv[2]) : stats(fd, argv[2]);
    close(fd);
    return rc;
}
