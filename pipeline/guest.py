"""The guest image: static stress programs, busybox and an init in an initramfs.

One image serves a whole run: the init (templates/init.j2) applies the
guest's mm settings (THP, KSM, khugepaged, compaction, NUMA balancing), runs
the test that the kernel command line names with `kpv.test=<name>` (or all
of them for `kpv.test=all`), `repeats` times in a row, and prints the
markers of pipeline.markers. Each test's duration is baked into its argv
here, when the image is built.

Tests are the programs of stress/ (PROGRAMS), `idle` (a plain boot: the
control for the canaries), `fault-<name>` (writes <name> to the
/proc/kpv_fault of the patches/faults kernel), and `stress-ng:<stressor>`
when the host has stress-ng: its binary and shared libraries are copied in
(pipeline.hostbin) and a wrapper turns its YAML metrics into a result line.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pipeline import atomic, cpio, hostbin
from pipeline.build import first_error
from pipeline.errors import InfraError, UserError
from pipeline.render import TEMPLATES


@dataclass(frozen=True)
class Program:
    """A stress program of stress/ and what a guest needs to run it."""

    name: str  # the binary's name and the test's
    what: str  # one line, for people
    min_memory_mb: int  # guest memory (all nodes) below which the test cannot run
    min_nodes: int = 1  # NUMA nodes it needs to reach its path


# What stress/ builds and stress_test() knows. Memory minimums leave room
# for the kernel (lockdep's tables alone are ~10 MiB), the initramfs and the
# program's regions times the processes that COW-write them.
PROGRAMS = {p.name: p for p in (
    Program("fork", "fork trees COW-sharing a written region", 256),
    Program("stack", "stack growth by megabytes, and exec", 256),
    Program("mmap", "mprotect/mremap/munmap/madvise churn of small ranges", 256),
    Program("migrate", "move_pages, migrate_pages, mbind, compaction, THP, KSM", 384, 2),
    Program("race", "migration and compaction against VMA churn and stack growth", 384, 2),
)}
STRESS_PROGRAMS = tuple(PROGRAMS)
IDLE = "idle"  # runs nothing: the plain boot a canary must not trip
FAULT = "fault-"  # fault-<name>: writes <name> to /proc/kpv_fault (patches/faults)
STRESS_NG = "stress-ng"  # tests named stress-ng:<stressor>
STRESS_NG_MIN_MEMORY_MB = 384
# Stressors of Debian's stress-ng 0.15 that reach mm paths (fork, VMA, stack,
# NUMA and heap churn); others are refused.
STRESS_NG_STRESSORS = (
    "fork", "forkheavy", "vfork", "vforkmany", "mmap", "mmapaddr", "mmapfixed", "mmapfork",
    "mmapmany", "mremap", "mprotect", "pagemove", "madvise", "stack", "stackmmap", "numa",
    "brk", "bigheap", "vm", "vm-segv", "malloc",
)
THP_MODES = ("always", "madvise", "never")
# Milliseconds: beyond an hour khugepaged never wakes in a test (and above 2^32 the
# kernel refuses the value, leaving its default in place).
MAX_KHUGEPAGED_SLEEP_MS = 3_600_000
GUEST_STRESS_DIR = PurePosixPath("/stress")  # where the programs live in the guest
STRESS_NG_WRAPPER = PurePosixPath("/bin/kpv-stress-ng")  # runs stress-ng, prints a result
# A test stops itself at its deadline; init's limit only ends a hang (a
# deadlocked kernel, a wedged fork tree), after leaving a big fork tree under
# TCG time to be reaped.
TIMEOUT_GRACE = 60  # seconds

# Test names go into markers, shell case patterns and JUnit names.
_NAME_RE = re.compile(r"[A-Za-z0-9_-]+")
_PT_INTERP = 3  # ELF program header type naming the dynamic loader


@dataclass(frozen=True)
class GuestTest:
    name: str  # what kpv.test= names; also the test's name in markers and reports
    argv: tuple[str, ...]  # the program inside the guest and its arguments
    timeout: int  # seconds before init's `timeout` kills one run of the program
    repeats: int = 1  # runs in a row in one boot, each printing its own result line

    def __post_init__(self) -> None:
        if not _NAME_RE.fullmatch(self.name) or self.name == "all":
            raise UserError(f"test name {self.name!r}: use letters, digits, _ and -, not 'all'")
        if not self.argv or self.timeout < 1:
            raise UserError(f"test {self.name}: needs a program and a timeout of at least 1 s")
        if self.repeats < 1:
            raise UserError(f"test {self.name}: repeats must be at least 1, got {self.repeats}")

    @property
    def budget(self) -> int:
        """Seconds all runs may take before init kills the last one."""
        return self.timeout * self.repeats


@dataclass(frozen=True)
class GuestSettings:
    """The guest's mm knobs, set by init before any test so no test depends on
    kernel defaults. Each maps to a job key of the same name in [guest]."""

    thp: str = "madvise"  # /sys/kernel/mm/transparent_hugepage/enabled
    ksm: bool = True  # /sys/kernel/mm/ksm/run (only MADV_MERGEABLE memory is merged)
    khugepaged_sleep_ms: int = 100  # khugepaged/scan_sleep_millisecs
    compaction_proactiveness: int = 20  # /proc/sys/vm/compaction_proactiveness
    numa_balancing: bool = True  # /proc/sys/kernel/numa_balancing

    def problems(self) -> list[str]:
        """What is wrong, one message per setting, naming the job key."""
        out = []
        if self.thp not in THP_MODES:
            out.append(f"guest.thp: expected one of {', '.join(THP_MODES)}, got {self.thp!r}")
        if not 0 <= self.khugepaged_sleep_ms <= MAX_KHUGEPAGED_SLEEP_MS:
            out.append(f"guest.khugepaged_sleep_ms: expected 0 to {MAX_KHUGEPAGED_SLEEP_MS} "
                       f"(an hour), got {self.khugepaged_sleep_ms}")
        if not 0 <= self.compaction_proactiveness <= 100:
            out.append(f"guest.compaction_proactiveness: expected 0 to 100, got "
                       f"{self.compaction_proactiveness}")
        return out


def test_name(name: str) -> str:
    """The guest test name for a job's test name: stress-ng:fork -> stress-ng-fork."""
    return name.replace(":", "-", 1) if name.startswith(STRESS_NG + ":") else name


