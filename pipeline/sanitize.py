"""Make any text safe to put into XML, visibly and within a size bound.

Console logs arrive with CRLF line ends, terminal escape sequences, NULs and
invalid UTF-8. XML 1.0 forbids most control characters even as `&#27;`, so a
single ESC from a coloured prompt makes a whole JUnit file unparseable. Every
function here accepts str or bytes and never raises on any content.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import AnyStr

# Terminal escape sequences (ECMA-48), most specific first:
# CSI (colours, cursor moves, bracketed paste `\x1b[?2004h`), strings ended by
# BEL or ST (OSC window titles, DCS, SOS, PM, APC), nF (`\x1b(B` charset
# selection, written by `tput sgr0`), and the single-character ones
# (`\x1b7`, `\x1bc`, `\x1bM`). An ESC that starts none of these is left for
# _ILLEGAL_RE, which shows it rather than letting it vanish.
_ESCAPE = (
    r"\x1b(?:"
    r"\[[0-?]*[ -/]*[@-~]"
    r"|[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|[ -/]+[0-~]"
    r"|[0-~]"
    r")"
)
# The bytes after ESC that open a string, the one sequence that may run past a line end.
_STRING_OPENERS = tuple(bytes([c]) for c in b"]PX^_")
# As str and as bytes: all ASCII, so both remove the same bytes.
_ESCAPE_RE = {str: re.compile(_ESCAPE), bytes: re.compile(_ESCAPE.encode())}

# Everything outside XML 1.0's Char production: C0 controls other than tab,
# newline and carriage return, surrogates (from surrogateescape decoding) and
# U+FFFE/U+FFFF.
_ILLEGAL_RE = re.compile(r"[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

# The C0 controls XML forbids, each with the text that shows it.
_C0 = (*range(9), 0x0b, 0x0c, *range(0x0e, 0x20))
_C0_SHOWN = {str: {chr(c): f"\\x{c:02x}" for c in _C0},
             bytes: {bytes([c]): b"\\x%02x" % c for c in _C0}}

# The UTF-8 of U+FFFE and U+FFFF, which XML forbids, with the text that shows each.
_NONCHARS_SHOWN = {chr(c).encode(): b"\\u%04x" % c for c in (0xfffe, 0xffff)}

# The bytes of plain printable ASCII text, tab and newline included: a log of
# nothing else needs no cleaning beyond its line ends.
_PLAIN = bytes([9, 10, *range(0x20, 0x80)])

# A \r that is not part of a line end's run of \r before \n.
_LONE_CR_RE = re.compile(rb"\r(?![\r\n])")
# A run of \r before \n, as str and as bytes.
# The lookbehind starts a match only at a run's first \r: linear on long runs without \n.
_CR_RUN_RE = {str: re.compile(r"(?<!\r)\r+\n"), bytes: re.compile(rb"(?<!\r)\r+\n")}

_NAME_RE = re.compile(r"[^A-Za-z0-9_-]")

_ELLIPSIS = "..."


def clean(text: str | bytes) -> str:
    """Text with `\\n` line ends, no terminal escapes and only XML 1.0 characters.

    Illegal characters become a visible `\\xNN` or `\\uNNNN`, so a NUL in a
    kernel report shows up in the dashboard instead of silently vanishing.
    Idempotent: the replacements are plain ASCII.
    """
    # `text` is rebound at each step, one call per statement, never kept beside
    # its next form: a log may be hundreds of MB, and each copy alive at once counts.
    if isinstance(text, bytes):
        text = _newlines(text)
        if text.isascii():
            if not text.translate(None, _PLAIN):
                return text.decode("ascii")  # the common case: nothing else to do
            # One byte a character either way; turned visible as str, a log of
            # NULs is not held as expanded bytes and expanded str at once.
            text = text.decode("ascii")
            text = _drop_escapes(text)
            return _show_controls(text)  # all else in ASCII is legal: \r went above
        # Everything is made visible in the bytes, so the str they decode to is
        # the only one made: it takes 2 or 4 bytes a character (U+FFFD for
        # invalid UTF-8, or one astral character, widens all of it), and
        # str.replace is ~10x slower on it. errors="replace" never yields a
        # surrogate, so no _ILLEGAL_RE pass over that str is left to do.
        text = _drop_escapes(text)
        text = _show_controls(text)
        text = _show_nonchars(text)
        return text.decode("utf-8", errors="replace")
    text = _newlines(text)
    text = _drop_escapes(text)
    text = _show_controls(text)
    if _ILLEGAL_RE.search(text) is None:  # U+FFFE/U+FFFF and surrogates are rare
        return text
    return _ILLEGAL_RE.sub(_visible, text)


def clean_pieces(chunks: Iterable[bytes]) -> Iterator[str]:
    """clean() of the chunks' bytes one after the other, in pieces.

    "".join() of the pieces is clean(b"".join(chunks)), so a log of any size
    is cleaned without being held whole. Each piece but the last ends at a
    line end no escape string runs across: clean() of one side never sees
    the other.
    """
    rest: list[bytes] = []  # what follows the last cut: chunks without a line end, joined once
    for chunk in chunks:
        rest.append(chunk)
        if b"\n" not in chunk:
            continue  # a line longer than a chunk: copying and searching it each time was quadratic
        data = b"".join(rest)
        cut = _safe_cut(data)
        head, rest = data[:cut], [data[cut:]]
        del data  # a line may be most of the log: its bytes are held once, not twice
        if head:
            yield clean(head)
    last = b"".join(rest)
    del rest
    if last:
        yield clean(last)


def _safe_cut(data: bytes) -> int:
    """The offset after the last \n of data where clean() may cut; 0 for none.

    Cut after a \n, a run of \r before it and a character's UTF-8 are
    whole on one side. Of _ESCAPE's sequences only a string (OSC, DCS, ...)
    can hold a \n: a cut is safe unless the last ESC before it opens one
    that no BEL has ended yet (a later ESC would end it too).
    """
    cut = data.rfind(b"\n") + 1
    while cut:
        esc = data.rfind(b"\x1b", 0, cut)
        if esc < 0 or data[esc + 1:esc + 2] not in _STRING_OPENERS \
                or data.find(b"\x07", esc, cut) >= 0:
            return cut
        cut = data.rfind(b"\n", 0, esc) + 1
    return 0


def _drop_escapes(text: AnyStr) -> AnyStr:
    esc = "\x1b" if isinstance(text, str) else b"\x1b"
    return _ESCAPE_RE[type(text)].sub(text[:0], text) if esc in text else text


def _show_controls(text: AnyStr) -> AnyStr:
    """The C0 controls XML forbids, each replaced by its visible form, one replace()
    per control present: a regex calling _visible per character ran at 1.5 MB/s
    on a log of NULs, and kept a piece of output per character."""
    for char, shown in _C0_SHOWN[type(text)].items():
        if char in text:
            text = text.replace(char, shown)
    return text


def _show_nonchars(data: bytes) -> bytes:
    """U+FFFE and U+FFFF shown as _visible shows them, found in the UTF-8 bytes:
    EF is never a continuation byte, so EF BF BE/BF always decodes to one of them."""
    for char, shown in _NONCHARS_SHOWN.items():
        if char in data:
            data = data.replace(char, shown)
    return data


def _newlines(text: AnyStr) -> AnyStr:
    """Any run of \r before \n is one line end, and a lone \r is one too.

    \r\r\n is what a serial console gives when the guest's tty adds a \r to
    the kernel's own \r\n; a lone \r (progress bars, getty) is a line break.
    replace() is ~6x faster than a regex that matches at every line end, so
    \r\r\n and \r\n go first; the regex only sees longer runs, which are rare.
    """
    if isinstance(text, bytes) and _LONE_CR_RE.search(text) is None:
        # Every \r comes before \n: drop them in one pass (no copy when there are none).
        return text.translate(None, b"\r") if b"\r" in text else text
    cr, lf = ("\r", "\n") if isinstance(text, str) else (b"\r", b"\n")
    text = text.replace(cr + cr + lf, lf).replace(cr + lf, lf)
    if cr + lf in text:
        text = _CR_RUN_RE[type(text)].sub(lf, text)
    return text.replace(cr, lf)


def _visible(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def bound(text: str | bytes, limit: int) -> str:
    """clean(text), cut to at most `limit` UTF-8 bytes by keeping head and tail.

    A kernel report's title is at its head and the end of its call trace at
    its tail, so both are kept; a `[... N bytes cut ...]` line between them
    says how much of the middle is gone. Raises ValueError when `limit` is too
    small to hold that line.
    """
    text = clean(text)
    data = text.encode()
    if len(data) <= limit:
        return text
    # The marker's size depends on N; the whole length has at least as many
    # digits as N, so reserving room for it can only overestimate.
    room = limit - len(_cut_marker(len(data)).encode())
    if room < 0:
        raise ValueError(f"limit {limit} cannot hold the cut marker")
    # errors="ignore" drops a character split by the cut, never a whole one.
    head = data[: room - room // 2].decode(errors="ignore")
    tail = data[len(data) - room // 2 :].decode(errors="ignore")
    cut = len(data) - len(head.encode()) - len(tail.encode())
    return head + _cut_marker(cut) + tail


def _cut_marker(nbytes: int) -> str:
    return f"\n[... {nbytes} bytes cut ...]\n"


def one_line(text: str | bytes, limit: int = 1024) -> str:
    """The first non-blank line of clean(text), at most `limit` UTF-8 bytes.

    For XML attributes: dashboards show `message` on one line, and the whole
    text belongs in an element body anyway. A cut line ends in "...".
    """
    stripped = clean(text).strip()
    line = stripped.split("\n", 1)[0].strip()
    data = line.encode()
    if len(data) <= limit:
        return line
    keep = max(limit - len(_ELLIPSIS), 0)
    return data[:keep].decode(errors="ignore") + _ELLIPSIS[: limit - keep]


def junit_name(name: str) -> str:
    """`name` with every character outside `[A-Za-z0-9_-]` replaced by `_`.

    The charset JUnit consumers split and key on, and that KCIDB test paths
    accept. An empty name becomes "_" because consumers drop nameless tests.
    """
    return _NAME_RE.sub("_", name) or "_"
