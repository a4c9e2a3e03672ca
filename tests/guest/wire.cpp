// The guest rig's wire check (tests/guest/README.md): the two NICs of a profile share one
// QEMU hub, so a frame sent by one arrives at the other. Here both run the kernel's own
// drivers (vmxnet3; igb for the 82576 PF), which is also the peer a plugin test can use.
//
//   1. Load the drivers, find the profile's two interfaces and bring them up.
//   2. Wait for carrier on both.
//   3. Send frames_per_way frames each way through AF_PACKET (EtherType 0x88b5, the IEEE
//      local experimental one), one at a time, each carrying its sequence number, and count
//      what arrives on the other side: every frame, once, in order.
//
// Prints `NPA-GUEST-RESULT {...}` and exits 0 only when every frame arrived.
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;

namespace {

constexpr std::uint16_t ether_type = 0x88b5; // IEEE 802 local experimental EtherType 1
constexpr int frames_per_way = 200;
constexpr int frame_len = 128;
constexpr int carrier_tries = 100; // 10 s for the link to come up
constexpr auto step = std::chrono::milliseconds(100);
constexpr int rx_wait_ms = 2000; // for one frame to cross

std::string read_line(const fs::path& p) {
    std::ifstream in(p);
    std::string s;
    std::getline(in, s);
    return s;
}

struct netif {
    std::string name;
    std::string id; // vendor:device of its PCI function
    int index = 0;
    unsigned char mac[6] = {};
};

std::vector<netif> find_netifs() {
    std::vector<netif> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/sys/class/net", ec)) {
        if (!fs::exists(e.path() / "device" / "vendor")) continue;
        netif n;
        n.name = e.path().filename().string();
        auto strip = [](std::string v) { return v.rfind("0x", 0) == 0 ? v.substr(2) : v; };
        n.id = strip(read_line(e.path() / "device" / "vendor")) + ":" +
               strip(read_line(e.path() / "device" / "device"));
        n.index = static_cast<int>(::if_nametoindex(n.name.c_str()));
        unsigned m[6] = {};
        std::sscanf(read_line(e.path() / "address").c_str(), "%x:%x:%x:%x:%x:%x", &m[0], &m[1],
                    &m[2], &m[3], &m[4], &m[5]);
        for (int i = 0; i < 6; ++i) n.mac[i] = static_cast<unsigned char>(m[i]);
        out.push_back(n);
    }
    return out;
}

int open_packet(const netif& n) {
    int fd = ::socket(AF_PACKET, SOCK_RAW, htons(ether_type));
    if (fd < 0) return -1;
    sockaddr_ll sa{};
    sa.sll_family = AF_PACKET;
    sa.sll_protocol = htons(ether_type);
    sa.sll_ifindex = n.index;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

struct way_result {
    int sent = 0, received = 0, out_of_order = 0;
};

// Sends frames_per_way frames from a to b; returns what b saw.
way_result one_way(const netif& a, const netif& b) {
    way_result r;
    int tx = open_packet(a), rx = open_packet(b);
    if (tx < 0 || rx < 0) {
        if (tx >= 0) ::close(tx);
        if (rx >= 0) ::close(rx);
        return r;
    }
    unsigned char frame[frame_len] = {};
    std::memcpy(frame, b.mac, 6);
    std::memcpy(frame + 6, a.mac, 6);
    frame[12] = ether_type >> 8;
    frame[13] = ether_type & 0xff;
    int expect = 0;
    auto drain = [&](int timeout_ms) {
        pollfd p{rx, POLLIN, 0};
        while (::poll(&p, 1, timeout_ms) > 0) {
            unsigned char buf[2048];
            ssize_t n = ::recv(rx, buf, sizeof buf, 0);
            if (n < 18 || std::memcmp(buf + 6, a.mac, 6) != 0) continue;
            std::uint32_t seq;
            std::memcpy(&seq, buf + 14, 4);
            if (static_cast<int>(seq) != expect) ++r.out_of_order;
            expect = static_cast<int>(seq) + 1;
            ++r.received;
            timeout_ms = 0;
        }
    };
    // Lock-step: the next frame leaves when the last one arrived (or rx_wait_ms passed), so
    // a slow emulated receive path is waited for rather than overrun.
    for (std::uint32_t seq = 0; seq < frames_per_way; ++seq) {
        std::memcpy(frame + 14, &seq, 4);
        if (::send(tx, frame, sizeof frame, 0) == frame_len) ++r.sent;
        for (int i = 0; i < rx_wait_ms / 10 && r.received < r.sent; ++i) drain(10);
    }
    drain(100); // a duplicate would show here
    ::close(tx);
    ::close(rx);
    return r;
}

} // namespace

int main() {
    const char* env = std::getenv("NPA_PROFILE");
    const std::string profile = env ? env : "vmxnet3-pair";
    std::vector<std::string> failed;
    auto check = [&](bool ok, const std::string& what) {
        if (!ok) {
            failed.push_back(what);
            std::fprintf(stderr, "wire: FAILED %s\n", what.c_str());
        }
    };

    // 1. Drivers and interfaces: the profile's two NICs, the PF first with igb-sriov.
    const bool sriov = profile == "igb-sriov";
    check(std::system("npa-modprobe vmxnet3") == 0, "vmxnet3 loads");
    if (sriov) check(std::system("npa-modprobe igb") == 0, "igb loads");
    std::vector<netif> ifs;
    for (int i = 0; i < carrier_tries && ifs.size() < 2; ++i) {
        ifs = find_netifs();
        if (ifs.size() < 2) std::this_thread::sleep_for(step);
    }
    check(ifs.size() == 2, "two network interfaces");
    if (sriov && ifs.size() == 2 && ifs[0].id != "8086:10c9") std::swap(ifs[0], ifs[1]);
    for (const auto& n : ifs)
        check(std::system(("ip link set dev " + n.name + " up").c_str()) == 0, n.name + " up");

    // 2. Carrier.
    for (const auto& n : ifs) {
        bool up = false;
        for (int i = 0; i < carrier_tries && !up; ++i) {
            up = read_line("/sys/class/net/" + n.name + "/carrier") == "1";
            if (!up) std::this_thread::sleep_for(step);
        }
        check(up, n.name + " has carrier");
    }

    // 3. Frames both ways.
    std::ostringstream json;
    json << "{\"test\":\"wire\",\"profile\":\"" << profile << "\",\"ways\":[";
    if (ifs.size() == 2) {
        for (int w = 0; w < 2; ++w) {
            const auto& a = ifs[w];
            const auto& b = ifs[1 - w];
            way_result r = one_way(a, b);
            check(r.sent == frames_per_way, a.name + " sent every frame");
            check(r.received == r.sent && r.out_of_order == 0,
                  b.name + " received every frame of " + a.name + ", in order");
            json << (w ? "," : "") << "{\"from\":\"" << a.name << "\",\"from_id\":\"" << a.id
                 << "\",\"to\":\"" << b.name << "\",\"to_id\":\"" << b.id
                 << "\",\"sent\":" << r.sent << ",\"received\":" << r.received
                 << ",\"out_of_order\":" << r.out_of_order << "}";
        }
    }
    json << "],\"failed\":[";
    for (std::size_t i = 0; i < failed.size(); ++i)
        json << (i ? "," : "") << "\"" << failed[i] << "\"";
    json << "]}";
    std::printf("NPA-GUEST-RESULT %s\n", json.str().c_str());
    std::fflush(stdout);
    return failed.empty() ? 0 : 1;
}
