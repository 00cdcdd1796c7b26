"""Read and check a job file (TOML); apply CLI overrides.

Every problem in a job file is collected and reported at once, naming the
file, the key and what was expected, before anything runs.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, get_args, get_origin

from pipeline import series, treesource
from pipeline.errors import UserError
from pipeline.kernel import kconfig
from pipeline.sanitize import one_line

if TYPE_CHECKING:
    from pipeline.guest import GuestSettings

@dataclass(frozen=True)
class Job:
    path: Path  # the job file; relative paths in it are relative to its folder
    name: str
    tree: str  # "debian:linux-source-X.Y" or a path to a kernel git checkout
    ref: str  # commit-ish in a git checkout; ignored for the Debian tarball
    series: str  # a series source, as `kpv series` takes (folder, mbox, Message-ID, pw:N...)
    revisions: tuple[str, ...]  # "baseline" plus revision names; empty = all of the series
    fragments: tuple[Path, ...]  # kconfig fragments, merged in order
    kconfig_base: str  # a make target (tinyconfig, defconfig) or an absolute path to a .config
    vcpus: tuple[int, ...]
    memory_mb: int  # guest memory, split evenly over the NUMA nodes
    numa_nodes: int
    accel: str  # auto, kvm or tcg
    tests: tuple[str, ...]
    duration: int  # seconds each stress test runs
    seed: int
    build_timeout: int  # seconds for one kernel build
    boot_timeout: int  # seconds from QEMU start to the init's first marker
    test_slack: int  # seconds a test may overrun its duration before it is killed
    out: Path = field(default=Path("kpv-out"))
    repeats: int = 1  # runs of each test per boot; results get median and spread
    thp: str = "madvise"  # guest THP mode: always, madvise or never
    ksm: bool = True  # ksmd runs (it merges only MADV_MERGEABLE memory)
    khugepaged_sleep_ms: int = 100  # khugepaged's scan_sleep_millisecs
    compaction_proactiveness: int = 20  # /proc/sys/vm/compaction_proactiveness, 0-100
    numa_balancing: bool = True  # /proc/sys/kernel/numa_balancing
    # Options that must exist in the tree: one the tree lacks fails the config, not a warning.
    kconfig_required: tuple[str, ...] = ()
    gate: str = "new"  # what fails a revision's case: "new" reports only, or "any" report
    confirm: int = 2  # boots more of a test that shows a report the baseline did not
    fail_intermittent: bool = True  # such a report seen in some of those boots only fails
    bisect: bool = True  # find the first patch of a revision that makes a new report


# key -> (type, description) per table; "" is the top level. list[T]: every item a T.
_SCHEMA: dict[str, dict[str, tuple[object, str]]] = {
    "": {"name": (str, "a string")},
    "tree": {
        "source": (str, '"debian:linux-source-X.Y" or a path to a kernel git checkout'),
        "ref": (str, "a commit, tag or branch of the checkout"),
    },
    "series": {
        "source": (str, "a series source (folder, mbox, patch, Message-ID, lore URL, pw:N)"),
        "revisions": (list[str], 'a list of revision names, "baseline" for no patches'),
    },
    "kconfig": {
        "fragments": (list[str], "a list of paths to config fragments"),
        "base": (str, '"tinyconfig", "defconfig" or a path to a .config'),
        "required": (list[str], 'a list of option names ("CONFIG_LOCKDEP") the tree must have'),
    },
    "guest": {
        "vcpus": (list[int], "a list of positive integers"),
        "memory_mb": (int, "an integer number of MiB"),
        "memory_per_node_mb": (int, "an integer number of MiB per NUMA node"),
        "numa_nodes": (int, "an integer, 1 to 4"),
        "accel": (str, '"auto", "kvm" or "tcg"'),
        "tests": (list[str], "a list of test names"),
        "duration": (int, "a positive integer number of seconds"),
        "seed": (int, "an integer"),
        "repeats": (int, "a positive integer: runs of each test per boot"),
        "thp": (str, '"always", "madvise" or "never"'),
        "ksm": (bool, "true or false"),
        "khugepaged_sleep_ms": (int, "milliseconds"),
        "compaction_proactiveness": (int, "an integer, 0 to 100"),
        "numa_balancing": (bool, "true or false"),
    },
    "verdict": {
        "gate": (str, '"new" (a report the baseline shows does not fail) or "any"'),
        "confirm": (int, "an integer, 0 to 10: boots more of a test with a new report"),
        "fail_intermittent": (bool, "true or false"),
        "bisect": (bool, "true or false"),
    },
    "timeouts": {
        "build": (int, "seconds"),
        "boot": (int, "seconds"),
        "test_slack": (int, "seconds"),
    },
}
# tinyconfig, defconfig, allnoconfig...: what `make` takes as a base config target.
_MAKE_TARGET_RE = re.compile(r"[a-z0-9_]+config")
_OPTION_RE = re.compile(r"CONFIG_[A-Za-z0-9_]+")
_REQUIRED = {("tree", "source"), ("series", "source"), ("kconfig", "fragments")}
ACCELS = ("auto", "kvm", "tcg")
GATES = ("new", "any")
# Three boots tell "every time" from "sometimes"; ten more cost ten boots per new report.
MAX_CONFIRM = 10

# Bounds of a job's numbers, so that a typo (`duration = 1000000000`) is refused
# before hours of work rather than found out after them.
# 64: the guest kernel's NR_CPUS (x86_64's default with SMP; guest.config leaves it), so
# a 65th vCPU would sit offline; QEMU's pc machine takes up to 255, under TCG as under KVM.
MAX_VCPUS = 64
HOUR = 3600  # seconds: a boot or a test's overrun longer than that is a hang
DAY = 24 * HOUR  # seconds: a kernel build longer than that is a hang
# A soak of an afternoon. Each test runs this long per repeat, vCPU count and revision:
# a day per test is a typo (milliseconds for seconds), not a plan.
MAX_DURATION = 4 * HOUR
# Median and spread need a handful of runs; a boot's budget is duration times repeats.
MAX_REPEATS = 100
MAX_SEED = 2**63 - 1  # the guest's stress harness reads it as a C long
MIN_MEMORY_PER_NODE_MB = 128  # a tinyconfig guest and its stress programs fit in that
# The rest is the host's: QEMU's own memory, the build's page cache. A guest that pushes
# the host into swap or its OOM killer misses deadlines, a hang that is not the kernel's.
HOST_MEMORY_SHARE = Fraction(3, 4)


def load(path: Path) -> Job:
    """Read a job file; raise UserError listing every problem found."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: job file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read job file: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: not valid TOML: {e}") from None
    except ValueError:  # int()'s limit on digits (sys.get_int_max_str_digits)
        raise UserError(f"{path}: not valid TOML: a number with thousands of digits") from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise UserError(f"{path}: not valid TOML: nested too deeply") from None
    errors = _check_shape(data)
    if errors:
        raise UserError(_format(path, errors))
    job = _build(path, data)
    errors = check(job)
    if errors:
        raise UserError(_format(path, errors))
    return job


