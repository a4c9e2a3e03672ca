// npa/control/vmxnet3.hpp: the control path of the vmxnet3 path.
//
// On the emulated path the hypervisor's control channel is the device's own register
// interface: the guest writes its MAC to MACL/MACH, its RX mode, VLAN table and multicast
// list to the shared area's Vmxnet3_RxFilterConf, and issues UPDATE_RX_MODE,
// UPDATE_VLAN_FILTERS or UPDATE_MAC_FILTERS; the hypervisor traps those, applies policy and
// programs its virtual switch port. vmxnet3_control is an npa::control_channel over that
// interface, for the shell; plugins never see it (DESIGN.md section 3).
//
// What the guest can see of the hypervisor's answer:
//   - MAC: the device takes the address when MACH is written; reading MACL/MACH back
//     gives the address in effect (Linux's vmxnet3_read_mac_addr reads them), so a refused
//     address reads back as the old one: errc::refused;
//   - UPDATE_RX_MODE, UPDATE_VLAN_FILTERS, UPDATE_MAC_FILTERS: no answer. Linux's driver
//     writes them to CMD and never reads CMD back; what QEMU's device answers there comes
//     from its default case (0 today, all ones in early versions), nothing about the
//     command. The hypervisor applies its policy to the traffic, and a filter it did not
//     take shows as frames not delivered; the request succeeds once the device is told
//     (errc::removed when it reads all ones afterwards).
// A refused request is rolled back in the shared area too, so the guest's view and the
// device's stay the same. submit_batch() is all or nothing: on a failure every request
// of the batch already applied is undone (the previous configuration is written back and
// re-applied) before it returns.
#pragma once

#include <npa/concepts/control_channel.hpp>
#include <npa/control.hpp>
#include <npa/plugins/vmxnet3/window.hpp>
#include <npa/status.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace npa {

class vmxnet3_control {
public:
    explicit vmxnet3_control(vmxnet3::control_port port) noexcept : port_(port) {}

    [[nodiscard]] status submit(const control_request& r) {
        if (!port_.bound()) {
            return {errc::bad_state, "vmxnet3 control: not bound to a device"};
        }
        if (!port_.present()) {
            return {errc::removed, "vmxnet3 control: device removed"};
        }
        const saved before = save();
        const status st = apply(r);
        if (!st.ok()) {
            restore(before);
        }
        return st;
    }

    [[nodiscard]] status submit_batch(std::span<const control_request> batch) {
        if (!port_.bound()) {
            return {errc::bad_state, "vmxnet3 control: not bound to a device"};
        }
        if (!port_.present()) {
            return {errc::removed, "vmxnet3 control: device removed"};
        }
        const saved before = save();
        for (const control_request& r : batch) {
            if (const status st = apply(r); !st.ok()) {
                restore(before);
                return st;
            }
        }
        return status::success();
    }

    /// LOAD_PLUGIN (defs.hpp): asks the hypervisor for the plugin image it holds for
    /// `device_id` and has it copied into `area` (guest memory the device may write).
    /// Returns the image's bytes in `area`. The answer is the device's and is checked, not
    /// trusted: a size larger than the area, or an unknown answer, is refused. The bytes
    /// are the hypervisor's too: verify them (the image loader) before running any.
    [[nodiscard]] result<std::span<const std::byte>> load_plugin(std::uint32_t device_id,
                                                                 vmxnet3::dma_block area) {
        if (!port_.bound()) {
            return status{errc::bad_state, "vmxnet3 control: not bound to a device"};
        }
        if (area.virt == nullptr || area.size == 0 || area.size > UINT32_MAX) {
            return status{errc::invalid_argument, "vmxnet3 LOAD_PLUGIN: no area, or one over 4 GiB"};
        }
        vmxnet3::load_plugin_info a;
        a.deviceId = device_id;
        a.areaLen = static_cast<std::uint32_t>(area.size);
        a.areaPA = area.iova;
        port_.write_load_plugin(a);
        const std::uint32_t res = port_.command(vmxnet3::cmd::LOAD_PLUGIN);
        const std::uint32_t len = port_.read_load_plugin().areaLen; // read once, then checked
        switch (res) {
        case 0:
            if (len == 0 || len > area.size) {
                return status{errc::device_error,
                              "vmxnet3 LOAD_PLUGIN: the device reported an image larger than the "
                              "area (or empty)"};
            }
            return std::span<const std::byte>(area.virt, len);
        case vmxnet3::plugin_err::NO_PLUGIN:
            return status{errc::not_supported, "vmxnet3 LOAD_PLUGIN: the hypervisor holds no plugin for this device"};
        case vmxnet3::plugin_err::TOO_SMALL:
            return status{errc::no_memory, "vmxnet3 LOAD_PLUGIN: the image is larger than the area"};
        case vmxnet3::plugin_err::BAD_AREA:
            return status{errc::invalid_argument, "vmxnet3 LOAD_PLUGIN: the area is not guest memory"};
        case vmxnet3::removed_read:
            return status{errc::removed, "vmxnet3 control: device removed"};
        default:
            return status{errc::device_error, "vmxnet3 LOAD_PLUGIN: unknown answer from the device"};
        }
    }

    /// The MAC address in effect, read from the device.
    [[nodiscard]] mac_addr mac() const noexcept {
        std::uint8_t m[6];
        port_.read_mac(m);
        return {m[0], m[1], m[2], m[3], m[4], m[5]};
    }

private:
    // Everything a request may change, to roll a refused request or batch back.
    struct saved {
        std::uint8_t mac[6];
        std::uint32_t rx_mode;
        std::uint16_t mf_len;
        std::uint32_t vf[vmxnet3::VFT_SIZE];
        std::uint8_t mcast[max_mcast_addrs * 6];
        std::uint32_t mtu;
    };

