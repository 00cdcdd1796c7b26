"""The guest image: static stress programs, busybox and an init in an initramfs.

One image serves a whole run: the init (templates/init.j2) runs the test that
the kernel command line names with `kpv.test=<name>` (or all of them for
`kpv.test=all`) and prints the markers of pipeline.markers. Each test's
duration is baked into its argv here, when the image is built.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import struct
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import jinja2

from pipeline import cpio
from pipeline.build import first_error
from pipeline.errors import InfraError, UserError

STRESS_PROGRAMS = ("fork", "stack")  # what stress/ builds and stress_test() knows
GUEST_STRESS_DIR = PurePosixPath("/stress")  # where the programs live in the guest
# A test stops itself at its deadline; init's limit only ends a hang (a
# deadlocked kernel, a wedged fork tree), after leaving a big fork tree under
# TCG time to be reaped.
TIMEOUT_GRACE = 60  # seconds

# Test names go into markers, shell case patterns and JUnit names.
_NAME_RE = re.compile(r"[A-Za-z0-9_-]+")
_PT_INTERP = 3  # ELF program header type naming the dynamic loader

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("pipeline"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
_TEMPLATES.filters["shquote"] = shlex.quote


@dataclass(frozen=True)
class GuestTest:
    name: str  # what kpv.test= names; also the test's name in markers and reports
    argv: tuple[str, ...]  # the program inside the guest and its arguments
    timeout: int  # seconds before init's `timeout` kills the program

    def __post_init__(self) -> None:
        if not _NAME_RE.fullmatch(self.name) or self.name == "all":
            raise UserError(f"test name {self.name!r}: use letters, digits, _ and -, not 'all'")
        if not self.argv or self.timeout < 1:
            raise UserError(f"test {self.name}: needs a program and a timeout of at least 1 s")


def stress_test(name: str, duration: int, seed: int) -> GuestTest:
    """The GuestTest running stress program `name` for `duration` seconds."""
    if name not in STRESS_PROGRAMS:
        raise UserError(f"unknown stress test {name!r}; known: {', '.join(STRESS_PROGRAMS)}")
    if duration < 0:
        raise UserError(f"stress test {name}: negative duration {duration}")
    argv = (str(GUEST_STRESS_DIR / name), "--duration", str(duration), "--seed", str(seed))
    return GuestTest(name, argv, duration + TIMEOUT_GRACE)


def build_stress(src: Path, out: Path) -> dict[str, Path]:
    """Build every stress program in src (the stress/ dir) into out.

    Returns program name -> binary. Raises InfraError naming a missing tool, or
    with the compiler's first error when the build fails.
    """
    for tool in ("make", "cc"):
        if shutil.which(tool) is None:
            raise InfraError(f"{tool} not found: install build-essential (make, gcc, libc6-dev)")
    out.mkdir(parents=True, exist_ok=True)
    make = ["make", "--no-print-directory", "-C", str(src), f"OUT={out.resolve()}"]
    done = subprocess.run(make, capture_output=True, text=True)
    if done.returncode != 0:
        log = done.stdout + done.stderr
        raise InfraError(f"building the stress programs failed: {first_error(log)}")
    listed = subprocess.run([*make, "-s", "programs"], capture_output=True, text=True, check=True)
    return {name: out / name for name in listed.stdout.split()}


def render_init(tests: Sequence[GuestTest]) -> str:
    """The /init script for these tests."""
    return _TEMPLATES.get_template("init.j2").render(tests=tests)


def build_initramfs(
    tests: Sequence[GuestTest],
    dest: Path,
    stress_bins: dict[str, Path],
    busybox: Path = Path("/bin/busybox"),
) -> Path:
    """Write an uncompressed newc initramfs for `tests` to dest; return dest.

    Raises InfraError when busybox or a stress binary is missing or not
    static, UserError when tests repeat a name or run a program not built.
    dest is replaced atomically: a half-written image never exists under it.
    """
    _check_static(
        busybox, "busybox", "install Debian's busybox-static (its busybox package is dynamic)"
    )
    for name, path in stress_bins.items():
        _check_static(path, f"stress program {name}", "rebuild it with stress/Makefile")
    _check_tests(tests, stress_bins)
    stress_dir = str(GUEST_STRESS_DIR).lstrip("/")
    entries = [cpio.directory(d) for d in ("bin", "dev", "proc", "sys", "tmp", stress_dir)]
    entries += [
        # The kernel opens /dev/console for init before anything is mounted.
        cpio.char_device("dev/console", 5, 1),
        cpio.regular("init", render_init(tests).encode(), 0o755),
        cpio.regular("bin/busybox", busybox.read_bytes(), 0o755),
    ]
    entries += [
        cpio.regular(f"{stress_dir}/{name}", path.read_bytes(), 0o755)
        for name, path in stress_bins.items()
    ]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    with open(tmp, "wb") as f:
        cpio.write(entries, f)
    os.replace(tmp, dest)
    return dest


def _check_tests(tests: Sequence[GuestTest], stress_bins: dict[str, Path]) -> None:
    names = [t.name for t in tests]
    if len(set(names)) != len(names):
        raise UserError(f"test names repeat: {', '.join(names)}")
    for test in tests:
        program = PurePosixPath(test.argv[0])
        if program.parent == GUEST_STRESS_DIR and program.name not in stress_bins:
            built = ", ".join(sorted(stress_bins)) or "none"
            raise UserError(
                f"test {test.name} runs {program}, which was not built (built: {built})"
            )


def _check_static(path: Path, what: str, hint: str) -> None:
    """The guest has no libc or loader: every binary must be linked statically."""
    if not path.is_file():
        raise InfraError(f"{what} not found at {path}: {hint}")
    if not _is_static_elf(path.read_bytes()):
        raise InfraError(f"{what} at {path} is not a static executable: {hint}")


def _is_static_elf(data: bytes) -> bool:
    """True for an ELF file with no PT_INTERP program header (no dynamic loader)."""
    if data[:4] != b"\x7fELF":
        return False
    order = "<" if data[5] == 1 else ">"
    if data[4] == 2:  # ELFCLASS64
        (phoff,) = struct.unpack_from(order + "Q", data, 0x20)
        phentsize, phnum = struct.unpack_from(order + "HH", data, 0x36)
    else:
        (phoff,) = struct.unpack_from(order + "I", data, 0x1C)
        phentsize, phnum = struct.unpack_from(order + "HH", data, 0x2A)
    types = {struct.unpack_from(order + "I", data, phoff + i * phentsize)[0] for i in range(phnum)}
    return _PT_INTERP not in types
