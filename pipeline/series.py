"""Read a patch series from wherever it lives: its revisions, each an ordered list of patches.

Sources (`load` tells them apart in this order):
- commits in a git checkout: `BASE..TIP`, `NAME=BASE..TIP ...` or a b4
  branch `b4/CHANGE` (pipeline.gitseries);
- a patchwork series: `pw:<id>` or a series/patch URL (pipeline.patchwork);
- a lore thread: a Message-ID, `lore:<msgid>` or an archive URL (pipeline.lore);
- a folder: with a series.toml naming its revisions, a maildir, a quilt
  `series` file, subfolders of patches (one revision each), or *.patch files;
- a file: an mbox, a single mail or diff, or a plain-text thread whose
  replies quote the patches (pipeline.quoted); each plain or compressed
  (gzip, xz, bzip2).

Mails are grouped into revisions by the versions in their subjects
(pipeline.mailseries) and written one patch a file under the cache, so every
revision is a tuple of files `git am` can take. A revision with a missing or
conflicting patch lists its problems; asking for it with `revision()` then
raises, since kpv never guesses what the missing patch held.
"""

from __future__ import annotations

import re
import stat
import tomllib
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from pathlib import Path

from pipeline import cache, gitseries, lore, mailseries, mbox, patchwork, quoted, udiff
from pipeline.errors import UserError

BASELINE = "baseline"


@dataclass(frozen=True)
class PatchInfo:
    subject: str
    msgid: str = ""
    author: str = ""
    date: str = ""  # the mail's Date: header
    trailers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Revision:
    name: str  # "v1", "v2-buildfix", or BASELINE for no patches
    patches: tuple[Path, ...]  # in order
    description: str = ""
    expect: str = ""  # what the series says should happen: pass, lockdep, build-error
    quoted: bool = False  # recovered from quotes in replies: NOT the author's own mail
    origin: str = ""  # where it came from, for people: a URL, "quoted by X in message 3"
    message_id: str = ""  # of the cover letter, else of the first patch
    base_commit: str = ""  # from a `base-commit:` line
    problems: tuple[str, ...] = ()  # "patch 2/3 missing": the revision cannot be applied
    trailers: tuple[str, ...] = ()  # for the whole revision (from replies to the cover)
    info: tuple[PatchInfo, ...] = ()  # one per patch, when the patches came as mails

    def check(self) -> None:
        """Raise UserError when the revision is incomplete or inconsistent."""
        if self.problems:
            raise UserError(f"revision {self.name}: {'; '.join(self.problems)} "
                            f"(from {self.origin or 'the series'}); kpv does not guess")


@dataclass(frozen=True)
class Series:
    name: str
    source: str
    revisions: tuple[Revision, ...]
    record: dict = field(default_factory=dict)  # series.toml's keys but name and revision

    def revision(self, name: str) -> Revision:
        """The revision to apply; raises UserError if unknown or incomplete."""
        if name == BASELINE:
            return Revision(BASELINE, (), "the base tree, no patches", "pass")
        for r in self.revisions:
            if r.name == name:
                r.check()
                return r
        known = ", ".join([BASELINE, *(r.name for r in self.revisions)])
        raise UserError(f"{self.source}: no revision {name!r} (known: {known})")


def is_remote(source: str) -> bool:
    """True for lore and patchwork sources (no local path to check)."""
    return not Path(source).exists() and bool(patchwork.parse(source) or lore.parse(source))


def is_git(source: str) -> bool:
    """True for commits of a git checkout: ranges or a b4 branch (pipeline.gitseries)."""
    return not Path(source).exists() and gitseries.is_git_source(source)


def is_path(source: str) -> bool:
    """True for a source that names a file or folder (not lore, patchwork or git commits)."""
    return not (is_remote(source) or is_git(source))