def _format(path: Path, errors: list[str]) -> str:
    """Every problem at once, on the one line bad input gets."""
    return f"{path}: invalid job file: " + "; ".join(errors)


def _check_shape(data: dict) -> list[str]:
    errors = []
    for key, value in data.items():
        if key in _SCHEMA and key != "":
            if not isinstance(value, dict):
                errors.append(f"[{key}]: expected a table")
                continue
            errors += _check_table(key, value)
        elif key not in _SCHEMA[""]:
            # A quoted TOML key may hold a newline: the message stays one line.
            errors.append(f"{one_line(key, 100)}: unknown key (known: {', '.join(_known(''))})")
        else:
            errors += _check_table("", {key: value})
    for table, key in sorted(_REQUIRED):
        values = data.get(table, {})
        if isinstance(values, dict) and key not in values:  # else named above
            errors.append(f"{table}.{key}: missing (expected {_SCHEMA[table][key][1]})")
    return errors


def _known(table: str) -> list[str]:
    keys = list(_SCHEMA[table])
    return keys + [t for t in _SCHEMA if t] if table == "" else keys


def _check_table(table: str, values: dict) -> list[str]:
    errors = []
    for key, value in values.items():
        name = f"{table}.{key}" if table else key
        if key not in _SCHEMA[table]:
            errors.append(f"{one_line(name, 100)}: unknown key "
                          f"(known: {', '.join(_known(table))})")
            continue
        want, what = _SCHEMA[table][key]
        if not _is(value, want):
            errors.append(f"{name}: expected {what}, got {type(value).__name__} "
                          f"{one_line(repr(value), 100)}")
        elif _has_nul(value):
            # No path, make target or test name holds one: the OS would refuse it later.
            errors.append(f"{name}: expected {what}, got a NUL character in "
                          f"{one_line(repr(value), 100)}")
    return errors


