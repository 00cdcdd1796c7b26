"""Patchwork intake against a local HTTP server serving API responses shaped like
patchwork's REST API (tests/data/series/patchwork-series.json)."""

import json
from pathlib import Path

import pytest

from pipeline import patchwork, series
from pipeline.errors import InfraError, UserError
from tests.conftest import git
from tests.series_util import Routes, c_repo, format_patch, run_kpv

RECORD = Path(__file__).resolve().parent / "data" / "series" / "patchwork-series.json"


@pytest.fixture
def pw(tmp_path):
    repo = c_repo(tmp_path)
    for i in range(2):
        f = repo / "README"
        f.write_text(f.read_text() + f"more {i}\n")
        git(repo, "commit", "-q", "-a", "-m", f"readme: change {i}")
    mbox = b"".join(p.read_bytes() for p in format_patch(repo, "base..HEAD", tmp_path / "p",
                                                          "-v3"))
    routes: dict[str, tuple[int, bytes]] = {}
    with Routes(routes) as srv:
        rec = RECORD.read_text().replace("{server}", srv.url)
        partial = json.loads(rec) | {"id": 43, "total": 3, "received_all": False}
        routes.update({
            "/api/series/42/": (200, rec.encode()),
            "/series/42/mbox/": (200, mbox),
            "/api/patches/7/": (200, json.dumps({"id": 7, "series": [
                {"id": 42, "url": f"{srv.url}/api/1.3/series/42/", "version": 3}]}).encode()),
            "/api/series/43/": (200, json.dumps(partial).encode()),
            "/api/series/500/": (500, b"Internal Server Error"),
            "/api/series/44/": (200, b"<html>login</html>"),
        })
        yield srv


def test_series_by_id_url_and_patch(pw, monkeypatch):
    monkeypatch.setenv("KPV_PATCHWORK_URL", pw.url)
    for source in ("pw:42", f"{pw.url}/project/linux-mm/list/?series=42",
                   f"{pw.url}/api/1.3/series/42/", f"{pw.url}/project/linux-mm/patch/7/"):
        ser = series.load(source)
        (rev,) = ser.revisions
        assert rev.name == "v3" and len(rev.patches) == 2 and not rev.problems, source
        assert rev.origin == f"{pw.url}/api/series/42/"


def test_incomplete_series_is_a_problem(pw, monkeypatch):
    monkeypatch.setenv("KPV_PATCHWORK_URL", pw.url)
    (rev,) = series.load("pw:43").revisions
    assert "patchwork has 2 of 3 patches" in rev.problems
    with pytest.raises(UserError, match="patchwork has 2 of 3 patches"):
        series.load("pw:43").revision("v3")


def test_errors_name_the_url(pw, monkeypatch):
    monkeypatch.setenv("KPV_PATCHWORK_URL", pw.url)
    monkeypatch.setenv("KPV_HTTP_DEADLINE", "1")  # the 500 is retried: not for long
    with pytest.raises(UserError, match=r"/api/series/404/: not found \(HTTP 404\)"):
        series.load("pw:404")
    with pytest.raises(InfraError, match=r"/api/series/500/: the server answered HTTP 500"):
        series.load("pw:500")
    with pytest.raises(InfraError, match=r"/api/series/44/: patchwork answered something that "
                                         "is not JSON"):
        series.load("pw:44")
    p = run_kpv("series", "pw:500", env={"KPV_PATCHWORK_URL": pw.url})
    assert p.returncode == 2 and "HTTP 500" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("source, want", [
    ("pw:12", ("https://patchwork.kernel.org", "series", 12)),
    ("https://patchwork.kernel.org/project/linux-mm/list/?series=77",
     ("https://patchwork.kernel.org", "series", 77)),
    ("https://patchwork.kernel.org/series/77/mbox/",
     ("https://patchwork.kernel.org", "series", 77)),
    ("https://pw.example.org/pw/api/1.2/patches/5/", ("https://pw.example.org/pw", "patch", 5)),
    ("https://lore.kernel.org/all/x@y/", None),
])
def test_patchwork_sources(source, want, monkeypatch):
    monkeypatch.delenv("KPV_PATCHWORK_URL", raising=False)
    assert patchwork.parse(source) == want
