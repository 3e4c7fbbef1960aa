#!/usr/bin/env python3
"""Checks that a built ocwrap binary is what its npm platform package promises,
by reading the file itself (no tool of the target platform is needed):

    python3 shell/binfmt.py PLATFORM FILE      (PLATFORM as in @ocwrap/PLATFORM)

  linux-*   ELF64 for the package's machine, statically linked: no program
            interpreter and no needed shared library;
  darwin-*  a thin Mach-O for the package's CPU, its minimum macOS (LC_BUILD_VERSION
            or LC_VERSION_MIN_MACOSX) no higher than the package states, every
            library it loads under /usr/lib (libSystem, never a framework), and
            for arm64 an embedded code signature with a code directory (the
            ad-hoc signature arm64 macOS requires before it runs anything), and
            the parts of the promise only macOS needs linked in: the guard (its
            message), the marker scan of teardown (its message) and the idle count
            (the `proc_pidfdinfo` import);
  win32-*   PE32+ for the package's machine, a console program, importing only
            DLLs that every Windows has (no MinGW runtime DLL beside it).

Prints one line saying what the file is; exits 1 with the reason when it is not
what it must be, 2 on a usage error.
"""

import struct
import sys

# The highest minimum macOS each Apple package may ask for (docs/DESIGN.md, "npm
# packages": the oldest macOS each CPU's users still run that Rust supports).
MAX_MINOS = {"darwin-arm64": (11, 0, 0), "darwin-x64": (10, 12, 0)}

ELF_MACHINES = {"linux-x64": 62, "linux-arm64": 183}  # EM_X86_64, EM_AARCH64
MACHO_CPUS = {"darwin-x64": 0x01000007, "darwin-arm64": 0x0100000C}
PE_MACHINES = {"win32-x64": 0x8664, "win32-arm64": 0xAA64}

# DLLs of Windows itself (and the API sets that resolve to them). A DLL outside
# this set would have to ship beside ocwrap.exe, and the package carries none.
WINDOWS_DLLS = {
    "advapi32.dll", "bcrypt.dll", "bcryptprimitives.dll", "crypt32.dll",
    "kernel32.dll", "kernelbase.dll", "msvcrt.dll", "ntdll.dll", "ole32.dll",
    "oleaut32.dll", "iphlpapi.dll", "secur32.dll", "shell32.dll", "synchronization.dll",
    "ucrtbase.dll", "user32.dll", "userenv.dll", "ws2_32.dll", "psapi.dll",
}


# What must be in every Apple binary, so that a build that lost a macOS-only part
# of the promise fails: (bytes, what they show).
MACHO_PARTS = [
    (b"its guard tore down", "the guard"),
    (b"carrying the tree marker outside the walk", "teardown's marker scan"),
    (b"_proc_pidfdinfo", "the idle count (proc_pidfdinfo)"),
]


class Bad(Exception):
    pass


def u16(data, off, endian="<"):
    return struct.unpack_from(endian + "H", data, off)[0]


def u32(data, off, endian="<"):
    return struct.unpack_from(endian + "I", data, off)[0]


def u64(data, off):
    return struct.unpack_from("<Q", data, off)[0]


def cstring(data, off):
    end = data.index(b"\0", off)
    return data[off:end].decode("utf-8", "replace")