def load(source: str, refresh: bool = False, tree: Path | None = None) -> Series:
    """The series at source; UserError naming the source when it holds no patches.

    refresh: fetch lore and patchwork sources again instead of using the cache.
    tree: the git checkout that commit ranges and b4 branches are read from
    (default: the current folder).
    """
    path = Path(source)
    if is_git(source):
        return _from_git(source, tree or Path.cwd())
    if not path.exists():
        if pw := patchwork.parse(source):
            return _from_patchwork(source, *pw, refresh=refresh)
        if lr := lore.parse(source):
            return _from_lore(source, *lr, refresh=refresh)
        raise UserError(f"{source}: no such series file or folder (nor a Message-ID, lore "
                        "URL or patchwork series)")
    if path.is_file():
        return _from_file(path, source)
    if not path.is_dir():  # reading a FIFO would wait forever, a device forever or nothing
        raise UserError(f"{source}: not a patch series: a {_kind(path)}, not a file or folder")
    if (path / "series.toml").is_file():
        return _from_toml(path)
    if mbox.is_maildir(path):
        return _from_mails(source, path.name, mbox.read_maildir(path), str(path))
    if (path / "series").is_file():
        return _from_quilt(path, source)
    revs = tuple(r for d in sorted(path.iterdir()) if d.is_dir()
                 for r in [_folder_revision(d.name, _patch_files(d), str(d))] if r.patches)
    if revs:
        return Series(path.name, source, revs)
    files = _patch_files(path)
    if (rev := _folder_revision(path.name, files, source)).patches:
        return Series(path.name, source, (rev,))
    why = (f"none of its {len(files)} *.patch or *.diff files holds a diff" if files else
           "no patches found (expected *.patch files, revision folders, a quilt series file "
           "or a maildir)")
    raise UserError(f"{source}: not a patch series: {why}")


