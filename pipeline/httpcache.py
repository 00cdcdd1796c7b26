"""GET a URL once, keep the answer on disk keyed by the URL, so a second run works offline.

Only answers that passed the caller's check are kept: a truncated gzip or an
error page is never cached, and a write cut short (a full disk) leaves no file.
Errors name the URL: a 404 is the user's (a wrong Message-ID or series id), a
5xx or a dead network is the infrastructure's.

A fetch has an overall deadline, $KPV_HTTP_DEADLINE seconds (default 120):
requests' timeout is per read, so a server sending one byte every few seconds
would otherwise hold kpv forever. Within it, 429 and the 5xx a busy or
restarting server gives (500, 502, 503, 504) and connection errors are tried
again, a bounded number of times, after the wait the server asks for
(Retry-After) or one that doubles each time.
"""

from __future__ import annotations

import email.utils
import math
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import requests

from pipeline import atomic, cache
from pipeline.errors import InfraError, UserError

TIMEOUT = 60  # seconds for one read; lore answers big threads slowly
DEADLINE_ENV = "KPV_HTTP_DEADLINE"
DEFAULT_DEADLINE = 120.0  # seconds for one URL, every attempt and wait included
ATTEMPTS = 5
RETRY_STATUS = {429, 500, 502, 503, 504}
FIRST_WAIT = 0.5  # seconds before the second attempt; doubled for each one after
RETRY_AFTER_MAX = 60.0  # seconds: a longer Retry-After is waited this long at most
_HEADERS = {"User-Agent": "kpv (kernel patch validation)"}
# Failures that another attempt may not meet: a refused or reset connection, a
# read that timed out, a body cut off mid-way.
_TRANSIENT = (requests.ConnectionError, requests.Timeout,
              requests.exceptions.ChunkedEncodingError)


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
    r = _fetch(url, deadline())
    if r.status_code == 404:
        raise NotFound(f"{url}: not found (HTTP 404)")
    if r.status_code != 200:
        raise InfraError(f"{url}: {_answered(r)}")
    if check is not None:
        check(r.content)
    atomic.write(path, r.content)
    atomic.write(path.with_suffix(".url"), f"{url}\n".encode())
    return r.content


def deadline() -> float:
    """$KPV_HTTP_DEADLINE in seconds; UserError when it is not a positive number."""
    raw = os.environ.get(DEADLINE_ENV, "")
    if not raw:
        return DEFAULT_DEADLINE
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not (0 < seconds < math.inf):
        raise UserError(f"${DEADLINE_ENV}={raw!r}: expected a number of seconds above 0")
    return seconds


def _fetch(url: str, seconds: float) -> requests.Response:
    """The server's last answer, after up to ATTEMPTS tries, all within `seconds`."""
    end = time.monotonic() + seconds
    for attempt in range(1, ATTEMPTS + 1):
        try:
            r = _attempt(url, end, seconds)
        except _TRANSIENT as e:
            problem, wait = f"cannot fetch: {e}", _backoff(attempt)
        else:
            if r.status_code not in RETRY_STATUS:
                return r
            asked = _retry_after(r)  # 0 is a wait too: the server says now
            problem, wait = _answered(r), _backoff(attempt) if asked is None else asked
        if attempt == ATTEMPTS:
            raise InfraError(f"{url}: {problem} ({attempt} attempts)")
        if time.monotonic() + wait > end:
            raise InfraError(f"{url}: {problem} ({attempt} attempt(s); no time for another "
                             f"within the {seconds:g} s deadline, ${DEADLINE_ENV})")
        time.sleep(wait)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _attempt(url: str, end: float, seconds: float) -> requests.Response:
    """One GET, body included, given up at `end`.

    The GET runs in a thread of its own: no timeout requests offers bounds a
    whole answer, and one that trickles in (headers included) must not hold
    kpv past the deadline. A thread given up on ends with its connection (the
    server closing it, or the read timeout, never longer than the time that
    was left); it is a daemon, so kpv need not wait for it to exit.
    """
    got: list[requests.Response | BaseException] = []

    def run() -> None:
        try:
            read_timeout = min(TIMEOUT, max(end - time.monotonic(), 0.1))
            r = requests.get(url, timeout=read_timeout, headers=_HEADERS)
            got.append(r)  # requests.get has read the whole body: stream=False
        except BaseException as e:  # handed to the caller's thread, which decides
            got.append(e)

    worker = threading.Thread(target=run, name=f"kpv-http {url}", daemon=True)
    worker.start()
    worker.join(max(end - time.monotonic(), 0))
    if not got:
        raise InfraError(f"{url}: no complete answer within the {seconds:g} s deadline "
                         f"(${DEADLINE_ENV})")
    if isinstance(got[0], requests.RequestException) and not isinstance(got[0], _TRANSIENT):
        raise InfraError(f"{url}: cannot fetch: {got[0]}")
    if isinstance(got[0], BaseException):
        raise got[0]
    return got[0]


def _answered(r: requests.Response) -> str:
    return f"the server answered HTTP {r.status_code} {r.reason}"


def _backoff(attempt: int) -> float:
    """Seconds to wait after the attempt-th failure, when the server does not say."""
    return FIRST_WAIT * 2 ** (attempt - 1)


def _retry_after(r: requests.Response) -> float | None:
    """Retry-After's wait in seconds (its seconds or its HTTP-date form), at most
    RETRY_AFTER_MAX; None when the answer has none that can be read."""
    value = r.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_MAX)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # `-0000`: UTC, with no offset to trust
        when = when.replace(tzinfo=UTC)
    return min(max((when - datetime.now(UTC)).total_seconds(), 0.0), RETRY_AFTER_MAX)
