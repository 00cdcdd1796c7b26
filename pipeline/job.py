"""Read and check a job file (TOML); apply CLI overrides.

Every problem in a job file is collected and reported at once, naming the
file, the key and what was expected, before anything runs.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import series, treesource
from pipeline.errors import UserError

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


# key -> (type, description) per table; "" is the top level.
_SCHEMA: dict[str, dict[str, tuple[type | tuple[type, ...], str]]] = {
    "": {"name": (str, "a string")},
    "tree": {
        "source": (str, '"debian:linux-source-X.Y" or a path to a kernel git checkout'),
        "ref": (str, "a commit, tag or branch of the checkout"),
    },
    "series": {
        "source": (str, "a series source (folder, mbox, patch, Message-ID, lore URL, pw:N)"),
        "revisions": (list, 'a list of revision names, "baseline" for no patches'),
    },
    "kconfig": {
        "fragments": (list, "a list of paths to config fragments"),
        "base": (str, '"tinyconfig", "defconfig" or a path to a .config'),
        "required": (list, 'a list of option names ("CONFIG_LOCKDEP") the tree must have'),
    },
    "guest": {
        "vcpus": (list, "a list of positive integers"),
        "memory_mb": (int, "an integer number of MiB"),
        "memory_per_node_mb": (int, "an integer number of MiB per NUMA node"),
        "numa_nodes": (int, "an integer, 1 to 4"),
        "accel": (str, '"auto", "kvm" or "tcg"'),
        "tests": (list, "a list of test names"),
        "duration": (int, "a positive integer number of seconds"),
        "seed": (int, "an integer"),
        "repeats": (int, "a positive integer: runs of each test per boot"),
        "thp": (str, '"always", "madvise" or "never"'),
        "ksm": (bool, "true or false"),
        "khugepaged_sleep_ms": (int, "milliseconds"),
        "compaction_proactiveness": (int, "an integer, 0 to 100"),
        "numa_balancing": (bool, "true or false"),
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
    errors = _check_shape(data)
    if errors:
        raise UserError(_format(path, errors))
    job = _build(path, data)
    errors = check(job)
    if errors:
        raise UserError(_format(path, errors))
    return job


def _format(path: Path, errors: list[str]) -> str:
    return f"{path}: invalid job file:\n" + "\n".join(f"  {e}" for e in errors)


def _check_shape(data: dict) -> list[str]:
    errors = []
    for key, value in data.items():
        if key in _SCHEMA and key != "":
            if not isinstance(value, dict):
                errors.append(f"[{key}]: expected a table")
                continue
            errors += _check_table(key, value)
        elif key not in _SCHEMA[""]:
            errors.append(f"{key}: unknown key (known: {', '.join(_known(''))})")
        else:
            errors += _check_table("", {key: value})
    for table, key in sorted(_REQUIRED):
        if key not in data.get(table, {}):
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
            errors.append(f"{name}: unknown key (known: {', '.join(_known(table))})")
            continue
        want, what = _SCHEMA[table][key]
        # bool is an int in Python; a job saying `duration = true` is a mistake.
        if not isinstance(value, want) or (isinstance(value, bool) and want is not bool):
            errors.append(f"{name}: expected {what}, got {type(value).__name__} {value!r}")
    return errors


def _build(path: Path, data: dict) -> Job:
    here = path.parent
    tree, series = data["tree"], data["series"]
    kconfig, guest = data["kconfig"], data.get("guest", {})
    timeouts = data.get("timeouts", {})
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


def check(job: Job) -> list[str]:
    """Value checks, shared by job files and CLI overrides."""
    errors = []
    for f in job.fragments:
        if not f.is_file():
            errors.append(f"kconfig.fragments: {f}: no such file")
    if not _MAKE_TARGET_RE.fullmatch(job.kconfig_base) and not Path(job.kconfig_base).is_file():
        errors.append(f"kconfig.base: {job.kconfig_base}: no such file (expected tinyconfig, "
                      "defconfig or a path to a .config)")
    bad = [o for o in job.kconfig_required if not isinstance(o, str) or not
           _OPTION_RE.fullmatch(o)]
    if bad:
        errors.append(f"kconfig.required: expected option names such as CONFIG_LOCKDEP, got "
                      f"{bad}")
    if series.is_path(job.series) and not Path(job.series).exists():
        errors.append(f"series.source: {job.series}: no such file or folder")
    if series.is_git(job.series) and treesource.is_debian(job.tree):
        errors.append(f"series.source: {job.series}: commits need --tree, a git checkout "
                      "holding them")
    if treesource.is_debian(job.tree):
        try:
            treesource.package(job.tree)
        except ValueError as e:
            errors.append(f"tree.source: {e}")
    elif not Path(job.tree).is_dir():
        errors.append(f"tree.source: {job.tree}: no such folder")
    if not job.vcpus or any(not isinstance(n, int) or n < 1 for n in job.vcpus):
        errors.append(f"guest.vcpus: expected positive integers, got {list(job.vcpus)}")
    if not job.tests or any(not isinstance(t, str) for t in job.tests):
        errors.append(f"guest.tests: expected a non-empty list of names, got {list(job.tests)}")
    if job.duration < 1:
        errors.append(f"guest.duration: expected at least 1 second, got {job.duration}")
    if not 1 <= job.numa_nodes <= 4:
        errors.append(f"guest.numa_nodes: expected 1 to 4, got {job.numa_nodes}")
    if job.memory_mb < 0:
        errors.append(f"guest.memory_mb: {-job.memory_mb} MiB is what memory_per_node_mb "
                      f"times numa_nodes gives; give one of the two, or make them agree")
    elif job.memory_mb < 128 * job.numa_nodes:
        errors.append(
            f"guest.memory_mb: expected at least {128 * job.numa_nodes} MiB "
            f"(128 per NUMA node), got {job.memory_mb}"
        )
    elif job.memory_mb % job.numa_nodes:
        # QEMU refuses nodes whose sizes do not add up to -m exactly.
        errors.append(f"guest.memory_mb: {job.memory_mb} MiB does not split evenly over "
                      f"{job.numa_nodes} NUMA nodes")
    else:
        errors += _test_problems(job)
    if job.repeats < 1:
        errors.append(f"guest.repeats: expected at least 1, got {job.repeats}")
    errors += guest_settings(job).problems()
    if job.accel not in ACCELS:
        errors.append(f"guest.accel: expected one of {', '.join(ACCELS)}, got {job.accel!r}")
    for key in ("build_timeout", "boot_timeout", "test_slack"):
        if getattr(job, key) < 1:
            errors.append(f"timeouts.{key.removesuffix('_timeout')}: expected a positive number")
    return errors


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
        if not isinstance(name, str):
            continue  # reported above
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
        raise UserError("invalid options:\n" + "\n".join(f"  {e}" for e in errors))
    return new
