"""Where kpv keeps what outlives a run: unpacked trees, worktrees, build dirs."""

import hashlib
import os
from pathlib import Path


def root() -> Path:
    """$KPV_CACHE, else $XDG_CACHE_HOME/kpv, else ~/.cache/kpv."""
    if env := os.environ.get("KPV_CACHE"):
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "kpv"


def key(*parts: str | bytes) -> str:
    """A short stable hash of the parts, for naming cache entries."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:12]
