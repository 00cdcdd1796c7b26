from pipeline.console import Report
from pipeline.results import Case, Run, Status, Suite, merge


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


def test_merge_shards_later_wins():
    a, b = sample(), sample()
    b.suites[0].cases[1].status = Status.PASS
    b.add(Suite("kpv.v1.vcpus_4", "v1", 4, cases=[Case("boot")]))
    m = merge([a, b])
    assert [s.name for s in m.suites] == ["kpv.v1.vcpus_2", "kpv.v1.vcpus_4"]
    assert m.exit_code() == 0