def _has_nul(value: object) -> bool:
    """value, a string or a list's string, holds a NUL."""
    items = value if isinstance(value, list) else [value]
    return any(isinstance(v, str) and "\0" in v for v in items)


def _is(value: object, want: object) -> bool:
    """value is a `want` (a type, or list[T] for a list of T)."""
    if get_origin(want) is list:
        (item,) = get_args(want)
        return isinstance(value, list) and all(_is(v, item) for v in value)
    # bool is an int in Python; a job saying `duration = true` is a mistake.
    return isinstance(value, want) and (want is bool or not isinstance(value, bool))


def _build(path: Path, data: dict) -> Job:
    here = path.parent
    tree, series = data["tree"], data["series"]
    kconfig, guest = data["kconfig"], data.get("guest", {})
    timeouts, verdict = data.get("timeouts", {}), data.get("verdict", {})
    source = tree["source"]
    if not treesource.is_debian(source):
        source = str((here / source).resolve())
    return Job(
        path=path,
        name=data.get("name", path.stem),
        tree=source,
        ref=tree.get("ref", "HEAD"),
        series=_series_source(here, series["source"]),
        revisions=tuple(series.get("revisions", [])),
        fragments=tuple((here / f).resolve() for f in kconfig["fragments"]),
        kconfig_base=_kconfig_base(here, kconfig.get("base", "tinyconfig")),
        kconfig_required=tuple(kconfig.get("required", [])),
        vcpus=tuple(guest.get("vcpus", [1, 2])),
        memory_mb=_memory_mb(guest),
        numa_nodes=guest.get("numa_nodes", 2),
        accel=guest.get("accel", "auto"),
        tests=tuple(guest.get("tests", ["fork", "stack"])),
        duration=guest.get("duration", 10),
        seed=guest.get("seed", 1),
        build_timeout=timeouts.get("build", 3600),
        boot_timeout=timeouts.get("boot", 120),
        test_slack=timeouts.get("test_slack", 60),
        repeats=guest.get("repeats", 1),
        thp=guest.get("thp", "madvise"),
        ksm=guest.get("ksm", True),
        khugepaged_sleep_ms=guest.get("khugepaged_sleep_ms", 100),
        compaction_proactiveness=guest.get("compaction_proactiveness", 20),
        numa_balancing=guest.get("numa_balancing", True),
        gate=verdict.get("gate", "new"),
        confirm=verdict.get("confirm", 2),
        fail_intermittent=verdict.get("fail_intermittent", True),
        bisect=verdict.get("bisect", True),
    )


def _memory_mb(guest: dict) -> int:
    """memory_mb, or memory_per_node_mb times the nodes (a job giving both must agree)."""
    if "memory_per_node_mb" not in guest:
        return guest.get("memory_mb", 1024)
    total = guest["memory_per_node_mb"] * guest.get("numa_nodes", 2)
    if guest.get("memory_mb", total) != total:
        # check() cannot see both keys: make the total wrong in a way it names.
        return -total
    return total


def _kconfig_base(here: Path, base: str) -> str:
    """A make target as given; a path to a .config made absolute."""
    return base if _MAKE_TARGET_RE.fullmatch(base) else str((here / base).resolve())


def _series_source(here: Path, source: str) -> str:
    """A local series path made absolute; lore, patchwork and git sources as given."""
    if not series.is_path(source):
        return source
    return str((here / source).resolve())