def test_needs(name: str) -> tuple[int, int]:
    """(guest MiB, NUMA nodes) the test needs; raises UserError for an unknown name."""
    if name in PROGRAMS:
        return PROGRAMS[name].min_memory_mb, PROGRAMS[name].min_nodes
    if name == IDLE or name.startswith(FAULT):
        return 0, 1
    if name.startswith(STRESS_NG + ":"):
        stressor = name.partition(":")[2]
        if stressor not in STRESS_NG_STRESSORS:
            raise UserError(f"unknown stress-ng stressor {stressor!r} in {name!r}; known: "
                            f"{', '.join(STRESS_NG_STRESSORS)}")
        return STRESS_NG_MIN_MEMORY_MB, 1
    known = [*PROGRAMS, IDLE, f"{FAULT}<name>", f"{STRESS_NG}:<stressor>"]
    raise UserError(f"unknown test {name!r}; known: {', '.join(known)}")


def stress_test(name: str, duration: int, seed: int, settings: GuestSettings | None = None,
                repeats: int = 1) -> GuestTest:
    """The GuestTest running test `name` (see test_needs) for `duration` seconds.

    Raises UserError for an unknown name, a duration below 1 s or repeats below 1.
    """
    test_needs(name)
    if duration < 1:
        raise UserError(f"test {name}: duration must be at least 1 s, got {duration}")
    settings = settings or GuestSettings()
    if name == IDLE:
        return GuestTest(IDLE, ("/bin/busybox", "true"), TIMEOUT_GRACE, repeats)
    if name.startswith(FAULT):  # GuestTest refuses names beyond _NAME_RE: shell-safe
        fault = name.removeprefix(FAULT)
        # Its task stays 30 s in D state: report it after 5 s, not the default 120.
        pre = "echo 5 > /proc/sys/kernel/hung_task_timeout_secs; " if fault == "hung-task" else ""
        cmd = f"{pre}echo {fault} > /proc/kpv_fault; sleep 2"
        return GuestTest(name, ("/bin/busybox", "sh", "-c", cmd), TIMEOUT_GRACE, repeats)
    if name.startswith(STRESS_NG + ":"):
        argv = ("/bin/busybox", "sh", str(STRESS_NG_WRAPPER), name.partition(":")[2],
                str(duration), str(seed))
        return GuestTest(test_name(name), argv, duration + TIMEOUT_GRACE, repeats)
    argv = (str(GUEST_STRESS_DIR / name), "--duration", str(duration), "--seed", str(seed),
            *_settings_args(name, settings))
    return GuestTest(name, argv, duration + TIMEOUT_GRACE, repeats)


