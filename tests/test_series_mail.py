"""Series from mails: mbox, gzipped mbox, maildir, single patch, quilt folder; revisions
grouped by subject; cover letters, trailers, base-commit; gaps reported, never guessed."""

import bz2
import gzip
import json
import lzma
import os
import random
from pathlib import Path

import pytest

from pipeline import mailseries, series, tree
from pipeline.errors import UserError
from tests.conftest import git
from tests.series_util import c_repo, format_patch, run_kpv

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("subject, want", [
    ("[PATCH v2 3/5] mm: foo", ("mm: foo", 2, "", 3, 5, False, False)),
    ("[RFC PATCH] mm: foo", ("mm: foo", 1, "", 1, 1, True, False)),
    ("[PATCH RESEND] mm: foo", ("mm: foo", 1, "", 1, 1, False, True)),
    ("[RFC][PATCH v3 0/7] x", ("x", 3, "", 0, 7, True, False)),
    ("[PATCH net-next V4 2/2] x", ("x", 4, "", 2, 2, False, False)),
    ("[RFC PATCH v2-buildfix] x", ("x", 2, "-buildfix", 1, 1, True, False)),
    ("Re: [PATCH v2 1/2] x", ("x", 2, "", 1, 2, False, False)),
])
def test_subjects(subject, want):
    s = mailseries.parse_subject(subject)
    assert (s.title, s.version, s.variant, s.counter, s.total, s.rfc, s.resend) == want
    assert s.reply == subject.startswith("Re:")


def _series(tmp_path, n=3):
    """A repo with n one-line commits to README on top of the tag base."""
    repo = c_repo(tmp_path)
    for i in range(n):
        f = repo / "README"
        f.write_text(f.read_text() + f"more {i}\n")
        git(repo, "commit", "-q", "-a", "-m", f"readme: change {i}")
    return repo


def _mbox(paths, extra: bytes = b"") -> bytes:
    return b"".join(p.read_bytes().rstrip(b"\n") + b"\n\n" for p in paths) + extra


def test_mbox_with_two_revisions_cover_trailers_and_base(tmp_path):
    repo = _series(tmp_path)
    v1 = format_patch(repo, "base..HEAD", tmp_path / "v1", "--cover-letter", "--rfc")
    v2 = format_patch(repo, "base..HEAD", tmp_path / "v2", "-v2", "--cover-letter",
                      "--base=base", "--thread", "--signoff")
    cover_id = next(ln.split(":", 1)[1].strip() for ln in v2[0].read_text().splitlines()
                    if ln.lower().startswith("message-id:"))
    reply = (f"From x@y Mon Jan  1 00:00:00 2024\nFrom: Reviewer <r@example.com>\n"
             f"Subject: Re: [PATCH v2 0/3] x\nIn-Reply-To: {cover_id}\n\n"
             "> quoted\nReviewed-by: Reviewer <r@example.com>\n").encode()
    mb = tmp_path / "all.mbox"
    mb.write_bytes(_mbox(v1 + v2, reply))
    ser = series.load(str(mb))
    assert [r.name for r in ser.revisions] == ["v1", "v2"]
    r1, r2 = ser.revisions
    assert len(r1.patches) == len(r2.patches) == 3 and not r1.problems and not r2.problems
    assert "[RFC]" in r1.description
    assert r2.base_commit == git(repo, "rev-parse", "base").strip()
    assert r2.message_id and r2.trailers == ("Reviewed-by: Reviewer <r@example.com>",)
    assert [i.subject for i in r2.info] == [f"readme: change {i}" for i in range(3)]
    # Who wrote each patch and when, as `kpv series --json` shows them.
    (rev,) = [r for r in json.loads(run_kpv("series", str(mb), "--json").stdout)["revisions"]
              if r["name"] == "v2"]
    assert {p["author"] for p in rev["patch_details"]} == {"t <t@t>"}  # tests/conftest.py git
    assert all(p["date"] for p in rev["patch_details"])
    assert any(t.startswith("Signed-off-by:") for t in r2.info[0].trailers)
    # The written patches go to `git am` as they are.
    wt = tmp_path / "wt"
    git(tmp_path, "clone", "-q", str(repo), str(wt))
    git(wt, "checkout", "-q", "base")
    git(wt, "am", *map(str, r2.patches))
    assert (wt / "README").read_text() == (repo / "README").read_text()


