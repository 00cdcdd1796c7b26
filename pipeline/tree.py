"""The kernel tree: find the base, keep a scratch worktree per base, apply a revision.

The user's tree is never modified. A Debian tarball is unpacked once into the
cache and made a git repository. The scratch worktree is a `git clone --shared`
of the source repository rather than a `git worktree add`: `git am` writes
commits, and a linked worktree would put them (and its own bookkeeping) in the
user's .git; a shared clone borrows the user's objects read-only and writes
only into the cache.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipeline import cache, treesource
from pipeline.errors import InfraError, UserError
from pipeline.gitcmd import GIT_ENV, git

BASE_TAG = "kpv-base"
GIT_AM = "git am -3"
WS_APPLY = "whitespace-tolerant"



@dataclass(frozen=True)
class Base:
    repo: Path  # a git repository holding the base commit
    commit: str  # full hash of the base
    describe: str  # for people: "Debian linux-source-6.1 6.1.192" or `git describe`


@dataclass(frozen=True)
class ApplyResult:
    ok: bool
    applied: tuple[str, ...]  # patch file names applied, in order
    failed_patch: str  # the patch that did not apply ("" when ok)
    message: str  # one line: what failed, naming the patch and file
    log: str  # git's whole output
    # (patch name, strategy) per applied patch: GIT_AM, or WS_APPLY plus what it checked
    strategies: tuple[tuple[str, str], ...] = ()
    kept: tuple[Path, ...] = ()  # the patches as applied (`git format-patch` of each commit)

    @property
    def strategy(self) -> str:
        """One line for reports: "git am -3", or which patches needed the fallback."""
        ws = [n for n, s in self.strategies if s != GIT_AM]
        if not ws:
            return GIT_AM if self.strategies else "nothing to apply"
        return f"{WS_APPLY} for {len(ws)} of {len(self.strategies)} patch(es): {', '.join(ws)}"




def find_base(source: str, ref: str = "HEAD") -> Base:
    """The base commit of a tree source: a Debian tarball or a git checkout."""
    if treesource.is_debian(source):
        try:
            return _debian_base(treesource.package(source), treesource.tarball(source))
        except ValueError as e:
            raise UserError(f"--tree {e}") from None
    path = Path(source)
    if not (path / ".git").exists():
        raise UserError(f"--tree {path}: not a git checkout (no .git)")
    p = git(path, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    if p.returncode != 0:
        raise UserError(f"--tree {path}: no commit {ref!r} in that checkout")
    commit = p.stdout.strip()
    desc = git(path, "describe", "--tags", "--always", commit, check=False).stdout.strip()
    return Base(path.resolve(), commit, desc or commit[:12])


def _debian_base(package: str, tarball: Path) -> Base:
    if not tarball.is_file():
        raise UserError(
            f"{tarball} not found: install Debian's {package} package "
            f"(apt-get install {package}), or pass --tree with a kernel git checkout"
        )
    st = tarball.stat()
    stamp = cache.key(str(st.st_size), str(st.st_mtime_ns))
    repo = cache.root() / "trees" / f"{package}-{stamp}"
    if not (repo / ".git").is_dir():
        _unpack(tarball, repo)
    commit = git(repo, "rev-parse", BASE_TAG).stdout.strip()
    return Base(repo, commit, f"Debian {package} {kernel_version(repo)}")


def _unpack(tarball: Path, repo: Path) -> None:
    """Unpack into a temporary folder, commit, then rename: a half-done unpack never counts."""
    repo.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=repo.parent, prefix=".unpack-"))
    try:
        subprocess.run(["tar", "-xf", str(tarball), "-C", str(tmp)], check=True)
        (top,) = tmp.iterdir()
        git(top, "init", "-q")
        # Debian's tarball has a top-level .gitignore of "/*": without -f nothing is added.
        git(top, "add", "-f", "-A", ".")
        git(top, "commit", "-q", "-m", f"{tarball.name} as shipped")
        git(top, "tag", BASE_TAG)
        top.rename(repo)
    except subprocess.CalledProcessError as e:
        raise InfraError(f"unpacking {tarball} failed: {e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def kernel_version(repo: Path) -> str:
    """VERSION.PATCHLEVEL.SUBLEVEL from the tree's top Makefile."""
    text = (repo / "Makefile").read_text(errors="replace")[:2000]
    v = dict(re.findall(r"^(VERSION|PATCHLEVEL|SUBLEVEL) = (\d+)", text, re.M))
    return ".".join(v.get(k, "?") for k in ("VERSION", "PATCHLEVEL", "SUBLEVEL"))


