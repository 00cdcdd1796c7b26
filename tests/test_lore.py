"""Lore intake against a real public-inbox: Debian's public-inbox package, an inbox built
here from the project's own series (patches/anon-vma-lock), served by public-inbox-httpd
on 127.0.0.1. Server errors come from a small local HTTP server."""

import gzip
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from pipeline import series
from pipeline.errors import InfraError, UserError
from tests.series_util import Routes, run_kpv

ROOT = Path(__file__).resolve().parent.parent
SERIES = ROOT / "patches" / "anon-vma-lock"
ADDR = "kpv@inbox.test"

needs_pi = pytest.mark.skipif(
    shutil.which("public-inbox-httpd") is None or not SERIES.is_dir(),
    reason="needs Debian's public-inbox package (in the Makefile's DEB_PACKAGES) and "
           "patches/anon-vma-lock")


def _mails() -> list[bytes]:
    """The project's series as one thread: v1 first, each later revision a reply to the
    one before, v3 with a cover letter, a review reply, and a separate talk-only thread."""
    out, parent = [], None
    for rev in ("v1", "v2", "v2-buildfix", "v3"):
        pats = sorted((SERIES / rev).glob("*.patch"))
        if len(pats) > 1:
            cover = f"<{rev}-0@kpv.test>"
            out.append(_mail(cover, parent, f"[PATCH {rev} 0/{len(pats)}] anon_vma locking",
                             "The cover letter.\n\nbase-commit: " + "0" * 40 + "\n"))
            parent = cover
        for i, p in enumerate(pats, 1):
            raw = p.read_bytes().split(b"\n", 1)[1]  # drop git's From_ line
            head = f"Message-ID: <{rev}-{i}@kpv.test>\nTo: {ADDR}\n"
            head += f"In-Reply-To: {parent}\nReferences: {parent}\n" if parent else ""
            out.append(head.encode() + raw)
        parent = parent if len(pats) > 1 else f"<{rev}-1@kpv.test>"
    out.append(_mail("<review@kpv.test>", "<v3-0@kpv.test>", "Re: [PATCH v3 0/2] anon_vma",
                     "> The cover letter.\n\nLooks right.\n\nReviewed-by: Mel Gorman "
                     "<mel@example.com>\n"))
    out.append(_mail("<talk@kpv.test>", None, "anon_vma locking, a question",
                     "Is anyone working on this?\n"))
    return out


