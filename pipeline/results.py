"""The one result model: every stage's outcome for a run, JSON in and out, merge.

A Run holds suites; a suite is either a revision's build suite (`kpv.<rev>`,
cases apply/kconfig/build) or a cell (`kpv.<rev>.vcpus_<n>`, cases boot and
one per stress test). Reports render from this model only.
"""

from __future__ import annotations

import functools
import json
import math
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from enum import StrEnum
from pathlib import Path

from pipeline import atomic
from pipeline.console import Report
from pipeline.errors import UserError
from pipeline.sanitize import one_line
from pipeline.series import BASELINE


class Status(StrEnum):
    PASS = "pass"  # ran and found nothing wrong
    FAIL = "fail"  # the kernel or the series is wrong (a JUnit <failure>)
    ERROR = "error"  # the runner could not do its job (a JUnit <error>)
    SKIP = "skip"  # not run, and the reason says why


@dataclass
class Case:
    name: str  # apply, kconfig, build, boot, or a stress test name
    status: Status = Status.PASS
    time: float = 0.0  # seconds
    message: str = ""  # one line: the first report title, the compiler error, the skip reason
    kind: str = ""  # failure type: a report type, "build-error", "apply-error", ...
    text: str = ""  # the details (report text, log excerpt)
    reports: list[Report] = field(default_factory=list)  # kernel reports attributed here
    properties: dict[str, str] = field(default_factory=dict)  # timings, lockdep state, ...
    artifacts: list[str] = field(default_factory=list)  # paths relative to the output dir
    boots_run: int = 1  # boots of this test: one, plus the boots confirming a new report
    boots_seen: dict[str, int] = field(default_factory=dict)  # report signature -> its boots


@dataclass
class Suite:
    name: str  # kpv.<rev> or kpv.<rev>.vcpus_<n>
    revision: str
    vcpus: int | None = None  # None for a revision's apply/config/build suite
    properties: dict[str, str] = field(default_factory=dict)
    cases: list[Case] = field(default_factory=list)
    # A revision's suite: the lock order its tree documents, [before, after] lock keys.
    lock_order: list[list[str]] = field(default_factory=list)

    @property
    def time(self) -> float:
        return sum(c.time for c in self.cases)


@dataclass
class Seen:
    """One distinct report of a revision, and where it showed."""

    signature: str
    title: str
    type: str
    cells: list[str]  # "vcpus_2/migrate": vCPU count and test (or boot)
    boots_seen: int  # boots that showed it
    boots_run: int  # boots of those cells' tests


@dataclass
class ReportChanges:
    """A revision's reports against the baseline's."""

    new: list[Seen] = field(default_factory=list)  # never in the baseline, in every boot
    preexisting: list[Seen] = field(default_factory=list)  # the baseline shows it too
    fixed: list[Seen] = field(default_factory=list)  # the baseline's, gone where both ran
    intermittent: list[Seen] = field(default_factory=list)  # new, but in some boots only


@dataclass
class FirstBad:
    """The first patch of a revision whose prefix of the series shows a new report."""

    index: int  # 1-based
    of: int  # patches in the revision
    patch: str  # file name
    subject: str
    signature: str  # the report looked for
    probes: list[str] = field(default_factory=list)  # "1/3: not seen in 3 boots", in order


@dataclass
class LockDependencies:
    """Lock dependencies (edges {"from": held, "to": taken}, lockdep's class names as
    printed) a revision showed against the baseline's and the tree's documented order."""

    source: str  # what the edges were read from
    new_classes: list[str] = field(default_factory=list)
    new_edges: list[dict[str, str]] = field(default_factory=list)
    gone_edges: list[dict[str, str]] = field(default_factory=list)
    against_documented_order: list[dict[str, str]] = field(default_factory=list)
    undocumented_classes: list[str] = field(default_factory=list)  # in new edges
    incomplete: bool = True  # not lockdep's whole graph


@dataclass
class Timing:
    """One test at one vCPU count: the revision's median rate against the baseline's."""

    test: str
    vcpus: int
    metric: str  # ops_per_s: the test's operations per second
    baseline_median: float
    median: float
    ratio: float  # median / baseline_median: below 1 is slower
    ci_low: float  # 95% bootstrap interval of the ratio over the runs
    ci_high: float
    verdict: str  # faster, slower, no change, too noisy
    baseline_runs: int
    runs: int


