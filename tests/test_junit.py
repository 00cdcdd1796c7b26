import hashlib
import io
import operator
import os
from pathlib import Path

import pytest
import xmlschema
from hypothesis import given, settings
from hypothesis import strategies as st
from junitparser import Error, Failure, JUnitXml, Skipped, TestCase

from pipeline.report import junit
from pipeline.results import Case, Run, Status, Suite

SCHEMA_PATH = Path(__file__).parent / "data" / "junit-10.xsd"
# jenkinsci/xunit-plugin junit-10.xsd (MIT), the same bytes as pytest's
# testing/example_scripts/junit-10.xsd.
SCHEMA_SHA256 = "a1a816f58d1bf95ebabf371994df0b9246dee66ea9572fbec4f9296f1b2c0ff6"

TITLE = "possible circular locking dependency detected in anon_vma_chain_link"
# A lockdep report as a console gives it: colour codes, CRLF, a NUL, invalid
# UTF-8 (decoded with replacement and with surrogateescape), and XML's own
# special characters.
SPLAT_HEAD = (
    b"\x1b[1;31m======================================================\x1b[0m\r\n"
    b"WARNING: possible circular locking dependency detected\r\n"
    b"6.1.0-kpv #1 Not tainted \xff\xfe\r\n"
    b"stress-fork/123 is trying to acquire lock: <&> ]]> \x00\r\n"
).decode("utf-8", errors="replace") + b"bad byte \xff\r\n".decode("utf-8", "surrogateescape")
SPLAT_TAIL = " </TASK>\r\nEND OF SPLAT\r\n"
SPLAT = SPLAT_HEAD + " lock_acquire+0x1c/0x40\r\n" * 5000 + SPLAT_TAIL


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(SCHEMA_PATH)


def make_run() -> Run:
    run = Run(
        job="anon-vma",
        started="2026-01-02T03:04:05.678+00:00",
        properties={"base": "v6.1.192", "accel": "tcg"},
    )
    run.add(
        Suite(
            "kpv.v2-fix",
            "v2-fix",
            properties={"revision": "v2-fix", "message_id": "<x@y>"},
            cases=[Case("apply", time=0.5), Case("kconfig", time=2), Case("build", time=150.25)],
        )
    )
    run.add(
        Suite(
            "kpv.v2-fix.vcpus_2",
            "v2-fix",
            vcpus=2,
            properties={"vcpus": "2", "qemu": "qemu-system-x86_64 -smp 2"},
            cases=[
                Case("boot", time=3.1),
                Case(
                    "stress-fork",
                    Status.FAIL,
                    time=30.0001,
                    message=TITLE,
                    kind="lockdep-circular",
                    text=SPLAT,
                    properties={"debug_locks_start": "1", "debug_locks_end": "0"},
                    artifacts=["v2-fix/vcpus-2/console.log"],
                ),
                Case(
                    "stress-migrate",
                    Status.ERROR,
                    time=600,
                    message="QEMU died: signal 9",
                    kind="infra.timeout",
                    text="no @@kpv end marker\r\n",
                ),
                Case("stress-ksm", Status.SKIP, message="CONFIG_KSM is not set"),
                Case(
                    "stress-thp",
                    time=12.5,
                    properties={"debug_locks_start": "0", "debug_locks_end": "0"},
                ),
            ],
        )
    )
    return run


CELL = "kpv.v2-fix.vcpus_2"


def parse(xml: bytes) -> JUnitXml:
    return JUnitXml.fromstring(xml)


def cell_case(xml: bytes, name: str) -> TestCase:
    """The one case called `name` in the vCPU cell of make_run()."""
    (case,) = [c for s in parse(xml) for c in s if (c.classname, c.name) == (CELL, name)]
    return case


def test_schema_copy_is_the_jenkins_xunit_one():
    assert hashlib.sha256(SCHEMA_PATH.read_bytes()).hexdigest() == SCHEMA_SHA256


def test_output_validates_with_unique_pairs(schema):
    xml = junit.render(make_run(), Path("out"))
    schema.validate(io.BytesIO(xml))
    pairs = [(c.classname, c.name) for s in parse(xml) for c in s]
    assert len(pairs) == len(set(pairs)) == 8


def test_suites_and_counts():
    doc = parse(junit.render(make_run()))
    assert doc.name == "anon-vma"
    assert (doc.tests, doc.failures, doc.errors) == (8, 1, 1)
    build, cell = list(doc)
    assert build.name == "kpv.v2-fix"
    assert (build.tests, build.failures, build.errors, build.skipped) == (3, 0, 0, 0)
    assert cell.name == "kpv.v2-fix.vcpus_2"
    assert (cell.tests, cell.failures, cell.errors, cell.skipped) == (5, 1, 1, 1)
    assert cell.timestamp == "2026-01-02T03:04:05"
    assert build.time == 152.75


def test_suite_properties_include_the_runs():
    cell = list(parse(junit.render(make_run())))[1]
    props = {p.name: p.value for p in cell.properties()}
    assert props == {
        "base": "v6.1.192",
        "accel": "tcg",
        "vcpus": "2",
        "qemu": "qemu-system-x86_64 -smp 2",
    }


