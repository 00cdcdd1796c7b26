"""Parse unified diffs, clean or mangled by mail archives, into files and hunks.

A hunk's header counts say how many old and new lines it holds; they, not the
look of the lines, decide where a hunk ends. That is what lets a diff whose
context lines lost their leading space (as mail archives did) still parse: a
line that starts with neither ' ', '+', '-' nor '\\' is taken as context.
Pure functions on text; no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)$")
_GIT_RE = re.compile(r"^diff --git (\S+) (\S+)\s*$")
_INDEX_RE = re.compile(r"^index ([0-9a-f]+)\.\.([0-9a-f]+)(?: (\d+))?\s*$")
DEV_NULL = "/dev/null"
# The lines git and diff(1) put between "diff --git" and the first hunk.
_HEADER_RE = re.compile(
    r"^(diff |index |old mode |new mode |deleted file mode |new file mode |similarity index "
    r"|dissimilarity index |rename from |rename to |copy from |copy to |--- |\+\+\+ "
    r"|Binary files |GIT binary patch|Index: |={5,})")


@dataclass(frozen=True)
class Hunk:
    old_start: int
    old_len: int  # as the header says
    new_start: int
    new_len: int
    section: str  # the text after the second @@ (a function name, usually)
    lines: tuple[str, ...]  # each starts with ' ', '-', '+' or '\\' (normalised)
    truncated: bool = False  # the text ended before the header's counts were met
    # Hunk lines right after the counted ones: git drops them, so the counts lie.
    overflow: tuple[str, ...] = ()

    def old(self) -> list[str]:
        """The lines this hunk expects in the file (context and removed), prefix stripped."""
        return [ln[1:] for ln in self.lines if ln[:1] in (" ", "-")]

    def new(self) -> list[str]:
        return [ln[1:] for ln in self.lines if ln[:1] in (" ", "+")]

    def header(self) -> str:
        """The @@ line, with the counts the mail gave."""
        sec = f" {self.section}" if self.section else ""
        return f"@@ -{self.old_start},{self.old_len} +{self.new_start},{self.new_len} @@{sec}"


@dataclass(frozen=True)
class FilePatch:
    old_path: str | None  # without the a/ prefix; None for /dev/null or when unknown
    new_path: str | None
    header: tuple[str, ...]  # the lines before the first hunk, as found
    hunks: tuple[Hunk, ...]
    old_blob: str = ""  # from `index <old>..<new>`: abbreviated blob hashes
    new_blob: str = ""
    binary: bool = False
    raw_paths: tuple[str, ...] = field(default_factory=tuple)  # every path as written

    @property
    def path(self) -> str | None:
        return self.new_path or self.old_path

    def text(self) -> str:
        """This file's part of a diff, line prefixes normalised, headers as the mail had them."""
        out = list(self.header)
        for h in self.hunks:
            out.append(h.header())
            out.extend(h.lines)
        return "".join(f"{ln}\n" for ln in out)


def parse(text: str) -> list[FilePatch]:
    """Every file of every diff in the text, in order. Prose around them is skipped."""
    lines = text.splitlines()
    files: list[FilePatch] = []
    i = 0
    while i < len(lines):
        start = _file_start(lines, i)
        if start is None:
            i += 1
            continue
        fp, i = _parse_file(lines, start)
        files.append(fp)
    return files


def has_diff(text: str) -> bool:
    return any(HUNK_RE.match(ln) for ln in text.splitlines())


def _file_start(lines: list[str], i: int) -> int | None:
    ln = lines[i]
    if ln.startswith("diff --git ") or ln.startswith("Index: "):
        return i
    if ln.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
        return i
    if HUNK_RE.match(ln):  # a hunk quoted without its file header
        return i
    return None


