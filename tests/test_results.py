import itertools
import shutil
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.console import Report
from pipeline.results import Case, Run, Status, Suite


def sample() -> Run:
    run = Run("j", "2026-01-01T00:00:00", {"accel": "tcg"})
    s = run.add(Suite("kpv.v1.vcpus_2", "v1", 2))
    r = Report("lockdep-circular", "possible deadlock in f", "text", ["a", "b"], ["f"], "fork")
    s.cases = [Case("boot"), Case("fork", Status.FAIL, 1.5, "possible deadlock in f",
                                  "lockdep-circular", "text", [r], {"ops": "3"})]
    return run


def test_roundtrip(tmp_path):
    run = sample()
    run.save(tmp_path / "results.json")
    back = Run.load(tmp_path / "results.json")
    assert back == run
    assert back.suites[0].cases[1].reports[0].locks == ["a", "b"]
    assert back.exit_code() == 1


def test_exit_codes_like_pytest():
    run = sample()
    run.suites[0].cases[1].status = Status.PASS
    assert run.exit_code() == 0
    run.suites[0].cases[0].status = Status.ERROR
    assert run.exit_code() == 2


IDENTITY = {"series": "/patches/anon-vma-lock", "base_commit": "c0ffee" * 6, "accel": "tcg"}


def shard(tmp_path, folder: str, cell: str, started: str, fork: Status = Status.PASS,
          build_time: float = 60.0, **props: str) -> Path:
    """What `kpv run --cell REV:N --out FOLDER` leaves: the revision built, one cell run."""
    rev, _, n = cell.partition(":")
    config = {"config_sha256": props.pop("config_sha256", "ab" * 32)}
    run = Run("anon-vma", started, {**IDENTITY, "host": folder, **props})
    run.add(Suite(f"kpv.{rev}", rev, None, dict(config), [
        Case("apply", time=0.5), Case("kconfig", time=3.0), Case("build", time=build_time)]))
    run.add(Suite(f"kpv.{rev}.vcpus_{n}", rev, int(n), dict(config), [
        Case("boot", time=20.0), Case("fork", fork, 10.0)]))
    run.stage_times = {"apply": 0.5, "kconfig": 3.0, "build": build_time, "boot+run": 31.0}
    run.save(tmp_path / folder / "results.json")
    return tmp_path / folder


def _merge(capsys, *shards: Path, out: Path) -> tuple[int, str]:
    code = main(["merge", *map(str, shards), "-o", str(out)])
    return code, capsys.readouterr().err


def test_merge_is_the_same_in_every_order(tmp_path, capsys):
    shards = [shard(tmp_path, "a", "v1:1", "2026-01-01T10:00:00", build_time=60.0),
              shard(tmp_path, "b", "v1:2", "2026-01-01T10:00:05", Status.FAIL, 61.0),
              shard(tmp_path, "c", "baseline:1", "2026-01-01T10:00:09", build_time=59.0)]
    merged = set()
    for i, order in enumerate(itertools.permutations(shards)):
        assert _merge(capsys, *order, out=tmp_path / f"m{i}") == (1, "")
        merged.add((tmp_path / f"m{i}" / "results.json").read_bytes())
    assert len(merged) == 1
    run = Run.load(tmp_path / "m0" / "results.json")
    # Shards in order of start; the revision both a and b built is kept once.
    assert [s.name for s in run.suites] == ["kpv.v1", "kpv.v1.vcpus_1", "kpv.v1.vcpus_2",
                                            "kpv.baseline", "kpv.baseline.vcpus_1"]
    # Each shard's own work once: a and b each built v1 for their own cell.
    assert run.stage_times == {"apply": 1.5, "kconfig": 9.0, "build": 180.0, "boot+run": 93.0}