def worktree(base: Base) -> Path:
    """The scratch worktree for a base's history, created once and reused across
    revisions and across bases of that history.

    Named by the history's root commit, not the base: a tree rebased onto a newer
    base, or another clone of the same history, then moves the one worktree (and the
    build folder fed from it) by the files that differ, and make rebuilds only those.
    """
    wt = cache.root() / "worktrees" / lineage(base)[:12]
    if not (wt / ".git").is_dir():
        wt.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(wt, ignore_errors=True)
        git(wt.parent, "clone", "-q", "--shared", "--no-checkout", str(base.repo), wt.name)
        git(wt, "checkout", "-q", "--detach", base.commit)
    elif git(wt, "cat-file", "-e", f"{base.commit}^{{commit}}", check=False).returncode:
        # Objects only: the files change at the next reset, under the worktree's lock.
        git(wt, "fetch", "-q", "--no-tags", str(base.repo), base.commit)
    return wt


def lineage(base: Base) -> str:
    """The root commit of the base's history (the first, when it has several)."""
    roots = git(base.repo, "rev-list", "--max-parents=0", base.commit).stdout.split()
    return min(roots) if roots else base.commit


def reset(wt: Path, base: Base) -> None:
    """Back to the base. Only files that differ are rewritten, so make rebuilds only those."""
    if (wt / ".git" / "rebase-apply").exists():
        git(wt, "am", "--abort", check=False)
    git(wt, "reset", "-q", "--hard", base.commit)
    git(wt, "clean", "-q", "-f", "-d")


def apply(wt: Path, base: Base, patches: list[Path], keep: Path | None = None) -> ApplyResult:
    """Reset to the base, then apply each patch in order, one commit each.

    Per patch: refuse it if unsafe (pipeline.patchsafety); `git am -3`; only if
    that fails, kpv's whitespace-tolerant applier (pipeline.wsapply), for mails
    an archive mangled. keep: a folder to write each patch as applied into.
    On failure the worktree is reset to the base.
    """
    reset(wt, base)
    applied: list[str] = []
    strategies: list[tuple[str, str]] = []
    kept: list[Path] = []
    log: list[str] = []
    for patch in patches:
        strategy, why = _apply_one(wt, patch, log)
        if strategy is None:
            git(wt, "am", "--abort", check=False)
            reset(wt, base)
            return ApplyResult(False, tuple(applied), patch.name, why, "".join(log),
                               tuple(strategies), tuple(kept))
        applied.append(patch.name)
        strategies.append((patch.name, strategy))
        log.append(f"{patch.name}: applied by {strategy}\n")
        if keep is not None:
            kept.append(_keep(wt, keep, len(applied), patch.name))
    return ApplyResult(True, tuple(applied), "", "", "".join(log), tuple(strategies), tuple(kept))


def _as_git_am_reads_it(wt: Path, patch: Path) -> str:
    """The diff of a mail as git am applies it: bodies decoded, charsets converted."""
    with tempfile.TemporaryDirectory(prefix="kpv-mailinfo-") as d:
        p = git(wt, "mailinfo", f"{d}/msg", f"{d}/patch", check=False, stdin=patch)
        diff = Path(d, "patch")
        # A mail git cannot read gives git am nothing to apply either: nothing to check.
        if p.returncode != 0 or not diff.is_file():
            return ""
        return diff.read_bytes().decode("utf-8", "surrogateescape")