def _mail(msgid, parent, subject, body):
    refs = f"In-Reply-To: {parent}\nReferences: {parent}\n" if parent else ""
    return (f"From: Rik <rik@example.com>\nTo: {ADDR}\nSubject: {subject}\n"
            f"Date: Thu, 26 Nov 2026 13:00:00 +0000\nMessage-ID: {msgid}\n{refs}\n"
            f"{body}").encode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def inbox(tmp_path_factory):
    """http://127.0.0.1:PORT/test, a public-inbox holding the series thread."""
    d = tmp_path_factory.mktemp("pi")
    env = {**os.environ, "PI_CONFIG": str(d / "config"), "HOME": str(d)}
    subprocess.run(["public-inbox-init", "-V2", "-L", "basic", "test", str(d / "inbox"),
                    "http://127.0.0.1/test", ADDR], check=True, env=env, capture_output=True)
    subprocess.run(["git", "config", "-f", str(d / "config"), "publicinboxmda.spamcheck",
                    "none"], check=True)
    for m in _mails():
        subprocess.run(["public-inbox-mda", "--no-precheck"], input=m, check=True,
                       env={**env, "ORIGINAL_RECIPIENT": ADDR}, capture_output=True)
    port = _free_port()
    httpd = subprocess.Popen(["public-inbox-httpd", "-W0", "-l", f"http://127.0.0.1:{port}"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/test"
    try:
        # Loaded machines (a kernel build beside the tests) start it slowly: a first
        # answer that takes longer than the read timeout is waited for too.
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{url}/", timeout=5)
                break
            except (requests.ConnectionError, requests.Timeout):
                if time.monotonic() > deadline or httpd.poll() is not None:
                    raise RuntimeError("public-inbox-httpd did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        httpd.terminate()
        httpd.wait(timeout=10)


@needs_pi
def test_a_message_id_gives_every_revision_of_the_thread(inbox, monkeypatch):
    monkeypatch.setenv("KPV_LORE_URL", inbox)
    ser = series.load("<v1-1@kpv.test>")
    assert [r.name for r in ser.revisions] == ["v1", "v2", "v2-buildfix", "v3"]
    v3 = ser.revision("v3")
    assert len(v3.patches) == 2 and v3.message_id == "v3-0@kpv.test"
    assert v3.trailers == ("Reviewed-by: Mel Gorman <mel@example.com>",)
    assert v3.base_commit == "0" * 40
    assert v3.origin == f"{inbox}/v1-1@kpv.test/t.mbox.gz"
    # The written patches are the series' own diffs.
    mine = b"".join(p.read_bytes() for p in sorted((SERIES / "v3").glob("*.patch")))
    for p in v3.patches:
        diff = p.read_bytes().split(b"\ndiff --git ", 1)[1]
        assert diff.split(b"\n-- \n")[0].rstrip() in mine


@needs_pi
def test_a_lore_url_and_the_offline_second_run(inbox, monkeypatch):
    url = f"{inbox}/v3-2@kpv.test/"
    first = series.load(url)
    assert "v3" in [r.name for r in first.revisions]

    def offline(*a, **k):
        raise requests.ConnectionError("network is off")

    monkeypatch.setattr(requests, "get", offline)
    monkeypatch.setenv("KPV_HTTP_DEADLINE", "1")  # a dead network is retried: not for long
    again = series.load(url)
    assert [r.name for r in again.revisions] == [r.name for r in first.revisions]
    with pytest.raises(InfraError, match="cannot fetch"):
        series.load(url, refresh=True)


@needs_pi
def test_kpv_series_on_a_message_id(inbox, tmp_path):
    p = run_kpv("series", "v2-buildfix-1@kpv.test",
                env={"KPV_LORE_URL": inbox, "KPV_CACHE": str(tmp_path)})
    assert p.returncode == 0, p.stderr
    assert "v2-buildfix: 1 patches, 6 files, 13 hunks" in p.stdout
    assert list((tmp_path / "lore").iterdir())  # cached on disk


@needs_pi
def test_unknown_message_id_and_a_thread_without_patches(inbox, monkeypatch):
    monkeypatch.setenv("KPV_LORE_URL", inbox)
    with pytest.raises(UserError, match=r"nope@kpv.test: no such message at .*HTTP 404"):
        series.load("nope@kpv.test")
    with pytest.raises(UserError, match=r"talk@kpv.test: the thread at .* holds 1 message"
                                         r"\(s\) but no patches"):
        series.load("talk@kpv.test")


def test_server_errors_and_damaged_answers(monkeypatch):
    good = gzip.compress(b"From mboxrd@z Thu Jan  1 00:00:00 1970\nSubject: x\n\nhi\n")
    with Routes({"/l/500@x/t.mbox.gz": (500, b"oops"),
                 "/l/trunc@x/t.mbox.gz": (200, good[: len(good) // 2]),
                 "/l/empty@x/t.mbox.gz": (200, gzip.compress(b"")),
                 "/l/gone@x/raw": (404, b"")}) as srv:
        monkeypatch.setenv("KPV_LORE_URL", f"{srv.url}/l")
        monkeypatch.setenv("KPV_HTTP_DEADLINE", "1")  # the 500 is retried: not for long
        with pytest.raises(InfraError, match=r"500@x/t.mbox.gz: the server answered HTTP 500"):
            series.load("500@x")
        with pytest.raises(UserError, match=r"trunc@x/t.mbox.gz: damaged gzip"):
            series.load("trunc@x")
        with pytest.raises(UserError, match=r"empty@x/t.mbox.gz: empty"):
            series.load("empty@x")
        with pytest.raises(UserError, match=r"gone@x: no such message"):
            series.load("<gone@x>")
        p = run_kpv("series", "trunc@x", env={"KPV_LORE_URL": f"{srv.url}/l"})
        assert p.returncode == 2 and "damaged gzip" in p.stderr and "Traceback" not in p.stderr
    # Nothing bad was cached: the damaged answer is fetched again next time.
    from pipeline import httpcache
    assert not httpcache.path_for(f"{srv.url}/l/trunc@x/t.mbox.gz", "lore").exists()


@pytest.mark.parametrize("source, want", [
    ("https://lore.kernel.org/linux-mm/20100428.1@x.com/", ("https://lore.kernel.org/linux-mm",
                                                             "20100428.1@x.com")),
    ("https://lore.kernel.org/all/a%2Fb@x/T/#u", ("https://lore.kernel.org/all", "a/b@x")),
    ("https://lore.kernel.org/r/abc@x/t.mbox.gz", ("https://lore.kernel.org/r", "abc@x")),
    ("lore:<abc@x>", ("https://lore.kernel.org/all", "abc@x")),
    ("plain-folder", None),
])
def test_lore_sources(source, want, monkeypatch):
    from pipeline import lore
    monkeypatch.delenv("KPV_LORE_URL", raising=False)
    assert lore.parse(source) == want