def test_a_cell_two_shards_ran_differently_is_refused_in_every_order(tmp_path, capsys):
    a = shard(tmp_path, "a", "v1:1", "2026-01-01T10:00:00")
    b = shard(tmp_path, "b", "v1:2", "2026-01-01T10:00:05")
    again = shard(tmp_path, "again", "v1:2", "2026-01-01T11:00:00", Status.FAIL)
    for order in itertools.permutations([a, b, again]):
        assert _merge(capsys, *order, out=tmp_path / "m") == (2, (
            f"kpv: error: {b} and {again} both hold suite kpv.v1.vcpus_2, with different "
            "results (give each cell to one shard)\n"))
    assert not (tmp_path / "m").exists()


def test_a_revision_two_shards_built_differently_is_refused(tmp_path, capsys):
    a = shard(tmp_path, "a", "v1:1", "2026-01-01T10:00:00")
    b = shard(tmp_path, "b", "v1:2", "2026-01-01T10:00:05")
    run = Run.load(b / "results.json")
    run.suites[0].cases[2].status = Status.ERROR  # its build timed out
    run.save(b / "results.json")
    assert _merge(capsys, b, a, out=tmp_path / "m") == (2, (
        f"kpv: error: {a} and {b} both hold suite kpv.v1, with different results (apply pass, "
        f"kconfig pass, build pass in {a}, apply pass, kconfig pass, build error in {b})\n"))


def test_a_shard_given_twice_or_with_its_merge_counts_once(tmp_path, capsys):
    a = shard(tmp_path, "a", "v1:1", "2026-01-01T10:00:00")
    b = shard(tmp_path, "b", "v1:2", "2026-01-01T10:00:05", Status.FAIL)
    shutil.copytree(a, tmp_path / "a-copy")
    assert _merge(capsys, a, tmp_path / "a-copy", out=tmp_path / "aa") == (0, "")
    assert Run.load(tmp_path / "aa" / "results.json") == Run.load(a / "results.json")
    assert _merge(capsys, a, b, out=tmp_path / "ab") == (1, "")
    # A merged folder merged again with one of its shards: nothing counted twice.
    for order in itertools.permutations([tmp_path / "ab", a, b]):
        assert _merge(capsys, *order, out=tmp_path / "again") == (1, "")
        assert Run.load(tmp_path / "again" / "results.json") == \
            Run.load(tmp_path / "ab" / "results.json")


@pytest.mark.parametrize(("field", "other"), [
    ("job", "faults"),
    ("series", "/patches/faults"),
    ("base_commit", "beef" * 10),
    ("accel", "kvm"),
    ("config_sha256 of v1", "cd" * 32),
])
def test_shards_of_different_runs_are_refused(tmp_path, capsys, field, other):
    a = shard(tmp_path, "a", "v1:1", "2026-01-01T10:00:00")
    kind = field.partition(" ")[0]
    if kind == "job":
        b = shard(tmp_path, "b", "v1:2", "2026-01-01T10:00:05")
        run = Run.load(b / "results.json")
        run.job = other
        run.save(b / "results.json")
    else:
        b = shard(tmp_path, "b", "v1:2", "2026-01-01T10:00:05", **{kind: other})
    mine = {"job": "anon-vma", "config_sha256 of v1": "ab" * 32, **IDENTITY}[field]
    for order in ([a, b], [b, a]):
        assert _merge(capsys, *order, out=tmp_path / "m") == (2, (
            f"kpv: error: {a} and {b} are shards of different runs: {field} is {mine!r} in "
            f"{a}, {other!r} in {b}\n"))


def test_a_shard_that_stopped_early_merges(tmp_path, capsys):
    """A shard that failed before its base was known records no base or accel: no
    conflict, and it adds nothing."""
    a = shard(tmp_path, "a", "v1:1", "2026-01-01T10:00:00")
    Run("anon-vma", "2026-01-01T09:59:00", {"series": IDENTITY["series"]}).save(
        tmp_path / "early" / "results.json")
    assert _merge(capsys, tmp_path / "early", a, out=tmp_path / "m") == (0, "")
    assert Run.load(tmp_path / "m" / "results.json").suites == Run.load(a / "results.json").suites