def _apply_one(wt: Path, patch: Path, log: list[str]) -> tuple[str | None, str]:
    """(strategy, "") when the patch applied and was committed, else (None, why not)."""
    from pipeline import patchsafety, wsapply

    text = patch.read_bytes().decode("utf-8", "surrogateescape")
    try:
        patchsafety.check(text, patch.name, wt)
        # A base64 or quoted-printable body hides its diff from the check above; git am
        # decodes it first. Check what git will apply, as git mailinfo extracts it.
        decoded = _as_git_am_reads_it(wt, patch)
        if decoded != text:
            patchsafety.check(decoded, patch.name, wt)
    except UserError as e:
        log.append(f"refused: {e}\n")
        return None, f"patch {patch.name} refused: {e}"
    # git -C would read a relative path from inside the worktree, find nothing there,
    # and send every patch to the fallback.
    p = git(wt, "am", "-3", "--keep-cr", str(patch.absolute()), check=False)
    log.append(f"$ git am -3 {patch.name}\n{p.stdout}{p.stderr}")
    if p.returncode == 0:
        return GIT_AM, ""
    git(wt, "am", "--abort", check=False)
    try:
        ws = wsapply.apply(wt, text, patch.name)
    except UserError as e:
        log.append(f"refused: {e}\n")
        return None, f"patch {patch.name} refused: {e}"
    log.append(f"$ kpv {WS_APPLY} {patch.name}\n")
    if not ws.ok:
        log.append(f"{ws.message}\n")
        return None, _why(patch.name, p)  # the fallback's reason is in the log
    for f in ws.files:
        log.append(f"  {f.path}: {f.action}, {f.hunks} hunk(s), {f.check}\n")
        log.extend(f"    {n}\n" for n in f.notes)
    _commit(wt, patch, text)
    check = "whitespace verified against the patch's index blobs" if ws.verified else (
        "whitespace of added lines guessed: " + "; ".join(
            f"{f.path}: {f.check}" for f in ws.files if not f.check.startswith("verified")))
    return f"{WS_APPLY} ({check})", ""


def _commit(wt: Path, patch: Path, text: str) -> None:
    """Commit what wsapply wrote, with the mail's author, date and message when it is a mail."""
    import email
    import email.utils

    from pipeline import mailseries

    msg = email.message_from_string(text)
    name, addr = email.utils.parseaddr(str(msg.get("From", "")))
    subject = mailseries.parse_subject(str(msg.get("Subject", ""))).title
    body = msg.get_payload() if not msg.is_multipart() else ""
    body = str(body).split("\n---\n", 1)[0].strip() if subject else ""
    message = f"{subject or 'Apply ' + patch.name}\n\n{body}\n" if body else \
        f"{subject or 'Apply ' + patch.name}\n"
    args = ["commit", "-q", "--no-verify", "-F", "-"]
    if name or addr:
        args += ["--author", f"{name or addr} <{addr or 'unknown'}>"]
    if msg.get("Date"):
        args += ["--date", str(msg["Date"])]
    git(wt, "add", "-A")
    p = subprocess.run(["git", "-C", str(wt), *args], input=message, capture_output=True,
                       text=True, env={**os.environ, **GIT_ENV})
    if p.returncode != 0:
        raise InfraError(f"git commit in {wt} failed after applying {patch.name}: "
                         f"{p.stderr.strip()}")


def _keep(wt: Path, folder: Path, n: int, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / (name if re.match(r"\d{4}-", name) else f"{n:04d}-{name}")
    out.write_text(git(wt, "format-patch", "-1", "--stdout", "HEAD").stdout)
    return out


def _why(name: str, p: subprocess.CompletedProcess) -> str:
    out = p.stdout + p.stderr
    m = re.search(r"error: patch failed: (\S+)", out) or re.search(
        r"error: (\S+): does not exist", out)
    where = f" at {m.group(1)}" if m else ""
    if not where and (m := re.search(r"^error: (.*)$", out, re.M)):
        where = f": {m.group(1)}"
    return f"patch {name} does not apply{where}"


def tree_id(wt: Path) -> str:
    """The git tree hash of the worktree's files as they are now, applied or not."""
    git(wt, "add", "-A", ".")
    return git(wt, "write-tree").stdout.strip()


@contextmanager
def locked(wt: Path, on_wait: Callable[[str], None]) -> Iterator[None]:
    """Hold the worktree (and the build dir fed from it) for one revision's apply and build.

    Two kpv runs on the same base share one worktree; without this, one would
    reset the files under the other's compiler.
    """
    with open(wt.parent / f"{wt.name}.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait(f"waiting for another kpv run using {wt}")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
