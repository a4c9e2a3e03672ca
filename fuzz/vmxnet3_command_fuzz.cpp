// fuzz/vmxnet3_command_fuzz.cpp: a hostile guest on the vmxnet3 device model's command
// interface and shared memory.
//
// Everything a vmxnet3 guest controls is outside input for the emulation (the hypervisor
// side): BAR1 registers (DSAL/DSAH, CMD with any command code, MACL/MACH, ECR), BAR0
// doorbells with any index, and every byte of the driver-shared area, the queue descriptor
// table and the rings, which the guest may rewrite at any time, also while the device is
// active. The device is first brought up by the vmxnet3 plugin (a real guest's state), then
// the fuzzer takes over the guest's side. The pool lives in a guest memory region of its
// own; the fuzzer writes only the region holding the device's shared memory and rings.
//
// Invariants after every operation: no out-of-bounds access or undefined behaviour in the
// device model (ASan+UBSan), and the hypervisor's policy holds whatever the guest wrote:
// the MAC in effect is the permanent or an allowed one, the RX mode is never promiscuous,
// and no VLAN outside the allowed list is accepted.
#include "fuzz_input.hpp"

#include <npa/buffer/fixed_pool.hpp>
#include <npa/plugins/vmxnet3/plugin.hpp>
#include <npa/sim/simnic_rig.hpp>  // far_end
#include <npa/sim/test_api.hpp>
#include <npa/sim/vmxnet3_device.hpp>

#include <algorithm>
#include <memory>
#include <optional>

