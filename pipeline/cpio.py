"""A newc cpio writer for initramfs images, in pure Python.

Device nodes and file owners are written as archive entries, so building an
image needs neither root nor mknod. The output is deterministic: entries are
sorted by path (a directory sorts before what it holds), every entry has the
same mtime, uid and gid 0, and inode numbers are assigned in that order.
"""

import stat
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

_MAGIC = b"070701"
_TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Entry:
    path: str  # inside the archive, no leading slash: "bin/busybox"
    mode: int  # file type and permission bits, as in st_mode
    data: bytes = b""  # file contents, or a symlink's target
    rdev: tuple[int, int] = (0, 0)  # (major, minor) of a device node


def directory(path: str, perm: int = 0o755) -> Entry:
    return Entry(path, stat.S_IFDIR | perm)


def regular(path: str, data: bytes, perm: int = 0o644) -> Entry:
    return Entry(path, stat.S_IFREG | perm, data)


def char_device(path: str, major: int, minor: int, perm: int = 0o600) -> Entry:
    return Entry(path, stat.S_IFCHR | perm, rdev=(major, minor))


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _header(ino: int, entry: Entry, name: bytes) -> bytes:
    fields = (
        ino,
        entry.mode,
        0,  # uid
        0,  # gid
        2 if stat.S_ISDIR(entry.mode) else 1,  # nlink
        0,  # mtime: fixed, so equal inputs give equal bytes
        len(entry.data),
        0,  # devmajor, devminor: the archive's own device, unused
        0,
        *entry.rdev,
        len(name),
        0,  # check: only the "070702" variant uses it
    )
    return _MAGIC + b"".join(b"%08X" % f for f in fields)


def _record(ino: int, entry: Entry) -> bytes:
    name = entry.path.encode() + b"\0"
    head = _header(ino, entry, name) + name
    return head + _pad(len(head)) + entry.data + _pad(len(entry.data))


def _check(entries: list[Entry]) -> None:
    """Raise ValueError for an archive the kernel would unpack wrongly."""
    dirs = {e.path for e in entries if stat.S_ISDIR(e.mode)}
    seen: set[str] = set()
    for e in entries:
        if e.path in seen or not e.path or e.path.startswith("/"):
            raise ValueError(f"cpio: bad or duplicate path {e.path!r}")
        seen.add(e.path)
        parent = e.path.rpartition("/")[0]
        # The kernel's unpacker does not create missing parents.
        if parent and parent not in dirs:
            raise ValueError(f"cpio: {e.path!r} has no parent directory entry")


def write(entries: Iterable[Entry], out: BinaryIO) -> None:
    """Write entries, sorted by path, and the trailer as one newc archive."""
    ordered = sorted(entries, key=lambda e: e.path)
    _check(ordered)
    for ino, entry in enumerate(ordered, start=1):
        out.write(_record(ino, entry))
    out.write(_record(0, Entry(_TRAILER, 0)))
