// The guest rig's own test (tests/guest/README.md): runs inside the QEMU guest as a static
// program and checks what the plugin tests will rely on.
//
//   1. The PCI devices of the profile are there (vendor:device from sysfs).
//   2. Each vmxnet3 (15ad:07b0) binds to uio_pci_generic (new_id), gets /dev/uioN, and its
//      BAR0 and BAR1 map through sysfs resource0/resource1; BAR1 offset 0 (VRRS, the
//      revisions the device supports) reads non-zero.
//   3. Hugepages: the pool from the kernel command line exists and one 2 MiB page maps.
//   4. Profile vmxnet3-hotplug: the host unplugs the second vmxnet3 (device_del nic1, asked
//      for with an NPA-GUEST-MONITOR line) while uio_pci_generic holds it; it leaves sysfs.
//   5. Profile igb-sriov: the 82576 PF (8086:10c9) binds to the kernel's igb, which creates
//      two VFs through sriov_numvfs; two 8086:10ca functions appear, bind to uio_pci_generic
//      and their BAR0 maps.
//
// Prints one line `NPA-GUEST-RESULT {...}` with what it found and exits 0 only when every
// check passed. The profile comes from NPA_PROFILE (npa.profile= on the kernel command line).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;

namespace {

// Tuning constants.
constexpr int settle_tries = 50;                   // polls of sysfs after a write ...
constexpr auto settle_step = std::chrono::milliseconds(100); // ... 5 s in all
constexpr std::size_t huge_page = 2u << 20;        // hugepages=N on the command line are 2 MiB
constexpr int igb_vfs = 2;
constexpr int unplug_tries = 200; // 20 s for the host's device_del and the guest's hotplug path

const fs::path pci_devices = "/sys/bus/pci/devices";

std::string read_line(const fs::path& p) {
    std::ifstream in(p);
    std::string s;
    std::getline(in, s);
    return s;
}

bool write_text(const fs::path& p, const std::string& s) {
    int fd = ::open(p.c_str(), O_WRONLY);
    if (fd < 0) return false;
    bool ok = ::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size());
    ::close(fd);
    return ok;
}

struct pci_fn {
    std::string bdf;
    std::string id; // "vvvv:dddd"
};

std::vector<pci_fn> list_pci() {
    std::vector<pci_fn> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(pci_devices, ec)) {
        auto strip = [](std::string v) { return v.rfind("0x", 0) == 0 ? v.substr(2) : v; };
        out.push_back({e.path().filename().string(),
                       strip(read_line(e.path() / "vendor")) + ":" +
                           strip(read_line(e.path() / "device"))});
    }
    std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.bdf < b.bdf; });
    return out;
}

std::string driver_of(const std::string& bdf) {
    std::error_code ec;
    auto link = fs::read_symlink(pci_devices / bdf / "driver", ec);
    return ec ? std::string() : link.filename().string();
}

template <class Pred> bool wait_for(Pred pred) {
    for (int i = 0; i < settle_tries; ++i) {
        if (pred()) return true;
        std::this_thread::sleep_for(settle_step);
    }
    return pred();
}

std::string quote(const std::string& s) { return "\"" + s + "\""; }

struct report {
    std::vector<std::string> failed;
    int checks = 0;
    void check(bool ok, const std::string& what) {
        ++checks;
        if (!ok) {
            failed.push_back(what);
            std::fprintf(stderr, "probe: FAILED %s\n", what.c_str());
        }
    }
};

// Maps sysfs resourceN of bdf; returns its size (0 when it failed) and the first 32-bit word.
std::size_t map_bar(const std::string& bdf, int bar, std::uint32_t& word0) {
    auto p = pci_devices / bdf / ("resource" + std::to_string(bar));
    int fd = ::open(p.c_str(), O_RDWR | O_SYNC);
    if (fd < 0) return 0;
    struct stat st {};
    std::size_t len = ::fstat(fd, &st) == 0 ? static_cast<std::size_t>(st.st_size) : 0;
    void* va = len ? ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
    ::close(fd);
    if (va == MAP_FAILED) return 0;
    word0 = *static_cast<volatile std::uint32_t*>(va);
    ::munmap(va, len);
    return len;
}

} // namespace

