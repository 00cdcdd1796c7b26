"""Refuse patches that would write outside the tree: a patch is data from strangers.

Refused: paths that are absolute or climb out (`..`), paths into `.git`,
binary patches, patches that create symlinks, and (given the worktree) paths
that pass through or end at a symlink already in the tree. Checked before
any strategy runs, so neither `git am` nor kpv's own applier sees them.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from pipeline import udiff
from pipeline.errors import UserError

_SYMLINK_MODE = "120000"


def check(text: str, name: str, wt: Path | None = None) -> None:
    """Raise UserError naming the patch and the path when the patch is unsafe."""
    for fp in udiff.parse(text):
        for raw in fp.raw_paths:
            _check_path(raw, name)
        if fp.binary:
            raise UserError(f"{name}: {fp.path}: binary patch refused (kpv applies text only)")
        if any(h.split()[-1:] == [_SYMLINK_MODE] for h in fp.header
               if h.startswith(("new file mode", "new mode", "index ", "old mode"))):
            raise UserError(f"{name}: {fp.path}: creates or changes a symlink; refused")
        if wt is not None:
            for path in {fp.old_path, fp.new_path} - {None, udiff.DEV_NULL}:
                _check_symlinks(wt, path, name)


def _check_path(raw: str, name: str) -> None:
    if raw == udiff.DEV_NULL:
        return
    if any(ord(c) < 32 for c in raw):
        raise UserError(f"{name}: a path with control characters ({raw!r}); refused")
    p = PurePosixPath(raw.strip('"'))
    if p.is_absolute():
        raise UserError(f"{name}: {raw}: absolute path, outside the tree; refused")
    parts = p.parts[1:] if p.parts[:1] in (("a",), ("b",)) else p.parts
    if ".." in p.parts:
        raise UserError(f"{name}: {raw}: climbs out of the tree (..); refused")
    if any(x.lower() == ".git" for x in parts):
        raise UserError(f"{name}: {raw}: writes into .git; refused")


def _check_symlinks(wt: Path, path: str, name: str) -> None:
    cur = wt
    for part in PurePosixPath(path).parts:
        cur = cur / part
        if cur.is_symlink():
            raise UserError(f"{name}: {path}: {cur.relative_to(wt)} is a symlink in the tree; "
                            "refused (it could lead outside)")
