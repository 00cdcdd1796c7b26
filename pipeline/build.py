"""Build bzImage in a reused O= dir, keep the whole log, name the first compiler error."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline import atomic
from pipeline.errors import InfraError
from pipeline.kernel.kconfig import ARCH

# Part of the kernel cache's key: change it when what a build leaves behind changes.
RECIPE = "make ARCH=x86_64 bzImage; C locale; bzImage+vmlinux+build.log"

_CC_ERROR_RE = re.compile(
    r"^(?P<file>[^\s:][^:]*):(?P<line>\d+):(?:\d+:)? (?:fatal )?error: (?P<msg>.*)$", re.M
)
# gcc's include chain before an error: "In file included from a.h:3,\n  from init/main.c:12:"
# the last "from" is the file being compiled.
_INCLUDED_FROM_RE = re.compile(r"^(?:In file included| +) from ([^\s:]+):\d+[:,]$", re.M)
_NO_SPACE = "No space left on device"  # strerror(ENOSPC), as the tools print it in C
_OTHER_ERROR_RE = re.compile(r"^(?:.*\bld\b.*: .*|.*undefined reference.*|.*\berror: .*)$", re.M)


@dataclass(frozen=True)
class BuildResult:
    ok: bool
    bzimage: Path | None  # the kernel to boot
    vmlinux: Path | None  # its symbols, for decoding stack traces
    release: str  # `make kernelrelease`
    error: str  # the first error, "file:line: message"; "" when ok
    duration: float  # seconds
    timed_out: bool
    cached: bool = False  # reused from an earlier build of the same sources and config
    damaged: str = ""  # why the stored build of the same sources could not be reused


def build(tree: Path, build_dir: Path, out: Path, timeout: float,
          store: Path | None = None) -> BuildResult:
    """A kernel for the tree's sources and the build dir's .config, built or reused.

    `store` is a folder keyed by the content (source tree hash and config):
    when it holds a finished build whose files are whole, make is not run at
    all; a build that ends (ok or failing, not timed out) is kept there. out
    gets build.log and bzImage either way; vmlinux (tens of MB) stays in the store.
    """
    out.mkdir(parents=True, exist_ok=True)
    # A kernel left by an earlier run must not pass for this one's if this one fails.
    (out / "bzImage").unlink(missing_ok=True)
    damaged = ""
    if store is not None and (store / "result.json").is_file():
        damaged = _damage(store)
        if not damaged:
            return _reuse(store, out)
    b = make(tree, build_dir, out / "build.log", timeout)
    if b.ok:
        atomic.copy(build_dir / "arch/x86/boot/bzImage", out / "bzImage")
        b = replace(b, bzimage=out / "bzImage")
    # A failure is kept only when the compiler named it: a killed or interrupted
    # make says nothing about the sources and must not be replayed.
    if store is not None and (b.ok or _CC_ERROR_RE.match(b.error)):
        _keep(b, build_dir, out, store)
        if b.ok:
            b = replace(b, vmlinux=store / "vmlinux")
    return replace(b, damaged=damaged)


def _keep(b: BuildResult, build_dir: Path, out: Path, store: Path) -> None:
    tmp = store.with_name(store.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        for name in ("build.log", "bzImage"):
            if (out / name).is_file():
                shutil.copyfile(out / name, tmp / name)
        if b.ok:
            shutil.copyfile(build_dir / "vmlinux", tmp / "vmlinux")
        # What each file was when stored: a reuse checks it, so a cache entry
        # damaged since (a full disk, a stray edit) is rebuilt, not booted.
        files = {f.name: _digest(f) for f in sorted(tmp.iterdir())}
        meta = {"ok": b.ok, "release": b.release, "error": b.error, "duration": b.duration,
                "files": files}
        (tmp / "result.json").write_text(json.dumps(meta))
        shutil.rmtree(store, ignore_errors=True)
        tmp.rename(store)  # the result file appears with everything else, or not at all
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _digest(path: Path) -> dict[str, int | str]:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return {"size": path.stat().st_size, "sha256": h.hexdigest()}


def _damage(store: Path) -> str:
    """What is wrong with a stored build, "" when every file is as it was stored."""
    try:
        meta = json.loads((store / "result.json").read_text())
        files = meta["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return "its record is unreadable or from an older kpv"
    for name in ("bzImage", "vmlinux") if meta.get("ok") else ():
        if name not in files:
            return f"{name} is not in its record"
    for name, want in files.items():
        path = store / name
        if not path.is_file():
            return f"{name} is missing"
        size = path.stat().st_size
        if size != want.get("size"):
            return f"{name} is {size} bytes, {want.get('size')} when stored"
        if _digest(path)["sha256"] != want.get("sha256"):
            return f"{name} differs from what was stored (sha256)"
    return ""


def _reuse(store: Path, out: Path) -> BuildResult:
    meta = json.loads((store / "result.json").read_text())
    for name in ("build.log", "bzImage"):
        if (store / name).is_file():
            atomic.copy(store / name, out / name)
    ok = meta["ok"]
    return BuildResult(ok, out / "bzImage" if ok else None, store / "vmlinux" if ok else None,
                       meta["release"], meta["error"], 0.0, False, cached=True)


def first_error(log: str, tree: Path | None = None) -> str:
    """The first compiler error as "file:line: message", else the first error-ish line.

    An error in a header names the file being compiled too: a broken header
    surfaces in whichever file includes it first.
    """
    if m := _CC_ERROR_RE.search(log):
        where = f"{_relative(m.group('file'), tree)}:{m.group('line')}"
        msg = f"{where}: error: {m.group('msg')}"
        includer = _INCLUDED_FROM_RE.findall(log[:m.start()].rsplit("\n\n", 1)[-1][-4000:])
        if includer:
            msg += f" (compiling {_relative(includer[-1], tree)})"
        return msg
    if m := _OTHER_ERROR_RE.search(log):
        return m.group(0).strip()
    lines = [ln for ln in log.splitlines() if "***" in ln]
    return lines[0].strip() if lines else "build failed (see build.log)"


def _relative(path: str, tree: Path | None) -> str:
    """Paths in O= builds come out absolute or as ../..; show them relative to the tree."""
    if tree is not None and path.startswith(str(tree) + "/"):
        return path[len(str(tree)) + 1:]
    while path.startswith(("../", "./")):
        path = path.split("/", 1)[1]
    return path


def _c_locale() -> dict[str, str]:
    """The environment with C messages: gcc uses typographic quotes in a UTF-8 locale.

    The kernel's Makefile unexports LC_ALL, so LANG and LC_CTYPE must say it.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("LC_")}
    return {**env, "LANG": "C", "LC_CTYPE": "C", "LC_MESSAGES": "C"}


