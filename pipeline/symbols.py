"""file:line for the frames of a kernel report, from the build's vmlinux.

resolve(vmlinux, frames_in(report.text)) turns each `func+0x12/0x34` frame
of a report into "mm/mmap.c:2053" with one `nm` and one batched `addr2line
-f -i -a` call (binutils), the way scripts/faddr2line does for one frame:
the address is the symbol's own plus the offset, and where two static
functions share a name, the one whose size the frame prints is taken.

A call trace holds return addresses: the call that is on the stack is the
instruction before, so those are looked up at offset - 1 (as
decode_stacktrace.sh's callers and syzkaller do). A faulting instruction
(`RIP:`, a WARNING's own `at file:line func+...`) is looked up as printed.

Never raises: without a vmlinux, binutils or line tables (a kernel built
without CONFIG_DEBUG_INFO), resolve() returns what it could, possibly
nothing, and says why in Symbols.reason.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

# `func+0x1a/0x2b`, optionally followed by ` [module]`: a module's frame is
# not in vmlinux.
_FRAME_RE = re.compile(
    r"(?<![\w.])([A-Za-z_][\w.]*)\+0x([0-9a-f]+)/0x([0-9a-f]+)(\s+\[\w+\])?")
# Lines whose frame is the faulting instruction itself, not a return address:
# x86 `RIP: 0010:`, i386 `EIP:`, arm `PC is at`, arm64 `pc :`, and the
# WARNING header's `at kernel/foo.c:12 func+0x..`.
_EXACT_RE = re.compile(r"\b(?:R?IP|EIP): |\bEIP is at |\bPC is at |\bpc : |WARNING: .* at \S+:\d+ ")
# Top-level directories of a kernel tree: where a debug-info path's
# tree-relative part starts (O= builds record absolute source paths).
_TOP_DIRS = ("arch", "block", "certs", "crypto", "drivers", "fs", "include", "init", "io_uring",
             "ipc", "kernel", "lib", "mm", "net", "rust", "samples", "scripts", "security",
             "sound", "tools", "usr", "virt")
_TOP_RE = re.compile(r"/(?:" + "|".join(_TOP_DIRS) + r")(?=/)")
# A function every vmlinux has, in init/main.c: its place joins the frames'
# when finding the tree's root, so a trace wholly inside arch/x86/ or
# drivers/ cannot pass that subtree off as the root.
_ANCHOR = "start_kernel"
_TIMEOUT = 120  # seconds for nm or addr2line on a vmlinux of a few hundred MB
_DEBUG_LINE = b".debug_line"


@dataclass(frozen=True)
class Frame:
    text: str  # as printed: "expand_downwards+0x1a/0x2b"
    func: str
    offset: int
    size: int
    exact: bool  # the faulting instruction (RIP), not a return address


@dataclass(frozen=True)
class Symbols:
    lines: dict[str, str] = field(default_factory=dict)  # frame text -> its function's "file:line"
    # frame text -> the inlined calls at that address, innermost first,
    # as "func file:line" (addr2line -i); absent when nothing was inlined
    inlined: dict[str, tuple[str, ...]] = field(default_factory=dict)
    reason: str = ""  # why some or all frames have no line; "" when all resolved


def frames_in(text: str) -> list[Frame]:
    """The distinct vmlinux frames of a report's text, in order of first appearance.

    Module frames (`func+0x1/0x2 [mod]`) are left out: their code is not in vmlinux.
    """
    seen: dict[str, Frame] = {}
    for line in text.split("\n"):
        exact = bool(_EXACT_RE.search(line))
        for m in _FRAME_RE.finditer(line):
            key = f"{m.group(1)}+0x{m.group(2)}/0x{m.group(3)}"
            if m.group(4) or key in seen:
                continue
            seen[key] = Frame(key, m.group(1), int(m.group(2), 16), int(m.group(3), 16), exact)
            exact = False  # only a line's first frame is the faulting one
    return list(seen.values())


def resolve(vmlinux: Path | None, frames: Iterable[Frame], src: str | None = None) -> Symbols:
    """file:line per frame, from vmlinux's line tables; never raises.

    src: the source tree's path as the build recorded it, stripped from
    file names; by default a path is cut where a kernel top-level directory
    (mm/, include/, ...) starts.
    """
    frames = list(frames)
    if not frames:
        return Symbols()
    if vmlinux is None:
        return Symbols(reason="no vmlinux: the build kept none")
    if why := _unusable(vmlinux):
        return Symbols(reason=why)
    try:
        addrs, missing, anchor = _addresses(vmlinux, frames)
        if not addrs:
            return Symbols(reason=f"no symbol in vmlinux for {', '.join(missing)}")
        lines, inlined = _addr2line(vmlinux, addrs, src, anchor)
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        return Symbols(reason=f"symbolizing failed: {e}")
    unresolved = [f.text for f in frames if f.text not in lines]
    reason = f"no line for {', '.join(unresolved)}" if unresolved else ""
    return Symbols(lines, inlined, reason)


def annotate(text: str, syms: Symbols) -> str:
    """The text with each resolved frame followed by its place, as
    decode_stacktrace.sh shows it: `expand_downwards+0x1a/0x2b (mm/mmap.c:2053)`,
    and the code inlined there: `(mm/mmap.c:2053; inlined: f include/x.h:12)`."""
    if not syms.lines:
        return text

    def place(m: re.Match[str]) -> str:
        frame = f"{m.group(1)}+0x{m.group(2)}/0x{m.group(3)}"
        where = syms.lines.get(frame)
        return f"{m.group(0)} ({describe(frame, syms)})" if where and not m.group(4) \
            else m.group(0)

    return _FRAME_RE.sub(place, text)


def describe(frame: str, syms: Symbols) -> str:
    """A resolved frame's place, and what was inlined there, innermost first."""
    inlined = syms.inlined.get(frame)
    return syms.lines[frame] + (f"; inlined: {', '.join(inlined)}" if inlined else "")


