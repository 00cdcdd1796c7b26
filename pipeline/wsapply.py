"""Apply a diff whose whitespace a mail archive mangled: kpv's fallback after `git am -3`.

Each hunk's context and removed lines are matched against the file ignoring
all whitespace; a hunk that matches nowhere or in more than one place is
refused. Context lines are taken from the tree. Added lines get their
whitespace back from what surrounds them:

- an added line that replaces a similar removed line takes that line's
  indentation and, token by token, its inner blanks (alignment before a
  trailing comment, say);
- otherwise the neighbours in the tree imply it: the previous line's
  indentation, one level more after `{`, one less for `}`, alignment under
  an open `(`, the ` * ` of a comment block; a line that came with no
  leading blank stays at column 0.

When the patch names the blob it produces (`index <old>..<new>`), every
candidate whitespace for the uncertain gaps is tried, best guesses first and
within a budget, until the file hashes to that blob: then the result is the
author's file byte for byte, and the file is reported "verified". Otherwise
the best guess is kept and reported as a guess.

A diff whose lines still hold tabs or runs of spaces was not collapsed: its
added lines are kept as they are and only the matching is whitespace-blind.
No git here; the caller commits. Nothing outside `wt` is written.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import subprocess
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path

from pipeline import udiff
from pipeline.errors import UserError

SEARCH_BUDGET = 50_000  # blob hashes tried per file before settling for the best guess
_TRAILING_COMMENT = ("/*", "//")
_CONTROL_RE = re.compile(r"^(if|for|while|else if)\b.*\)$|^else$|^do$")


class NoMatch(Exception):
    """A hunk matches zero or several places: the message names which and where."""


@dataclass(frozen=True)
class FileResult:
    path: str
    action: str  # "modified", "created", "deleted"
    hunks: int
    check: str  # "verified: blob 1a2b3c4 as the patch says", "guessed: ...", "no index line"
    notes: tuple[str, ...] = ()  # ties the hunk header broke


@dataclass(frozen=True)
class Result:
    ok: bool
    message: str  # on failure: which hunk of which file and why
    files: tuple[FileResult, ...] = ()

    @property
    def verified(self) -> bool:
        return bool(self.files) and all(f.check.startswith("verified") for f in self.files)


@dataclass
class _Line:
    """A line of the new file: text pieces and indexes of uncertain gaps (into _File.gaps)."""

    norm: str  # the line without any whitespace, for matching
    pieces: list[str | int]

    def render(self, gaps: list[list[str]], choice: list[int] | None = None) -> str:
        return "".join(p if isinstance(p, str) else gaps[p][choice[p] if choice else 0]
                       for p in self.pieces)


@dataclass
class _File:
    lines: list[_Line]
    gaps: list[list[str]]  # candidates per uncertain gap, best first
    final_newline: bool = True
    offset: int = 0  # where the last hunk matched, minus where its header said
    notes: list[str] = field(default_factory=list)

    def text(self, choice: list[int] | None = None) -> str:
        body = "\n".join(ln.render(self.gaps, choice) for ln in self.lines)
        return body + ("\n" if self.final_newline and self.lines else "")


def apply(wt: Path, text: str, name: str) -> Result:
    """Apply every file of the diff in text to the worktree, all or nothing."""
    files = [f for f in udiff.parse(text) if f.hunks or f.binary]
    if not files:
        return Result(False, f"{name}: no diff in it")
    collapsed = _is_collapsed(files)
    planned: list[tuple[str, str | None, FileResult]] = []
    for fp in files:
        try:
            planned.append(_plan(wt, fp, name, collapsed))
        except NoMatch as e:
            return Result(False, str(e))
    for path, content, _ in planned:
        target = _target(wt, path)
        if content is None:
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content.encode("utf-8", "surrogateescape"))
    return Result(True, "", tuple(r for _, _, r in planned))


def _is_collapsed(files: list[udiff.FilePatch]) -> bool:
    """True when no hunk line holds a tab or two blanks in a row: whitespace was folded."""
    body = [ln[1:] for f in files for h in f.hunks for ln in h.lines if ln[:1] in "+- "]
    return not any("\t" in ln or "  " in ln for ln in body)


def _plan(wt: Path, fp: udiff.FilePatch, name: str, collapsed: bool
          ) -> tuple[str, str | None, FileResult]:
    if fp.binary:
        raise NoMatch(f"{name}: {fp.path}: a binary patch; kpv applies text only")
    path = fp.new_path or fp.old_path
    if path is None:  # a hunk quoted without its file header
        path = _guess_file(wt, fp, name)
        fp = replace(fp, old_path=path, new_path=path)
    if fp.old_path is None and fp.new_path is not None and _is_new(fp):
        if _target(wt, path).exists():
            raise NoMatch(f"{name}: {path}: the patch creates it, but it exists already")
        f = _File([], [])
        lines: list[str] = []
        action = "created"
    else:
        target = _target(wt, fp.old_path or path)
        if not target.is_file():
            raise NoMatch(f"{name}: {fp.old_path or path}: no such file in the tree")
        content = target.read_bytes().decode("utf-8", "surrogateescape")
        lines = content.splitlines()
        f = _File([_Line(_norm(s), [s]) for s in lines], [], content.endswith("\n"))
        action = "modified"
    for i, h in enumerate(fp.hunks, 1):
        _apply_hunk(f, h, i, path, name, collapsed)
    if fp.new_path is None:
        if any(ln.norm for ln in f.lines):
            raise NoMatch(f"{name}: {path}: the patch deletes it, but lines would remain")
        return path, None, FileResult(path, "deleted", len(fp.hunks), "deleted")
    check = _settle(f, fp)
    return path, f.text(), FileResult(path, action, len(fp.hunks), check, tuple(f.notes))


def _is_new(fp: udiff.FilePatch) -> bool:
    return any(h.startswith("new file mode") for h in fp.header) or (
        len(fp.hunks) == 1 and fp.hunks[0].old_len == 0 and fp.hunks[0].old_start == 0)


def _apply_hunk(f: _File, h: udiff.Hunk, i: int, path: str, name: str, collapsed: bool) -> None:
    old = [_norm(s) for s in h.old()]
    where = f"{name}: {path}: hunk {i} ({h.header()})"
    if h.truncated:
        raise NoMatch(f"{where} is cut short (the mail holds fewer lines than its header says)")
    at = _find(f, old, h, where)
    out: list[_Line] = []
    fi = at
    removed: list[str] = []
    body = [ln for ln in h.lines if ln[:1] in " -+"]
    for k, ln in enumerate(body):
        kind, content = ln[0], ln[1:]
        if kind == " ":
            out.append(f.lines[fi])
            fi += 1
            removed = []
        elif kind == "-":
            removed.append(f.lines[fi].render(f.gaps))
            fi += 1
        else:
            if not collapsed:
                out.append(_Line(_norm(content), [content]))
                continue
            prev = [x.render(f.gaps) for x in (f.lines[:at] + out)[-6:]]
            nxt = next((f.lines[at + _old_index(body, j)].render(f.gaps)
                        for j in range(k + 1, len(body)) if body[j][0] == " "), None)
            out.append(_rebuild(content, prev, nxt, _template(removed, content, body, k), f))
    if any(ln.startswith("\\") for ln in h.lines) and at + len(old) == len(f.lines):
        f.final_newline = not _new_side_lacks_newline(h)
    f.lines[at:at + len(old)] = out


def _old_index(body: list[str], j: int) -> int:
    return sum(1 for b in body[:j] if b[0] in " -")


def _new_side_lacks_newline(h: udiff.Hunk) -> bool:
    last_kind = ""
    for ln in h.lines:
        if ln.startswith("\\"):
            if last_kind in (" ", "+"):
                return True
        else:
            last_kind = ln[:1]
    return False


def _find(f: _File, old: list[str], h: udiff.Hunk, where: str) -> int:
    """Where the hunk's old lines are, ignoring whitespace; NoMatch when not exactly one place.

    Kernel code repeats itself (expand_upwards and expand_downwards differ in a
    few lines), so when the lines match several places, the hunk header's own
    evidence decides: the function it names, then the line it names (moved by
    the offset earlier hunks of this file had). If that leaves one, it is used
    and noted; otherwise the hunk is refused.
    """
    if not old:
        return min(max(h.old_start, 0), len(f.lines))
    norms = [ln.norm for ln in f.lines]
    hits = [p for p in range(len(norms) - len(old) + 1)
            if norms[p] == old[0] and norms[p:p + len(old)] == old]
    if not hits:
        raise NoMatch(f"{where} matches nowhere, even ignoring whitespace")
    chosen = hits
    if len(chosen) > 1 and h.section:
        chosen = [p for p in chosen if _function_at(f, p).startswith(_norm(h.section))]
    if len(chosen) > 1:
        chosen = [p for p in chosen if p == h.old_start - 1 + f.offset]
    if len(chosen) != 1:
        at = ", ".join(str(p + 1) for p in hits[:6])
        raise NoMatch(f"{where} matches {len(hits)} places (lines {at}) and its header does not "
                      "tell them apart: ambiguous, refusing")
    if len(hits) > 1:
        f.notes.append(f"{where.split(': ', 1)[1]} matched {len(hits)} places; line "
                       f"{chosen[0] + 1} is the one its header names")
    f.offset = chosen[0] - (h.old_start - 1)
    return chosen[0]


def _function_at(f: _File, p: int) -> str:
    """The whitespace-free text of the nearest line above p that git would name a hunk by."""
    for i in range(p - 1, -1, -1):
        first = f.lines[i].render(f.gaps)[:1]
        # git's default: a line starting with a letter, '_' or '$'; labels ("out:") are not.
        if first and (first.isalpha() or first in "_$") and not f.lines[i].norm.endswith(":"):
            return f.lines[i].norm
    return ""


def _guess_file(wt: Path, fp: udiff.FilePatch, name: str) -> str:
    """A hunk quoted without its file header: the one tracked file where it matches, if any."""
    old = [_norm(s) for h in fp.hunks[:1] for s in h.old()]
    longest = max((s for s in fp.hunks[0].old() if s.strip()), key=len, default="")
    token = max(longest.split(), key=len, default="")
    if not token:
        raise NoMatch(f"{name}: a hunk without a file name and without lines to find it by")
    p = subprocess.run(["git", "-C", str(wt), "grep", "-l", "-F", "-e", token],
                       capture_output=True, text=True)
    found = []
    for cand in p.stdout.split():
        lines = _target(wt, cand).read_bytes().decode("utf-8", "surrogateescape").splitlines()
        norms = [_norm(s) for s in lines]
        if any(norms[i:i + len(old)] == old for i in range(len(norms) - len(old) + 1)):
            found.append(cand)
    if len(found) != 1:
        raise NoMatch(f"{name}: a hunk quoted without its file name matches "
                      f"{len(found)} files{': ' + ', '.join(found[:5]) if found else ''}")
    return found[0]


# --- whitespace of added lines -------------------------------------------------------------


def _template(removed: list[str], content: str, body: list[str], k: int) -> str | None:
    """The removed line this added line replaces, if one in the same change block is alike."""
    if not removed:
        return None
    pos, j = 0, k - 1
    while j >= 0 and body[j][0] == "+":  # this is the pos-th added line of the block
        pos, j = pos + 1, j - 1
    tokens = content.split()
    best, score = None, 0.0
    for j, r in enumerate(removed):
        s = difflib.SequenceMatcher(None, r.split(), tokens).ratio() + (0.1 if j == pos else 0)
        if s > score:
            best, score = r, s
    return best if score >= 0.5 else None


def _rebuild(content: str, prev: list[str], nxt: str | None, tmpl: str | None, f: _File) -> _Line:
    tokens = content.split()
    if not tokens:
        return _Line("", [""])
    pieces: list[str | int] = []
    lead_cands = [""] if not content.startswith(" ") else _leads(tokens, prev, nxt, tmpl)
    pieces.append(_gap(f, lead_cands))
    seps = _template_seps(tmpl, tokens) if tmpl else {}
    for j, tok in enumerate(tokens):
        if j:
            pieces.append(_gap(f, _inner(j, tokens, seps, prev, nxt, lead_cands[0])))
        pieces.append(tok)
    return _Line("".join(tokens), pieces)


def _gap(f: _File, cands: list[str]) -> str | int:
    cands = list(dict.fromkeys(cands))
    if len(cands) == 1:
        return cands[0]
    f.gaps.append(cands)
    return len(f.gaps) - 1


def _leads(tokens: list[str], prev: list[str], nxt: str | None, tmpl: str | None) -> list[str]:
    p = next((s for s in reversed(prev) if s.strip()), "")
    pl, nl = _lead(p), _lead(nxt) if nxt is not None and nxt.strip() else None
    first = tokens[0]
    cands: list[str] = []
    if not first.startswith("*"):
        # Below a comment's " * " lines, code is indented like the comment's "/*".
        pl = _code_lead(p)
        nl = _code_lead(nxt) if nl is not None else None
    if tmpl is not None:
        cands.append(_lead(tmpl))
    ps = p.strip()
    if first.startswith("*") and ps.startswith(("/*", "*")) and not (
            ps.endswith("*/") and not ps.startswith("*")):
        cands.append(pl + " " if ps.startswith("/*") else pl)
    if first.startswith("*") and nl is not None and nxt.strip().startswith("*"):
        cands.append(nl)
    if (col := _open_paren_col(p)) is not None:
        cands.append(_indent_to(col))
    if ps.endswith("{"):
        cands.append(pl + "\t")
    if first.startswith("}"):
        cands.append(pl if ps.endswith("{") else pl[:-1])
    if _CONTROL_RE.match(ps):
        cands.append(pl + "\t")
    elif len(prev) >= 2 and ps.endswith(";") and _CONTROL_RE.match(prev[-2].strip()):
        cands.append(_code_lead(prev[-2]))  # after the one-line body of a brace-less if
    if len(prev) >= 2 and _open_paren_col(prev[-2]) is not None:
        cands.append(_lead(_statement_start(prev)))
    cands += [pl] if p else []
    if nl is not None:
        cands.append(nl)
    cands += [pl + "\t", pl[:-1], "\t", "\t\t", " ", "\t\t\t", pl + " "]
    return [c for c in cands if c] or ["\t"]


def _inner(j: int, tokens: list[str], seps: dict[int, list[str]], prev: list[str],
           nxt: str | None, lead: str) -> list[str]:
    cands = list(seps.get(j, []))
    tok = tokens[j]
    if tok.startswith(_TRAILING_COMMENT) and j > 0 and not tokens[0].startswith(("/*", "*")):
        col = _col(lead + " ".join(tokens[:j]))
        cands += [" ", "\t"] + [_pad_to(col, c) for c in _comment_cols(prev, nxt) if c > col]
        cands += ["\t\t", "  ", "   ", "\t\t\t"]
    elif j == 1 and tokens[0] == "*":
        widths = [w for w in (_star_gap(s) for s in [*prev[-1:], nxt or ""]) if w]
        if any(w > 1 for w in widths):
            base = widths[0]
            order = [*widths, base + 2, base + 4, base + 6, base - 2, *range(1, 13)]
            cands += [" " * w for w in order if w > 0]
    elif tokens[j - 1].endswith((".", "?", "!", ":")) and tokens[0].startswith(("*", "/*")):
        cands += [" ", "  "]  # prose in a comment: some put two blanks after a sentence
    elif (tok == "\\" and j == len(tokens) - 1) or (j == 2 and tokens[0] == "#define"):
        cands += [" ", "\t", "\t\t"]
    return ([*cands, " "]) if cands else [" "]


def _template_seps(tmpl: str, tokens: list[str]) -> dict[int, list[str]]:
    """For each added token matched to a template token, the blanks before it there."""
    parts = re.split(r"(\s+)", tmpl.strip())
    ttoks, tseps = parts[0::2], ["", *parts[1::2]]
    out: dict[int, list[str]] = {}
    sm = difflib.SequenceMatcher(None, ttoks, tokens, autojunk=False)
    for a, b, n in sm.get_matching_blocks():
        for d in range(n):
            if b + d > 0 and a + d > 0:
                out[b + d] = [tseps[a + d]]
    return out


def _code_lead(s: str | None) -> str:
    lead = _lead(s)
    if s is not None and s.strip().startswith("*") and lead.endswith(" "):
        return lead[:-1]
    return lead


def _lead(s: str | None) -> str:
    return "" if s is None else s[:len(s) - len(s.lstrip(" \t"))]


def _col(s: str) -> int:
    c = 0
    for ch in s:
        c = (c // 8 + 1) * 8 if ch == "\t" else c + 1
    return c


def _indent_to(col: int) -> str:
    return "\t" * (col // 8) + " " * (col % 8)


def _pad_to(start: int, col: int) -> str:
    """Tabs from column `start` to reach `col` (a tab-aligned comment), spaces for the rest."""
    s, c = "", start
    while (c // 8 + 1) * 8 <= col:
        s, c = s + "\t", (c // 8 + 1) * 8
    return s + " " * (col - c) or " "


def _comment_cols(prev: list[str], nxt: str | None) -> list[int]:
    cols = []
    for s in [*reversed(prev[-3:]), nxt or ""]:
        i = s.find("/*")
        if i > 0 and s[:i].strip():
            cols.append(_col(s[:i]))
    return cols


def _star_gap(s: str) -> int:
    m = re.match(r"^\s*\*( +)\S", s)
    return len(m.group(1)) if m else 0


def _open_paren_col(s: str) -> int | None:
    """The column after the last unclosed '(' of a line that does not end a statement."""
    t = s.rstrip()
    if not t or t.endswith((";", "{", "}", ")")) or t.lstrip().startswith(("*", "/*", "#")):
        return None
    depth, opened = 0, []
    for i, ch in enumerate(t):
        if ch == "(":
            opened.append(i)
        elif ch == ")" and opened:
            opened.pop()
        depth = len(opened)
    if not depth:
        return None
    return _col(t[:opened[-1] + 1])


def _statement_start(prev: list[str]) -> str:
    i = len(prev) - 1
    while i > 0 and _open_paren_col(prev[i - 1]) is not None:
        i -= 1
    return prev[i]


def _norm(s: str) -> str:
    return "".join(s.split())


# --- verification against the blob the patch names -----------------------------------------


def _settle(f: _File, fp: udiff.FilePatch) -> str:
    """Choose the gaps: the first combination that hashes to the patch's blob, else the best."""
    want = fp.new_blob
    if not want or set(want) == {"0"}:
        return "guessed: the patch names no resulting blob" if f.gaps else "no gaps to guess"
    if not f.gaps:
        ok = _blob(f.text()).startswith(want)
        return f"{'verified' if ok else 'differs'}: blob {want}" + (
            " as the patch says" if ok else " is what the patch names")
    hasher = _Hasher(f)
    for n, choice in enumerate(islice(_choices([len(g) for g in f.gaps]), SEARCH_BUDGET), 1):
        if hasher.blob(choice).startswith(want):
            for i, c in enumerate(choice):
                f.gaps[i] = [f.gaps[i][c]]
            tried = f" ({n} whitespace candidates tried)" if n > 1 else ""
            return f"verified: blob {want} as the patch says{tried}"
    return (f"guessed: no whitespace among the {SEARCH_BUDGET} tried gives blob {want}; "
            "kept the best guess")