namespace {

namespace v = npa::vmxnet3;
using pool_t = npa::fixed_pool<npa::borrowed_memory>;
using api_t = npa::sim::test_api<pool_t>;

constexpr npa::mac_addr guest_mac{0x02, 0, 0, 0, 0, 0x01};
constexpr npa::mac_addr far_mac{0x02, 0, 0, 0, 0, 0x02};
constexpr npa::mac_addr perm_mac{0x00, 0x50, 0x56, 0, 0, 0x01};
constexpr std::uint16_t allowed_vlans[] = {10, 20};

constexpr std::uint32_t bar1_regs[] = {v::reg::VRRS, v::reg::UVRS, v::reg::DSAL, v::reg::DSAH,
                                       v::reg::CMD,  v::reg::MACL, v::reg::MACH, v::reg::ICR,
                                       v::reg::ECR,  v::reg::DCR,  v::reg::PTCR};
constexpr std::uint32_t commands[] = {
    v::cmd::ACTIVATE_DEV,     v::cmd::QUIESCE_DEV,      v::cmd::RESET_DEV,
    v::cmd::UPDATE_RX_MODE,   v::cmd::UPDATE_MAC_FILTERS, v::cmd::UPDATE_VLAN_FILTERS,
    v::cmd::UPDATE_RSSIDT,    v::cmd::UPDATE_IML,       v::cmd::UPDATE_PMCFG,
    v::cmd::UPDATE_FEATURE,   v::cmd::GET_QUEUE_STATUS, v::cmd::GET_STATS,
    v::cmd::GET_LINK,         v::cmd::GET_PERM_MAC_LO,  v::cmd::GET_PERM_MAC_HI,
    v::cmd::GET_CONF_INTR,    v::cmd::GET_TXDATA_DESC_SIZE};

struct bench {
    npa::sim::guest_memory mem;
    npa::sim::far_end far{far_mac, guest_mac};
    npa::sim::vmxnet3_list_policy policy;
    std::optional<pool_t> pool;
    std::optional<api_t> api;
    std::unique_ptr<npa::sim::vmxnet3_device> dev;
    std::unique_ptr<npa::vmxnet3_plugin<api_t>> plugin;
};

void check_policy(npa::sim::vmxnet3_device& d, std::uint16_t probe) {
    const npa::mac_addr m = d.mac();
    NPA_FUZZ_CHECK(m == perm_mac || m == guest_mac);
    NPA_FUZZ_CHECK((d.rx_mode() & v::rxm::PROMISC) == 0);
    for (const std::uint16_t vid : {probe, std::uint16_t{11}, std::uint16_t{4095}}) {
        const bool listed = std::find(std::begin(allowed_vlans), std::end(allowed_vlans), vid) !=
                            std::end(allowed_vlans);
        NPA_FUZZ_CHECK(vid == 0 || listed || !d.vlan_allowed(vid));
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    npa::fuzz::input in(data, size);
    auto b = std::make_unique<bench>();
    // region 0: the pool, exactly; region 1: the device's shared memory and rings.
    npa::pool_config pc;
    pc.count = 256;
    const std::size_t pool_bytes = (pool_t::required_bytes(pc) + 4095) / 4096 * 4096;
    NPA_FUZZ_CHECK(b->mem.add_region(pool_bytes).ok());
    const npa::sim::guest_block pb = b->mem.allocate(pool_bytes);
    auto pool = pool_t::create(pc, pb.backing());
    NPA_FUZZ_CHECK(pool.ok());
    b->pool.emplace(std::move(*pool));
    b->api.emplace(*b->pool);
    NPA_FUZZ_CHECK(b->mem.add_region(std::size_t{1} << 20).ok());
    npa::sim::vmxnet3_device_config dc;
    dc.profile.max_queues = 2;
    dc.profile.max_ring_size = 64;
    auto dev = npa::sim::vmxnet3_device::create(b->mem, dc);
    NPA_FUZZ_CHECK(dev.ok());
    b->dev = std::move(*dev);
    npa::sim::vmxnet3_device& d = *b->dev;
    connect(d, b->far);
    b->policy.allowed_macs = {perm_mac, guest_mac};
    b->policy.allowed_vlans.assign(std::begin(allowed_vlans), std::end(allowed_vlans));
    d.set_policy(&b->policy);

    // A real guest's bring-up: the plugin attaches (shared area, queue table, rings).
    b->plugin = std::make_unique<npa::vmxnet3_plugin<api_t>>();
    npa::queue_config qc;
    qc.queues = static_cast<std::uint16_t>(1 + in.below(2));
    qc.tx_ring_size = qc.rx_ring_size = 32;
    NPA_FUZZ_CHECK(b->plugin->attach(*b->api, d.window(), qc).ok());

    const npa::sim::guest_block dev_mem = b->mem.region_block(1);
    const v::mmio io = d.mmio();
    for (int op = 0; op < 256 && !in.empty(); ++op) {
        switch (in.u8() % 8) {
        case 0:
        case 1: { // guest writes to shared memory: mostly the shared area and queue table
            const std::size_t span = in.flag() ? 8192 : dev_mem.size;
            const std::size_t at = in.u32() % span;
            const auto bytes = in.bytes(1 + in.below(16));
            for (std::size_t i = 0; i < bytes.size() && at + i < dev_mem.size; ++i) {
                dev_mem.virt[at + i] = static_cast<std::byte>(bytes[i]);
            }
            break;
        }
        case 2: { // BAR1 register write, commands by name or by any code
            const std::uint32_t off = in.flag() ? bar1_regs[in.below(std::size(bar1_regs))]
                                                : in.u16() % v::reg::vd_size;
            std::uint32_t val = in.u32();
            if (off == v::reg::CMD && in.flag()) val = commands[in.below(std::size(commands))];
            io.write32(v::bar::vd, off, val);
            break;
        }
        case 3: io.write32(v::bar::pt, in.u16() % v::reg::pt_size, in.u32()); break;
        case 4: (void)io.read32(in.flag() ? v::bar::pt : v::bar::vd, in.u16() % 4096); break;
        case 5: d.step(); break;
        case 6: (void)b->far.send(in.below(4), in.below(32)); break;
        default: { // a filter update: the table as the guest left it, then the command
            v::driver_shared& sh = *reinterpret_cast<v::driver_shared*>(dev_mem.virt);
            if (in.flag()) sh.devRead.rxFilterConf.rxMode = in.u32();
            if (in.flag()) {
                sh.devRead.rxFilterConf.vfTable[in.below(128)] = in.u32();
            }
            const std::uint32_t c = in.flag() ? v::cmd::UPDATE_RX_MODE : v::cmd::UPDATE_VLAN_FILTERS;
            (void)io.command(c);
            break;
        }
        }
        check_policy(d, static_cast<std::uint16_t>(in.u16() & 0xFFF));
    }
    // The guest's plugin state is not trusted after a hostile guest rewrote its rings:
    // the bench is torn down without detaching (nothing of the device outlives it).
    b->plugin.reset();
    b->dev.reset();
    return 0;
}
