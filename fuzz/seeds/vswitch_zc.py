#!/usr/bin/env python3
"""Writes the seed inputs of vswitch_zc_fuzz (fuzz/corpus/vswitch_zc_fuzz/).

An input (fuzz/vswitch_zc_fuzz.cpp) is a program of ops, each an op byte (v % 8) and a
port byte (v % 2): 0 send, 1 release, 2 alloc, 3 receive, 4 poll, 5 a word written in the
port region, 6 a word written in the pool's free ring, 7 the front end leaves and a new
one attaches. A buffer index (ops 0 and 1) is a choice byte (v % 4: 0-1 from the hand,
then an index byte; 2 the last one it gave away; 3 a raw u32).
"""
import os
import struct
import sys

ALLOC, SEND, RELEASE, RECEIVE, POLL, SCRIBBLE, FREE_RING, REATTACH = 2, 0, 1, 3, 4, 5, 6, 7


def op(code, port, body=b""):
    return bytes([code, port]) + body


def alloc(port, n):
    return op(ALLOC, port, bytes([n - 1]))


def receive(port, n):
    return op(RECEIVE, port, bytes([n - 1]))


def from_hand():
    return b"\x00\x00"


def send(port, picks, to):
    """picks: encoded buffer choices; each frame 60 bytes with a header to port `to`."""
    body = bytes([len(picks) - 1])
    for p in picks:
        body += p + b"\x01\x00" + b"\x01" + bytes([to])
    return op(SEND, port, body)


def release(port, picks):
    return op(RELEASE, port, bytes([len(picks) - 1]) + b"".join(picks))


def exchange():
    out = alloc(0, 32) + alloc(1, 32)
    out += send(0, [from_hand()] * 8, 1) + op(POLL, 0)
    out += receive(1, 32) + release(1, [from_hand()] * 8) + op(POLL, 0)
    out += send(1, [from_hand()] * 8, 0) + send(1, [from_hand()] * 4, 2) + op(POLL, 0)
    out += receive(0, 32) + release(0, [from_hand()] * 12) + op(POLL, 0)
    return out + op(REATTACH, 0) + op(POLL, 0)


def hostile():
    out = alloc(0, 4) + send(0, [from_hand()], 1)
    out += send(0, [b"\x02", b"\x03" + struct.pack("<I", 8192), b"\x03" + struct.pack("<I", 0xFFFFFFFF)], 1)
    out += op(POLL, 0) + release(0, [b"\x02", from_hand(), b"\x02"]) + op(POLL, 0)
    out += receive(1, 8) + release(1, [from_hand(), b"\x02"]) + op(POLL, 1)
    return out


def scribble():
    out = alloc(0, 16) + send(0, [from_hand()] * 4, 1)
    out += op(SCRIBBLE, 0, struct.pack("<II", 4160, 0x7FFFFFFF)) + op(POLL, 0)
    out += op(FREE_RING, 1, struct.pack("<II", 64, 12345)) + op(POLL, 0)
    out += op(SCRIBBLE, 1, struct.pack("<II", 0, 0xFFFFFFF0)) + op(POLL, 0) + op(REATTACH, 1) + op(POLL, 0)
    return out


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "corpus", "vswitch_zc_fuzz")
    os.makedirs(out, exist_ok=True)
    for name, data in (("exchange", exchange()), ("hostile", hostile()), ("scribble", scribble())):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
