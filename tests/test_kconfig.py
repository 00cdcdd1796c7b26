import errno
from pathlib import Path

import pytest

from pipeline.errors import InfraError
from pipeline.kernel import kconfig


def test_read_config_and_verify(tmp_path):
    frag = tmp_path / "a.config"
    frag.write_text("# why\nCONFIG_SMP=y\n# CONFIG_MODULES is not set\nCONFIG_NR_CPUS=8\n")
    frag2 = tmp_path / "b.config"
    frag2.write_text("CONFIG_NR_CPUS=4\n")
    want = kconfig.requested((frag, frag2))
    assert want == {"CONFIG_SMP": ("y", "a.config"), "CONFIG_MODULES": ("n", "a.config"),
                    "CONFIG_NR_CPUS": ("4", "b.config")}
    final = kconfig.read_config("CONFIG_SMP=y\nCONFIG_NR_CPUS=4\n# CONFIG_MODULES is not set\n")
    assert kconfig.verify(want, final) == ()
    final = kconfig.read_config("CONFIG_NR_CPUS=64\nCONFIG_MODULES=y\n")
    assert kconfig.verify(want, final) == (
        "CONFIG_SMP: wanted y, got n (from a.config)",
        "CONFIG_MODULES: wanted n, got y (from a.config)",
        "CONFIG_NR_CPUS: wanted 4, got 64 (from b.config)",
    )


def _tree(tmp_path: Path, recipe: str) -> Path:
    """A directory whose Makefile's tinyconfig target runs recipe: make really runs it."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "Makefile").write_text(f"tinyconfig:\n\t{recipe}\n")
    return tree


def test_a_broken_kconfig_fails_the_config_not_kpv(tmp_path):
    # What Kconfig's parser prints for a patch that leaves a `depends on (` open.
    tree = _tree(tmp_path, "@echo 'mm/Kconfig:1190: syntax error' >&2; exit 1")
    got = kconfig.generate(tree, tmp_path / "gen", "tinyconfig", (), tmp_path / "kconfig.log")
    assert not got.ok and got.unmet == ()
    assert got.error == "tinyconfig failed (exit 2): mm/Kconfig:1190: syntax error"
    assert "mm/Kconfig:1190: syntax error" in (tmp_path / "kconfig.log").read_text()


def test_a_missing_tool_is_kpvs_problem_not_the_series(tmp_path):
    tree = _tree(tmp_path, "kpv-no-such-flex --version")
    with pytest.raises(InfraError, match=r"tinyconfig failed \(exit 2\): .*kpv-no-such-flex"):
        kconfig.generate(tree, tmp_path / "gen", "tinyconfig", (), tmp_path / "kconfig.log")
    assert "kpv-no-such-flex" in (tmp_path / "kconfig.log").read_text()  # the log is kept


def test_a_full_disk_keeps_the_last_whole_log(tmp_path, tmpfs):
    """kconfig.log is written whole or not at all: a reader keeps the last run's."""
    out = tmpfs(64)
    (out / "kconfig.log").write_text("the last run's log\n")
    tree = _tree(tmp_path, "@head -c 200000 /dev/zero | tr '\\0' x")  # more than 64 KiB of log
    with pytest.raises(OSError) as e:
        kconfig.generate(tree, tmp_path / "gen", "tinyconfig", (), out / "kconfig.log")
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(out / "kconfig.log")
    assert [p.name for p in out.iterdir()] == ["kconfig.log"]
    assert (out / "kconfig.log").read_text() == "the last run's log\n"