def _there(path: Path, test: Callable[[Path], bool] = Path.is_file) -> bool:
    """is_file (or is_dir, exists) that says no for a name the system cannot look up (one
    longer than NAME_MAX), instead of raising."""
    try:
        return test(path)
    except OSError:
        return False


def check(job: Job) -> list[str]:
    """Value checks, shared by job files and CLI overrides."""
    errors = []
    for f in job.fragments:
        # A line Kconfig ignores or misreads would go unnoticed until the kconfig case.
        errors += kconfig.lint(f) if _there(f) else [f"kconfig.fragments: {f}: no such file"]
    if not _MAKE_TARGET_RE.fullmatch(job.kconfig_base) and not _there(Path(job.kconfig_base)):
        errors.append(f"kconfig.base: {job.kconfig_base}: no such file (expected tinyconfig, "
                      "defconfig or a path to a .config)")
    bad = [o for o in job.kconfig_required if not _OPTION_RE.fullmatch(o)]
    if bad:
        errors.append(f"kconfig.required: expected option names such as CONFIG_LOCKDEP, got "
                      f"{bad}")
    if series.is_path(job.series) and not _there(Path(job.series), Path.exists):
        errors.append(f"series.source: {job.series}: no such file or folder")
    if series.is_git(job.series) and treesource.is_debian(job.tree):
        errors.append(f"series.source: {job.series}: commits need --tree, a git checkout "
                      "holding them")
    if treesource.is_debian(job.tree):
        try:
            treesource.package(job.tree)
        except ValueError as e:
            errors.append(f"tree.source: {e}")
    elif not _there(Path(job.tree), Path.is_dir):
        errors.append(f"tree.source: {job.tree}: no such folder")
    errors += vcpu_problems(job.vcpus)
    if not job.tests:
        errors.append("guest.tests: expected a non-empty list of names, got []")
    errors += _outside("guest.duration", job.duration, 1, MAX_DURATION,
                       f" seconds ({MAX_DURATION // HOUR} hours)")
    errors += _outside("guest.seed", job.seed, 0, MAX_SEED)
    errors += _outside("guest.repeats", job.repeats, 1, MAX_REPEATS)
    nodes = _outside("guest.numa_nodes", job.numa_nodes, 1, 4)
    errors += nodes or _memory_problems(job)  # memory is split over a valid count only
    errors += guest_settings(job).problems()
    if job.accel not in ACCELS:
        errors.append(f"guest.accel: expected one of {', '.join(ACCELS)}, got {job.accel!r}")
    if job.gate not in GATES:
        errors.append(f"verdict.gate: expected one of {', '.join(GATES)}, got {job.gate!r}")
    errors += _outside("verdict.confirm", job.confirm, 0, MAX_CONFIRM, " boots")
    errors += _outside("timeouts.build", job.build_timeout, 1, DAY, " seconds (a day)")
    errors += _outside("timeouts.boot", job.boot_timeout, 1, HOUR, " seconds (an hour)")
    errors += _outside("timeouts.test_slack", job.test_slack, 1, HOUR, " seconds (an hour)")
    return errors


def _outside(key: str, value: int, low: int, high: int, unit: str = "") -> list[str]:
    """[] for a value within its bounds, else the problem naming key, bounds and value."""
    return [] if low <= value <= high else [f"{key}: expected {low} to {high}{unit}, got {value}"]


def vcpu_problems(vcpus: tuple[int, ...]) -> list[str]:
    """guest.vcpus within bounds, each count once; `kpv run --cell` checks its count here."""
    if not vcpus:
        return ["guest.vcpus: expected at least one vCPU count, got []"]
    if not all(1 <= n <= MAX_VCPUS for n in vcpus):
        return [f"guest.vcpus: expected counts of 1 to {MAX_VCPUS} (the guest kernel's "
                f"NR_CPUS), got {list(vcpus)}"]
    if len(set(vcpus)) < len(vcpus):  # one cell per count: a repeat would replace a result
        return [f"guest.vcpus: expected each count once, got {list(vcpus)}"]
    return []


