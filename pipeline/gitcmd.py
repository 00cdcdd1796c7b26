"""git as kpv runs it: a fixed identity, none of the user's config, errors as InfraError."""

import os
import subprocess
from pathlib import Path

from pipeline.errors import InfraError

# git am needs an identity, and the user's own config must not matter.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "kpv",
    "GIT_AUTHOR_EMAIL": "kpv@localhost",
    "GIT_COMMITTER_NAME": "kpv",
    "GIT_COMMITTER_EMAIL": "kpv@localhost",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
    # No automatic repack of an 80k-file repository in the middle of a run.
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "gc.auto",
    "GIT_CONFIG_VALUE_0": "0",
}


def git(repo: Path, *args: str, check: bool = True,
        stdin: Path | None = None) -> subprocess.CompletedProcess:
    """Run git with a fixed identity and no user config; raise InfraError on failure.

    stdin: a file git reads as its standard input (git mailinfo reads the mail there).
    """
    try:
        with open(stdin or os.devnull, "rb") as f:
            p = subprocess.run(
                ["git", "-C", str(repo), *args],
                stdin=f,
                capture_output=True,
                text=True,
                # Subjects and paths of a patch come back in git's output as the patch
                # has them, in any encoding: shown with replacement, never a crash.
                errors="replace",
                env={**os.environ, **GIT_ENV},
            )
    except FileNotFoundError:
        raise InfraError("git not found: install the git package") from None
    if check and p.returncode != 0:
        raise InfraError(f"git {' '.join(args)} in {repo} failed: {p.stderr.strip()}")
    return p
