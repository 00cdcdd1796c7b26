"""Build bzImage in a reused O= dir, keep the whole log, name the first compiler error."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import InfraError
from pipeline.kconfig import ARCH

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
    bzimage: Path | None  # a copy kept with the run's output
    vmlinux: Path | None  # in the build dir: valid until the next build there
    release: str  # `make kernelrelease`
    error: str  # the first error, "file:line: message"; "" when ok
    duration: float  # seconds
    timed_out: bool


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


def build(tree: Path, build_dir: Path, log_path: Path, keep: Path, timeout: float) -> BuildResult:
    """make bzImage; the log goes to log_path whole; bzImage is copied to `keep`."""
    jobs = os.cpu_count() or 1
    cmd = ["make", "-C", str(tree), f"O={build_dir}", f"ARCH={ARCH}", f"-j{jobs}", "bzImage"]
    start = time.monotonic()
    timed_out = False
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        try:
            # Own process group, so a timeout or Ctrl-C stops every compiler make started.
            # LC_ALL=C: gcc quotes with ‘’ in a UTF-8 locale; messages must not depend on it.
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, env={**os.environ, "LC_ALL": "C"})
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
    image = build_dir / "arch/x86/boot/bzImage"
    keep.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(image, keep)
    release = (build_dir / "include/config/kernel.release").read_text().strip()
    return BuildResult(True, keep, build_dir / "vmlinux", release, "", duration, False)