def test_failure_carries_the_title_and_a_bounded_clean_body():
    case = cell_case(junit.render(make_run()), "stress-fork")
    (failure,) = case.result
    assert isinstance(failure, Failure)
    assert failure.type == "lockdep-circular"
    assert failure.message == TITLE
    body = failure.text
    assert body.startswith(TITLE + "\n=====")
    assert body.endswith("END OF SPLAT\n")
    assert len(body.encode()) <= junit.TEXT_LIMIT
    assert "bytes cut ...]" in body
    assert "<&> ]]> \\x00" in body  # special characters survive, NUL is visible
    assert "\ufffd\ufffd" in body
    assert "bad byte \\udcff" in body
    assert "\x1b" not in body
    assert "[0m" not in body
    assert "\r" not in body
    assert case.time == 30.0


def test_error_and_skip():
    xml = junit.render(make_run())
    (error,) = cell_case(xml, "stress-migrate").result
    assert isinstance(error, Error)
    assert (error.type, error.message) == ("infra.timeout", "QEMU died: signal 9")
    assert error.text == "QEMU died: signal 9\nno @@kpv end marker\n"
    (skipped,) = cell_case(xml, "stress-ksm").result
    assert isinstance(skipped, Skipped)
    assert skipped.message == "CONFIG_KSM is not set"
    assert cell_case(xml, "boot").is_passed


def test_lockdep_state_is_never_a_silent_pass():
    xml = junit.render(make_run())
    thp = cell_case(xml, "stress-thp")
    assert thp.is_passed
    assert thp.system_out.splitlines() == [
        junit.LOCKDEP_OFF,
        "debug_locks_start: 0",
        "debug_locks_end: 0",
    ]
    fork = cell_case(xml, "stress-fork")
    assert fork.system_out.splitlines()[0] == junit.LOCKDEP_SWITCHED_OFF
    assert cell_case(xml, "boot").system_out is None


def test_artifacts_are_attached_with_absolute_paths(tmp_path):
    out = cell_case(junit.render(make_run(), tmp_path), "stress-fork").system_out
    path = tmp_path / "v2-fix" / "vcpus-2" / "console.log"
    assert out.splitlines()[-1] == f"[[ATTACHMENT|{path}]]"


def test_no_attachments_without_an_output_dir():
    assert "ATTACHMENT" not in cell_case(junit.render(make_run()), "stress-fork").system_out


def test_names_are_mapped_and_pairs_unique(schema):
    run = Run(job="j", started="2026-01-01T00:00:00")
    cases = [Case("stress ng.fork"), Case("stress_ng.fork"), Case("stress_ng.fork"), Case("")]
    run.suites = [Suite("kpv.v6.9 rc1", "v6.9 rc1", cases=cases), Suite("kpv.v6.9_rc1", "x")]
    xml = junit.render(run)
    schema.validate(io.BytesIO(xml))
    doc = parse(xml)
    assert [s.name for s in doc] == ["kpv.v6.9_rc1", "kpv.v6.9_rc1_2"]
    names = [c.name for c in next(iter(doc))]
    assert names == ["stress_ng.fork", "stress_ng.fork_2", "stress_ng.fork_3", "_"]


def test_bad_times_and_timestamps_still_validate(schema):
    run = Run(job="j", started="yesterday")
    cases = [Case("a", time=float("nan")), Case("b", time=-1.0), Case("c", time=1e300)]
    run.add(Suite("kpv.x", "x", cases=cases))
    xml = junit.render(run)
    schema.validate(io.BytesIO(xml))
    assert next(iter(parse(xml))).timestamp is None


def test_write_is_render_to_junit_xml(tmp_path):
    path = junit.write(make_run(), tmp_path / "out")
    assert path == tmp_path / "out" / "junit.xml"
    assert path.read_bytes() == junit.render(make_run(), tmp_path / "out")
    assert os.listdir(tmp_path / "out") == ["junit.xml"]  # no temporary left behind


# Any code point, lone surrogates included (hypothesis leaves them out by default).
any_text = st.text(st.characters(exclude_categories=()))
# Up to a few hundred KiB: hypothesis cannot draw that much text directly.
repeated_text = st.builds(operator.mul, any_text, st.integers(1, 20_000))


@settings(max_examples=100, deadline=None)
@given(
    name=any_text,
    message=any_text,
    kind=any_text,
    text=repeated_text,
    status=st.sampled_from([Status.FAIL, Status.ERROR, Status.SKIP]),
    prop=any_text,
)
def test_any_text_renders_valid_xml(schema, name, message, kind, text, status, prop):
    case = Case(name, status, message=message, kind=kind, text=text, properties={prop: prop})
    run = Run(job=name, started="2026-01-01T00:00:00", properties={prop: prop})
    run.add(Suite(name, name, cases=[case, Case(name)]))
    xml = junit.render(run)
    schema.validate(io.BytesIO(xml))
    (suite,) = parse(xml)
    first, second = suite
    assert (first.classname, first.name) != (second.classname, second.name)
    (result,) = first.result
    assert "\n" not in (result.message or "")
    assert len((result.text or "").encode()) <= junit.TEXT_LIMIT
