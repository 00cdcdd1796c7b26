"""Fetch a series from Patchwork's REST API: the series record, then its mbox.

Sources: `pw:<series id>` (server from $KPV_PATCHWORK_URL, default
https://patchwork.kernel.org), or a URL of the series (`.../series/<id>/`,
`...?series=<id>`, `.../api/[1.x/]series/<id>/`) or of one of its patches
(`.../patch/<id>/`, `.../api/patches/<id>/`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from pipeline import httpcache, mbox
from pipeline.errors import InfraError, UserError

DEFAULT_BASE = "https://patchwork.kernel.org"
_PATH_RE = re.compile(r"^(?P<prefix>.*?)/(?:api/(?:[\d.]+/)?)?(?P<kind>series|patch|patches)"
                      r"/(?P<id>\d+)(?:/.*)?$")


@dataclass(frozen=True)
class PwSeries:
    id: int
    name: str
    url: str  # the API record
    missing: str  # "" or "patchwork has 2 of 3 patches"
    mails: tuple[mbox.Mail, ...]


def parse(source: str) -> tuple[str, str, int] | None:
    """(server, "series"|"patch", id) when the source names a patchwork series, else None."""
    s = source.strip()
    for prefix in ("pw:", "patchwork:"):
        if s.startswith(prefix) and s[len(prefix):].isdigit():
            return os.environ.get("KPV_PATCHWORK_URL", DEFAULT_BASE).rstrip("/"), "series", int(
                s[len(prefix):])
    if not s.startswith(("http://", "https://")):
        return None
    u = urlsplit(s)
    server = f"{u.scheme}://{u.netloc}"
    if (q := parse_qs(u.query).get("series")) and q[0].isdigit():
        return server + u.path.split("/project/")[0].rstrip("/"), "series", int(q[0])
    if m := _PATH_RE.match(u.path):
        kind = "series" if m.group("kind") == "series" else "patch"
        return server + m.group("prefix").split("/project/")[0], kind, int(m.group("id"))
    return None


def fetch(server: str, kind: str, ident: int, refresh: bool = False) -> PwSeries:
    if kind == "patch":
        rec = _json(f"{server}/api/patches/{ident}/", refresh)
        series = rec.get("series") or []
        if not series or not isinstance(series[-1], dict) or "id" not in series[-1]:
            raise UserError(f"{server}: patch {ident} belongs to no series")
        ident = int(series[-1]["id"])
    url = f"{server}/api/series/{ident}/"
    rec = _json(url, refresh)
    mbox_url = rec.get("mbox")
    if not isinstance(mbox_url, str):
        raise InfraError(f"{url}: not a patchwork series record (no 'mbox' link)")
    data = httpcache.get(mbox_url, "patchwork", check=lambda b: mbox.split(b, mbox_url),
                         refresh=refresh)
    total, got = rec.get("total"), rec.get("received_total")
    missing = ""
    if rec.get("received_all") is False or (isinstance(total, int) and isinstance(got, int)
                                            and got < total):
        missing = f"patchwork has {got} of {total} patches"
    return PwSeries(ident, str(rec.get("name") or ""), url,
                    missing, tuple(mbox.split(data, mbox_url)))


def _json(url: str, refresh: bool) -> dict:
    body = httpcache.get(url, "patchwork", check=lambda b: _decode(b, url), refresh=refresh)
    return _decode(body, url)


def _decode(body: bytes, url: str) -> dict:
    try:
        rec = json.loads(body)
    except ValueError:
        raise InfraError(f"{url}: patchwork answered something that is not JSON") from None
    if not isinstance(rec, dict):
        raise InfraError(f"{url}: patchwork answered JSON that is not an object")
    return rec
