#!/usr/bin/env python3
"""Writes the seed inputs of af_packet_rx_fuzz (fuzz/corpus/af_packet_rx_fuzz/).

An input is a program (fuzz/af_packet_rx_fuzz.cpp): op 0 hands over the kernel's next
block (u16 length, then the block image), op 1 a block chosen by index, op 2 runs an RX
burst (u8 budget), op 3 sets the shell (u8 buffer limit, u16 capacity, u8 headroom).
Blocks are laid out as the kernel writes them (linux/if_packet.h, TPACKET_V3): a 48-byte
block descriptor, then packets of a 48-byte tpacket3_hdr with the frame at tp_mac,
8-byte aligned.
"""
import os
import struct
import sys

USER, CSUMNOTREADY, VLAN_VALID, VLAN_TPID_VALID, CSUM_VALID = 1, 8, 16, 64, 128
MAC_OFF = 82  # where the kernel puts an Ethernet header behind the packet header


def frame(n, ethertype=0x0800):
    eth = bytes.fromhex("02000000000102000000000a") + struct.pack(">H", ethertype)
    body = bytes([0x45, 0]) + struct.pack(">H", n - 14) + bytes(5) + b"\x11" + bytes(10)
    udp = struct.pack(">HHHH", 1000, 2000, n - 34, 0)
    return (eth + body + udp + bytes(range(n - 42)))[:n]


def block(pkts, bad_next_at=None, first=48):
    """pkts: (frame bytes, tp_status, vlan_tci, vlan_tpid, tp_len or None); `first` is
    offset_to_first_pkt (the packets are placed there)."""
    body = bytearray(first - 48)
    off = first
    for i, (f, st, tci, tpid, tp_len) in enumerate(pkts):
        size = (MAC_OFF + len(f) + 7) & ~7
        nxt = 0 if i + 1 == len(pkts) or i == bad_next_at else size
        hdr = struct.pack("<IIIIIIHHIIHH", nxt, 0, 0, len(f), len(f) if tp_len is None else tp_len,
                          st, MAC_OFF, MAC_OFF + 14, 0, tci, tpid, 0) + bytes(8)
        assert len(hdr) == 48
        body += hdr + bytes(MAC_OFF - 48) + f + bytes(size - MAC_OFF - len(f))
        off += size
    desc = struct.pack("<IIIIII", 1, 0, USER, len(pkts), first, off) + bytes(24)
    assert len(desc) == 48
    img = desc + body
    return struct.pack("<BH", 0, len(img)) + img


def burst(n):
    return struct.pack("<BB", 2, n)


def shell(limit, cap, headroom):
    return struct.pack("<BBHB", 3, limit, cap - 14, headroom)


plain = lambda n: (frame(n), 0, 0, 0, None)
seeds = {
    "three_frames": block([plain(60), plain(98), plain(124)]) + burst(32),
    "vlan_and_csum": block([
        (frame(64), VLAN_VALID | VLAN_TPID_VALID, 0x2005, 0x88A8, None),
        (frame(80), VLAN_VALID, 0x0007, 0, None),
        (frame(90), CSUMNOTREADY, 0, 0, None),
        (frame(70), CSUM_VALID, 0, 0, None),
    ]) + burst(8),
    "short_pool": shell(2, 100, 64) + block([plain(60), plain(99), plain(70)])
                  + block([plain(64), plain(64)]) + burst(4) + burst(4) + burst(4),
    "bad_headers": block([plain(60), (frame(70), 0, 0, 0, 71), plain(80), plain(66)],
                         bad_next_at=2) + block([plain(60)]) + burst(16),
    # A packet header at an offset it cannot be read at (reproducer: it was read there).
    "misaligned_offset": block([plain(60), plain(60)], first=51) + block([plain(62)]) + burst(8),
}
out = sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus/af_packet_rx_fuzz"
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as fh:
        fh.write(data)
