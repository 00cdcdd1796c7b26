"""Bring a dynamically linked host binary into the guest: it and every shared
library it needs, at the paths the host's loader found them.

The guest has no ld.so.cache, but Debian's loader searches its multiarch
directories (/lib/x86_64-linux-gnu, ...) by default, so libraries placed
where `ldd` found them on the host load in the guest as they do here. When
ldd is missing (or refuses the file), the ELF file is read instead: its
PT_INTERP and DT_NEEDED entries, resolved in the system library directories,
recursively.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pipeline import cpio
from pipeline.errors import InfraError

# The loader's built-in search path on Debian x86_64, in its order.
LIB_DIRS = (
    Path("/lib/x86_64-linux-gnu"), Path("/usr/lib/x86_64-linux-gnu"),
    Path("/lib64"), Path("/usr/lib64"), Path("/lib"), Path("/usr/lib"),
)
_LDD_RE = re.compile(r"^\s*(?:(\S+) => )?(\S+|not found)(?: \(0x[0-9a-f]+\))?\s*$")
_PT_DYNAMIC, _PT_INTERP, _PT_LOAD = 2, 3, 1
_DT_NULL, _DT_NEEDED, _DT_STRTAB = 0, 1, 5


@dataclass(frozen=True)
class HostFile:
    guest: PurePosixPath  # where the guest finds it
    host: Path  # the file whose bytes go there (symlinks resolved)


def collect(binary: Path, guest_path: PurePosixPath) -> list[HostFile]:
    """The binary (at guest_path) and every library it needs, loader included.

    Raises InfraError when the binary is missing, a library cannot be found,
    or the file is not a 64-bit little-endian ELF file.
    """
    if not binary.is_file():
        raise InfraError(f"{binary}: no such file")
    libs = _ldd(binary)
    if libs is None:
        libs = read_elf_needs(binary)
    files = [HostFile(guest_path, binary.resolve())]
    files += [HostFile(PurePosixPath(str(p)), p.resolve()) for p in libs]
    return files


def entries(files: Iterable[HostFile], skip_dirs: Iterable[str] = ()) -> list[cpio.Entry]:
    """cpio entries: each parent directory once (but skip_dirs), then the files."""
    files = list(files)
    skip = {d.strip("/") for d in skip_dirs}
    dirs: set[str] = set()
    for f in files:
        for parent in f.guest.parents:
            rel = str(parent).lstrip("/")
            if rel:
                dirs.add(rel)
    out = [cpio.directory(d) for d in sorted(dirs - skip)]
    out += [cpio.regular(str(f.guest).lstrip("/"), f.host.read_bytes(), 0o755) for f in files]
    return out


def _ldd(binary: Path) -> list[Path] | None:
    """Libraries as ldd resolves them; [] for a static file; None without a usable ldd."""
    if shutil.which("ldd") is None:
        return None
    done = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    out = done.stdout + done.stderr
    if "not a dynamic executable" in out or "statically linked" in out:
        return []
    if done.returncode != 0:
        return None
    libs = []
    for line in done.stdout.splitlines():
        m = _LDD_RE.match(line)
        if not m:
            continue
        name, where = m.group(1), m.group(2)
        if where == "not found":
            raise InfraError(f"{binary} needs {name}, which the host does not have")
        if where.startswith("/"):
            libs.append(Path(where))
        # else linux-vdso.so.1 and the like: the kernel provides them
    return libs


def read_elf_needs(binary: Path) -> list[Path]:
    """The loader and the libraries binary needs, recursively, from its ELF headers."""
    seen: dict[str, Path] = {}
    interp, needed = _elf_deps(binary)
    out = [Path(interp)] if interp else []
    todo = list(needed)
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        path = _find_lib(name, binary)
        seen[name] = path
        out.append(path)
        todo += _elf_deps(path)[1]
    return out


def _find_lib(name: str, needed_by: Path) -> Path:
    for d in LIB_DIRS:
        if (d / name).exists():
            return d / name
    raise InfraError(f"{needed_by} needs {name}, not found in {', '.join(map(str, LIB_DIRS))}")


def _elf_deps(path: Path) -> tuple[str, list[str]]:
    """(PT_INTERP or "", DT_NEEDED names) of a 64-bit little-endian ELF file."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise InfraError(f"{path}: not a 64-bit little-endian ELF file")
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    interp, dynamic, loads = "", None, []
    for i in range(phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + i * phentsize)
        if p_type == _PT_INTERP:
            interp = data[p_offset:p_offset + p_filesz].split(b"\0")[0].decode()
        elif p_type == _PT_DYNAMIC:
            dynamic = (p_offset, p_filesz)
        elif p_type == _PT_LOAD:
            loads.append((p_vaddr, p_offset, p_filesz))
    if dynamic is None:
        return interp, []
    needed_offsets, strtab = [], None
    for off in range(dynamic[0], dynamic[0] + dynamic[1], 16):
        tag, val = struct.unpack_from("<qQ", data, off)
        if tag == _DT_NULL:
            break
        if tag == _DT_NEEDED:
            needed_offsets.append(val)
        elif tag == _DT_STRTAB:
            strtab = _file_offset(val, loads, path)
    if strtab is None:
        return interp, []
    names = [data[strtab + o:data.index(b"\0", strtab + o)].decode() for o in needed_offsets]
    return interp, names


def _file_offset(vaddr: int, loads: list[tuple[int, int, int]], path: Path) -> int:
    for start, offset, size in loads:
        if start <= vaddr < start + size:
            return vaddr - start + offset
    raise InfraError(f"{path}: DT_STRTAB address {vaddr:#x} is in no PT_LOAD segment")