    saved save() const noexcept {
        saved s{};
        port_.read_mac(s.mac);
        vmxnet3::control_port p = port_;
        s.rx_mode = p.rx_filter().rxMode;
        s.mf_len = p.rx_filter().mfTableLen;
        std::memcpy(s.vf, p.rx_filter().vfTable, sizeof s.vf);
        const vmxnet3::dma_block t = port_.mcast_table();
        std::memcpy(s.mcast, t.virt, t.size < sizeof s.mcast ? t.size : sizeof s.mcast);
        s.mtu = p.misc().mtu;
        return s;
    }

    void restore(const saved& s) noexcept {
        port_.write_mac(s.mac);
        vmxnet3::rx_filter_conf& f = port_.rx_filter();
        f.rxMode = s.rx_mode;
        f.mfTableLen = s.mf_len;
        std::memcpy(f.vfTable, s.vf, sizeof s.vf);
        const vmxnet3::dma_block t = port_.mcast_table();
        std::memcpy(t.virt, s.mcast, t.size < sizeof s.mcast ? t.size : sizeof s.mcast);
        port_.misc().mtu = s.mtu;
        port_.issue(vmxnet3::cmd::UPDATE_RX_MODE);
        port_.issue(vmxnet3::cmd::UPDATE_VLAN_FILTERS);
        port_.issue(vmxnet3::cmd::UPDATE_MAC_FILTERS);
    }

    status apply(const control_request& r) noexcept {
        vmxnet3::rx_filter_conf& f = port_.rx_filter();
        switch (r.op) {
        case control_op::set_mac: {
            const std::uint8_t m[6] = {r.mac[0], r.mac[1], r.mac[2], r.mac[3], r.mac[4], r.mac[5]};
            port_.write_mac(m);
            std::uint8_t back[6];
            port_.read_mac(back);
            return std::memcmp(m, back, 6) == 0
                       ? status::success()
                       : status{errc::refused, "vmxnet3: the hypervisor refused the MAC address"};
        }
        case control_op::add_vlan:
        case control_op::del_vlan:
            if (r.vlan > max_vlan_id) {
                return {errc::invalid_argument, "vmxnet3: VLAN id above 4095"};
            }
            f.set_vlan(r.vlan, r.op == control_op::add_vlan);
            if (r.op == control_op::add_vlan) {
                // Untagged frames stay allowed once a VLAN filter is on: Linux's vmxnet3
                // keeps VID 0 in the table (vmxnet3_restore_vlan), and a device that filters
                // by the table drops untagged frames without it.
                f.set_vlan(0, true);
            }
            return command(vmxnet3::cmd::UPDATE_VLAN_FILTERS);
        case control_op::set_rx_mode:
            // npa::rx_mode bits are vmxnet3's VMXNET3_RXM_* bits, one for one.
            f.rxMode = r.mode & (vmxnet3::rxm::UCAST | vmxnet3::rxm::MCAST | vmxnet3::rxm::BCAST |
                                 vmxnet3::rxm::ALL_MULTI | vmxnet3::rxm::PROMISC);
            return command(vmxnet3::cmd::UPDATE_RX_MODE);
        case control_op::set_mcast_list: {
            const vmxnet3::dma_block t = port_.mcast_table();
            if (r.mcast_count > max_mcast_addrs || std::size_t{r.mcast_count} * 6 > t.size) {
                return {errc::invalid_argument, "vmxnet3: multicast list longer than the table"};
            }
            for (std::uint32_t i = 0; i < r.mcast_count; ++i) {
                std::memcpy(t.virt + i * 6, r.mcast[i].data(), 6);
            }
            f.mfTablePA = t.iova;
            f.mfTableLen = static_cast<std::uint16_t>(r.mcast_count * 6);
            return command(vmxnet3::cmd::UPDATE_MAC_FILTERS);
        }
        case control_op::set_mtu:
            // The device reads Vmxnet3_MiscConf::mtu at ACTIVATE_DEV (Linux vmxnet3 changes
            // the MTU by quiescing and activating again). It is written here so the shared
            // area says what the guest asked; it takes effect at the next activation,
            // which the shell does with the same MTU when it attaches the plugin.
            if (r.mtu < vmxnet3::MIN_MTU || r.mtu > vmxnet3::MAX_MTU) {
                return {errc::invalid_argument, "vmxnet3: MTU outside 60..9000"};
            }
            port_.misc().mtu = r.mtu;
            return status::success();
        case control_op::set_rss:
            // RSS is the plugin's: with more than one queue it asks for UPT1_F_RSS and hands
            // the device a UPT1_RSSConf (the default key, a table spreading hashes over the
            // queues). A key or table of the shell's own is not taken.
            return r.rss.hash_types == 0
                       ? status::success()
                       : status{errc::not_supported, "vmxnet3: custom RSS configuration not supported"};
        }
        return {errc::invalid_argument, "vmxnet3: unknown control request"};
    }

    // An UPDATE_* command, written and not read back (see the file comment); only a device
    // that is gone is reported (VRRS reads all ones).
    status command(std::uint32_t c) noexcept {
        port_.issue(c);
        return port_.present() ? status::success()
                               : status{errc::removed, "vmxnet3 control: device removed"};
    }

    vmxnet3::control_port port_;
};
static_assert(control_channel<vmxnet3_control>);

} // namespace npa