def _parse_file(lines: list[str], i: int) -> tuple[FilePatch, int]:
    header: list[str] = []
    raw: list[str] = []
    old = new = None
    old_blob = new_blob = ""
    binary = False
    first = True
    while i < len(lines) and not HUNK_RE.match(lines[i]):
        ln = lines[i]
        if not first and (ln.startswith("diff --git ") or _is_new_file_pair(lines, i, header)
                          or not _HEADER_RE.match(ln)):
            break
        first = False
        header.append(ln)
        if m := _GIT_RE.match(ln):
            raw += [unquote(m.group(1)), unquote(m.group(2))]
            old, new = _strip(unquote(m.group(1))), _strip(unquote(m.group(2)))
        elif ln.startswith("--- "):
            raw.append(_path_of(ln[4:]))
            old = None if _path_of(ln[4:]) == DEV_NULL else _strip(_path_of(ln[4:]))
        elif ln.startswith("+++ "):
            raw.append(_path_of(ln[4:]))
            new = None if _path_of(ln[4:]) == DEV_NULL else _strip(_path_of(ln[4:]))
        elif m := _INDEX_RE.match(ln):
            old_blob, new_blob = m.group(1), m.group(2)
        elif ln.startswith(("rename from ", "rename to ", "copy from ", "copy to ")):
            raw.append(unquote(ln.split(" ", 2)[2]))
        elif ln.startswith("GIT binary patch") or (ln.startswith("Binary files ")
                                                   and ln.endswith(" differ")):
            binary = True
        elif ln.startswith("Index: "):
            raw.append(ln[7:].strip())
        i += 1
        if binary:
            break
    hunks: list[Hunk] = []
    while i < len(lines) and (m := HUNK_RE.match(lines[i])):
        hunk, i = _parse_hunk(lines, i, m)
        hunks.append(hunk)
    return FilePatch(old, new, tuple(header), tuple(hunks), old_blob, new_blob, binary,
                     tuple(raw)), i


def _is_new_file_pair(lines: list[str], i: int, header: list[str]) -> bool:
    # A second `--- / +++` pair after one was already read starts another file.
    return (lines[i].startswith("--- ") and any(h.startswith("+++ ") for h in header)
            and i + 1 < len(lines) and lines[i + 1].startswith("+++ "))


def _parse_hunk(lines: list[str], i: int, m: re.Match) -> tuple[Hunk, int]:
    old_len = int(m.group(2)) if m.group(2) is not None else 1
    new_len = int(m.group(4)) if m.group(4) is not None else 1
    need_old, need_new = old_len, new_len
    body: list[str] = []
    i += 1
    while i < len(lines) and (need_old > 0 or need_new > 0):
        ln = lines[i]
        if HUNK_RE.match(ln) or ln.startswith("diff --git "):
            break
        kind = ln[:1]
        if kind == "\\":
            body.append(ln)
        elif kind == "-" and need_old > 0:
            body.append(ln)
            need_old -= 1
        elif kind == "+" and need_new > 0:
            body.append(ln)
            need_new -= 1
        elif need_old > 0 and need_new > 0:
            # Context; an archive may have eaten the leading space.
            body.append(ln if kind == " " else " " + ln)
            need_old -= 1
            need_new -= 1
        else:
            break
        i += 1
    # "\ No newline at end of file" may follow the last counted line.
    while i < len(lines) and lines[i].startswith("\\ "):
        body.append(lines[i])
        i += 1
    truncated = need_old > 0 or need_new > 0
    return Hunk(int(m.group(1)), old_len, int(m.group(3)), new_len, m.group(5).strip(),
                tuple(body), truncated, _overflow(lines, i)), i


def _overflow(lines: list[str], i: int) -> tuple[str, ...]:
    """The lines from i on that still look like hunk lines, up to whatever comes next:
    a hunk, a file (`--- ` then `+++ `), the `-- ` signature, prose or the end."""
    j = i
    while j < len(lines) and lines[j][:1] in ("+", "-", " ") and lines[j].rstrip() != "--" \
            and not _is_new_file_pair(lines, j, ["+++ "]):
        j += 1
    return tuple(lines[i:j])


def _path_of(s: str) -> str:
    # "a/mm/mmap.c\t2010-04-28 12:00:00" in diffs made by diff(1): drop the date.
    return unquote(s.split("\t", 1)[0].strip())


_C_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}


def unquote(p: str) -> str:
    """A path as git means it: `"b/\\056\\056/x"` (git's C-style quoting) is `b/../x`.

    A path git did not quote, or quoted wrongly (git refuses those), stays as written.
    """
    if len(p) < 2 or p[0] != '"' or p[-1] != '"':
        return p
    out, body, k = bytearray(), p[1:-1], 0
    while k < len(body):
        c = body[k]
        if c == '"':
            return p
        if c != "\\":
            out += c.encode("utf-8", "surrogateescape")
            k += 1
        elif re.match(r"[0-3][0-7]{2}", body[k + 1:k + 4]):
            out.append(int(body[k + 1:k + 4], 8))
            k += 4
        elif body[k + 1:k + 2] in _C_ESCAPES:
            out.append(_C_ESCAPES[body[k + 1]])
            k += 2
        else:
            return p
    return out.decode("utf-8", "surrogateescape")


def _strip(p: str) -> str:
    """Drop git's a/ b/ prefix (as `git apply -p1` does)."""
    if p == DEV_NULL:
        return p
    if p.startswith(("a/", "b/")):
        return p[2:]
    return p
