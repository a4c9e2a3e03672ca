#!/usr/bin/env python3
"""Writes the seed inputs of af_xdp_rings_fuzz (fuzz/corpus/af_xdp_rings_fuzz/).

An input (fuzz/af_xdp_rings_fuzz.cpp) starts with the queue count (u8: 1 + v % 2), then
operations of a queue byte and an op byte: 0 the kernel takes fill addresses and writes RX
descriptors, 1 it takes TX descriptors and writes completions, 2 an index jumps, 3 an RX
burst, 4 a TX burst, 5 tx_reap, 6 the shell's buffer limit, 7 detach and attach again.
"""
import os
import struct
import sys

CHUNK, HEADROOM = 2048, 256
UMEM = 128 * CHUNK  # the target's UMEM: 128 chunks


def frame(n):
    return (bytes.fromhex("02000000000102000000000a0800") + bytes(range(n)))[:n]


def rx(q, take, descs):
    """descs: (how, index or raw addr, delta, length, options, frame bytes)."""
    out = struct.pack("<BBBB", q, 0, take, len(descs))
    for how, which, delta, length, options, data in descs:
        out += bytes([how])
        if how % 4 == 0:
            out += struct.pack("<Q", which)
        else:
            out += bytes([which]) + (struct.pack("<H", delta) if how % 4 == 3 else b"")
        out += b"\x01" + struct.pack("<H", length - 60) + struct.pack("<I", options)
        if how % 4 != 0 or which < UMEM:  # the frame, only for an address inside the UMEM
            out += bytes([len(data)]) + data
    return out


def completions(q, take, count):
    return struct.pack("<BBBB", q, 1, take, count) + b"\x01\x00" * count


def op(q, code, *args):
    return bytes([q, code]) + b"".join(args)


def tx(q, lengths):
    return op(q, 4, bytes([len(lengths) - 1]),
              b"".join(b"\x01" + struct.pack("<H", n - 60) for n in lengths))


ok = lambda n: (1, 0, 0, n, 0, frame(min(n, 255)))
seeds = {
    "rx_frames": b"\x00" + rx(0, 8, [ok(60), ok(64), ok(128), ok(1500)]) + op(0, 3, b"\x1f"),
    "tx_complete": b"\x00" + tx(0, [60, 64, 100, 1400]) + completions(0, 4, 4)
                   + op(0, 5),
    # Bad descriptors: outside the UMEM, moved within the chunk, too long, never posted.
    "rx_bad": b"\x00" + rx(0, 8, [(0, 1 << 40, 0, 64, 0, b""), (3, 0, 40, 100, 0, frame(100)),
                                  (3, 0, 1800, 300, 0, b""), (0, 100 * CHUNK + HEADROOM, 0, 64, 7, b""),
                                  ok(60)]) + op(0, 3, b"\x1f"),
    # A completion producer far ahead of the ring (tx_reap read 2^32 entries).
    "cq_runaway": b"\x00" + tx(0, [60, 60]) + op(0, 2, b"\x01", struct.pack("<I", 0x80000000), b"\x01")
                  + op(0, 5),
    # Queue 0's fill chunk answered on queue 1's RX ring.
    "cross_queue": b"\x01" + rx(1, 0, [(0, HEADROOM, 0, 64, 0, frame(64))]) + op(1, 3, b"\x08")
                   + rx(0, 4, [ok(64)]) + op(0, 3, b"\x08"),
}
out = sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus/af_xdp_rings_fuzz"
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as fh:
        fh.write(data)
