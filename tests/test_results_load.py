"""results.json that kpv did not write: `kpv report` and `kpv merge` refuse it in one
line naming the file, what is wrong and where (a JSON path), exit 2, no traceback."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.results import Case, Run, Status, Suite
from tests.test_results import sample


def real_run() -> Run:
    """A run as kpv writes one: a revision's build suite, then a cell with a report."""
    run = sample()
    run.suites.insert(0, Suite("kpv.v1", "v1", None, {"config_sha256": "ab" * 32},
                               [Case("apply", time=0.5), Case("kconfig", time=3.0),
                                Case("build", Status.SKIP, message="not built")]))
    run.stage_times = {"apply": 0.5, "kconfig": 3.0}
    return run


def real_json() -> dict:
    return real_run().to_dict()


def _set(path: str, value: object) -> Callable[[Path], None]:
    """A variant: real results.json with the value at `path` (a.b.0.c) set, or deleted
    for DELETE."""
    def write(target: Path) -> None:
        data = real_json()
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        where = data
        for p in parents:
            where = where[p]
        if value is DELETE:
            del where[last]
        else:
            where[last] = value
        target.write_text(json.dumps(data))
    return write


DELETE = object()


def _text(text: str | bytes) -> Callable[[Path], None]:
    def write(target: Path) -> None:
        target.write_bytes(text if isinstance(text, bytes) else text.encode())
    return write


def _real_then(edit: Callable[[str], str]) -> Callable[[Path], None]:
    def write(target: Path) -> None:
        target.write_text(edit(json.dumps(real_json(), indent=1)))
    return write


def _duplicate_suite(target: Path) -> None:
    data = real_json()
    data["suites"].append(data["suites"][0])
    target.write_text(json.dumps(data))


def _folder(target: Path) -> None:
    target.mkdir()


def _loop(target: Path) -> None:
    target.symlink_to(target.name)  # ELOOP: it points at itself


def _read_error(target: Path) -> None:
    # The open succeeds and the read fails with EIO, as on a failing disk; permissions
    # would not do, the tests run as root.
    target.symlink_to("/proc/self/mem")


def _missing(target: Path) -> None:
    pass


