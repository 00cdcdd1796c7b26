"""Build bzImage in a reused O= dir, keep the whole log, name the first compiler error."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline.errors import InfraError
from pipeline.kconfig import ARCH

# Part of the kernel cache's key: change it when what a build leaves behind changes.
RECIPE = "make ARCH=x86_64 bzImage; C locale; bzImage+vmlinux+build.log"

_CC_ERROR_RE = re.compile(
    r"^(?P<file>[^\s:][^:]*):(?P<line>\d+):(?:\d+:)? (?:fatal )?error: (?P<msg>.*)$", re.M
)
# gcc's include chain before an error: "In file included from a.h:3,\n  from init/main.c:12:"
# the last "from" is the file being compiled.
_INCLUDED_FROM_RE = re.compile(r"^(?:In file included| +) from ([^\s:]+):\d+[:,]$", re.M)
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


def build(tree: Path, build_dir: Path, out: Path, timeout: float,
          store: Path | None = None) -> BuildResult:
    """A kernel for the tree's sources and the build dir's .config, built or reused.

    `store` is a folder keyed by the content (source tree hash and config):
    when it holds a finished build, make is not run at all; a build that
    ends (ok or failing, not timed out) is kept there. out gets build.log and
    bzImage either way; vmlinux (tens of MB) stays in the store.
    """
    out.mkdir(parents=True, exist_ok=True)
    if store is not None and (store / "result.json").is_file():
        return _reuse(store, out)
    b = make(tree, build_dir, out / "build.log", timeout)
    if b.ok:
        shutil.copyfile(build_dir / "arch/x86/boot/bzImage", out / "bzImage")
        b = replace(b, bzimage=out / "bzImage")
    # A failure is kept only when the compiler named it: a killed or interrupted
    # make says nothing about the sources and must not be replayed.
    if store is not None and (b.ok or _CC_ERROR_RE.match(b.error)):
        _keep(b, build_dir, out, store)
        if b.ok:
            b = replace(b, vmlinux=store / "vmlinux")
    return b


def _keep(b: BuildResult, build_dir: Path, out: Path, store: Path) -> None:
    tmp = store.with_name(store.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("build.log", "bzImage"):
        if (out / name).is_file():
            shutil.copyfile(out / name, tmp / name)
    if b.ok:
        shutil.copyfile(build_dir / "vmlinux", tmp / "vmlinux")
    meta = {"ok": b.ok, "release": b.release, "error": b.error, "duration": b.duration}
    (tmp / "result.json").write_text(json.dumps(meta))
    shutil.rmtree(store, ignore_errors=True)
    tmp.rename(store)  # the result file appears with everything else, or not at all


def _reuse(store: Path, out: Path) -> BuildResult:
    meta = json.loads((store / "result.json").read_text())
    for name in ("build.log", "bzImage"):
        if (store / name).is_file():
            shutil.copyfile(store / name, out / name)
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
    if rc != 0:
        error = f"build timed out after {timeout:.0f} s" if timed_out else first_error(text, tree)
        return BuildResult(False, None, None, "", error, duration, timed_out)
    release = (build_dir / "include/config/kernel.release").read_text().strip()
    return BuildResult(True, build_dir / "arch/x86/boot/bzImage", build_dir / "vmlinux",
                       release, "", duration, False)