def _unusable(vmlinux: Path) -> str:
    """Why this vmlinux cannot give lines, or ""."""
    missing = [t for t in ("nm", "addr2line") if shutil.which(t) is None]
    if missing:
        return f"{' and '.join(missing)} not found: install binutils"
    try:
        sections = _section_names(vmlinux)
    except (OSError, ValueError, IndexError, struct.error) as e:
        return f"{vmlinux.name}: not a readable ELF file ({e})"
    if _DEBUG_LINE not in sections:
        return (f"{vmlinux.name} has no line tables (.debug_line): the kernel was built "
                "without CONFIG_DEBUG_INFO")
    return ""


def _section_names(path: Path) -> set[bytes]:
    """The section names of an ELF file, read from its section header table."""
    with open(path, "rb") as f:
        ident = f.read(64)
        if ident[:4] != b"\x7fELF":
            raise ValueError("no ELF magic")
        order = "<" if ident[5] == 1 else ">"
        if ident[4] == 2:  # ELFCLASS64
            (shoff,) = struct.unpack_from(order + "Q", ident, 0x28)
            shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", ident, 0x3A)
            name_at, offset_at, size_at, word = 0, 0x18, 0x20, "Q"
        else:
            (shoff,) = struct.unpack_from(order + "I", ident, 0x20)
            shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", ident, 0x2E)
            name_at, offset_at, size_at, word = 0, 0x10, 0x14, "I"
        f.seek(shoff)
        table = f.read(shentsize * shnum)
        heads = [table[i * shentsize:(i + 1) * shentsize] for i in range(shnum)]
        (stroff,) = struct.unpack_from(order + word, heads[shstrndx], offset_at)
        (strsize,) = struct.unpack_from(order + word, heads[shstrndx], size_at)
        f.seek(stroff)
        strtab = f.read(strsize)
    names = set()
    for head in heads:
        (at,) = struct.unpack_from(order + "I", head, name_at)
        names.add(strtab[at:strtab.find(b"\0", at)])
    return names