@dataclass
class Comparison:
    """What a revision changed against the baseline: its reports, lock dependencies
    and timings."""

    baseline: str  # where the baseline came from: "this run", or an earlier run's folder
    reports: ReportChanges = field(default_factory=ReportChanges)
    first_bad_patch: FirstBad | None = None
    lock_dependencies: LockDependencies | None = None
    timings: list[Timing] = field(default_factory=list)


# The shape of results.json. 1: files from before the field existed (read as they are);
# 2: schema_version added; 3: the comparison with the baseline, boots per case. Raise it
# when a field is added, changes meaning or goes; an older file is brought up to date
# when read, and a newer file is refused.
SCHEMA_VERSION = 3


@dataclass
class Run:
    job: str  # the job's name
    started: str  # ISO 8601, UTC
    properties: dict[str, str] = field(default_factory=dict)  # base, series, accel, host
    suites: list[Suite] = field(default_factory=list)
    stage_times: dict[str, float] = field(default_factory=dict)  # wall seconds per stage kind
    comparison: dict[str, Comparison] = field(default_factory=dict)  # per revision
    schema_version: int = SCHEMA_VERSION

    def add(self, suite: Suite) -> Suite:
        """Add or replace the suite of that name, keeping the order of first arrival."""
        for i, s in enumerate(self.suites):
            if s.name == suite.name:
                self.suites[i] = suite
                return suite
        self.suites.append(suite)
        return suite

    def cases(self):
        for s in self.suites:
            for c in s.cases:
                yield s, c

    def exit_code(self) -> int:
        """0 all passed, 1 the kernel or series failed, 2 the runner failed (like pytest).

        Under gate "new" the baseline is what revisions are judged against: its own
        failures are shown, and count only in a run of the baseline alone.
        """
        judged = list(self.cases())
        if self.properties.get("gate") == "new" and any(s.revision != BASELINE
                                                        for s in self.suites):
            judged = [(s, c) for s, c in judged
                      if s.revision != BASELINE or c.status == Status.ERROR]
        statuses = {c.status for _, c in judged}
        if Status.ERROR in statuses:
            return 2
        if Status.FAIL in statuses:
            return 1
        return 0

    def to_dict(self) -> dict:
        d = asdict(self)
        return {"schema_version": d.pop("schema_version"), **d}  # first, for a reader

    def save(self, path: Path) -> None:
        """Write atomically, so an interrupted run leaves the last whole version."""
        atomic.write(path, (json.dumps(self.to_dict(), indent=1) + "\n").encode())

    @classmethod
    def load(cls, path: Path) -> Run:
        """Read results.json; UserError, one line, for anything but the shape kpv writes.

        results.json comes back from CI artifacts, other kpv versions and hand
        edits: what is wrong, and where, must be said instead of a traceback.
        """
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise UserError(f"{path}: no such file") from None
        except OSError as e:
            raise UserError(f"{path}: cannot read: {e.strerror}") from None
        try:
            value = _parse(data)
            if isinstance(value, dict):
                value = _versioned(path, value)
            run = _build(Run, value, "")
            _check_names(run)
        except _NotResults as e:
            raise UserError(f"{path}: not a kpv results file: {e}") from None
        return run


def _versioned(path: Path, value: dict[str, object]) -> dict[str, object]:
    """The file in this kpv's shape: an older one brought up to date, a newer one refused."""
    version = value.get("schema_version", 1)
    if type(version) is not int or version < 1:
        raise _wrong("schema_version", "a positive integer", version)
    if version > SCHEMA_VERSION:
        raise UserError(f"{path}: written by a newer kpv (results schema {version}; this kpv "
                        f"reads up to {SCHEMA_VERSION}): upgrade kpv to read it")
    # Schema 1 differs only in lacking the version itself; 2 lacks what 3 added.
    if version < 3:
        value = {"comparison": {}, **value}
        for suite in value.get("suites") if isinstance(value.get("suites"), list) else []:
            if isinstance(suite, dict):
                suite.setdefault("lock_order", [])
            cases = suite.get("cases") if isinstance(suite, dict) else None
            for case in cases if isinstance(cases, list) else []:
                if isinstance(case, dict):
                    case.setdefault("boots_run", 1)
                    case.setdefault("boots_seen", {})
    return {**value, "schema_version": SCHEMA_VERSION}


