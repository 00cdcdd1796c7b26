"""The job's [kconfig] keys: the base config (a make target or the user's .config) and the
options a job requires the tree to have."""

from pathlib import Path

import pytest

from pipeline import job
from pipeline.errors import UserError

JOB = """
[tree]
source = "debian:linux-source-6.12"
[series]
source = "series"
[kconfig]
fragments = ["frag.config"]
"""


def _job(tmp_path: Path, kconfig: str) -> Path:
    (tmp_path / "frag.config").write_text("CONFIG_SMP=y\n")
    (tmp_path / "series").mkdir(exist_ok=True)
    p = tmp_path / "jobs" / "job.toml"
    p.parent.mkdir(exist_ok=True)
    p.write_text(JOB.replace("frag.config", "../frag.config").replace("series\"", "../series\"")
                 + kconfig)
    return p


def test_base_is_a_make_target_or_a_config_next_to_the_job(tmp_path):
    assert job.load(_job(tmp_path, "")).kconfig_base == "tinyconfig"
    assert job.load(_job(tmp_path, 'base = "defconfig"\n')).kconfig_base == "defconfig"
    (tmp_path / "my.config").write_text("CONFIG_SMP=y\n")
    got = job.load(_job(tmp_path, 'base = "../my.config"\n'))
    assert got.kconfig_base == str((tmp_path / "my.config").resolve())
    assert job.load(_job(tmp_path, 'required = ["CONFIG_LOCKDEP"]\n')).kconfig_required == (
        "CONFIG_LOCKDEP",)


@pytest.mark.parametrize(("kconfig", "expected"), [
    ('base = "../none.config"\n', "kconfig.base: {tmp}/none.config: no such file (expected "
                                  "tinyconfig, defconfig or a path to a .config)"),
    ('required = ["LOCKDEP"]\n', "kconfig.required: expected option names such as "
                                 "CONFIG_LOCKDEP, got ['LOCKDEP']"),
    ("required = [1]\n", 'kconfig.required: expected a list of option names ("CONFIG_LOCKDEP") '
                         "the tree must have, got list [1]"),
])
def test_bad_kconfig_keys_are_named(tmp_path, kconfig, expected):
    path = _job(tmp_path, kconfig)
    with pytest.raises(UserError) as e:
        job.load(path)
    assert expected.format(tmp=tmp_path.resolve()) in str(e.value)


def test_kconfig_base_flag_is_relative_to_where_kpv_runs(tmp_path, monkeypatch):
    (tmp_path / "mine.config").write_text("CONFIG_SMP=y\n")
    monkeypatch.chdir(tmp_path)
    j = job.override(job.load(_job(tmp_path, "")), job.Overrides(kconfig_base="mine.config"))
    assert j.kconfig_base == str(tmp_path / "mine.config")
    with pytest.raises(UserError, match=r"kconfig.base: .*/other.config: no such file"):
        job.override(j, job.Overrides(kconfig_base="other.config"))