int main() {
    const char* env = std::getenv("NPA_PROFILE");
    const std::string profile = env ? env : "vmxnet3-pair";
    report r;
    std::ostringstream json;
    json << "{\"test\":\"probe\",\"profile\":" << quote(profile);

    // 1. The devices.
    auto fns = list_pci();
    json << ",\"pci\":[";
    int n_vmxnet3 = 0, n_igb_pf = 0;
    for (std::size_t i = 0; i < fns.size(); ++i) {
        json << (i ? "," : "") << "{\"bdf\":" << quote(fns[i].bdf) << ",\"id\":" << quote(fns[i].id)
             << "}";
        n_vmxnet3 += fns[i].id == "15ad:07b0";
        n_igb_pf += fns[i].id == "8086:10c9";
    }
    json << "]";
    const bool sriov = profile == "igb-sriov";
    r.check(n_vmxnet3 == (sriov ? 1 : 2), "vmxnet3 count for " + profile);
    if (sriov) r.check(n_igb_pf == 1, "one 82576 PF (8086:10c9)");

    // 2. vmxnet3 on uio_pci_generic.
    const fs::path uio_drv = "/sys/bus/pci/drivers/uio_pci_generic";
    r.check(fs::exists(uio_drv), "uio_pci_generic loaded");
    if (n_vmxnet3 > 0) r.check(write_text(uio_drv / "new_id", "15ad 07b0"), "new_id 15ad 07b0");
    json << ",\"vmxnet3\":[";
    bool first = true;
    for (const auto& f : fns) {
        if (f.id != "15ad:07b0") continue;
        bool bound = wait_for([&] { return driver_of(f.bdf) == "uio_pci_generic"; });
        r.check(bound, f.bdf + " bound to uio_pci_generic");
        std::string uio;
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(pci_devices / f.bdf / "uio", ec))
            uio = e.path().filename().string();
        bool dev = !uio.empty() && wait_for([&] { return fs::exists("/dev/" + uio); });
        int fd = dev ? ::open(("/dev/" + uio).c_str(), O_RDWR) : -1;
        r.check(fd >= 0, f.bdf + " /dev/" + uio + " opens");
        if (fd >= 0) ::close(fd);
        std::uint32_t pt0 = 0, vrrs = 0;
        std::size_t bar0 = map_bar(f.bdf, 0, pt0);
        std::size_t bar1 = map_bar(f.bdf, 1, vrrs);
        r.check(bar0 > 0, f.bdf + " resource0 maps");
        r.check(bar1 > 0, f.bdf + " resource1 maps");
        r.check(vrrs != 0 && vrrs != 0xffffffffu, f.bdf + " BAR1 VRRS reads a revision");
        json << (first ? "" : ",") << "{\"bdf\":" << quote(f.bdf) << ",\"driver\":"
             << quote(driver_of(f.bdf)) << ",\"uio\":" << quote(uio) << ",\"bar0\":" << bar0
             << ",\"bar1\":" << bar1 << ",\"vrrs\":" << vrrs << "}";
        first = false;
    }
    json << "]";

    // 3. Hugepages.
    long total = 0;
    {
        std::ifstream in("/proc/meminfo");
        for (std::string line; std::getline(in, line);)
            if (line.rfind("HugePages_Total:", 0) == 0) total = std::stol(line.substr(16));
    }
    r.check(total > 0, "hugepage pool (hugepages= on the command line)");
    bool huge_ok = false;
    if (int fd = ::open("/dev/hugepages/probe", O_CREAT | O_RDWR, 0600); fd >= 0) {
        void* va = ::mmap(nullptr, huge_page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (va != MAP_FAILED) {
            static_cast<volatile char*>(va)[0] = 1;
            huge_ok = true;
            ::munmap(va, huge_page);
        }
        ::close(fd);
        ::unlink("/dev/hugepages/probe");
    }
    r.check(huge_ok, "a 2 MiB page maps from /dev/hugepages");
    json << ",\"hugepages\":" << total;

    // 4. Hot-unplug of a bound device.
    if (profile == "vmxnet3-hotplug") {
        std::string victim;
        for (const auto& f : fns)
            if (f.id == "15ad:07b0") victim = f.bdf; // the last one: nic1 behind rp2
        r.check(victim == "0000:02:00.0", "nic1 at 0000:02:00.0");
        std::printf("NPA-GUEST-MONITOR device_del nic1\n");
        std::fflush(stdout);
        auto t0 = std::chrono::steady_clock::now();
        bool gone = false;
        for (int i = 0; i < unplug_tries && !gone; ++i) {
            gone = !fs::exists(pci_devices / victim);
            if (!gone) std::this_thread::sleep_for(settle_step);
        }
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - t0)
                      .count();
        r.check(gone, victim + " removed after device_del");
        json << ",\"unplugged\":" << quote(victim) << ",\"unplug_ms\":" << (gone ? ms : -1);
    }

    // 5. igb PF -> VFs.
    if (sriov) {
        json << ",\"vfs\":[";
        std::string pf;
        for (const auto& f : fns)
            if (f.id == "8086:10c9") pf = f.bdf;
        if (!pf.empty()) {
            r.check(std::system("npa-modprobe igb") == 0, "igb loads");
            r.check(wait_for([&] { return driver_of(pf) == "igb"; }), pf + " bound to igb");
            std::string total_vfs = read_line(pci_devices / pf / "sriov_totalvfs");
            r.check(write_text(pci_devices / pf / "sriov_numvfs", std::to_string(igb_vfs)),
                    "sriov_numvfs = 2 (totalvfs " + total_vfs + ")");
            std::vector<pci_fn> vfs;
            wait_for([&] {
                vfs.clear();
                for (const auto& f : list_pci())
                    if (f.id == "8086:10ca") vfs.push_back(f);
                return vfs.size() == igb_vfs;
            });
            r.check(vfs.size() == igb_vfs, "two 82576 VFs (8086:10ca)");
            // A VF has no INTx line: uio_pci_generic still binds it (without interrupts).
            if (!vfs.empty())
                r.check(write_text(uio_drv / "new_id", "8086 10ca"), "new_id 8086 10ca");
            for (std::size_t i = 0; i < vfs.size(); ++i) {
                const auto& vf = vfs[i].bdf;
                r.check(wait_for([&] { return driver_of(vf) == "uio_pci_generic"; }),
                        vf + " bound to uio_pci_generic");
                std::uint32_t ctrl = 0;
                std::size_t bar0 = map_bar(vf, 0, ctrl);
                r.check(bar0 > 0 && ctrl != 0xffffffffu, vf + " resource0 maps and answers");
                json << (i ? "," : "") << "{\"bdf\":" << quote(vf) << ",\"driver\":"
                     << quote(driver_of(vf)) << ",\"bar0\":" << bar0 << "}";
            }
        }
        json << "]";
    }

    json << ",\"checks\":" << r.checks << ",\"failed\":[";
    for (std::size_t i = 0; i < r.failed.size(); ++i) json << (i ? "," : "") << quote(r.failed[i]);
    json << "]}";
    std::printf("NPA-GUEST-RESULT %s\n", json.str().c_str());
    std::fflush(stdout);
    return r.failed.empty() ? 0 : 1;
}
