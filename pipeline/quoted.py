"""Recover patches that survive only as quotes (`> `) in the replies of a mail thread.

Reviewers quote a patch, cut it, and interleave their comments. For each
message and each quote depth, the lines at exactly that depth are joined (the
reviewer's comments, at a lower depth, drop out) and parsed as a diff; the
hunk headers' counts say where each hunk ends, so comments in the middle of a
hunk do no harm. The same hunk quoted again deeper in a later reply (a quote
of a quote) is kept once. What comes out is labelled as quoted, by whom, and
whether a hunk was cut short. Pure functions on text; no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline import udiff

_QUOTE_RE = re.compile(r"^((?:> ?)+)")
# A message starts at an mbox From_ line or at an unquoted "From: NAME" line
# (the form web archives export: "From: Mel Gorman on").
_MSG_RE = re.compile(r"^(?:From \S+ .*\d\d:\d\d.*|From: (?P<who>.+?))\s*$")
_VERSION_RE = re.compile(r"^\s*v(\d+)\s*:|\[[^\]]*PATCH[^\]]*\bv(\d+)\b", re.I | re.M)
_SOB_RE = re.compile(r"^Signed-off-by:\s*(.+?)\s*(?:<.*)?$", re.M)


@dataclass(frozen=True)
class QuotedPatch:
    quoted_by: str  # who wrote the reply that quotes it ("" when unknown)
    message: int  # 1-based index of that reply in the thread
    depth: int  # quote depth: 1 for "> ", 2 for "> > "
    version: int  # from a "vN:" changelog in the quoted text, else 1
    author: str  # from the quoted Signed-off-by, else ""
    description: str  # the quoted text before the diff
    files: tuple[udiff.FilePatch, ...]

    @property
    def hunks(self) -> int:
        return sum(len(f.hunks) for f in self.files)

    @property
    def truncated(self) -> list[str]:
        """One line per hunk the quote cut short."""
        out = []
        for f in self.files:
            for h in f.hunks:
                if h.truncated:
                    out.append(f"{f.path or '(file not quoted)'} @@ -{h.old_start},{h.old_len} "
                               f"+{h.new_start},{h.new_len}: the quote holds {len(h.old())} old "
                               f"and {len(h.new())} new lines")
        return out

    def diff(self) -> str:
        return "".join(f.text() for f in self.files)


def messages(text: str) -> list[tuple[str, list[str]]]:
    """Split a thread into (sender, lines) per message; one message if no separator is found."""
    out: list[tuple[str, list[str]]] = []
    who, body = "", []
    for ln in text.splitlines():
        if m := _MSG_RE.match(ln):
            if body or who:
                out.append((who, body))
            who, body = _name(m.group("who") or ""), []
            continue
        body.append(ln)
    if body or who:
        out.append((who, body))
    return out


def extract(text: str) -> list[QuotedPatch]:
    """Every distinct quoted patch in the thread, in the order first seen."""
    found: list[QuotedPatch] = []
    seen: set[str] = set()
    for n, (who, body) in enumerate(messages(text), 1):
        depths = [_depth(ln) for ln in body]
        for d in sorted(set(depths) - {0}):
            view = [_unquote(ln, d) for ln, dd in zip(body, depths, strict=True) if dd == d]
            files = _files(view)
            if not files:
                continue
            key = _key(files)
            if key in seen:
                continue
            seen.add(key)
            desc = "\n".join(_prose(view)).strip()
            found.append(QuotedPatch(who, n, d, _version(desc), _author(desc), desc,
                                     tuple(files)))
    return found


def _files(view: list[str]) -> list[udiff.FilePatch]:
    return [f for f in udiff.parse("\n".join(view)) if f.hunks]


def _prose(view: list[str]) -> list[str]:
    for i, ln in enumerate(view):
        if ln.startswith(("diff --git ", "Index: ", "--- a/")) or udiff.HUNK_RE.match(ln):
            return view[:i]
    return view


def _depth(line: str) -> int:
    m = _QUOTE_RE.match(line)
    return m.group(1).count(">") if m else 0


def _unquote(line: str, depth: int) -> str:
    for _ in range(depth):
        line = line[1:]
        if line.startswith(" "):
            line = line[1:]
    return line


def _key(files: list[udiff.FilePatch]) -> str:
    # Whitespace-blind: a quote of a quote may have lost or gained blanks.
    return "|".join("".join(ln.split()) for f in files for h in f.hunks for ln in h.lines)


def _version(desc: str) -> int:
    versions = [int(a or b) for a, b in _VERSION_RE.findall(desc)]
    return max(versions, default=1)


def _author(desc: str) -> str:
    m = _SOB_RE.search(desc)
    return m.group(1).strip() if m else ""


def _name(who: str) -> str:
    who = re.sub(r"\s+on$", "", who.strip())  # "Mel Gorman on" (web archive export)
    return re.sub(r"\s*<[^>]*>$", "", who).strip().strip('"')
