#!/usr/bin/python3
"""Corrupts the BPF programs embedded in rcptwall binaries (vmtest --break).

libbpf skeletons embed the BPF object (an ELF file with e_machine EM_BPF)
in the binary that uses them. This finds every such embedded object and
replaces the first instruction of each of its program sections with an
opcode that does not exist (0xff), so the kernel's verifier must reject
every program at load time. It shows that a BPF load failing in the VM or
on the host makes `make vmtest` fail.

    break-bpf.py FILE...   (files are changed in place; exit 1 if none
                            of them holds a BPF program)
"""
import struct
import sys

EM_BPF = 247
SHF_EXECINSTR = 0x4
ELF64_LE = b"\x7fELF\x02\x01"


def program_sections(data, base):
    """Yields (offset, size) of executable sections of the ELF at base."""
    hdr = data[base:base + 64]
    if len(hdr) < 64:
        return
    e_machine = struct.unpack_from("<H", hdr, 18)[0]
    if e_machine != EM_BPF:
        return
    e_shoff = struct.unpack_from("<Q", hdr, 40)[0]
    e_shentsize, e_shnum = struct.unpack_from("<HH", hdr, 58)
    if e_shentsize != 64 or e_shnum > 4096:
        return
    for i in range(e_shnum):
        sh = base + e_shoff + i * e_shentsize
        if sh + 64 > len(data):
            return
        flags = struct.unpack_from("<Q", data, sh + 8)[0]
        offset, size = struct.unpack_from("<QQ", data, sh + 24)
        if flags & SHF_EXECINSTR and size >= 8 and base + offset + size <= len(data):
            yield base + offset, size


def corrupt(path):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    broken = 0
    pos = data.find(ELF64_LE, 1)  # offset 0 is the binary's own header
    while pos != -1:
        for offset, _size in program_sections(data, pos):
            data[offset:offset + 8] = b"\xff" + b"\x00" * 7
            broken += 1
        pos = data.find(ELF64_LE, pos + 1)
    if broken:
        with open(path, "wb") as f:
            f.write(data)
    return broken


def main(paths):
    total = 0
    for path in paths:
        n = corrupt(path)
        print(f"vmtest: BREAK: {path}: {n} BPF program section(s) corrupted")
        total += n
    return 0 if total else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
