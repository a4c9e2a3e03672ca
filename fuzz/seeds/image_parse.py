#!/usr/bin/env python3
"""Writes the seed inputs of image_parse_fuzz (fuzz/corpus/image_parse_fuzz/).

An input is a plugin image file (include/npa/image/format.hpp), little-endian x86-64:
header (216 bytes), segment table, relocations (offset, addend, kind, symbol), memory.
The seeds are small images that parse: one code page and one data page with two
relative relocations; the same with a read-only page between; and one cut short.
The built simnic image (build/<dir>/images/simnic_image.npai) is a seed too when given
as the first argument.
"""
import os
import shutil
import struct
import sys

PAGE = 4096
R, W, X = 1, 2, 4


def image(segments, relocs, mem_size, entry, name=b"seed"):
    hdr_size = 216
    seg_bytes = b"".join(struct.pack("<IIII", o, s, p, 0) for o, s, p in segments)
    reloc_off = hdr_size + len(seg_bytes)
    rel_bytes = b"".join(struct.pack("<QQII", o, a, 1, 0) for o, a in relocs)
    mem_off = reloc_off + len(rel_bytes)
    mem = bytes(mem_size // 2)  # the rest is .bss
    file_size = mem_off + len(mem)
    hdr = struct.pack("<IHHHHIIIIIIIIIII", 0x4941504E, 1, 0, 62, len(segments), hdr_size,
                      file_size, 0xFFFF0001, 1, mem_size, mem_off, len(mem), reloc_off,
                      len(relocs), entry, 0)
    hdr += name.ljust(32, b"\0") + bytes(128)
    assert len(hdr) == hdr_size
    return hdr + seg_bytes + rel_bytes + mem


def main():
    out = os.path.join(os.path.dirname(__file__), "..", "corpus", "image_parse_fuzz")
    os.makedirs(out, exist_ok=True)
    seeds = {
        "two_segments": image([(0, PAGE, R | X), (PAGE, PAGE, R | W)],
                              [(PAGE, 0x10), (PAGE + 8, 0x20)], 2 * PAGE, 0x40),
        "relro_between": image([(0, PAGE, R | X), (PAGE, PAGE, R), (2 * PAGE, 2 * PAGE, R | W)],
                               [(PAGE, 0), (2 * PAGE + 8, PAGE)], 4 * PAGE, 0),
    }
    seeds["cut_short"] = seeds["two_segments"][:300]
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    if len(sys.argv) > 1:
        shutil.copy(sys.argv[1], os.path.join(out, "simnic_image"))


if __name__ == "__main__":
    main()
