"""Provenance is read from the real tools of this machine."""

import re
import subprocess

from pipeline import provenance


def test_record_names_every_tool_by_its_own_first_line():
    props = provenance.record()
    assert re.fullmatch(r"QEMU emulator version \d+\.\d+.*", props["qemu_version"])
    gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout
    assert props["cc_version"] == gcc.splitlines()[0]
    assert props["make_version"].startswith("GNU Make ")
    assert props["binutils_version"].startswith("GNU ld ")
    assert props["kpv_version"] != ""


def test_a_missing_tool_is_unknown_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    props = provenance.record()
    assert props["cc_version"] == "unknown (No such file or directory)"