class _Hasher:
    """Git blob hashes of a file under many gap choices, re-rendering only the uncertain lines."""

    def __init__(self, f: _File) -> None:
        self.f = f
        self.parts: list[bytes | _Line] = []
        run: list[str] = []
        for ln in f.lines:
            if any(isinstance(p, int) for p in ln.pieces):
                self.parts.append("".join(f"{x}\n" for x in run).encode("utf-8", "surrogateescape"))
                self.parts.append(ln)
                run = []
            else:
                run.append(ln.render(f.gaps))
        self.parts.append("".join(f"{x}\n" for x in run).encode("utf-8", "surrogateescape"))
        if not f.final_newline and self.parts[-1]:
            self.parts[-1] = self.parts[-1][:-1]
        self.head = self.parts[0]
        self.states: dict[int, object] = {}  # total length -> sha1 state after header + head

    def blob(self, choice: list[int]) -> str:
        tail = [p if isinstance(p, bytes) else
                (p.render(self.f.gaps, choice) + "\n").encode("utf-8", "surrogateescape")
                for p in self.parts[1:]]
        if not self.f.final_newline and not self.parts[-1]:
            tail[-2] = tail[-2][:-1]
        size = len(self.head) + sum(map(len, tail))
        if size not in self.states:
            self.states[size] = hashlib.sha1(b"blob %d\0" % size + self.head)
        h = self.states[size].copy()
        for t in tail:
            h.update(t)
        return h.hexdigest()


def _choices(sizes: list[int]):
    """Every choice vector, in order of the sum of ranks (best guesses first)."""
    n = len(sizes)
    top = sum(s - 1 for s in sizes)
    for total in range(top + 1):
        yield from _compositions(sizes, 0, total, [0] * n)


def _compositions(sizes: list[int], i: int, left: int, cur: list[int]):
    if i == len(sizes) - 1:
        if left < sizes[i]:
            cur[i] = left
            yield list(cur)
        return
    for v in range(min(left, sizes[i] - 1) + 1):
        cur[i] = v
        yield from _compositions(sizes, i + 1, left - v, cur)
    cur[i] = 0


def _blob(text: str) -> str:
    data = text.encode("utf-8", "surrogateescape")
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _target(wt: Path, path: str) -> Path:
    """wt/path, refusing anything that would leave the worktree or pass through a symlink."""
    p = Path(path)
    if p.is_absolute() or ".." in p.parts or not p.parts or p.parts[0] == ".git":
        raise UserError(f"{path}: outside the tree; refused")
    cur = wt
    for part in p.parts:
        cur = cur / part
        if cur.is_symlink():
            raise UserError(f"{path}: passes through the symlink {cur.relative_to(wt)}; refused")
    return cur
