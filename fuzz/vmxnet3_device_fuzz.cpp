// fuzz/vmxnet3_device_fuzz.cpp: the vmxnet3 plugin against a hostile vmxnet3 device model.
//
// Device-writable memory on a vmxnet3 (npa/plugins/vmxnet3/defs.hpp, after Linux vmxnet3_defs.h): the
// TX completion ring and the RX completion ring of every queue (Vmxnet3_TxCompDesc,
// Vmxnet3_RxCompDesc: gen, txdIdx/rxdIdx, rqID, len, err/eop/sop, checksum and RSS
// fields), and the parts of the queue descriptors the device owns at run time:
// txThreshold (Vmxnet3_TxQueueCtrl), updateRxProd (Vmxnet3_RxQueueCtrl), the queue
// status (Vmxnet3_QueueStatus: stopped, error) and the shared area's event causes
// (Vmxnet3_DriverShared::ecr: TQERR, RQERR, LINK ...). Registers (BAR1, read through the
// model's register_fault): VRRS/UVRS (revision, and all ones for a removed device), CMD
// (the result of ACTIVATE_DEV, GET_QUEUE_STATUS, GET_LINK and the control path's
// commands), ECR (never read by the plugin), ICR and the MAC registers.
#include "device_fuzz.hpp"

#include <npa/plugins/vmxnet3/plugin.hpp>
#include <npa/control/vmxnet3.hpp>
#include <npa/sim/vmxnet3_rig.hpp>

#include <cstddef>

namespace {

struct vmxnet3_hostile {
    void install(npa::sim::vmxnet3_rig& rig, npa::sim::register_fault f) const noexcept {
        rig.device().set_register_fault(f);
    }

    void memory(npa::sim::vmxnet3_rig& rig, bool attached, std::uint16_t queues,
                npa::fuzz::input& in) const {
        namespace v = npa::vmxnet3;
        const auto q = static_cast<std::uint16_t>(in.below(queues));
        if (!attached)
            return;
        v::window& w = rig.window();
        v::tx_queue_desc* txd = w.txq(q);
        v::rx_queue_desc* rxd = w.rxq(queues, q);
        if (txd == nullptr || rxd == nullptr)
            return;
        auto ring = [&](npa::iova_t at, std::size_t entries) {
            const std::size_t bytes = entries * 16;
            if (bytes != 0 && rig.memory().contains(at, bytes)) {
                npa::fuzz::write_slot(rig.memory().translate(at, bytes), bytes, 0, in);
            }
        };
        switch (in.u8() % 5) {
        case 0: ring(txd->conf.compRingBasePA, txd->conf.compRingSize); break;
        case 1:
        case 2: ring(rxd->conf.compRingBasePA, rxd->conf.compRingSize); break;
        case 3:
            if (in.flag()) {
                txd->ctrl.txThreshold = in.u32();
            } else if (v::driver_shared* sh = rig.device().driver_area(); sh != nullptr) {
                sh->ecr = in.u32();  // event causes: TQERR, RQERR, LINK ... (and garbage)
            }
            break;
        default:
            if (in.flag()) {
                rxd->ctrl.updateRxProd = in.u8();
            } else {
                auto* st =
                    reinterpret_cast<std::uint8_t*>(in.flag() ? static_cast<void*>(&txd->status)
                                                              : static_cast<void*>(&rxd->status));
                const auto b = in.bytes(sizeof(v::queue_status));
                for (std::size_t i = 0; i < b.size(); ++i)
                    st[i] = b[i];
            }
            break;
        }
    }

    void registers(npa::sim::vmxnet3_rig&, npa::fuzz::register_lies& lies, std::uint16_t,
                   npa::fuzz::input& in) const {
        namespace r = npa::vmxnet3::reg;
        constexpr auto vd = static_cast<std::uint32_t>(npa::vmxnet3::bar::vd);
        static constexpr npa::fuzz::register_lies::reg_ref regs[] = {
            {vd, r::VRRS}, {vd, r::UVRS}, {vd, r::CMD},  {vd, r::CMD},  {vd, r::ECR},
            {vd, r::ECR},  {vd, r::ICR},  {vd, r::MACL}, {vd, r::MACH},
        };
        lies.choose(in, regs);
    }

    void control(npa::sim::vmxnet3_rig& rig, npa::fuzz::input& in) const {
        npa::vmxnet3_control ctl(rig.device().control_port());
        const npa::control_request req = npa::fuzz::control_request_from(in, rig.guest_mac);
        (void)ctl.submit(req);
        (void)ctl.mac();
        (void)rig.window().link();
    }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return npa::fuzz::run_device_program<npa::sim::vmxnet3_rig, npa::vmxnet3_plugin>(
        data, size, vmxnet3_hostile{});
}
