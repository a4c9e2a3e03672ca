// Plugins cannot reach the control path (DESIGN.md section 3), the failing way: a plugin
// inside an npa::shell that uses only what it is given (case 0) and, per case, the same
// plugin trying to send a control request (MAC, VLAN, MTU) through the shell API it is
// handed, or through its device window. Each must fail to compile.
//
// case 0 conforming: compiles
// case 1 api_set_mac: no member named 'set_mac'
// case 2 api_add_vlan: no member named 'add_vlan'
// case 3 api_set_mtu: no member named 'set_mtu'
// case 4 api_control_request: no member named 'control'
// case 5 api_reaches_the_shell: sh_' is && private
// case 6 vmxnet3_window_writes_the_mac: no member named 'write_mac'
// case 7 vmxnet3_window_edits_rx_filters: no member named 'rx_filter'
// case 8 igbvf_window_opens_the_mailbox: no member named 'mailbox_port'
#include <npa/buffer/fixed_pool.hpp>
#include <npa/control.hpp>
#include <npa/plugins/igbvf/window.hpp>
#include <npa/plugins/vmxnet3/window.hpp>
#include <npa/shell.hpp>

#include <cstdint>
#include <span>

#ifndef CASE
#define CASE 0
#endif

struct env {
    using pool_type = npa::fixed_pool<>;
    static std::uint64_t now_ns() noexcept { return 0; }
};

struct device {};
#if CASE == 6 || CASE == 7
using device_t = npa::vmxnet3::window;
#elif CASE == 8
using device_t = npa::igbvf_window;
#else
using device_t = device;
#endif

/// A plugin that, when it attaches, posts one RX buffer and logs (all it may do), and
/// in the failing cases also tries its hand at the control path.
template <class Api>
class intruder {
public:
    static constexpr const char* name = "intruder";
    using device_type = device_t;
    using buffer_type = typename Api::buffer_type;

    npa::status attach(Api& api, device_type& dev, const npa::queue_config&) {
        buffer_type b{};
        (void)api.alloc_rx_buffers(0, std::span(&b, 1));
        api.log(npa::log_level::info, "attached");
        (void)dev;
#if CASE == 1
        (void)api.set_mac(npa::mac_addr{0x02, 0, 0, 0, 0, 1});
#elif CASE == 2
        (void)api.add_vlan(100);
#elif CASE == 3
        (void)api.set_mtu(9000);
#elif CASE == 4
        (void)api.control(npa::control_request::make_mtu(9000));
#elif CASE == 5
        (void)api.sh_->set_mac(npa::mac_addr{0x02, 0, 0, 0, 0, 1});
#elif CASE == 6
        const std::uint8_t mac[6] = {0x02, 0, 0, 0, 0, 1};
        dev.write_mac(mac);
#elif CASE == 7
        dev.rx_filter().rxMode = 0;
#elif CASE == 8
        dev.mailbox_port().write_vmmb(0);
#endif
        return {};
    }
    void detach() noexcept {}
    std::uint16_t tx_burst(std::uint16_t, std::span<buffer_type>) noexcept { return 0; }
    std::uint16_t rx_burst(std::uint16_t, std::span<buffer_type>) noexcept { return 0; }
    std::uint32_t tx_reap(std::uint16_t) noexcept { return 0; }
    std::uint32_t tx_in_flight(std::uint16_t) const noexcept { return 0; }
    void irq_arm(std::uint16_t) noexcept {}
    void irq_disarm(std::uint16_t) noexcept {}
    npa::capabilities capabilities() const noexcept { return {}; }
    const npa::queue_stats& stats(std::uint16_t) const noexcept { return stats_; }

private:
    npa::queue_stats stats_{};
};

using shell_t = npa::shell<env, intruder>;
using api_t = shell_t::api;

// The attempt is the one break: the plugin itself still conforms (checked before its
// bodies are compiled, so a compiler's error recovery cannot fail it).
static_assert(npa::plugin<intruder<api_t>, api_t>, "NPA_CF_COLLATERAL plugin");
static_assert(npa::shell_api<api_t>, "NPA_CF_COLLATERAL shell_api");

// Every body is compiled, as the shell would instantiate it.
template class intruder<api_t>;
