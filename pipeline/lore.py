"""Fetch a thread from a public-inbox archive (lore.kernel.org or any other) by Message-ID.

The thread comes as `<base>/<msgid>/t.mbox.gz`; when the archive has no
thread view for it, the single message at `<base>/<msgid>/raw`. Both are
mboxrd. The base is $KPV_LORE_URL (default https://lore.kernel.org/all) unless
the source is a URL, which carries its own.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from pipeline import httpcache, mbox
from pipeline.errors import UserError

DEFAULT_BASE = "https://lore.kernel.org/all"
_MSGID_RE = re.compile(r"^<?([^\s<>/@]+@[^\s<>/@]+)>?$")
# What may follow the Message-ID in a lore URL.
_TAILS = {"", "T", "t", "raw", "t.mbox.gz", "t.atom", "#r", "#t"}


@dataclass(frozen=True)
class Thread:
    url: str  # what was fetched
    mails: tuple[mbox.Mail, ...]


def base_url() -> str:
    return os.environ.get("KPV_LORE_URL", DEFAULT_BASE).rstrip("/")


def parse(source: str) -> tuple[str, str] | None:
    """(base, msgid) when the source names a lore message, else None."""
    s = source.strip()
    if s.startswith("lore:"):
        s = s[5:]
    if s.startswith(("http://", "https://")):
        return _from_url(s)
    m = _MSGID_RE.match(s)
    if m and not Path(source).exists():
        return base_url(), m.group(1)
    return None


def _from_url(url: str) -> tuple[str, str] | None:
    u = urlsplit(url)
    parts = [unquote(p) for p in u.path.split("/")]
    for i, p in enumerate(parts):
        if "@" in p and all(t in _TAILS for t in parts[i + 1:]):
            prefix = "/".join(quote(x) for x in parts[:i])
            return f"{u.scheme}://{u.netloc}{prefix}".rstrip("/"), p.strip("<>")
    return None


def fetch(base: str, msgid: str, refresh: bool = False) -> Thread:
    """The thread's mails; UserError when the archive has no such message or it holds nothing."""
    mid = quote(msgid, safe="@!$&'()*+,;=:-._~")
    url = f"{base}/{mid}/t.mbox.gz"
    try:
        gz = httpcache.get(url, "lore", check=lambda b: _mails(mbox.gunzip(b, url), url),
                           refresh=refresh)
        return Thread(url, tuple(_mails(mbox.gunzip(gz, url), url)))
    except httpcache.NotFound:
        pass
    url = f"{base}/{mid}/raw"
    try:
        raw = httpcache.get(url, "lore", check=lambda b: _mails(b, url), refresh=refresh)
    except httpcache.NotFound:
        raise UserError(f"{msgid}: no such message at {base} (HTTP 404 for t.mbox.gz and raw)"
                        ) from None
    return Thread(url, tuple(_mails(raw, url)))


def _mails(data: bytes, url: str) -> list[mbox.Mail]:
    return mbox.split(data, url, rd=True)
