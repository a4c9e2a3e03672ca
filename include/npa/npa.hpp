// npa/npa.hpp: everything a user of the core needs, in one include: the shell and its
// switch engine, control state and stats, the concepts a plugin meets, rings and buffers.
// (npa/fmt.hpp, the one optional header, needs {fmt} and stays out.)
#pragma once

#include <npa/buffer/fixed_pool.hpp>
#include <npa/buffer/memory.hpp>
#include <npa/buffer/packet_buffer.hpp>
#include <npa/capabilities.hpp>
#include <npa/concepts/buffer.hpp>
#include <npa/concepts/buffer_pool.hpp>
#include <npa/concepts/control_channel.hpp>
#include <npa/concepts/irq_source.hpp>
#include <npa/concepts/memory_backing.hpp>
#include <npa/concepts/plugin.hpp>
#include <npa/concepts/shell_api.hpp>
#include <npa/config.hpp>
#include <npa/control.hpp>
#include <npa/control_state.hpp>
#include <npa/offload.hpp>
#include <npa/ring/gen_ring.hpp>
#include <npa/ring/index_ring.hpp>
#include <npa/shell.hpp>
#include <npa/stats.hpp>
#include <npa/status.hpp>
#include <npa/switch.hpp>