def check_elf(platform, data):
    if data[:4] != b"\x7fELF":
        raise Bad("not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise Bad("not a little-endian ELF64 file")
    machine = u16(data, 18)
    if machine != ELF_MACHINES[platform]:
        raise Bad(f"ELF machine {machine}, not {ELF_MACHINES[platform]}")
    phoff, phentsize, phnum = u64(data, 32), u16(data, 54), u16(data, 56)
    dynamic = None
    for i in range(phnum):
        at = phoff + i * phentsize
        kind = u32(data, at)
        if kind == 3:  # PT_INTERP
            raise Bad(f"dynamically linked: program interpreter {cstring(data, u64(data, at + 8))}")
        if kind == 2:  # PT_DYNAMIC
            dynamic = (u64(data, at + 8), u64(data, at + 32))
    if dynamic:
        offset, size = dynamic
        for at in range(offset, offset + size, 16):
            tag = u64(data, at)
            if tag == 0:
                break
            if tag == 1:  # DT_NEEDED
                raise Bad("needs a shared library (DT_NEEDED)")
    kind = {2: "executable", 3: "position-independent executable"}.get(u16(data, 16), "object")
    name = {62: "x86-64", 183: "aarch64"}[machine]
    return f"ELF64 {name} {kind}, statically linked"


def version(packed):
    return (packed >> 16, (packed >> 8) & 0xFF, packed & 0xFF)


def shown_version(v):
    return ".".join(str(part) for part in v)


def check_macho(platform, data):
    if data[:4] != b"\xcf\xfa\xed\xfe":
        if data[:4] in (b"\xca\xfe\xba\xbe", b"\xbe\xba\xfe\xca"):
            raise Bad("a universal (fat) Mach-O; the package carries one thin binary")
        raise Bad("not a 64-bit little-endian Mach-O file")
    cpu = u32(data, 4)
    if cpu != MACHO_CPUS[platform]:
        raise Bad(f"Mach-O CPU type {cpu:#x}, not {MACHO_CPUS[platform]:#x}")
    filetype, ncmds = u32(data, 12), u32(data, 16)
    if filetype != 2:  # MH_EXECUTE
        raise Bad(f"Mach-O file type {filetype}, not an executable")
    at = 32
    minos = None
    dylibs = []
    signature = None
    for _ in range(ncmds):
        cmd, size = u32(data, at), u32(data, at + 4)
        if size < 8:
            raise Bad("a load command with a size below 8")
        if cmd == 0x32:  # LC_BUILD_VERSION
            if u32(data, at + 8) != 1:  # PLATFORM_MACOS
                raise Bad(f"built for Apple platform {u32(data, at + 8)}, not macOS")
            minos = version(u32(data, at + 12))
        elif cmd == 0x24:  # LC_VERSION_MIN_MACOSX
            minos = version(u32(data, at + 8))
        elif cmd in (0xC, 0x80000018, 0x8000001F, 0x20, 0x80000023):  # the LC_*_DYLIB loads
            dylibs.append(cstring(data, at + u32(data, at + 8)))
        elif cmd == 0x1D:  # LC_CODE_SIGNATURE
            signature = (u32(data, at + 8), u32(data, at + 12))
        at += size
    if minos is None:
        raise Bad("no minimum macOS version (LC_BUILD_VERSION or LC_VERSION_MIN_MACOSX)")
    if minos > MAX_MINOS[platform]:
        raise Bad(f"asks for macOS {shown_version(minos)}, above {shown_version(MAX_MINOS[platform])}")
    if not dylibs:
        raise Bad("loads no library (not even libSystem)")
    for lib in dylibs:
        if not lib.startswith("/usr/lib/") or ".framework/" in lib:
            raise Bad(f"loads {lib}, which is not a system library under /usr/lib")
    signed = "unsigned"
    if signature:
        offset, size = signature
        blob = data[offset : offset + size]
        if len(blob) < 12 or u32(blob, 0, ">") != 0xFADE0CC0:  # CSMAGIC_EMBEDDED_SIGNATURE
            raise Bad("LC_CODE_SIGNATURE points at no embedded signature")
        count = u32(blob, 8, ">")
        directory = None
        for i in range(count):
            _slot, where = struct.unpack_from(">II", blob, 12 + 8 * i)
            if u32(blob, where, ">") == 0xFADE0C02:  # CSMAGIC_CODEDIRECTORY
                directory = where
        if directory is None:
            raise Bad("the code signature has no code directory")
        flags = u32(blob, directory + 12, ">")
        signed = "signed ad hoc" if flags & 0x2 else "signed"
    elif platform == "darwin-arm64":
        raise Bad("no code signature: arm64 macOS runs no unsigned binary")
    missing = [what for needle, what in MACHO_PARTS if needle not in data]
    if missing:
        raise Bad(f"not linked in: {', '.join(missing)}")
    cpu_name = {0x01000007: "x86_64", 0x0100000C: "arm64"}[cpu]
    parts = ", ".join(what for _, what in MACHO_PARTS)
    return f"Mach-O {cpu_name} executable, macOS {shown_version(minos)} or later, loads {', '.join(dylibs)}, {signed}; linked: {parts}"


def check_pe(platform, data):
    if data[:2] != b"MZ":
        raise Bad("not a PE file (no MZ header)")
    pe = u32(data, 0x3C)
    if data[pe : pe + 4] != b"PE\0\0":
        raise Bad("no PE signature")
    machine, nsections = u16(data, pe + 4), u16(data, pe + 6)
    if machine != PE_MACHINES[platform]:
        raise Bad(f"PE machine {machine:#x}, not {PE_MACHINES[platform]:#x}")
    optional = pe + 24
    if u16(data, optional) != 0x20B:
        raise Bad("not PE32+")
    subsystem = u16(data, optional + 68)
    if subsystem != 3:  # IMAGE_SUBSYSTEM_WINDOWS_CUI
        raise Bad(f"subsystem {subsystem}, not a console program")
    sections = optional + u16(data, pe + 20)
    table = []
    for i in range(nsections):
        at = sections + 40 * i
        vsize, vaddr, rawsize, rawptr = struct.unpack_from("<IIII", data, at + 8)
        table.append((vaddr, max(vsize, rawsize), rawptr))

    def offset(rva):
        for vaddr, size, rawptr in table:
            if vaddr <= rva < vaddr + size:
                return rva - vaddr + rawptr
        raise Bad(f"RVA {rva:#x} lies in no section")

    imports = []
    directory = u32(data, optional + 112 + 8)  # data directory 1: imports
    if directory:
        at = offset(directory)
        while True:
            name_rva = u32(data, at + 12)
            if name_rva == 0:
                break
            imports.append(cstring(data, offset(name_rva)).lower())
            at += 20
    for dll in imports:
        if dll not in WINDOWS_DLLS and not dll.startswith(("api-ms-win-", "ext-ms-win-")):
            raise Bad(f"imports {dll}, which Windows does not have")
    name = {0x8664: "x86-64", 0xAA64: "arm64"}[machine]
    return f"PE32+ {name} console executable, imports {', '.join(imports)}"


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    platform, path = argv[1], argv[2]
    checks = {**{p: check_elf for p in ELF_MACHINES}, **{p: check_macho for p in MACHO_CPUS},
              **{p: check_pe for p in PE_MACHINES}}
    if platform not in checks:
        print(f"binfmt: unknown platform {platform!r} (one of {', '.join(checks)})", file=sys.stderr)
        return 2
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        print(f"binfmt: {platform}: cannot read {path}: {e}", file=sys.stderr)
        return 1
    try:
        print(f"binfmt: {platform}: {checks[platform](platform, data)}")
    except (Bad, struct.error, IndexError, ValueError) as e:
        reason = e if isinstance(e, Bad) else f"truncated or malformed ({e})"
        print(f"binfmt: {platform}: {path}: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
