"""A cleaned console log, held once and compactly, read forward in pieces.

A whole log as one str costs up to 4 bytes a character (one astral
character in it widens all of it) and random bytes grow by a third when
cleaned: 100 MB of them made a 534 MB str. Here the cleaned log is kept
once, as UTF-8 pieces (a byte a character for kernel text, 2.1 bytes a
byte of random input), and each reader decodes only the pieces around its
reading: a few MB whatever the log's size.

Readers see offsets and line numbers of the whole log, as one str would
give them: line n is what follows the n-th "\\n", and what follows the last
"\\n" is not a line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from pipeline import sanitize

# Raw bytes cleaned at a time: big enough that per-piece work is noise, small
# enough that a reader's two pieces of str (up to 4 bytes a character) are a
# sliver of any big log (4 MiB pieces took 5.9x, not 3.1x, of 20 MB of random bytes).
PIECE = 1 << 20

# Whether a log has any printk stamp: markers.PRINTK_STAMP without its optional level, so the
# search can skip to each `[` (the optional group first made it try every place).
TIMED_RE = re.compile(r"\[ *\d+\.\d+\]")


class _Piece(NamedTuple):
    data: bytes | str  # ASCII text as it is, other text as UTF-8
    chars: int  # its length in characters


class Cleaned:
    """The cleaned text of a log, as pieces that each end at a line end (the last excepted)."""

    def __init__(self, pieces: Iterable[str]) -> None:
        self.timed = False  # any line holds a printk stamp: looked for while each str is at hand
        self._pieces = [self._kept(p) for p in pieces if p]
        self.chars = sum(p.chars for p in self._pieces)  # len() of the whole text
        # What follows the last \n is not a line.
        self.lines = sum(p.data.count(b"\n" if isinstance(p.data, bytes) else "\n")
                         for p in self._pieces) + (not self._ends_a_line())

    @classmethod
    def of_path(cls, path: Path) -> Cleaned:
        with open(path, "rb") as f:
            return cls(sanitize.clean_pieces(iter(lambda: f.read(PIECE), b"")))

    @classmethod
    def of_bytes(cls, data: bytes) -> Cleaned:
        """A log already in memory (a boot's console), cleaned as of_path cleans a file."""
        return cls(sanitize.clean_pieces(data[i:i + PIECE] for i in range(0, len(data), PIECE)))

    def _kept(self, piece: str) -> _Piece:
        self.timed = self.timed or TIMED_RE.search(piece) is not None
        # A piece that is not plain ASCII takes far less room as UTF-8;
        # surrogatepass keeps a str a caller gave exactly, lone surrogates too.
        return _Piece(piece if piece.isascii() else piece.encode(errors="surrogatepass"),
                      len(piece))

    def _ends_a_line(self) -> bool:
        """Whether the text is empty or ends with a line end."""
        last = self._pieces[-1].data[-1:] if self._pieces else "\n"
        return last in ("\n", b"\n")

    def pieces(self) -> Iterator[str]:
        for p in self._pieces:
            yield p.data if isinstance(p.data, str) else p.data.decode(errors="surrogatepass")

    def reader(self, behind: int = 0) -> Text:
        return Text(self.pieces(), self.chars, behind)


def cleaned(log: str | Cleaned) -> Cleaned:
    """A log given as one cleaned str, or already as a Cleaned."""
    return log if isinstance(log, Cleaned) else Cleaned([log])


class Hit(NamedTuple):
    line: int  # the line number of the match
    line_start: int  # the offset where its line starts
    start: int  # the match's offsets
    end: int


class Text:
    """The log read forward by offset in the whole log, a piece at a time.

    What is loaded runs from the floor to as far as reading got. The floor
    is the start of the line `behind` lines before the one matches() last
    stopped at; text before it is dropped at the next load, and no method
    may be asked for it.
    """

    def __init__(self, pieces: Iterator[str], chars: int, behind: int = 0) -> None:
        self._pieces = pieces
        self.chars = chars  # the whole log's length
        self._behind = behind
        self._text = ""
        self._base = 0  # the offset of _text[0]: the floor, always a line start
        self._held = 0  # the offset the floor is counted back from
        self._at = (0, 0)  # where lines() stopped: a line number and its offset

    @property
    def end(self) -> int:
        """The offset past what is loaded."""
        return self._base + len(self._text)

    def _load(self) -> bool:
        """Read the next piece, dropping what is before the floor; False at the log's end."""
        piece = next(self._pieces, None)
        if piece is None:
            return False
        floor = self._floor()
        self._text = self._text[floor - self._base:] + piece
        self._base = floor
        return True

    def _floor(self) -> int:
        start = self.line_start(min(self._held, self.end))
        for _ in range(self._behind):
            if start == self._base:
                break
            start = self.line_start(start - 1)
        return start

    def hold(self, pos: int) -> None:
        """Nothing before pos is asked for again (pos at or after the last one held)."""
        self._held = pos

    def reach(self, pos: int) -> bool:
        """Load up to pos; whether the log goes on that far (pos < its length)."""
        while pos >= self._base + len(self._text):
            if not self._load():
                return False
        return True

    def find(self, sub: str, start: int) -> int:
        """str.find(sub, start) on the whole log; sub holds no line end, or is one."""
        while (i := self._text.find(sub, start - self._base)) < 0:
            start = max(start, self.end)  # no match runs across pieces: none in what is loaded
            if not self._load():
                return -1
        return self._base + i

    def line_start(self, pos: int) -> int:
        """The offset where the line holding pos starts."""
        # Not found: the floor, itself a line start.
        return self._text.rfind("\n", 0, pos - self._base) + 1 + self._base

    def count_on(self, sub: str, start: int) -> int:
        """str.count(sub, start) on the whole log, reading to its end; sub holds no line end."""
        n = 0
        while True:
            n += self._text.count(sub, start - self._base)
            start = self.end
            self._held = start
            if not self._load():
                return n

    def search(self, regex: re.Pattern[str], start: int, end: int) -> bool:
        """Whether regex.search(log, start, end) finds a match; start..end in one line."""
        self.reach(end - 1)
        return regex.search(self._text, start - self._base, end - self._base) is not None

    def slice(self, start: int, end: int) -> str:
        self.reach(end - 1)
        return self._text[start - self._base:end - self._base]

    def line(self, start: int) -> tuple[str, int]:
        """The text from start to its line's end, and the offset of that end (of
        the log, for a last line without one)."""
        text, rel = self._text, start - self._base
        if (end := text.find("\n", rel)) >= 0:  # most lines are loaded: no call to find()
            return text[rel:end], self._base + end
        end = self.find("\n", start)
        end = self.chars if end < 0 else end
        return self._text[start - self._base:end - self._base], end

    def matches(self, regex: re.Pattern[str], per_line: bool = False) -> Iterator[Hit]:
        """Every match of regex in the log, in order; with per_line, a line's first only.

        The regex must not match across a line end: pieces end at line ends,
        so what it finds in the loaded text is what it finds in the whole log.
        """
        pos = line = counted = start = 0  # search from; line number of offset counted; its start
        text, base = self._text, self._base
        while True:
            m = regex.search(text, pos - base)
            if m is None:
                line += text.count("\n", counted - base)
                counted = pos = start = self._held = base + len(text)  # a piece ends a line
                if not self._load():
                    return
                text, base = self._text, self._base
                continue
            at, end = m.span()
            line += text.count("\n", counted - base, at)
            # Looked for back to the last match only: linear on a line of many matches.
            if (newline := text.rfind("\n", counted - base, at)) >= 0:
                start = base + newline + 1
            counted = self._held = base + at
            yield Hit(line, start, base + at, base + end)
            if per_line:
                # The line's end is in the same piece, loaded whatever the reader did since.
                end = text.find("\n", end)
                if end < 0:
                    return
                pos = base + end + 1
            else:
                pos = base + end
            text, base = self._text, self._base

    def last(self, regex: re.Pattern[str], start: int, stop: int, line: int) -> int:
        """The line number of the last match of regex from start (a line start, line
        `line`) to stop; -1 for none. Reads on to stop.

        The regex finds the last match itself, by leading with a greedy `(?s:.*)`
        (a group 1 holds the match): one search a piece, not one a match.
        """
        found = -1
        while True:
            text, rel, rel_stop = self._text, start - self._base, min(stop, self.end) - self._base
            if (m := regex.search(text, rel, rel_stop)) is not None:
                found = line + text.count("\n", rel, m.start(1))
            if stop <= self.end:
                return found
            line += text.count("\n", rel)
            start = self._held = self.end
            if not self._load():
                return found

    def lines(self, first: int, stop: int) -> list[str]:
        """Lines first to stop (excluded), as split("\\n") gives them; calls in
        line order, each reading on from where the last one stopped."""
        line, pos = self._at
        # Whole pieces counted, not read line by line: the lines may be many.
        while line + (ahead := self._text.count("\n", pos - self._base)) < first:
            line, pos = line + ahead, self.end
            self._held = pos
            if not self._load():
                return []
        while line < first:
            pos = self.find("\n", pos) + 1
            line += 1
        self._held = pos
        out = []
        while line < stop and pos < self.chars:
            text, end = self.line(pos)
            out.append(text)
            line, pos = line + 1, end + 1
        self._at = (line, pos)
        return out