def _settings_args(name: str, settings: GuestSettings) -> tuple[str, ...]:
    """Options that follow the guest settings: no THP or KSM work when the job turns it off."""
    if name != "migrate":
        return ()
    return ("--thp", str(int(settings.thp != "never")), "--ksm", str(int(settings.ksm)))


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


def render_init(tests: Sequence[GuestTest], settings: GuestSettings | None = None) -> str:
    """The /init script for these tests."""
    return TEMPLATES.get_template("init.j2").render(tests=tests,
                                                     settings=settings or GuestSettings())


def render_stress_ng() -> str:
    """The guest's wrapper around stress-ng (STRESS_NG_WRAPPER)."""
    return TEMPLATES.get_template("stress-ng.sh").render()


def build_initramfs(
    tests: Sequence[GuestTest],
    dest: Path,
    stress_bins: dict[str, Path],
    busybox: Path = Path("/bin/busybox"),
    settings: GuestSettings | None = None,
    stress_ng: Path | None = None,
) -> Path:
    """Write an uncompressed newc initramfs for `tests` to dest; return dest.

    stress-ng (found on PATH unless given) and its shared libraries go in
    only when a test runs it. Raises InfraError when busybox or a stress
    binary is missing or not static, or stress-ng is needed and missing;
    UserError when tests repeat a name or run a program not built.
    dest is replaced atomically: a half-written image never exists under it.
    """
    check_static(
        busybox, "busybox", "install Debian's busybox-static (its busybox package is dynamic)"
    )
    for name, path in stress_bins.items():
        check_static(path, f"stress program {name}", "rebuild it with stress/Makefile")
    _check_tests(tests, stress_bins)
    stress_dir = str(GUEST_STRESS_DIR).lstrip("/")
    entries = [cpio.directory(d) for d in ("bin", "dev", "proc", "sys", "tmp", stress_dir)]
    entries += [
        # The kernel opens /dev/console for init before anything is mounted.
        cpio.char_device("dev/console", 5, 1),
        cpio.regular("init", render_init(tests, settings).encode(), 0o755),
        cpio.regular("bin/busybox", busybox.read_bytes(), 0o755),
    ]
    entries += [
        cpio.regular(f"{stress_dir}/{name}", path.read_bytes(), 0o755)
        for name, path in stress_bins.items()
    ]
    if any(str(STRESS_NG_WRAPPER) in t.argv for t in tests):
        entries += _stress_ng_entries(stress_ng)
    with atomic.open_new(dest) as f:
        cpio.write(entries, f)
    return dest


def _stress_ng_entries(binary: Path | None) -> list[cpio.Entry]:
    if binary is None:
        found = shutil.which(STRESS_NG)
        if found is None:
            raise InfraError("stress-ng tests need stress-ng on the host: "
                             "apt-get install stress-ng")
        binary = Path(found)
    files = hostbin.collect(binary, PurePosixPath("/bin/stress-ng"))
    wrapper = cpio.regular(str(STRESS_NG_WRAPPER).lstrip("/"), render_stress_ng().encode(),
                           0o755)
    return [*hostbin.entries(files, skip_dirs={"bin"}), wrapper]


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


def check_static(path: Path, what: str, hint: str) -> None:
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