def _kind(path: Path) -> str:
    mode = path.stat().st_mode
    kinds = [(stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
             (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket")]
    return next((what for test, what in kinds if test(mode)), "special file")


def _patch_files(folder: Path) -> tuple[Path, ...]:
    """The folder's regular *.patch and *.diff files, patches or not."""
    return tuple(sorted(p for p in folder.iterdir()
                        if p.suffix in (".patch", ".diff") and p.is_file()))


def _folder_revision(name: str, files: tuple[Path, ...], origin: str) -> Revision:
    """One revision from the files that hold a diff, in order.

    Gaps in their [PATCH n/m] counters are problems, and so is a file without
    a diff (unless a cover letter): leaving it out silently could apply a
    series that lost a patch.
    """
    counters: dict[int, int] = {}
    total = 0
    problems = []
    info = []
    patches = []
    for p in files:
        data = p.read_bytes()
        msg = _mail_in(data)
        s = mailseries.parse_subject(str(msg.get("Subject", ""))) if msg else None
        if not any(f.hunks for f in udiff.parse(data.decode("utf-8", "replace"))):
            if not (s and s.counter == 0):
                problems.append(f"{p.name}: not a patch (no diff in it)")
            continue
        patches.append(p)
        if not msg or not s:
            info.append(PatchInfo(""))
            continue
        info.append(PatchInfo(s.title, mailseries.msgid(msg), str(msg.get("From", "")),
                              str(msg.get("Date", ""))))
        if s.total > 1:
            counters[s.counter] = counters.get(s.counter, 0) + 1
            total = max(total, s.total)
    if total:
        problems += [f"patch {n}/{total} missing" for n in range(1, total + 1)
                     if n not in counters]
        problems += [f"patch {n}/{total} present {c} times" for n, c in counters.items() if c > 1]
    return Revision(name, tuple(patches), origin=origin, problems=tuple(problems),
                    info=tuple(info))


def _mail_in(data: bytes) -> EmailMessage | None:
    """The mail a patch file holds (with or without an mbox From_ line), if it is one."""
    if mbox.is_mbox(data):
        return mbox.Mail(data.split(b"\n", 1)[1]).message()
    return mbox.Mail(data).message() if mbox.looks_like_mail(data) else None


def _from_git(source: str, tree: Path) -> Series:
    folder = cache.root() / "series" / "git" / cache.key(str(tree.resolve()), source)
    revs = gitseries.load(tree, source, folder)
    bases = {r.base for r in revs}
    if len(bases) > 1:
        listed = ", ".join(f"{r.name} on {r.base[:12]}" for r in revs)
        raise UserError(f"{source}: the revisions have different bases ({listed}); a run "
                        "compares revisions on one base: run each base on its own")
    out = tuple(Revision(r.name, tuple(c.patch for c in r.commits), r.description,
                         origin=r.origin, base_commit=r.base,
                         info=tuple(PatchInfo(c.subject, author=c.author, date=c.date)
                                    for c in r.commits))
                for r in revs)
    return Series(tree.name, source, out, {"base_commit": revs[0].base})


def _from_quilt(path: Path, source: str) -> Series:
    """A quilt patches folder: `series` lists the patches in order (options and # ignored)."""
    names = []
    for ln in (path / "series").read_text(errors="replace").splitlines():
        ln = ln.split("#", 1)[0].strip()
        if ln:
            names.append(ln.split()[0])
    missing = [n for n in names if not (path / n).is_file()]
    if missing:
        raise UserError(f"{path / 'series'}: lists patches that are not there: "
                        f"{', '.join(missing)}")
    if not names:
        raise UserError(f"{path / 'series'}: lists no patches")
    return Series(path.name, source, (Revision(path.name, tuple(path / n for n in names),
                                               origin=str(path / "series")),))


def _from_file(path: Path, source: str) -> Series:
    raw = path.read_bytes()
    packed = bool(mbox.compression(raw))
    data = mbox.decompress(raw, source)
    name = Path(path.stem).stem if packed else path.stem  # "foo" of foo.patch.gz
    if not data.strip():
        raise UserError(f"{source}: not a patch series: an empty file")
    text = data.decode("utf-8", "replace")
    if mbox.is_mbox(data) or mbox.looks_like_mail(data):
        mails = mbox.split(data, source)
        try:
            ser = _from_mails(source, name, mails, source)
            if len(mails) == 1 and not packed:  # one mail: the user's own file
                ser = replace(ser, revisions=tuple(replace(r, patches=(path,))
                                                   for r in ser.revisions))
            return ser
        except UserError:
            if not quoted.extract(text):
                raise
        return _from_quoted(source, name, text)  # no patch mails, but quoted patches
    if any(f.hunks for f in udiff.parse(text)):
        # git am cannot read a compressed patch: it gets the content, kept in the cache.
        patches = _write(cache.root() / "series" / cache.key(source, data), [(name, data)]) \
            if packed else (path,)
        return Series(name, source, (Revision(name, patches, origin=source),))
    return _from_quoted(source, name, text)


def _from_mails(source: str, name: str, mails: list[mbox.Mail], origin: str,
                extra_problem: str = "") -> Series:
    revs = mailseries.group(mails)
    if not any(r.patches for r in revs):
        raise UserError(f"{source}: not a patch series: {len(mails)} mail(s) but no "
                        "patches in them")
    out = []
    folder = cache.root() / "series" / cache.key(source, *(m.raw for m in mails))
    for r in revs:
        files = _write(folder / r.name, [(p.subject.title, p.raw) for p in r.patches])
        desc = r.title + (" [RFC]" if r.rfc else "") + (" (resent)" if r.resend else "")
        problems = r.problems + ((extra_problem,) if extra_problem else ())
        info = tuple(PatchInfo(p.subject.title, p.msgid, p.sender, p.date, p.trailers)
                     for p in r.patches)
        out.append(Revision(r.name, files, desc, origin=origin, message_id=r.msgid,
                            base_commit=r.base_commit, problems=problems,
                            trailers=r.trailers, info=info))
    title = revs[-1].title or name
    return Series(_slug(title) or name, source, tuple(out))


def _from_lore(source: str, base: str, msgid: str, refresh: bool) -> Series:
    thread = lore.fetch(base, msgid, refresh=refresh)
    try:
        return _from_mails(source, msgid, list(thread.mails), thread.url)
    except UserError:
        text = b"\n".join(b"From kpv Thu Jan  1 00:00:00 1970\n" + m.raw
                          for m in thread.mails).decode("utf-8", "replace")
        if quoted.extract(text):
            return _from_quoted(source, msgid, text)
        raise UserError(f"{msgid}: the thread at {thread.url} holds {len(thread.mails)} "
                        "message(s) but no patches") from None


def _from_patchwork(source: str, server: str, kind: str, ident: int, refresh: bool) -> Series:
    pw = patchwork.fetch(server, kind, ident, refresh=refresh)
    return _from_mails(source, pw.name or f"series-{pw.id}", list(pw.mails), pw.url,
                       extra_problem=pw.missing)


def _from_quoted(source: str, name: str, text: str) -> Series:
    found = quoted.extract(text)
    if not found:
        raise UserError(f"{source}: not a patch series: no patches found (no diff, neither "
                        "as mail nor quoted)")
    folder = cache.root() / "series" / cache.key(source, text)
    revs: list[Revision] = []
    for q in found:
        rname = f"v{q.version}-quoted"
        n = sum(1 for r in revs if r.name == rname or r.name.startswith(rname + "-"))
        rname += f"-{n + 1}" if n else ""
        who = q.quoted_by or "a reply"
        files = _write(folder / rname, [(f"quoted by {who}", _quoted_mail(q, source))])
        cut = f"; {len(q.truncated)} hunk(s) cut short by the quote" if q.truncated else ""
        desc = (f"v{q.version} as quoted by {who} (message {q.message}): {len(q.files)} files, "
                f"{q.hunks} hunks{cut}; not the author's mail, whitespace as the archive left it")
        revs.append(Revision(rname, files, desc, quoted=True,
                             origin=f"{source}, quoted by {who} in message {q.message}",
                             info=(PatchInfo(f"v{q.version} quoted by {who}", author=q.author),)))
    return Series(name, source, tuple(revs))


def _quoted_mail(q: quoted.QuotedPatch, source: str) -> bytes:
    author = q.author or "unknown author"
    desc = q.description or "(no description quoted)"
    notes = [f"Recovered by kpv from a quote by {q.quoted_by or 'a reply'} in message "
             f"{q.message} of {source}.", *q.truncated]
    text = (f"From: {author} <quoted@kpv.invalid>\n"
            f"Subject: [PATCH v{q.version}] quoted by {q.quoted_by or 'a reply'}\n"
            f"X-Kpv-Quoted-By: {q.quoted_by}\n\n{desc}\n\n" + "\n".join(notes) +
            "\n---\n" + q.diff())
    return text.encode()


def _write(folder: Path, patches: list[tuple[str, bytes]]) -> tuple[Path, ...]:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.patch"):
        old.unlink()
    out = []
    for i, (title, raw) in enumerate(patches, 1):
        p = folder / f"{i:04d}-{_slug(title)[:52] or 'patch'}.patch"
        p.write_bytes(raw)
        out.append(p)
    return tuple(out)


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", s).strip("-")


def _from_toml(path: Path) -> Series:
    toml = path / "series.toml"
    try:
        data = tomllib.loads(toml.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{toml}: not valid TOML: {e}") from None
    revs = []
    for i, r in enumerate(data.get("revision", [])):
        if not isinstance(r, dict) or not isinstance(r.get("name"), str):
            raise UserError(f"{toml}: revision #{i + 1}: expected a table with a name")
        folder = path / r.get("path", r["name"])
        rev = _folder_revision(r["name"], _patch_files(folder), str(folder)) \
            if folder.is_dir() else None
        if not rev or not rev.patches:
            raise UserError(f"{toml}: revision {r['name']}: no patches in {folder}")
        revs.append(Revision(r["name"], rev.patches, r.get("description", ""),
                             r.get("expect", ""), origin=str(folder), problems=rev.problems,
                             info=rev.info))
    if not revs:
        raise UserError(f"{toml}: no [[revision]] tables")
    record = {k: v for k, v in data.items() if k not in ("name", "revision")}
    return Series(data.get("name", path.name), str(path), tuple(revs), record)


def describe(rev: Revision) -> dict:
    """What a revision holds, for `kpv series`: files and hunk counts per patch, and labels."""
    patches = []
    for i, p in enumerate(rev.patches):
        files = udiff.parse(p.read_bytes().decode("utf-8", "replace"))
        info = rev.info[i] if i < len(rev.info) else None
        patches.append({
            "file": str(p),
            "subject": info.subject if info else "",
            "message_id": info.msgid if info else "",
            "author": info.author if info else "",
            "date": info.date if info else "",
            "trailers": list(info.trailers) if info else [],
            "files": [{"path": f.path or "(not named in the quote)", "hunks": len(f.hunks),
                       "truncated_hunks": sum(h.truncated for h in f.hunks)} for f in files],
            "hunks": sum(len(f.hunks) for f in files),
        })
    return {
        "name": rev.name, "description": rev.description, "expect": rev.expect,
        "quoted": rev.quoted, "origin": rev.origin, "message_id": rev.message_id,
        "base_commit": rev.base_commit, "problems": list(rev.problems),
        "trailers": list(rev.trailers),
        "files": sorted({f["path"] for p in patches for f in p["files"]}),
        "hunks": sum(p["hunks"] for p in patches),
        "patches": [str(p) for p in rev.patches],
        "patch_details": patches,
    }