def test_missing_patch_is_reported_not_guessed(tmp_path):
    repo = _series(tmp_path)
    v1 = format_patch(repo, "base..HEAD", tmp_path / "p")
    mb = tmp_path / "gap.mbox"
    mb.write_bytes(_mbox([v1[0], v1[2]]))  # 2/3 is missing
    ser = series.load(str(mb))
    (rev,) = ser.revisions
    assert rev.problems == ("patch 2/3 missing",)
    with pytest.raises(UserError, match=r"revision v1: patch 2/3 missing .*does not guess"):
        ser.revision("v1")
    p = run_kpv("series", str(mb))
    assert p.returncode == 0 and "PROBLEM: patch 2/3 missing" in p.stdout
    p = run_kpv("apply", str(mb), "--tree", str(repo), "--worktree", str(tmp_path / "wt"))
    assert p.returncode == 2 and "patch 2/3 missing" in p.stderr and "Traceback" not in p.stderr


def test_the_same_patch_twice_differently_is_a_problem(tmp_path):
    repo = _series(tmp_path, n=2)
    a = format_patch(repo, "base..HEAD", tmp_path / "a")
    other = tmp_path / "other.patch"
    other.write_text(a[1].read_text().replace("+more 1", "+more one"))
    mb = tmp_path / "dup.mbox"
    mb.write_bytes(_mbox([a[0], a[1], other]))
    (rev,) = series.load(str(mb)).revisions
    assert len(rev.problems) == 1 and "patch 2/2 sent 2 times with different diffs" in \
        rev.problems[0]
    # Sent twice the same: no problem, one patch.
    mb.write_bytes(_mbox([a[0], a[1], a[1]]))
    (rev,) = series.load(str(mb)).revisions
    assert not rev.problems and len(rev.patches) == 2


def test_gzip_maildir_single_patch_and_quilt(tmp_path):
    repo = _series(tmp_path, n=2)
    pats = format_patch(repo, "base..HEAD", tmp_path / "p")
    gz = tmp_path / "s.mbox.gz"
    gz.write_bytes(gzip.compress(_mbox(pats)))
    assert [len(r.patches) for r in series.load(str(gz)).revisions] == [2]

    md = tmp_path / "md"
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True)
    for i, p in enumerate(pats):
        (md / "new" / f"{i}.mail").write_bytes(p.read_bytes())
    assert [len(r.patches) for r in series.load(str(md)).revisions] == [2]

    single = series.load(str(pats[0]))
    assert len(single.revisions) == 1 and len(single.revisions[0].patches) == 1

    q = tmp_path / "quilt"
    q.mkdir()
    for p in pats:
        (q / p.name).write_bytes(p.read_bytes())
    (q / "series").write_text(f"# quilt\n{pats[1].name} -p1\n{pats[0].name}\n")
    (rev,) = series.load(str(q)).revisions
    assert [p.name for p in rev.patches] == [pats[1].name, pats[0].name]  # the file's order



@pytest.mark.parametrize("suffix, pack", [(".gz", gzip.compress), (".xz", lzma.compress),
                                          (".bz2", bz2.compress)])
@pytest.mark.parametrize("as_mail", [True, False])
def test_a_compressed_single_patch_is_its_content(tmp_path, suffix, pack, as_mail):
    repo = _series(tmp_path, n=1)
    (mail,) = format_patch(repo, "base..HEAD", tmp_path / "p")
    content = mail.read_bytes()
    if not as_mail:  # a bare diff, no mail headers
        content = content[content.index(b"diff --git"):]
    packed = tmp_path / f"one.patch{suffix}"
    packed.write_bytes(pack(content))
    ser = series.load(str(packed))
    (rev,) = ser.revisions
    (patch,) = rev.patches
    assert patch != packed and patch.read_bytes() in content  # a mail loses its From_ line
    assert rev.name == "one" or as_mail
    base = tree.find_base(str(repo), "base")
    res = tree.apply(tree.worktree(base), base, [patch])
    # git am takes mails only: a bare diff goes to the fallback, as uncompressed.
    assert res.ok and (res.strategy == tree.GIT_AM or not as_mail), res.log


def test_a_damaged_gzip_patch_is_one_line_naming_it(tmp_path):
    bad = tmp_path / "one.patch.gz"
    bad.write_bytes(gzip.compress(b"diff --git a/x b/x\n" * 50)[:40])
    p = run_kpv("series", str(bad))
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.startswith(f"kpv: error: {bad}: damaged gzip data")


@pytest.mark.parametrize("suffix, pack", [(".gz", gzip.compress), (".xz", lzma.compress),
                                          (".bz2", bz2.compress)])
def test_a_decompression_bomb_is_refused_in_one_line(tmp_path, suffix, pack):
    # 100 MiB of zeros pack to a few hundred KB at most: a bomb, made here.
    bomb = tmp_path / f"thread.mbox{suffix}"
    bomb.write_bytes(pack(bytes(100 << 20)))
    assert bomb.stat().st_size < 1 << 20
    p = run_kpv("series", str(bomb))
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.startswith(f"kpv: error: {bomb}: "), p.stderr
    assert "more than 64 MiB decompressed" in p.stderr


