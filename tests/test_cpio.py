"""pipeline.cpio, checked by reading its archives back with GNU cpio."""

import io
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from pipeline import cpio

ENTRIES = [
    cpio.directory("bin"),
    cpio.directory("dev"),
    cpio.directory("etc", 0o700),
    cpio.regular("bin/tool", b"#!/bin/sh\necho hi\n", 0o755),
    cpio.regular("etc/secret", b"x" * 4097, 0o600),  # not a multiple of 4: needs padding
    cpio.regular("empty", b""),
    cpio.char_device("dev/console", 5, 1),
]


def archive(entries: list[cpio.Entry]) -> bytes:
    out = io.BytesIO()
    cpio.write(entries, out)
    return out.getvalue()


@pytest.fixture(scope="module")
def cpio_tool() -> str:
    path = shutil.which("cpio")
    if path is None:
        pytest.fail("GNU cpio is missing: apt-get install cpio")
    return path


def run_cpio(tool: str, args: list[str], data: bytes, cwd: Path) -> str:
    done = subprocess.run([tool, *args], input=data, capture_output=True, cwd=cwd, check=True)
    # GNU cpio warns (and still exits 0) on misaligned or truncated records.
    assert b"junk" not in done.stderr and b"warning" not in done.stderr.lower()
    return done.stdout.decode()


def test_listing_shows_every_entry_with_type_and_device(cpio_tool: str, tmp_path: Path) -> None:
    data = archive(ENTRIES)
    names = run_cpio(cpio_tool, ["-it"], data, tmp_path).splitlines()
    assert names == sorted(e.path for e in ENTRIES)
    # -itv lists the same entries in the same order, like `ls -l`.
    long = dict(zip(names, run_cpio(cpio_tool, ["-itv"], data, tmp_path).splitlines(), strict=True))
    assert re.match(r"crw------- .* 5,\s+1 .* dev/console$", long["dev/console"])
    assert long["etc"].startswith("drwx------")
    assert long["bin/tool"].startswith("-rwxr-xr-x")


def test_extracted_files_keep_contents_and_modes(cpio_tool: str, tmp_path: Path) -> None:
    # -f skips the device node: extracting it needs mknod, i.e. root.
    run_cpio(cpio_tool, ["-idv", "-f", "dev/console"], archive(ENTRIES), tmp_path)
    assert (tmp_path / "bin/tool").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert stat.S_IMODE((tmp_path / "bin/tool").stat().st_mode) == 0o755
    assert (tmp_path / "etc/secret").read_bytes() == b"x" * 4097
    assert stat.S_IMODE((tmp_path / "etc/secret").stat().st_mode) == 0o600
    assert (tmp_path / "empty").read_bytes() == b""


def test_output_is_deterministic_and_sorted() -> None:
    data = archive(ENTRIES)
    assert archive(list(reversed(ENTRIES))) == data
    assert len(data) % 4 == 0
    names = [e.path for e in sorted(ENTRIES, key=lambda e: e.path)]
    offsets = [data.index(name.encode() + b"\0") for name in names]
    assert offsets == sorted(offsets)
    # Inode numbers follow that order: the first header carries inode 1.
    assert data[:14] == b"070701" + b"%08X" % 1


def test_missing_parent_directory_is_refused() -> None:
    with pytest.raises(ValueError, match="no parent"):
        archive([cpio.regular("lib/x.so", b"")])


def test_duplicate_or_absolute_path_is_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        archive([cpio.regular("a", b""), cpio.regular("a", b"2")])
    with pytest.raises(ValueError, match="bad"):
        archive([cpio.regular("/init", b"")])