class _NotResults(Exception):
    """What makes a text not a results.json kpv wrote, and where (a JSON path)."""


def _parse(data: bytes) -> object:
    if not data.strip():
        raise _NotResults("empty")
    try:
        text = data.decode()
    except UnicodeDecodeError as e:
        raise _NotResults(f"not UTF-8: byte {data[e.start]:#04x} at offset {e.start}") from None
    try:
        return json.loads(text, object_pairs_hook=_object)
    except json.JSONDecodeError as e:
        raise _NotResults(f"not JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except RecursionError:  # the scanner's depth limit, far beyond kpv's own nesting
        raise _NotResults("not JSON kpv writes: nested too deeply") from None
    except ValueError:  # int()'s limit on digits (sys.get_int_max_str_digits)
        raise _NotResults("not JSON kpv writes: a number with thousands of digits") from None


def _object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object; json.loads would let the last of two equal keys win unseen."""
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise _NotResults(f"key {_shown(key)} given twice in one object")
        out[key] = value
    return out


def _build(hint: object, value: object, where: str) -> typing.Any:
    """`value` as the type `hint` of the result model, or _NotResults at `where`.

    The model's own type hints are the schema, so a field added to a dataclass
    is read and checked without a second description of it to keep in step.
    """
    if is_dataclass(hint):
        return _build_object(hint, value, where)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is types.UnionType:  # `X | None`, the only union the model uses
        if value is None:
            return None
        (hint,) = [a for a in args if a is not type(None)]
        return _build(hint, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise _wrong(where, "an array", value)
        return [_build(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _wrong(where, "an object", value)
        return {k: _build(args[1], v, _key(where, k)) for k, v in value.items()}
    return _scalar(hint, value, where)


def _build_object(cls: type, value: object, where: str) -> object:
    if not isinstance(value, dict):
        raise _wrong(where, "an object", value)
    hints, names = _fields(cls)
    for key in value:
        if key not in hints:
            raise _NotResults(_at(where, f"unknown key {_shown(key)}"))
    # kpv writes every field; one left out is a file cut or edited, not a default.
    for name in names:
        if name not in value:
            raise _NotResults(_at(where, f"missing key {_shown(name)}"))
    return cls(**{n: _build(hints[n], value[n], _key(where, n)) for n in names})


@functools.cache
def _fields(cls: type) -> tuple[dict[str, object], list[str]]:
    return typing.get_type_hints(cls), [f.name for f in fields(cls)]


def _scalar(hint: object, value: object, where: str) -> object:
    # bool is an int to Python, not to the model.
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        if isinstance(value, str):
            return value
        raise _wrong(where, "a string", value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _wrong(where, "true or false", value)
    if hint is int:  # line numbers and vCPU counts
        if number and isinstance(value, int) and value >= 0:
            return value
        raise _wrong(where, "a whole number, 0 or more", value)
    if hint is float:  # seconds; json.loads gives NaN and inf (for 1e400) too
        if number and _finite(value) and value >= 0:
            return float(value)
        raise _wrong(where, "a finite number, 0 or more", value)
    if hint is Status:
        if isinstance(value, str) and value in set(Status):
            return Status(value)
        raise _wrong(where, f"one of {', '.join(Status)}", value)
    raise TypeError(f"results model: no reader for {hint!r}")


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond any float
        return False


def _check_names(run: Run) -> None:
    """Suites are found by name (merge, JUnit classnames): one name, one suite."""
    first: dict[str, int] = {}
    for i, s in enumerate(run.suites):
        j = first.setdefault(s.name, i)
        if j != i:
            raise _NotResults(f"suites[{i}].name: {_shown(s.name)} is suites[{j}]'s name too")


def _wrong(where: str, expected: str, value: object) -> _NotResults:
    return _NotResults(_at(where, f"expected {expected}, got {_json_type(value)}"))


def _json_type(value: object) -> str:
    """The value as a user reading the JSON sees it: its type and, when short, itself."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    kind = "a string" if isinstance(value, str) else "a number"
    return f"{kind} {_shown(value)}"


def _shown(value: object) -> str:
    """A value or key in a one-line message: its repr (no newline), cut when long."""
    return one_line(repr(value), 80)


def _key(where: str, key: str) -> str:
    """The JSON path of `key` in the object at `where`: a.b, or a['odd key']."""
    if not key.isidentifier():
        return f"{where}[{_shown(key)}]"
    return f"{where}.{key}" if where else key


def _at(where: str, what: str) -> str:
    return f"{where}: {what}" if where else what


def merge(shards: list[tuple[Path, Run]]) -> Run:
    """One run from the shards of one run (`--cell` per CI job), each named by its folder.

    The result does not depend on the order the shards are given in: they are
    taken in order of their start. Shards of different runs, or a cell two
    shards ran with different results, are refused (UserError naming both).
    """
    if not shards:
        raise ValueError("nothing to merge")
    ordered = sorted(shards, key=lambda s: (s[1].started, json.dumps(s[1].to_dict())))
    _same_run(ordered)
    out = Run(job=ordered[0][1].job, started=ordered[0][1].started)
    found: dict[str, tuple[Path, Suite]] = {}  # suite name -> the shard it came from
    for where, run in ordered:
        out.properties.update(run.properties)
        for rev, comparison in run.comparison.items():  # a shard's bisection stays
            out.comparison.setdefault(rev, comparison)
        for suite in run.suites:
            if suite.name not in found:
                found[suite.name] = (where, out.add(suite))
            else:
                _same_suite(found[suite.name], (where, suite))
    for i, (_, run) in enumerate(ordered):
        if not _held_elsewhere(i, ordered):
            for stage, seconds in run.stage_times.items():
                out.stage_times[stage] = out.stage_times.get(stage, 0.0) + seconds
    return out


def _identity(run: Run) -> dict[str, str]:
    """What shards of one run share: the job, its series, the base commit, the
    accelerator, and each revision's patches and kernel config."""
    out = {"job": run.job}
    out.update({k: run.properties[k] for k in ("series", "base_commit", "accel")
                if k in run.properties})
    for s in run.suites:
        for key, value in s.properties.items():
            if key in ("base_commit", "config_sha256") or key.startswith("patch_"):
                out[f"{key} of {s.revision}"] = value
    return out


def _same_run(shards: list[tuple[Path, Run]]) -> None:
    """A shard that stopped early records less; what two shards both record must agree."""
    first: dict[str, tuple[Path, str]] = {}
    for where, run in shards:
        for key, value in _identity(run).items():
            there, seen = first.setdefault(key, (where, value))
            if seen != value:
                raise UserError(f"{there} and {where} are shards of different runs: {key} is "
                                f"{_shown(seen)} in {there}, {_shown(value)} in {where}")


def _same_suite(kept: tuple[Path, Suite], other: tuple[Path, Suite]) -> None:
    """A suite in two shards is the same result twice (a shard given twice, or a merge
    and its input), or a revision's build suite: every shard builds the revisions of
    its own cells, and those builds must have ended alike."""
    (there, a), (where, b) = kept, other
    if a == b:
        return
    if a.vcpus is None and b.vcpus is None:
        if _outcome(a) == _outcome(b):
            return
        detail = f"{_outcome(a)} in {there}, {_outcome(b)} in {where}"
    else:
        detail = "give each cell to one shard"
    raise UserError(f"{there} and {where} both hold suite {a.name}, with different results "
                    f"({detail})")


def _outcome(suite: Suite) -> str:
    return ", ".join(f"{c.name} {c.status.value}" for c in suite.cases) or "no cases"


def _held_elsewhere(i: int, shards: list[tuple[Path, Run]]) -> bool:
    """Shard i's work is counted in another shard: every suite of it is in one that
    holds more (a merge that took it in), or in an equal one taken before it (a copy)."""
    mine = shards[i][1].suites
    for j, (_, run) in enumerate(shards):
        if j != i and all(s in run.suites for s in mine) and (len(run.suites) > len(mine)
                                                              or j < i):
            return True
    return False
