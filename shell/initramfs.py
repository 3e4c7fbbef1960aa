#!/usr/bin/env python3
"""Packs a directory into a gzip-compressed initramfs (the kernel's "newc" cpio
format), for shell/arm64vm.sh; this machine has no cpio.

    python3 shell/initramfs.py DIR OUT.gz

Files, directories and symlinks are packed with their modes, owned by root.
"""

import gzip
import os
import stat
import sys


def header(ino, mode, nlink, size, name):
    fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, len(name) + 1, 0]
    return b"070701" + b"".join(b"%08x" % field for field in fields)


def pad(length):
    return b"\0" * (-length % 4)


def pack(top, out):
    ino = 1
    entries = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(dirnames) + sorted(filenames):
            entries.append(os.path.join(dirpath, name))
    for path in entries:
        name = os.path.relpath(path, top).encode()
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            data = os.readlink(path).encode()
        elif stat.S_ISREG(info.st_mode):
            with open(path, "rb") as f:
                data = f.read()
        elif stat.S_ISDIR(info.st_mode):
            data = b""
        else:
            raise SystemExit(f"initramfs: {path} is neither a file, a directory nor a symlink")
        nlink = 2 if stat.S_ISDIR(info.st_mode) else 1
        head = header(ino, info.st_mode, nlink, len(data), name)
        out.write(head + name + b"\0" + pad(len(head) + len(name) + 1))
        out.write(data + pad(len(data)))
        ino += 1
    trailer = b"TRAILER!!!"
    head = header(0, 0, 1, 0, trailer)
    out.write(head + trailer + b"\0" + pad(len(head) + len(trailer) + 1))


def main(argv):
    if len(argv) != 3:
        print("usage: python3 shell/initramfs.py DIR OUT.gz", file=sys.stderr)
        return 2
    with gzip.open(argv[2], "wb", compresslevel=6) as out:
        pack(argv[1], out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