def _addresses(vmlinux: Path, frames: list[Frame],
               ) -> tuple[dict[int, list[str]], list[str], int | None]:
    """address to look up -> the frames at it; the frames with no symbol; _ANCHOR's address."""
    wanted = {f.func for f in frames} | {_ANCHOR}
    done = subprocess.run(["nm", "-S", "--defined-only", str(vmlinux)], capture_output=True,
                          text=True, errors="replace", timeout=_TIMEOUT)
    if done.returncode != 0:
        raise ValueError(f"nm: {done.stderr.strip()[:200]}")
    symbols: dict[str, list[tuple[int, int]]] = {}
    for row in done.stdout.splitlines():
        parts = row.split()
        # `addr size type name`; assembly labels (entry_SYSCALL_64_after_hwframe) have no size.
        if len(parts) in (3, 4) and parts[-1] in wanted:
            size = int(parts[1], 16) if len(parts) == 4 else -1
            symbols.setdefault(parts[-1], []).append((int(parts[0], 16), size))
    addrs: dict[int, list[str]] = {}
    missing = []
    for f in frames:
        found = symbols.get(f.func, [])
        # Static functions can share a name: the printed size tells them apart.
        start = next((a for a, size in found if size == f.size), found[0][0] if found else None)
        if start is None:
            missing.append(f.text)
            continue
        back = 0 if f.exact or f.offset == 0 else 1
        addrs.setdefault(start + f.offset - back, []).append(f.text)
    anchor = symbols[_ANCHOR][0][0] if _ANCHOR in symbols else None
    return addrs, missing, anchor


def _addr2line(vmlinux: Path, addrs: dict[int, list[str]], src: str | None, anchor: int | None,
               ) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """One addr2line run for every address: frame -> file:line, frame -> inlined calls."""
    query = "".join(f"{a:#x}\n" for a in [*addrs, *([anchor] if anchor is not None else [])])
    done = subprocess.run(["addr2line", "-f", "-i", "-a", "-e", str(vmlinux)], input=query,
                          capture_output=True, text=True, errors="replace", timeout=_TIMEOUT)
    if done.returncode != 0:
        raise ValueError(f"addr2line: {done.stderr.strip()[:200]}")
    found = [(addr, [(func, p) for func, where in pairs if (p := _place(where))])
             for addr, pairs in _groups(done.stdout)]
    roots = [src.rstrip("/")] if src else _roots([p for _, places in found for _, p in places])
    lines: dict[str, str] = {}
    inlined: dict[str, tuple[str, ...]] = {}
    for addr, places in found:
        places = [(func, _relative(p, roots)) for func, p in places]
        for frame in addrs.get(addr, []) if places else []:
            # -i lists the innermost inlined function first and the frame's own
            # function, at the call into the inlined code, last.
            lines[frame] = places[-1][1]
            if len(places) > 1:
                inlined[frame] = tuple(f"{func} {p}" for func, p in places[:-1])
    return lines, inlined


def _groups(out: str) -> list[tuple[int, list[tuple[str, str]]]]:
    """addr2line -a -f -i output: per address, its (function, file:line) pairs."""
    groups: list[tuple[int, list[tuple[str, str]]]] = []
    rows = out.splitlines()
    i = 0
    while i < len(rows):
        if rows[i].startswith("0x"):
            groups.append((int(rows[i], 16), []))
            i += 1
        elif groups and i + 1 < len(rows):
            groups[-1][1].append((rows[i], rows[i + 1]))
            i += 2
        else:
            i += 1
    return groups


def _place(where: str) -> str:
    """"file:line", or "" for addr2line's ??:0 and ??:?."""
    where = where.split(" (discriminator", 1)[0].strip()
    path, _, line = where.rpartition(":")
    if not path or path.startswith("??") or not line.isdigit() or line == "0":
        return ""
    return f"{path}:{line}"


def _roots(places: list[str]) -> list[str]:
    """The source tree's paths as the build recorded them: prefixes that absolute
    paths have just before a kernel top-level directory (mm/, include/, ...),
    the one most paths share first (the longest of equals). Usually one; two
    when C files were compiled with tree-relative names under the build dir
    and assembler files with the tree's absolute path."""
    candidates = [{place[:m.start()] for m in _TOP_RE.finditer(place)} for place in places
                  # Generated headers are the build dir's (`<O>/./include/generated/...`).
                  if place.startswith("/") and "/./" not in place]
    # An empty root would be a tree at /: rather a system header (/usr/lib/gcc/...).
    candidates = [c - {""} for c in candidates]
    candidates = [c for c in candidates if c]
    roots = []
    while candidates:
        counts = Counter(root for c in candidates for root in c)
        best = max(counts, key=lambda root: (counts[root], len(root)))
        roots.append(best)
        candidates = [c for c in candidates if best not in c]
    return roots


def _relative(place: str, roots: list[str]) -> str:
    for root in sorted(roots, key=len, reverse=True):
        if place.startswith(root + "/"):
            return place[len(root) + 1:]
    return place.rpartition("/./")[2]
