from pipeline import markers


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
