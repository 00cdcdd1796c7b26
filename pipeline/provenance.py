"""What made a result: kpv's version and the host tools that built and booted the kernel.

Recorded in every run (and so in every JUnit suite), so that two results can be
told apart when a compiler or QEMU upgrade, not a patch, changed them.
"""

import importlib.metadata
import platform
import subprocess

from pipeline import vm

# (property, command printing its version on the first line)
_TOOLS = (
    ("qemu_version", [vm.QEMU, "--version"]),
    ("cc_version", ["gcc", "--version"]),
    ("make_version", ["make", "--version"]),
    ("binutils_version", ["ld", "--version"]),
)


def kpv_version() -> str:
    try:
        return importlib.metadata.version("kpv")
    except importlib.metadata.PackageNotFoundError:  # `python -m pipeline` in a checkout
        return "(not installed)"


def record() -> dict[str, str]:
    props = {"kpv_version": kpv_version(), "python_version": platform.python_version()}
    for name, cmd in _TOOLS:
        props[name] = _first_line(cmd)
    return props


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown ({e.strerror if isinstance(e, OSError) else 'no answer'})"
    return out.splitlines()[0].strip() if out.strip() else "unknown (no version printed)"
