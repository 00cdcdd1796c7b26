"""Split mail containers into single mails: mbox (mboxo or mboxrd), compressed mbox, maildir.

A mail is kept as its raw bytes, because `git am` wants exactly what was
sent; only the mbox escaping of body "From " lines is undone. A From_ line
must look like one (a sender and a date with a time, as `git mailsplit`
checks), so a body line that merely starts with "From " splits nothing.
"""

from __future__ import annotations

import bz2
import email
import email.policy
import gzip
import io
import lzma
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import BinaryIO

from pipeline.errors import UserError

_FROM_RE = re.compile(rb"^From \S+ .*\d{1,2}:\d\d(:\d\d)? ")
_RD_RE = re.compile(rb"^>(>*From )", re.M)


@dataclass(frozen=True)
class Mail:
    raw: bytes  # the mail as sent: headers and body, no From_ line

    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)


# What a compressed file starts with, and how to read it: by content, not by its name.
_COMPRESSIONS: dict[str, tuple[re.Pattern[bytes], Callable[[BinaryIO], BinaryIO]]] = {
    "gzip": (re.compile(rb"\x1f\x8b"), lambda f: gzip.GzipFile(fileobj=f)),
    "xz": (re.compile(rb"\xfd7zXZ\x00"), lzma.LZMAFile),
    "bzip2": (re.compile(rb"BZh[1-9]1AY&SY"), bz2.BZ2File),
}
# The most one compressed file may hold. A series of a thousand patches of 50 KB
# each is 50 MB; far more is a decompression bomb (100 MB of zeros gzip to 100 KB),
# which is read a chunk at a time and refused at this size, before it fills memory.
DECOMPRESSED_MAX = 64 << 20
_CHUNK = 1 << 20


def gunzip(data: bytes, what: str) -> bytes:
    """Decompress, or raise UserError naming `what` when the gzip stream is damaged."""
    return _decompress("gzip", data, what)


def compression(data: bytes) -> str:
    """"gzip", "xz" or "bzip2" when data is compressed so, else ""."""
    return next((name for name, (magic, _) in _COMPRESSIONS.items() if magic.match(data)), "")


def decompress(data: bytes, what: str) -> bytes:
    """data's content when it is compressed (gzip, xz, bzip2), else data itself."""
    kind = compression(data)
    return _decompress(kind, data, what) if kind else data


def _decompress(kind: str, data: bytes, what: str) -> bytes:
    chunks, size = [], 0
    try:
        with _COMPRESSIONS[kind][1](io.BytesIO(data)) as f:
            while chunk := f.read(_CHUNK):
                size += len(chunk)
                if size > DECOMPRESSED_MAX:
                    raise UserError(f"{what}: {kind} data holds more than "
                                    f"{DECOMPRESSED_MAX >> 20} MiB decompressed: refused")
                chunks.append(chunk)
    except (EOFError, OSError, ValueError, lzma.LZMAError, zlib.error) as e:
        raise UserError(f"{what}: damaged {kind} data ({e or 'truncated'})") from None
    return b"".join(chunks)


def is_mbox(data: bytes) -> bool:
    return bool(_FROM_RE.match(data.lstrip(b"\r\n")[:200]))


def looks_like_mail(data: bytes) -> bool:
    """Headers first: at least a From: or Subject: header before the first blank line."""
    head = data.lstrip(b"\r\n").split(b"\n\n", 1)[0]
    return bool(re.search(rb"^(From|Subject): ", head, re.M)) and bool(
        re.match(rb"^[A-Za-z0-9-]+: ", head))


def split(data: bytes, what: str, rd: bool = False) -> list[Mail]:
    """The mails of an mbox (or of a single mail without a From_ line).

    rd: the mbox is mboxrd (public-inbox serves those): ">From " lines lose one ">".
    """
    data = data.replace(b"\r\n", b"\n")
    if not data.strip():
        raise UserError(f"{what}: empty: no mails in it")
    chunks: list[list[bytes]] = []
    cur: list[bytes] | None = None
    for line in data.splitlines(keepends=True):
        # Like `git mailsplit`, no blank line is required before a From_ line:
        # `cat *.patch` of format-patch files without a signature has none.
        if _FROM_RE.match(line):
            cur = []
            chunks.append(cur)
            continue
        if cur is None:  # a single mail with no From_ line
            cur = []
            chunks.append(cur)
        cur.append(line)
    mails = []
    for c in chunks:
        raw = b"".join(c)
        if rd:
            raw = _RD_RE.sub(rb"\1", raw)
        if raw.strip():
            mails.append(Mail(raw))
    if not mails:
        raise UserError(f"{what}: empty: no mails in it")
    return mails


def read_maildir(path: Path) -> list[Mail]:
    files = sorted(p for sub in ("cur", "new") if (path / sub).is_dir()
                   for p in (path / sub).iterdir() if p.is_file())
    mails = [Mail(p.read_bytes().replace(b"\r\n", b"\n")) for p in files]
    if not mails:
        raise UserError(f"{path}: empty maildir: no mails in cur/ or new/")
    return mails


def is_maildir(path: Path) -> bool:
    return path.is_dir() and (path / "cur").is_dir() and (path / "new").is_dir()
