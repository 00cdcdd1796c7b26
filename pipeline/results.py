"""The one result model: every stage's outcome for a run, JSON in and out, merge.

A Run holds suites; a suite is either a revision's build suite (`kpv.<rev>`,
cases apply/kconfig/build) or a cell (`kpv.<rev>.vcpus_<n>`, cases boot and
one per stress test). Reports render from this model only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

from pipeline import atomic
from pipeline.console import Report


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

    @classmethod
    def from_dict(cls, d: dict) -> Case:
        d = dict(d)
        d["status"] = Status(d["status"])
        d["reports"] = [Report(**r) for r in d.get("reports", [])]
        return cls(**d)


@dataclass
class Suite:
    name: str  # kpv.<rev> or kpv.<rev>.vcpus_<n>
    revision: str
    vcpus: int | None = None  # None for a revision's apply/config/build suite
    properties: dict[str, str] = field(default_factory=dict)
    cases: list[Case] = field(default_factory=list)

    @property
    def time(self) -> float:
        return sum(c.time for c in self.cases)

    @classmethod
    def from_dict(cls, d: dict) -> Suite:
        d = dict(d)
        d["cases"] = [Case.from_dict(c) for c in d.get("cases", [])]
        return cls(**d)


@dataclass
class Run:
    job: str  # the job's name
    started: str  # ISO 8601, UTC
    properties: dict[str, str] = field(default_factory=dict)  # base, series, accel, host
    suites: list[Suite] = field(default_factory=list)
    stage_times: dict[str, float] = field(default_factory=dict)  # wall seconds per stage kind

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
        """0 all passed, 1 the kernel or series failed, 2 the runner failed (like pytest)."""
        statuses = {c.status for _, c in self.cases()}
        if Status.ERROR in statuses:
            return 2
        if Status.FAIL in statuses:
            return 1
        return 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Run:
        d = dict(d)
        d["suites"] = [Suite.from_dict(s) for s in d.get("suites", [])]
        return cls(**d)

    def save(self, path: Path) -> None:
        """Write atomically, so an interrupted run leaves the last whole version."""
        atomic.write(path, (json.dumps(self.to_dict(), indent=1) + "\n").encode())

    @classmethod
    def load(cls, path: Path) -> Run:
        return cls.from_dict(json.loads(path.read_text()))


def merge(runs: list[Run]) -> Run:
    """One run from shards: suites of later shards replace same-named earlier ones."""
    if not runs:
        raise ValueError("nothing to merge")
    out = Run(job=runs[0].job, started=min(r.started for r in runs))
    for r in runs:
        out.properties.update(r.properties)
        for k, v in r.stage_times.items():
            out.stage_times[k] = out.stage_times.get(k, 0.0) + v
        for s in r.suites:
            out.add(s)
    return out
