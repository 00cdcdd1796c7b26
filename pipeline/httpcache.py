"""GET a URL once, keep the answer on disk keyed by the URL, so a second run works offline.

Only answers that passed the caller's check are kept: a truncated gzip or an
error page is never cached. Errors name the URL: a 404 is the user's (a wrong
Message-ID or series id), a 5xx or a dead network is the infrastructure's.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import requests

from pipeline import cache
from pipeline.errors import InfraError, UserError

TIMEOUT = 60  # seconds for one request; lore answers big threads slowly


class NotFound(UserError):
    """The server answered 404: nothing at that URL."""


def path_for(url: str, kind: str) -> Path:
    return cache.root() / kind / cache.key(url)


def get(url: str, kind: str, check: Callable[[bytes], object] | None = None,
        refresh: bool = False) -> bytes:
    """The body at url, from cache.root()/kind when there; check(body) may raise to refuse it."""
    path = path_for(url, kind)
    if path.is_file() and not refresh:
        return path.read_bytes()
    try:
        r = requests.get(url, timeout=TIMEOUT, headers={"User-Agent": "kpv (kernel patch "
                                                                      "validation)"})
    except requests.RequestException as e:
        raise InfraError(f"{url}: cannot fetch: {e}") from None
    if r.status_code == 404:
        raise NotFound(f"{url}: not found (HTTP 404)")
    if r.status_code != 200:
        raise InfraError(f"{url}: the server answered HTTP {r.status_code} {r.reason}")
    if check is not None:
        check(r.content)
    _save(path, url, r.content)
    return r.content


def _save(path: Path, url: str, body: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    with os.fdopen(fd, "wb") as f:
        f.write(body)
    os.replace(tmp, path)
    path.with_suffix(".url").write_text(url + "\n")
