"""`kpv doctor`: what this machine has and lacks for a run, and which package to install."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from pipeline import guest, job, packaged, treesource, vm
from pipeline.errors import KpvError


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str  # what was found, or what to install


# (what, how to find it, Debian package providing it)
_TOOLS = [
    ("git", "git", "git"),
    ("make", "make", "build-essential"),
    ("gcc", "gcc", "build-essential"),
    ("flex", "flex", "flex"),
    ("bison", "bison", "bison"),
    ("bc", "bc", "bc"),
    ("tar", "tar", "tar"),
    ("xz", "xz", "xz-utils"),
]
_HEADERS = [
    ("libelf headers", Path("/usr/include/libelf.h"), "libelf-dev"),  # objtool
    ("OpenSSL headers", Path("/usr/include/openssl/ssl.h"), "libssl-dev"),  # sign-file
]


def checks() -> list[Check]:
    out = [_tool(name, exe, pkg) for name, exe, pkg in _TOOLS]
    out += [Check(n, p.is_file(), str(p) if p.is_file() else f"install {pkg}")
            for n, p, pkg in _HEADERS]
    out.append(_qemu())
    out.append(_busybox())
    out.append(_shipped())
    out.append(_debian_trees())
    accel, why = vm.probe_accel("auto")
    out.append(Check("accelerator", True, f"{accel}: {why}"))
    return out


def _debian_trees() -> Check:
    """The default job's tree must be there; other linux-source packages are listed."""
    default = treesource.tarball(treesource.DEFAULT)
    found = sorted(treesource.SRC.glob("linux-source-*.tar.xz"))
    if not default.is_file():
        return Check("Debian kernel sources", False, f"install "
                     f"{treesource.package(treesource.DEFAULT)}, or pass --tree with a kernel "
                     "checkout")
    names = ", ".join(f"{treesource.PREFIX}{p.name.removesuffix('.tar.xz')}" for p in found)
    return Check("Debian kernel sources", True, f"--tree {names}")


def _tool(name: str, exe: str, pkg: str) -> Check:
    path = shutil.which(exe)
    return Check(name, path is not None, path or f"install {pkg}")


def _qemu() -> Check:
    try:
        return Check("QEMU", True, vm.qemu_binary())
    except KpvError as e:
        return Check("QEMU", False, str(e))


def _shipped() -> Check:
    """The default job and what it names (fragments, series), and the stress sources:
    an install that lost its package data must not pass."""
    problems = []
    try:
        job.load(packaged.DEFAULT_JOB)
    except KpvError as e:  # one line on doctor's list, however many problems it names
        problems.append(" ".join(line.strip() for line in str(e).splitlines()))
    if not (packaged.STRESS_SRC / "Makefile").is_file():
        problems.append(f"{packaged.STRESS_SRC}: no stress sources")
    return Check("kpv's own files", not problems, "; ".join(problems) or str(packaged.DATA))


def _busybox() -> Check:
    path = Path("/bin/busybox")
    try:
        guest.check_static(path, "busybox", "install busybox-static")
    except KpvError as e:
        return Check("static busybox", False, str(e))
    return Check("static busybox", True, str(path))