def _memory_problems(job: Job) -> list[str]:
    """Memory against the nodes it is split over and the host's RAM; then the tests."""
    if job.memory_mb < 0:
        return [f"guest.memory_mb: {-job.memory_mb} MiB is what memory_per_node_mb times "
                f"numa_nodes gives; give one of the two, or make them agree"]
    low = MIN_MEMORY_PER_NODE_MB * job.numa_nodes
    high = int(host_memory_mb() * HOST_MEMORY_SHARE)
    problems = _outside("guest.memory_mb", job.memory_mb, low, high,
                        f" MiB ({MIN_MEMORY_PER_NODE_MB} per NUMA node, at most "
                        f"{HOST_MEMORY_SHARE} of this host's RAM)")
    if problems:
        return problems
    if job.memory_mb % job.numa_nodes:
        # QEMU refuses nodes whose sizes do not add up to -m exactly.
        return [f"guest.memory_mb: {job.memory_mb} MiB does not split evenly over "
                f"{job.numa_nodes} NUMA nodes"]
    return _test_problems(job)


def host_memory_mb() -> int:
    """This machine's RAM in MiB."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20


def guest_settings(job: Job) -> GuestSettings:
    """The job's guest mm settings, as the guest image takes them."""
    from pipeline.guest import GuestSettings  # guest pulls in jinja2: only when needed

    return GuestSettings(job.thp, job.ksm, job.khugepaged_sleep_ms,
                         job.compaction_proactiveness, job.numa_balancing)


def _test_problems(job: Job) -> list[str]:
    """Unknown tests, and tests the guest is too small for, before anything boots."""
    from pipeline import guest

    errors = []
    for name in job.tests:
        try:
            memory, nodes = guest.test_needs(name)
        except UserError as e:
            errors.append(f"guest.tests: {e}")
            continue
        if job.memory_mb < memory:
            errors.append(f"guest.memory_mb: {job.memory_mb} MiB is too small for test "
                          f"{name} (it needs at least {memory} MiB)")
        if job.numa_nodes < nodes:
            errors.append(f"guest.numa_nodes: test {name} needs at least {nodes} NUMA nodes "
                          f"(pages must have somewhere to move), got {job.numa_nodes}")
    return errors


@dataclass(frozen=True)
class Overrides:
    """CLI flags that override the job file; None leaves the job's value."""

    tree: str | None = None
    series: str | None = None
    revisions: tuple[str, ...] | None = None
    vcpus: tuple[int, ...] | None = None
    tests: tuple[str, ...] | None = None
    duration: int | None = None
    accel: str | None = None
    out: Path | None = None
    kconfig_base: str | None = None
    gate: str | None = None
    confirm: int | None = None


# The job key each `kpv run` option overrides: a refusal names the option given.
_OPTION_KEYS = {"tree": "tree.source", "series": "series.source",
                "revisions": "series.revisions", "vcpus": "guest.vcpus",
                "tests": "guest.tests", "duration": "guest.duration", "accel": "guest.accel",
                "kconfig_base": "kconfig.base", "gate": "verdict.gate",
                "confirm": "verdict.confirm"}


def override(job: Job, o: Overrides) -> Job:
    """The job with the flags applied; raise UserError when the result is invalid."""
    changes = {k: v for k, v in vars(o).items() if v is not None}
    if "tree" in changes and not treesource.is_debian(changes["tree"]):
        changes["tree"] = str(Path(changes["tree"]).resolve())
    if "series" in changes:
        changes["series"] = _series_source(Path.cwd(), changes["series"])
    if "kconfig_base" in changes:
        changes["kconfig_base"] = _kconfig_base(Path.cwd(), changes["kconfig_base"])
    new = replace(job, **changes)
    errors = check(new)
    if errors:
        raise UserError("invalid options: " + "; ".join(_by_option(errors, set(changes))))
    return new


def _by_option(errors: list[str], given: set[str]) -> list[str]:
    """Each problem with a key an option set, prefixed with that option: `--vcpus: ...`."""
    options = {key: f"--{option.replace('_', '-')}" for option, key in _OPTION_KEYS.items()
               if option in given}
    out = []
    for e in errors:
        option = options.get(e.partition(":")[0])
        out.append(f"{option}: {e}" if option else e)
    return out
