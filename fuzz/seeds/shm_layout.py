#!/usr/bin/env python3
"""Writes the seed inputs of shm_layout_fuzz (fuzz/corpus/shm_layout_fuzz/).

An input (fuzz/shm_layout_fuzz.cpp) is a switch byte (bit 0: set total_bytes to the
region's size, bit 1: then recompute the checksum) and the region's bytes: the 384-byte
header of include/npa/shm/layout.hpp, the two side lines, the objects.
"""
import os
import struct
import sys

MAGIC, VERSION, HEADER, OBJECTS = 0x31304D485341504E, 2, 384, 512
RING, POOL = 1, 2


def fnv1a64(b):
    h = 0xCBF29CE484222325
    for x in b:
        h = ((h ^ x) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def ring_bytes(cap, elem):
    return (192 + cap * elem + 63) // 64 * 64


def region(objects, total=None, version=VERSION, magic=MAGIC, flags=0):
    """objects: (kind, elem, offset, bytes, count, headroom, link, tag)."""
    end = max([OBJECTS] + [o[2] + o[3] for o in objects])
    total = end if total is None else total
    h = struct.pack("<QIIQQQII", magic, version, HEADER, total, 0x1234, 99, 42, len(objects))
    for o in objects + [(0,) * 8] * (8 - len(objects)):
        h += struct.pack("<IIQQIIII", *o)
    h += struct.pack("<Q", 0)
    h += struct.pack("<Q", fnv1a64(h))
    assert len(h) == HEADER
    body = h + bytes(total - HEADER)
    return bytes([flags]) + body


def stream(pool=4, buf=64, cap=64, ring=64, count=None):
    free = (RING, 4, OBJECTS, ring_bytes(cap, 4), cap, 0, 0, 1)
    p = (POOL, buf, free[2] + free[3], pool * buf, pool if count is None else count, 32, 0, 1)
    r = (RING, 8, p[2] + p[3], ring_bytes(ring, 8), ring, 0, 0, 2)
    return [free, p, r]


def main(out):
    os.makedirs(out, exist_ok=True)
    seeds = {
        "good": region(stream()),
        "good_ring_only": region([(RING, 8, OBJECTS, ring_bytes(64, 8), 64, 0, 0, 0)]),
        "good_fix_flags": region(stream(), flags=3),
        "wrong_version": region(stream(), version=VERSION + 1),
        "wrong_magic": region(stream(), magic=0x4141414141414141),
        "wrong_size": region(stream(), total=OBJECTS),
        "not_pow2": region([(RING, 8, OBJECTS, ring_bytes(64, 8), 48, 0, 0, 0)]),
        "overlap": region([(RING, 8, OBJECTS, ring_bytes(64, 8), 64, 0, 0, 0),
                           (RING, 8, OBJECTS + 64, ring_bytes(64, 8), 64, 0, 0, 0)]),
        "pool_mismatch": region(stream(count=5)),
        "empty": b"\x03",
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else
         os.path.join(os.path.dirname(__file__), "..", "corpus", "shm_layout_fuzz"))
