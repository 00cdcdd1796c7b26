"""Atomic writes on real file systems: a full or read-only folder keeps what it had."""

import errno

import pytest

from pipeline import atomic


def test_write_that_does_not_fit_keeps_the_old_file_and_no_temporary(tmpfs):
    folder = tmpfs(256)
    (folder / "results.json").write_text("old\n")
    with pytest.raises(OSError) as e:
        atomic.write(folder / "results.json", b"x" * (1 << 20))
    assert e.value.errno == errno.ENOSPC
    assert [p.name for p in folder.iterdir()] == ["results.json"]
    assert (folder / "results.json").read_text() == "old\n"


def test_copy_cut_short_keeps_dest_as_it_was(tmpfs, tmp_path):
    folder = tmpfs(256)
    src = tmp_path / "bzImage"
    src.write_bytes(b"k" * (1 << 20))
    with pytest.raises(OSError):
        atomic.copy(src, folder / "bzImage")
    assert list(folder.iterdir()) == []


def test_read_only_folder(tmpfs):
    folder = tmpfs(256, read_only=True)
    with pytest.raises(OSError) as e:
        atomic.write(folder / "results.json", b"{}")
    assert e.value.errno == errno.EROFS


def test_new_file_is_readable_by_others(tmp_path):
    atomic.write(tmp_path / "junit.xml", b"<testsuites/>")
    assert (tmp_path / "junit.xml").stat().st_mode & 0o044 == 0o044
