"""httpcache against a real HTTP server on 127.0.0.1: the overall deadline
($KPV_HTTP_DEADLINE), the retries of a busy server, and what is never retried."""

import time

import pytest

from pipeline import httpcache
from pipeline.errors import InfraError, UserError
from tests.series_util import Routes, run_kpv

KIND = "test"


def test_a_server_that_drips_is_given_up_at_the_deadline(monkeypatch):
    # One byte a second never trips requests' per-read timeout; ten take ten seconds.
    monkeypatch.setenv("KPV_HTTP_DEADLINE", "3")
    with Routes({"/slow": (200, b"x" * 10)}, drip={"/slow": 1.0}) as srv:
        url = f"{srv.url}/slow"
        t0 = time.monotonic()
        with pytest.raises(InfraError) as e:
            httpcache.get(url, KIND)
        took = time.monotonic() - t0
    assert 2.9 < took < 5, took
    assert str(e.value).startswith(f"{url}: ")
    assert "3 s deadline ($KPV_HTTP_DEADLINE)" in str(e.value)
    assert not httpcache.path_for(url, KIND).exists()


def test_503_twice_then_the_answer_which_is_cached():
    with Routes({"/busy": [(503, b"busy"), (503, b"busy"), (200, b"the answer")]}) as srv:
        url = f"{srv.url}/busy"
        assert httpcache.get(url, KIND) == b"the answer"
        assert srv.hits["/busy"] == 3
    assert httpcache.path_for(url, KIND).read_bytes() == b"the answer"
    assert httpcache.get(url, KIND) == b"the answer"  # the server is gone: from the cache


def test_429_waits_as_long_as_retry_after_says():
    with Routes({"/limit": [(429, b"slow down", {"Retry-After": "1"}), (200, b"ok")]}) as srv:
        t0 = time.monotonic()
        assert httpcache.get(f"{srv.url}/limit", KIND) == b"ok"
        took = time.monotonic() - t0
        assert srv.hits["/limit"] == 2
    assert 1.0 <= took < 2, took  # the server's second, not the first backoff's half


def test_a_404_is_not_found_and_never_tried_again():
    # Retried past the 503, but not past the 404: the 200 behind it is never asked for.
    with Routes({"/gone": [(503, b""), (404, b""), (200, b"too late")]}) as srv:
        with pytest.raises(httpcache.NotFound, match=r"/gone: not found \(HTTP 404\)$"):
            httpcache.get(f"{srv.url}/gone", KIND)
        assert srv.hits["/gone"] == 2


@pytest.mark.parametrize("value", ["soon", "0", "-5", "inf", "nan", "1e999"])
def test_a_bad_deadline_is_the_users_error_in_one_line(value, monkeypatch):
    monkeypatch.setenv("KPV_HTTP_DEADLINE", value)
    with Routes({"/ok": (200, b"ok")}) as srv:
        with pytest.raises(UserError) as e:
            httpcache.get(f"{srv.url}/ok", KIND)
        assert srv.hits["/ok"] == 0
    assert str(e.value) == (f"$KPV_HTTP_DEADLINE={value!r}: expected a number of seconds "
                            "above 0")


def test_kpv_series_on_a_dripping_lore_server_is_exit_2_in_one_line():
    with Routes({"/l/drip@x/t.mbox.gz": (200, b"x" * 10)},
                drip={"/l/drip@x/t.mbox.gz": 1.0}) as srv:
        p = run_kpv("series", f"{srv.url}/l/drip@x/", env={"KPV_HTTP_DEADLINE": "2"})
    assert p.returncode == 2, p.stderr
    assert p.stderr == (f"kpv: error: {srv.url}/l/drip@x/t.mbox.gz: no complete answer "
                        "within the 2 s deadline ($KPV_HTTP_DEADLINE)\n")


def test_kpv_series_on_a_busy_patchwork_gives_up_within_the_deadline():
    # Waits of 0.5 s and 1 s fit in 2 s; the next, 2 s, does not.
    with Routes({"/api/series/9/": (503, b"busy")}) as srv:
        p = run_kpv("series", "pw:9", env={"KPV_PATCHWORK_URL": srv.url,
                                           "KPV_HTTP_DEADLINE": "2"})
        assert srv.hits["/api/series/9/"] == 3
    assert p.returncode == 2, p.stderr
    assert p.stderr == (f"kpv: error: {srv.url}/api/series/9/: the server answered HTTP 503 "
                        "Service Unavailable (3 attempt(s); no time for another within the "
                        "2 s deadline, $KPV_HTTP_DEADLINE)\n")