def make(tree: Path, build_dir: Path, log_path: Path, timeout: float) -> BuildResult:
    """make bzImage in build_dir; the log goes to log_path whole."""
    jobs = os.cpu_count() or 1
    cmd = ["make", "-C", str(tree), f"O={build_dir}", f"ARCH={ARCH}", f"-j{jobs}", "bzImage"]
    start = time.monotonic()
    timed_out = False
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        try:
            # Own process group, so a timeout or Ctrl-C stops every compiler make started.
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, env=_c_locale())
        except FileNotFoundError:
            raise InfraError("make not found: install build-essential") from None
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out, rc = True, -1
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    duration = time.monotonic() - start
    text = log_path.read_text(errors="replace")
    if rc != 0 and _NO_SPACE in text:
        # The machine's fault, not the sources': a build that fills the disk says nothing.
        raise InfraError(f"{build_dir}: no space left on device while building (see {log_path})")
    if rc != 0:
        error = f"build timed out after {timeout:.0f} s" if timed_out else first_error(text, tree)
        return BuildResult(False, None, None, "", error, duration, timed_out)
    release = (build_dir / "include/config/kernel.release").read_text().strip()
    return BuildResult(True, build_dir / "arch/x86/boot/bzImage", build_dir / "vmlinux",
                       release, "", duration, False)