CASE = "suites.1.cases.1"
VARIANTS = {
    "empty": (_text(""), "not a kpv results file: empty"),
    "blank": (_text(" \n\t\n"), "not a kpv results file: empty"),
    "not JSON": (_text("results: ok\n"), "not JSON: Expecting value (line 1, column 1)"),
    "cut short": (_real_then(lambda t: t[: len(t) // 2]), "not JSON: "),
    "a list at the top": (_text("[]"), "not a kpv results file: expected an object, got an array"),
    "a string at the top": (_text('"x"'), "expected an object, got a string 'x'"),
    "null at the top": (_text("null"), "expected an object, got null"),
    "missing key": (_set("job", DELETE), "not a kpv results file: missing key 'job'"),
    "missing status": (_set(f"{CASE}.status", DELETE), "suites[1].cases[1]: missing key 'status'"),
    "a suite without cases": (_set("suites.0.cases", DELETE),
                              "suites[0]: missing key 'cases'"),
    "extra key": (_set("extra", 1), "not a kpv results file: unknown key 'extra'"),
    "extra key in a case": (_set(f"{CASE}.verdict", "ok"),
                            "suites[1].cases[1]: unknown key 'verdict'"),
    "bad status": (_set(f"{CASE}.status", "passed"), "suites[1].cases[1].status: expected one "
                                                     "of pass, fail, error, skip, got a string "
                                                     "'passed'"),
    "status a number": (_set(f"{CASE}.status", 0), "status: expected one of pass, fail, error, "
                                                   "skip, got a number 0"),
    "suites an object": (_set("suites", {}), "suites: expected an array, got an object"),
    "job a number": (_set("job", 7), "job: expected a string, got a number 7"),
    "vcpus a string": (_set("suites.1.vcpus", "2"),
                       "suites[1].vcpus: expected a whole number, 0 or more, got a string '2'"),
    "vcpus a float": (_set("suites.1.vcpus", 2.5), "suites[1].vcpus: expected a whole number"),
    "a bool for an int": (_set(f"{CASE}.reports.0.first_line", True),
                          "suites[1].cases[1].reports[0].first_line: expected a whole number, "
                          "0 or more, got true"),
    "time a string": (_set(f"{CASE}.time", "1.5"), "time: expected a finite number, 0 or more"),
    "time negative": (_set(f"{CASE}.time", -1), "suites[1].cases[1].time: expected a finite "
                                                "number, 0 or more, got a number -1"),
    "property a number": (_set("properties.accel", 1), "properties.accel: expected a string"),
    "odd property key": (_set("properties", {"a b": 1}),
                         "properties['a b']: expected a string"),
    "report a string": (_set(f"{CASE}.reports.0", "lockdep"),
                        "suites[1].cases[1].reports[0]: expected an object, got a string"),
    "artifact a number": (_set(f"{CASE}.artifacts", [3]), "cases[1].artifacts[0]: expected a "
                                                          "string, got a number 3"),
    "newer schema": (_set("schema_version", 4), "written by a newer kpv (results schema 4; "
                     "this kpv reads up to 3): upgrade kpv to read it"),
    "schema a string": (_set("schema_version", "2"), "not a kpv results file: schema_version: "
                        "expected a positive integer, got a string '2'"),
    "schema zero": (_set("schema_version", 0), "schema_version: expected a positive integer"),
    "stage time a string": (_set("stage_times.apply", "fast"),
                            "stage_times.apply: expected a finite number"),
    "not UTF-8": (_text(b'{"job": "\xff"}'), "not UTF-8: byte 0xff at offset 9"),
    "a byte order mark": (_real_then(lambda t: "\ufeff" + t), "not JSON: Unexpected UTF-8 BOM"),
    "nested deep": (_text("[" * 100_000 + "]" * 100_000), "nested too deeply"),
    "a number of 5000 digits": (_real_then(lambda t: t.replace('"time": 1.5', '"time": '
                                                               + "9" * 5000)),
                                "a number with thousands of digits"),
    "a huge time": (_real_then(lambda t: t.replace('"time": 1.5', '"time": 1e400')),
                    "suites[1].cases[1].time: expected a finite number, 0 or more, got a "
                    "number inf"),
    "NaN": (_real_then(lambda t: t.replace('"time": 1.5', '"time": NaN')),
            "time: expected a finite number, 0 or more, got a number nan"),
    "Infinity": (_real_then(lambda t: t.replace('"apply": 0.5', '"apply": Infinity')),
                 "stage_times.apply: expected a finite number, 0 or more, got a number inf"),
    "duplicate suite names": (_duplicate_suite, "suites[2].name: 'kpv.v1' is suites[0]'s name "
                                                "too"),
    "duplicate key": (_real_then(lambda t: t.replace('"job": "j"', '"job": "j", "job": "k"')),
                      "not a kpv results file: key 'job' given twice in one object"),
    "a folder": (_folder, "cannot read: Is a directory"),
    "a symlink loop": (_loop, "cannot read: Too many levels of symbolic links"),
    "a read error": (_read_error, "cannot read: Input/output error"),
    "missing": (_missing, "results.json: no such file"),
}


def _refused(capsys, argv: list[str], bad: Path, expected: str) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith(f"kpv: error: {bad}: "), captured.err
    assert expected in captured.err
    assert "Traceback" not in captured.err


@pytest.mark.parametrize("variant", VARIANTS)
def test_report_refuses_in_one_line(tmp_path, capsys, variant):
    make, expected = VARIANTS[variant]
    shard = tmp_path / "shard"
    shard.mkdir()
    make(shard / "results.json")
    _refused(capsys, ["report", str(shard)], shard / "results.json", expected)
    assert not (shard / "junit.xml").exists()


@pytest.mark.parametrize("variant", VARIANTS)
def test_merge_refuses_in_one_line(tmp_path, capsys, variant):
    make, expected = VARIANTS[variant]
    good, bad = tmp_path / "good", tmp_path / "bad"
    real_run().save(good / "results.json")
    bad.mkdir()
    make(bad / "results.json")
    out = tmp_path / "merged"
    _refused(capsys, ["merge", str(good), str(bad), "-o", str(out)], bad / "results.json",
             expected)
    assert not out.exists()


def test_what_kpv_writes_loads(tmp_path, capsys):
    """Every variant above is one change away from this, which loads."""
    real_run().save(tmp_path / "results.json")
    assert main(["report", str(tmp_path)]) == 1  # sample's fork case fails
    assert capsys.readouterr().err == ""


def test_an_interrupted_run_loads(tmp_path, capsys):
    """Ctrl-C during a revision's apply leaves its suite with no cases yet: still kpv's."""
    run = real_run()
    run.suites[0].cases = []
    run.save(tmp_path / "results.json")
    assert main(["report", str(tmp_path)]) == 1
    assert Run.load(tmp_path / "results.json").suites[0].cases == []



def test_a_file_from_before_schema_versions_loads(tmp_path):
    """kpv wrote no schema_version before schema 2, and no comparison nor boots per case
    before 3; such a file is read, and saved as 3."""
    data = real_json()
    assert data["schema_version"] == 3
    del data["schema_version"], data["comparison"]
    for suite in data["suites"]:
        for case in suite["cases"]:
            del case["boots_run"], case["boots_seen"]
    old = tmp_path / "results.json"
    old.write_text(json.dumps(data))
    run = Run.load(old)
    assert run.schema_version == 3 and run.suites == real_run().suites
