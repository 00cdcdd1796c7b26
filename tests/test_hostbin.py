"""pipeline.hostbin: a dynamic host binary and its libraries, by ldd and by ELF."""

import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from pipeline import cpio, hostbin
from pipeline.errors import InfraError

LS = Path(shutil.which("ls") or "/bin/ls")


def names(files: list[hostbin.HostFile]) -> set[str]:
    return {f.guest.name for f in files}


def test_ldd_and_elf_agree_on_a_dynamic_binary():
    by_ldd = hostbin.collect(LS, PurePosixPath("/bin/ls"))
    assert by_ldd[0].guest == PurePosixPath("/bin/ls")
    assert "libc.so.6" in names(by_ldd)
    assert any(f.guest.name.startswith("ld-linux") for f in by_ldd)
    by_elf = hostbin.read_elf_needs(LS)
    assert {p.name for p in by_elf} == names(by_ldd[1:])
    for f in by_ldd:
        assert f.host.is_file() and not f.host.is_symlink()


def test_elf_reading_is_used_without_ldd(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no ldd
    files = hostbin.collect(LS, PurePosixPath("/bin/ls"))
    assert "libc.so.6" in names(files)


def test_static_binary_needs_nothing():
    busybox = Path("/bin/busybox")
    assert hostbin.collect(busybox, PurePosixPath("/bin/busybox"))[1:] == []
    assert hostbin.read_elf_needs(busybox) == []


def test_not_elf_and_missing_are_infra_errors(tmp_path):
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(InfraError, match="not a 64-bit little-endian ELF"):
        hostbin.read_elf_needs(script)
    with pytest.raises(InfraError, match="no such file"):
        hostbin.collect(tmp_path / "nope", PurePosixPath("/bin/nope"))


def test_missing_library_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(hostbin, "LIB_DIRS", (tmp_path,))
    with pytest.raises(InfraError, match=r"needs lib\S+\.so\S*, not found"):
        hostbin.read_elf_needs(LS)


def test_entries_make_each_directory_once_and_run_in_a_chroot(tmp_path):
    files = hostbin.collect(LS, PurePosixPath("/bin/ls"))
    entries = hostbin.entries(files, skip_dirs={"bin"})
    paths = [e.path for e in entries]
    assert len(paths) == len(set(paths))
    assert "bin" not in paths and "bin/ls" in paths
    image = tmp_path / "img.cpio"
    with open(image, "wb") as f:
        cpio.write([cpio.directory("bin"), *entries], f)
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run(["cpio", "-idm", "--quiet"], input=image.read_bytes(), cwd=root, check=True)
    # The copied loader runs the copied binary with only the copied libraries.
    loader = next(f.guest for f in files if f.guest.name.startswith("ld-linux"))
    lib_dirs = sorted({str(root / str(f.guest.parent).lstrip("/")) for f in files[1:]})
    done = subprocess.run([str(root / str(loader).lstrip("/")), "--library-path",
                           ":".join(lib_dirs), str(root / "bin/ls"), str(root)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "bin" in done.stdout.split()


@pytest.mark.skipif(shutil.which("stress-ng") is None, reason="stress-ng not installed")
def test_stress_ng_has_all_its_libraries():
    files = hostbin.collect(Path(shutil.which("stress-ng")), PurePosixPath("/bin/stress-ng"))
    assert len(files) > 5
    assert all(f.host.is_file() for f in files)