def test_folder_with_a_gap_in_its_numbering(tmp_path):
    repo = _series(tmp_path)
    pats = format_patch(repo, "base..HEAD", tmp_path / "f")
    pats[1].unlink()
    (rev,) = series.load(str(tmp_path / "f")).revisions
    assert rev.problems == ("patch 2/3 missing",)


@pytest.mark.parametrize("content, match", [
    (b"", "empty"),
    (b"\n\n", "empty"),
    (b"From x@y Mon Jan  1 00:00:00 2024\nFrom: a <a@b>\nSubject: hi\n\nno patch here\n",
     "1 mail.* but no patches"),
    (b"just some text\n", "no patches found"),
    (b"\x1f\x8b\x08\x00truncated", "damaged gzip"),
])
def test_bad_files_are_clear_errors(tmp_path, content, match):
    f = tmp_path / "bad.mbox"
    f.write_bytes(content)
    with pytest.raises(UserError, match=match) as e:
        series.load(str(f))
    assert str(f) in str(e.value)
    p = run_kpv("series", str(f))
    assert p.returncode == 2 and str(f) in p.stderr and "Traceback" not in p.stderr



def _random_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def test_a_folder_of_random_bytes_is_not_a_series(tmp_path):
    junk = tmp_path / "junk"
    junk.mkdir()
    for i in range(2):
        (junk / f"{i:04d}-x.patch").write_bytes(_random_bytes(3000, i))
    p = run_kpv("series", str(junk))
    assert p.returncode == 2, p.stdout
    assert p.stderr == (f"kpv: error: {junk}: not a patch series: none of its 2 *.patch or "
                        "*.diff files holds a diff\n")


@pytest.mark.parametrize("special", ["/dev/null", "fifo"])
def test_a_device_or_fifo_is_one_line(tmp_path, special):
    if special == "fifo":
        special = str(tmp_path / "fifo")
        os.mkfifo(special)
    p = run_kpv("series", special)
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.startswith(f"kpv: error: {special}: not a patch series: a ")


def test_files_in_a_folder_that_are_not_patches_are_not_counted(tmp_path):
    repo = _series(tmp_path, n=2)
    pats = format_patch(repo, "base..HEAD", tmp_path / "p", "--cover-letter")
    (tmp_path / "p" / "0003-noise.patch").write_bytes(_random_bytes(500, 7))
    (rev,) = series.load(str(tmp_path / "p")).revisions
    assert rev.patches == tuple(pats[1:])  # no cover letter, no noise
    assert rev.problems == ("0003-noise.patch: not a patch (no diff in it)",)
    with pytest.raises(UserError, match=r"0003-noise\.patch: not a patch"):
        series.load(str(tmp_path / "p")).revision(rev.name)


def test_unknown_source_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="no such series file or folder"):
        series.load(str(tmp_path / "nope"))


def test_series_json_of_a_folder_has_its_revisions_patches_and_files(tmp_path):
    repo = _series(tmp_path, n=2)
    format_patch(repo, "base..HEAD", tmp_path / "s" / "v1")
    p = run_kpv("series", str(tmp_path / "s"), "--json")
    assert p.returncode == 0, p.stderr
    (rev,) = json.loads(p.stdout)["revisions"]
    assert rev["name"] == "v1" and len(rev["patches"]) == 2 and rev["hunks"] == 2
    assert rev["files"] == ["README"] and rev["quoted"] is False


def test_series_json_of_the_anon_vma_folder_keeps_its_record():
    p = run_kpv("series", str(ROOT / "patches" / "anon-vma-lock"), "--json")
    assert p.returncode == 0, p.stderr
    record = json.loads(p.stdout)["record"]
    assert record["original"]["author"] == "Rik van Riel"
    assert record["base"]["version"] == "6.1.192"


def test_series_json_of_a_folder_with_a_toml_date(tmp_path):
    repo = _series(tmp_path, n=1)
    format_patch(repo, "base..HEAD", tmp_path / "s" / "v1")
    (tmp_path / "s" / "series.toml").write_text(
        '[original]\ndate = 2010-04-28\n\n[[revision]]\nname = "v1"\n')
    p = run_kpv("series", str(tmp_path / "s"), "--json")
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert got["record"] == {"original": {"date": "2010-04-28"}}
    (patch,) = got["revisions"][0]["patch_details"]
    assert (patch["subject"], patch["author"]) == ("readme: change 0", "t <t@t>")
