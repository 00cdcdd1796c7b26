from pathlib import Path

from pipeline import markers, sanitize

DATA = Path(__file__).parent / "data" / "console"


def test_markers_survive_crlf_and_interleaving():
    log = (
        "[    1.0][    T1] Run /init as init process\r\r\n"
        "@@kpv boot debug_locks=1\r\n"
        "@@kpv start fork debug_locks=1\r\n"
        "[    2.1][   T55] some kernel line @@kpv result fork ops=10 ops_per_s=5.0\r\n"
        "@@kpv end fork status=0 elapsed_ms=2001 debug_locks=0\r\n"
        "@@kpv done\r\n"
    )
    ms = markers.parse(log)
    assert [m.kind for m in ms] == ["boot", "start", "result", "end", "done"]
    assert ms[0].test is None and ms[0].fields == {"debug_locks": "1"}
    assert ms[2].test == "fork" and ms[2].fields["ops_per_s"] == "5.0"
    assert ms[3].fields == {"status": "0", "elapsed_ms": "2001", "debug_locks": "0"}
    assert [m.line for m in ms] == [1, 2, 3, 4, 5]


def test_non_markers_ignored():
    assert markers.parse("@@kpvx start\n@@kpv bogus x\nplain\n") == []
    assert markers.parse_line("@@kpv end") == markers.Marker("end", None, {}, 0)


def test_marker_cut_by_a_kernel_line_is_joined_again():
    # Captured at 4 vCPUs: printk wrote a line between two FIFO loads of the
    # start marker, so its debug_locks=1 came a line later.
    log = sanitize.clean((DATA / "baseline-6.1-five-boots-marker-cut.log").read_bytes())
    starts = [m for m in markers.parse(log) if m.kind == "start"]
    assert [(m.test, m.fields, m.line) for m in starts][:2] == [
        ("fork", {"debug_locks": "1"}, 217), ("stack", {"debug_locks": "1"}, 442)]
    assert len(starts) == 5


def test_cut_anywhere_in_a_marker_the_rest_is_found():
    whole = "@@kpv end fork status=0 elapsed_ms=2001 debug_locks=1"
    kernel = "[    2.268020][   T41] input: a mouse\r\n[    2.268100][    C1] more\r\n"
    for at in range(1, len(whole)):
        log = f"x\r\n{whole[:at]}{kernel}{whole[at:]}\r\n@@kpv done\r\n"
        ms = markers.parse(log)
        assert [(m.kind, m.line) for m in ms] == [("end", 1), ("done", 4)], at
        assert ms[0].fields == {"status": "0", "elapsed_ms": "2001", "debug_locks": "1"}, at


def test_a_cut_marker_never_swallows_the_next_one():
    log = "@@kpv start fork[    2.1][   T4] x\r\n@@kpv end fork status=0\r\n"
    assert [(m.kind, m.fields) for m in markers.parse(log)] == [
        ("start", {}), ("end", {"status": "0"})]


def test_a_marker_storm_is_cut_at_markers_max_and_the_rest_counted():
    storm = "@@kpv start fork\n" * (markers.MARKERS_MAX + 7)
    found, unread = markers.scan(storm)
    assert len(found) == markers.MARKERS_MAX and unread == 7
    assert found[-1] == markers.Marker("start", "fork", {}, markers.MARKERS_MAX - 1)
    assert markers.parse(storm) == found
