"""How a job names its kernel tree: a Debian linux-source package or a git checkout.

`debian:linux-source-X.Y` is the tarball that Debian's package of that name
installs under /usr/src; anything else is a path. Kept apart from tree.py so
that the job file's checks can tell the two apart without the tree stage.
"""

from __future__ import annotations

import re
from pathlib import Path

PREFIX = "debian:"
DEFAULT = "debian:linux-source-6.1"
_PACKAGE_RE = re.compile(r"linux-source-\d+\.\d+")
SRC = Path("/usr/src")  # where Debian's linux-source-X.Y packages put their tarball


def is_debian(source: str) -> bool:
    return source.startswith(PREFIX)


def package(source: str) -> str:
    """The Debian package a debian: source names; ValueError when it is not one."""
    name = source.removeprefix(PREFIX)
    if not is_debian(source) or not _PACKAGE_RE.fullmatch(name):
        raise ValueError(f"{source!r}: expected debian:linux-source-X.Y, such as {DEFAULT}")
    return name


def tarball(source: str) -> Path:
    return SRC / f"{package(source)}.tar.xz"
