// The userspace PCI binding (npa/linux/pci) on the host, without binding anything: errors
// that name the path and errno, the command-register and pagemap reads, hugepage DMA memory
// as a pool's backing, and the vmxnet3 register accessor's byte order and bounds. The
// binding itself (uio_pci_generic, BARs, DMA) runs in the QEMU guest:
// adapters/linux/tools/vmxnet3_guest_test.cpp (tests/guest).
#include <doctest/doctest.h>

#include <npa/buffer/fixed_pool.hpp>
#include <npa/linux/pci/dma_memory.hpp>
#include <npa/linux/pci/function.hpp>
#include <npa/linux/pci/vmxnet3.hpp>

#include <dirent.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <string>

namespace pci = npa::lnx::pci;

TEST_CASE("pci: a malformed address is refused before sysfs is touched") {
    pci::pci_function f;
    pci::pci_error e;
    CHECK_FALSE(f.open(e, "00:03.0"));
    CHECK(e.code == npa::errc::invalid_argument);
    CHECK(std::string(e.what()).find("\"00:03.0\"") != std::string::npos);
    CHECK_FALSE(f.open(e, nullptr));
    CHECK(e.code == npa::errc::invalid_argument);
}

TEST_CASE("pci: a function that is not there is named with its sysfs path and errno") {
    pci::pci_function f;
    pci::pci_error e;
    CHECK_FALSE(f.open(e, "0000:ff:1f.7"));
    CHECK(e.code == npa::errc::removed);
    CHECK(e.sys_errno == ENOENT);
    const std::string w = e.what();
    CHECK(w.find("/sys/bus/pci/devices/0000:ff:1f.7") != std::string::npos);
    CHECK(w.find("errno 2") != std::string::npos);
    CHECK(std::string(e.as_status().reason()) == w);
}

TEST_CASE("pci: a sysfs write that fails names the file and the errno") {
    pci::pci_error e;
    CHECK_FALSE(pci::write_attr(e, "/sys/bus/pci/no-such-attribute", "1"));
    CHECK(e.sys_errno != 0);
    CHECK(std::string(e.what()).find("/sys/bus/pci/no-such-attribute: open for writing") !=
          std::string::npos);
}

TEST_CASE("pci: an existing function reads its ids and command register") {
    DIR* d = ::opendir(pci::sysfs_devices);
    if (d == nullptr) {
        MESSAGE("no " << pci::sysfs_devices << " on this machine: nothing to read");
        return;
    }
    std::string first;
    while (dirent* ent = ::readdir(d)) {
        if (ent->d_name[0] != '.' && (first.empty() || first > ent->d_name)) {
            first = ent->d_name;
        }
    }
    ::closedir(d);
    if (first.empty()) {
        MESSAGE("no PCI function on this machine: nothing to read");
        return;
    }
    pci::pci_function f;
    pci::pci_error e;
    REQUIRE_MESSAGE(f.open(e, first.c_str()), e.what());
    CHECK(f.vendor() != 0);
    CHECK(f.vendor() != 0xffff);
    std::uint16_t cmd = 0xffff;
    if (f.read_command(e, cmd)) {
        CHECK(cmd != 0xffff);
    } else {
        CHECK(std::string(e.what()).find("/config") != std::string::npos);
    }
    pci::pci_error e2;
    CHECK_FALSE(f.map_bar(e2, 6));
    CHECK(e2.code == npa::errc::invalid_argument);
}

TEST_CASE("pci: pagemap gives a physical address to root, a clear refusal to others") {
    void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(p != MAP_FAILED);
    std::memset(p, 1, 4096);
    (void)::mlock(p, 4096);
    pci::pci_error e;
    std::uint64_t pa = 0;
    const bool ok = pci::physical_address(e, static_cast<std::byte*>(p) + 100, pa);
    if (::geteuid() == 0) {
        REQUIRE_MESSAGE(ok, e.what());
        CHECK(pa != 0);
        CHECK(pa % 4096 == 100);
    } else {
        CHECK_FALSE(ok);
        CHECK(std::string(e.what()).find("CAP_SYS_ADMIN") != std::string::npos);
    }
    ::munmap(p, 4096);
}

TEST_CASE("pci: hugepage DMA memory backs a pool, or says where hugepages are reserved") {
    pci::pci_error e;
    CHECK_FALSE(pci::dma_memory::create(e, 0));
    CHECK(e.code == npa::errc::invalid_argument);
    pci::pci_error e2;
    pci::dma_memory m = pci::dma_memory::create(e2, 4096);
    if (!m) {
        // No hugepage reserved on this host (the guest test reserves its own).
        CHECK(std::string(e2.what()).find(pci::nr_hugepages_path) != std::string::npos);
        return;
    }
    CHECK(m.size() == pci::hugepage_size);
    if (::geteuid() == 0) {
        CHECK(m.iova_base() != 0);
        CHECK(m.iova_base() % pci::hugepage_size == 0);
    }
    npa::pool_config pc;
    pc.count = 512;
    auto pool = npa::fixed_pool<pci::dma_memory>::create(pc, std::move(m));
    REQUIRE(pool.ok());
    npa::buffer_ref b;
    REQUIRE(pool->alloc_burst(std::span(&b, 1)) == 1);
    CHECK(b.iova() != 0);
    pool->free(b);
}

TEST_CASE("pci vmxnet3: registers are 32-bit little-endian accesses inside the BAR") {
    alignas(8) std::array<std::uint8_t, 4096> pt{}, vd{};
    pci::vmxnet3_bars bars({reinterpret_cast<volatile std::byte*>(pt.data()), pt.size()},
                           {reinterpret_cast<volatile std::byte*>(vd.data()), vd.size()});
    const npa::vmxnet3::mmio io = bars.io();
    io.write32(npa::vmxnet3::bar::vd, npa::vmxnet3::reg::CMD, 0x11223344u);
    CHECK(vd[0x20] == 0x44);
    CHECK(vd[0x21] == 0x33);
    CHECK(vd[0x22] == 0x22);
    CHECK(vd[0x23] == 0x11);
    CHECK(io.read32(npa::vmxnet3::bar::vd, npa::vmxnet3::reg::CMD) == 0x11223344u);
    io.write32(npa::vmxnet3::bar::pt, npa::vmxnet3::reg::txprod(1), 7);
    CHECK(pt[0x608] == 7);
    CHECK(vd[0x608] == 0);
    // Outside the BAR or misaligned: a read is the removed device's all ones, a write is dropped.
    CHECK(io.read32(npa::vmxnet3::bar::pt, 4096) == npa::vmxnet3::removed_read);
    CHECK(io.read32(npa::vmxnet3::bar::pt, 2) == npa::vmxnet3::removed_read);
    io.write32(npa::vmxnet3::bar::vd, 4094, 0xffffffffu);
    CHECK(vd[4094] == 0);
    pci::vmxnet3_bars none;
    CHECK(none.io().read32(npa::vmxnet3::bar::vd, 0) == npa::vmxnet3::removed_read);
}
