"""Refuse patches that would write outside the tree: a patch is data from strangers.

Refused: paths that are absolute or climb out (`..`), also when git's
C-style quoting spells them (`"b/\\056\\056/x"`), paths into `.git`, binary
patches, hunks followed by more lines than their headers count (git would
drop those), any mode but a regular file's (a symlink or gitlink however git
would spell it), and (given the worktree) paths that pass through or end at
a symlink already in the tree. Checked before any strategy runs, so neither
`git am` nor kpv's own applier sees them.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from pipeline import udiff
from pipeline.errors import UserError

# The header lines git reads a mode from (apply.c's optable), "index " aside.
_MODE_LINES = ("old mode ", "new mode ", "deleted file mode ", "new file mode ")
_FILE_TYPE = 0o170000
_ALLOWED_TYPES = (0, 0o100000)  # git takes a bare "644" for a regular file too
_TYPE_NAMES = {0o120000: "symlink", 0o160000: "gitlink (submodule)", 0o040000: "directory"}
_C_SPACE = " \t\n\v\f\r"
_ULONG_MAX = 2**64 - 1


def check(text: str, name: str, wt: Path | None = None) -> None:
    """Raise UserError naming the patch and the path when the patch is unsafe."""
    for fp in udiff.parse(text):
        for raw in fp.raw_paths:
            _check_path(raw, name)
        if fp.binary:
            raise UserError(f"{name}: {fp.path}: binary patch refused (kpv applies text only)")
        for i, h in enumerate(fp.hunks, 1):
            if h.overflow:
                raise UserError(f"{name}: {fp.path}: hunk {i} ({h.header()}) is followed by "
                                f"{len(h.overflow)} line(s) its counts leave out; refused "
                                "(git would drop them)")
        if wt is not None:
            for path in {fp.old_path, fp.new_path} - {None, udiff.DEV_NULL}:
                _check_symlinks(wt, path, name)
    _check_modes(text, name)


def _check_modes(text: str, name: str) -> None:
    """Refuse every mode git would read as anything but a regular file.

    Every line from the first diff header on is looked at, not only udiff's
    headers: git splits lines at newlines alone, where str.splitlines also
    splits at CR, form feed and others, and could end a header before a mode
    line git still reads. The lines before are the commit message: git reads
    no mode there, and prose may well start "new mode 120000".
    """
    lines = text.split("\n")
    first = next((i for i, line in enumerate(lines) if line.startswith("diff --git ")),
                 len(lines))
    for n, line in enumerate(lines[first:], first + 1):
        spelled = _mode_text(line)
        mode = _git_mode(spelled) if spelled is not None else None
        if mode is None or mode & _FILE_TYPE in _ALLOWED_TYPES:
            continue
        kind = _TYPE_NAMES.get(mode & _FILE_TYPE, "not a regular file")
        raise UserError(f"{name}: line {n}: {line.strip()!r} is a {kind} mode "
                        f"({mode:o}); refused (kpv applies regular files only)")


def _mode_text(line: str) -> str | None:
    """What git parses as a mode on this line: after a mode prefix, or an index line's."""
    for prefix in _MODE_LINES:
        if line.startswith(prefix):
            return line[len(prefix):]
    if not line.startswith("index "):
        return None
    # apply.c's gitdiff_index: <old>..<new>, then an optional " MODE" after the first blank.
    old, dots, rest = line[len("index "):].partition("..")
    if not dots or "." in old:
        return None
    _, blank, mode = rest.partition(" ")
    return mode if blank else None


def _git_mode(text: str) -> int | None:
    """The mode as git reads it: strtoul(text, 8) into an unsigned int; None if git refuses.

    So "0120000", " +120000", "1120000" and "-37777657777" are all symlinks.
    """
    s = text.lstrip(_C_SPACE)
    sign = -1 if s[:1] == "-" else 1
    s = s[1:] if s[:1] in "+-" else s
    digits = len(s) - len(s.lstrip("01234567"))
    if not digits or (s[digits:digits + 1] and s[digits] not in _C_SPACE):
        return None
    value = int(s[:digits], 8)
    # strtoul saturates on overflow and negates in unsigned arithmetic.
    value = _ULONG_MAX if value > _ULONG_MAX else (sign * value) % 2**64
    return value % 2**32


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
