"""Revisions kept as commits in the kernel tree itself: ranges, and b4's sent tags.

A source is one range or several, space-separated:
- `BASE..TIP`: the commits of TIP not in BASE, one revision named after TIP;
- `NAME=BASE..TIP`: the same, named NAME (v1=master..topic-v1 v2=...);
- `b4/CHANGE`: a branch prepared with b4, whose sent revisions are the
  annotated tags `sent/CHANGE-vN`, each holding its cover letter with a
  `base-commit:` line; the revision is base-commit..tag.

A range must be linear (merges are refused: git am cannot replay them), and
commits that change nothing (b4 keeps its cover letter in one) are left out.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UserError
from pipeline.gitcmd import git

_REF = r"[^\s=.~^:][^\s=]*?"  # enough of git's ref syntax to split a range
_RANGE_RE = re.compile(
    rf"(?:(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)=)?(?P<base>{_REF})\.\.(?P<tip>{_REF})")
B4_PREFIX = "b4/"
_SENT_RE = re.compile(r"sent/(?P<change>.+)-v(?P<n>\d+)")


@dataclass(frozen=True)
class Commit:
    sha: str
    subject: str
    author: str
    date: str
    patch: Path  # git format-patch of the commit alone


@dataclass(frozen=True)
class GitRevision:
    name: str
    base: str  # the full commit id the range starts from
    commits: tuple[Commit, ...]
    description: str
    origin: str  # the range as given, with the tree


def is_git_source(source: str) -> bool:
    """True for ranges and b4 branches (never a path: a caller checks paths first)."""
    parts = source.split()
    return bool(parts) and (all(_RANGE_RE.fullmatch(p) for p in parts)
                            or (len(parts) == 1 and source.startswith(B4_PREFIX)))


def load(tree: Path, source: str, folder: Path) -> list[GitRevision]:
    """The revisions of source in the git checkout tree, their patches written under
    folder (one subfolder per revision); UserError naming what is wrong."""
    if not (tree / ".git").exists():
        raise UserError(f"{source}: a git series needs --tree to be a git checkout, "
                        f"and {tree} is not one")
    if source.startswith(B4_PREFIX):
        return _b4(tree, source, folder)
    revs = []
    for part in source.split():
        if "..." in part:
            raise UserError(f"{part}: a symmetric range (...) is not a series; use BASE..TIP")
        m = _RANGE_RE.fullmatch(part)
        assert m is not None  # is_git_source said so
        base, tip = _commit(tree, m["base"], part), _commit(tree, m["tip"], part)
        name = m["name"] or re.sub(r"[^A-Za-z0-9._-]+", "-", m["tip"]).strip("-")
        revs.append(_revision(tree, name, base, tip, part, "", folder))
    names = [r.name for r in revs]
    if len(set(names)) != len(names):
        raise UserError(f"{source}: two ranges give the same revision name; name them "
                        "NAME=BASE..TIP")
    return revs


def _b4(tree: Path, branch: str, folder: Path) -> list[GitRevision]:
    change = branch.removeprefix(B4_PREFIX)
    tags = _git(tree, "for-each-ref", "--format=%(refname:short)",
                f"refs/tags/sent/{change}-v*").split()
    sent = sorted((int(m["n"]), t) for t in tags
                  if (m := _SENT_RE.fullmatch(t)) and m["change"] == change)
    if not sent:
        raise UserError(f"{branch}: no sent revisions (tags sent/{change}-vN) in {tree}; "
                        "b4 send tags each revision it sends")
    revs = []
    for n, tag in sent:
        message = _tag_message(tree, tag)
        found = re.search(r"^base-commit:\s*(\S+)", message, re.M)
        if not found:
            raise UserError(f"{tag}: its message has no base-commit: line, so its base "
                            "is unknown")
        base = _commit(tree, found[1], tag)
        revs.append(_revision(tree, f"v{n}", base, _commit(tree, tag, tag), tag,
                              message.split("\n", 1)[0], folder))
    return revs


def _revision(tree: Path, name: str, base: str, tip: str, origin: str, description: str,
              folder: Path) -> GitRevision:
    if _git(tree, "merge-base", "--is-ancestor", base, tip, check=False) is None:
        raise UserError(f"{origin}: {base[:12]} is not an ancestor of {tip[:12]}; the base "
                        "of a series must be the commit its first patch applies to")
    listed = _git(tree, "rev-list", "--reverse", "--parents", f"{base}..{tip}").splitlines()
    if not listed:
        raise UserError(f"{origin}: no commits in the range")
    out = folder / name
    shutil.rmtree(out, ignore_errors=True)  # the patches of an earlier load of this name
    commits = []
    for line in listed:
        sha, *parents = line.split()
        subject = _git(tree, "log", "-1", "--format=%s", sha).strip()
        if len(parents) > 1:
            raise UserError(f"{origin}: {sha[:12]} ({subject}) is a merge; kpv applies a "
                            "linear series (rebase it, or give the range after the merge)")
        if _git(tree, "diff-tree", "--quiet", "-r", sha, check=False) is not None:
            description = description or subject  # an empty commit: b4's cover letter
            continue
        author, date = _git(tree, "log", "-1", "--format=%an <%ae>%n%aD", sha).splitlines()
        # git writes the file: a patch is bytes, whatever its encoding.
        made = _git(tree, "format-patch", "-1", "--no-signature",
                    f"--start-number={len(commits) + 1}", "-o", str(out), sha)
        commits.append(Commit(sha, subject, author, date, Path(made.strip())))
    if not commits:
        raise UserError(f"{origin}: every commit in the range is empty; no patches")
    return GitRevision(name, base, tuple(commits), description, f"{tree}:{origin}")


def _commit(tree: Path, ref: str, origin: str) -> str:
    sha = _git(tree, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    if sha is None:
        raise UserError(f"{origin}: {ref!r} is not a commit in {tree}")
    return sha.strip()


def _tag_message(tree: Path, tag: str) -> str:
    if _git(tree, "cat-file", "-t", tag).strip() != "tag":
        raise UserError(f"{tag}: a lightweight tag; b4 writes annotated ones holding the "
                        "cover letter")
    raw = _git(tree, "cat-file", "tag", tag)
    return raw.split("\n\n", 1)[1] if "\n\n" in raw else ""


def _git(tree: Path, *args: str, check: bool = True) -> str | None:
    """git's output; with check=False, None when git exits non-zero."""
    p = git(tree, *args, check=False)
    if p.returncode == 0:
        return p.stdout
    if check:
        raise UserError(f"git {' '.join(args)} in {tree}: {p.stderr.strip()}")
    return None
