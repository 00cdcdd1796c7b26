"""Job files: the default job loads; every kind of mistake is refused, named."""

from pathlib import Path

import pytest

from pipeline import job
from pipeline.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "jobs" / "anon-vma.toml"


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "frag.config").write_text("CONFIG_SMP=y\n")
    (tmp_path / "series").mkdir(exist_ok=True)
    p = tmp_path / "job.toml"
    p.write_text(text)
    return p


GOOD = """
name = "t"
[tree]
source = "debian:linux-source-6.1"
[series]
source = "series"
[kconfig]
fragments = ["frag.config"]
"""


def test_default_job_loads():
    j = job.load(DEFAULT)
    assert j.name == "anon-vma"
    assert j.vcpus == (1, 2, 4)
    assert j.revisions[0] == "baseline"
    assert all(f.is_file() for f in j.fragments)


def test_minimal_job_gets_defaults(tmp_path):
    j = job.load(write(tmp_path, GOOD))
    assert j.fragments == ((tmp_path / "frag.config").resolve(),)
    assert j.accel == "auto" and j.numa_nodes == 2 and j.duration > 0


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ("[guest]\nvcpu = [1]\n", "guest.vcpu: unknown key"),
        ("[guest]\nvcpus = 2\n", "guest.vcpus: expected a list of positive integers, got int 2"),
        ("[guest]\nduration = true\n", "guest.duration: expected a positive integer"),
        ("[guest]\nvcpus = [0]\n", "guest.vcpus: expected positive integers, got [0]"),
        ("[guest]\naccel = \"hvf\"\n", "guest.accel: expected one of auto, kvm, tcg"),
        ("[guest]\nmemory_mb = 64\n", "guest.memory_mb: expected at least 256 MiB"),
        ("[guest]\nduration = 0\n", "guest.duration: expected at least 1 second"),
        ("[timeout]\nbuild = 1\n", "timeout: unknown key"),
    ],
)
def test_mistakes_are_named(tmp_path, edit, expected):
    path = write(tmp_path, GOOD + edit)
    with pytest.raises(UserError) as e:
        job.load(path)
    assert str(path) in str(e.value)
    assert expected in str(e.value)


def test_shape_errors_come_first_then_every_value_error_at_once(tmp_path):
    path = write(tmp_path, GOOD.replace("frag.config", "nope.config")
                 + "[guest]\nvcpus = [0]\ntest = []\n")
    with pytest.raises(UserError) as e:
        job.load(path)
    msg = str(e.value)
    # The shape error (unknown key) stops before value checks: fix it first.
    assert "guest.test: unknown key" in msg and "nope.config" not in msg
    path.write_text(GOOD.replace("frag.config", "nope.config") + "[guest]\nvcpus = [0]\n")
    with pytest.raises(UserError) as e:
        job.load(path)
    assert "nope.config: no such file" in str(e.value)
    assert "guest.vcpus" in str(e.value)


def test_missing_required_and_bad_toml(tmp_path):
    path = write(tmp_path, "[tree]\nsource = \"x\"\n")
    with pytest.raises(UserError, match=r"series\.source: missing"):
        job.load(path)
    path.write_text("[tree\n")
    with pytest.raises(UserError, match=r"not valid TOML"):
        job.load(path)
    with pytest.raises(UserError, match=r"job file not found"):
        job.load(tmp_path / "absent.toml")


def test_overrides_apply_and_are_checked(tmp_path):
    j = job.load(write(tmp_path, GOOD))
    o = job.override(j, job.Overrides(vcpus=(1, 4), tests=("fork",), duration=3, accel="tcg"))
    assert (o.vcpus, o.tests, o.duration, o.accel) == ((1, 4), ("fork",), 3, "tcg")
    with pytest.raises(UserError, match=r"guest\.vcpus"):
        job.override(j, job.Overrides(vcpus=(0,)))
    with pytest.raises(UserError, match=r"tree\.source: .*no such folder"):
        job.override(j, job.Overrides(tree=str(tmp_path / "nowhere")))


def test_remote_series_sources_are_kept_as_given(tmp_path):
    j = job.load(write(tmp_path, GOOD))
    for src in ("20100428174719.GA1234@redhat.com", "https://lore.kernel.org/all/x@y/"):
        assert job.override(j, job.Overrides(series=src)).series == src
    with pytest.raises(UserError, match=r"series\.source: .*no-such-dir: no such file"):
        job.override(j, job.Overrides(series="no-such-dir"))
