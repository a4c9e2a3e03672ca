// npa-vswitchctl: what npa-vswitchd announces in its run directory, for a person: the
// ports (list) and one port's counters (show). Reads only the <port>.json files, which the
// daemon replaces atomically, so it needs no connection to the daemon.
#include <dirent.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

void usage(std::FILE* f) {
    std::fputs("usage: npa-vswitchctl [--run-dir DIR] list\n"
               "       npa-vswitchctl [--run-dir DIR] show PORT\n"
               "\n"
               "  list        one line a port: name, state, MAC, VLANs, MTU, queue pairs (running/configured),\n"
               "              frames in and out, drops\n"
               "  show PORT   the port's JSON (configuration, state, every counter)\n"
               "  --run-dir   npa-vswitchd's run directory (default /run/npa/vswitch)\n",
               f);
}

bool read_file(const std::string& path, std::string& out) {
    std::ifstream f(path);
    if (!f) {
        return false;
    }
    std::stringstream ss;
    ss << f.rdbuf();
    out = ss.str();
    return true;
}

// The text after "key": up to the next ',' or newline, quotes dropped (the daemon's JSON
// puts one key on a line).
std::string field(const std::string& j, const std::string& key) {
    const std::string k = "\"" + key + "\": ";
    const auto at = j.find(k);
    if (at == std::string::npos) {
        return "";
    }
    const auto b = at + k.size();
    std::string v = j.substr(b, j.find_first_of(",\n", j[b] == '[' ? j.find(']', b) : b) - b);
    v.erase(std::remove(v.begin(), v.end(), '"'), v.end());
    return v;
}

std::uint64_t drops(const std::string& j) {
    std::uint64_t t = 0;
    for (const char* k : {"rx_spoofed", "rx_vlan", "rx_runt", "rx_oversize", "rx_unknown_dst", "rx_hairpin",
                          "rx_bad_chain", "rx_short_chain", "tx_vlan", "tx_down", "tx_bad_chain", "tx_no_buffer",
                          "tx_too_big", "zc_bad_buffer"}) {
        t += std::strtoull(field(j, k).c_str(), nullptr, 10);
    }
    return t;
}

} // namespace

int main(int argc, char** argv) {
    std::string dir = "/run/npa/vswitch";
    std::vector<std::string> args;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            usage(stdout);
            return 0;
        }
        if (a == "--run-dir") {
            if (i + 1 == argc) {
                std::fputs("npa-vswitchctl: --run-dir needs a value\n", stderr);
                return 2;
            }
            dir = argv[++i];
        } else {
            args.push_back(a);
        }
    }
    if (args.size() == 1 && args[0] == "list") {
        DIR* d = ::opendir(dir.c_str());
        if (d == nullptr) {
            std::fprintf(stderr, "npa-vswitchctl: cannot read %s (is npa-vswitchd running?)\n", dir.c_str());
            return 1;
        }
        std::vector<std::string> names;
        while (const dirent* e = ::readdir(d)) {
            const std::string n = e->d_name;
            if (n.size() > 5 && n.compare(n.size() - 5, 5, ".json") == 0) {
                names.push_back(n);
            }
        }
        ::closedir(d);
        std::sort(names.begin(), names.end());
        std::printf("%-16s %-10s %-10s %-17s %-12s %5s %6s %12s %12s %10s\n", "PORT", "STATE", "TRANSPORT", "MAC",
                    "VLANS", "MTU", "QUEUES", "RX", "TX", "DROPS");
        for (const std::string& n : names) {
            std::string j;
            if (!read_file(dir + "/" + n, j)) {
                continue;
            }
            const std::string queues = field(j, "queues_running") + "/" + field(j, "queues");
            std::printf("%-16s %-10s %-10s %-17s %-12s %5s %6s %12s %12s %10llu\n", field(j, "name").c_str(),
                        field(j, "state").c_str(), field(j, "transport").c_str(), field(j, "mac").c_str(),
                        field(j, "vlans").c_str(),
                        field(j, "mtu").c_str(), queues.c_str(), field(j, "rx_packets").c_str(),
                        field(j, "tx_packets").c_str(), static_cast<unsigned long long>(drops(j)));
        }
        return 0;
    }
    if (args.size() == 2 && args[0] == "show") {
        std::string j;
        if (args[1].find('/') != std::string::npos || !read_file(dir + "/" + args[1] + ".json", j)) {
            std::fprintf(stderr, "npa-vswitchctl: no port '%s' in %s\n", args[1].c_str(), dir.c_str());
            return 1;
        }
        std::fputs(j.c_str(), stdout);
        return 0;
    }
    usage(stderr);
    return 2;
}
