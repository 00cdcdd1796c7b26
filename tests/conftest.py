import os
import subprocess
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory, monkeypatch, request):
    """Unit tests get a cache of their own; integration tests share the real one."""
    if "integration" not in request.keywords:
        monkeypatch.setenv("KPV_CACHE", str(tmp_path_factory.mktemp("cache")))


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "GIT_CONFIG_GLOBAL": os.devnull}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout


@pytest.fixture
def small_repo(tmp_path) -> Path:
    """A real git repository with two files and one commit."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "mm").mkdir()
    (repo / "mm" / "mmap.c").write_text("".join(f"line {i}\n" for i in range(40)))
    (repo / "README").write_text("hello\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    return repo


def mount(tmp_path: Path, name: str, options: str) -> Path:
    """A real tmpfs at tmp_path/name (kpv's tests run as root, as CI does), unmounted after."""
    where = tmp_path / name
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True)
    return where


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size_kib, read_only=False) -> a folder on a tmpfs of that size."""
    mounted: list[Path] = []

    def make(size_kib: int, read_only: bool = False) -> Path:
        options = f"size={size_kib}k" + (",ro" if read_only else "")
        mounted.append(mount(tmp_path, f"fs{len(mounted)}", options))
        return mounted[-1]

    yield make
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], check=False)
