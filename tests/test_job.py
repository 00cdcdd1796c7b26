"""Job files: the default job loads; every kind of mistake is refused, named."""

from pathlib import Path

import pytest

from pipeline import job
from pipeline.errors import UserError
from pipeline.kernel import kconfig

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
        ("[guest]\nvcpus = [0]\n", "guest.vcpus: expected counts of 1 to 64 (the guest "
                                    "kernel's NR_CPUS), got [0]"),
        ("[guest]\naccel = \"hvf\"\n", "guest.accel: expected one of auto, kvm, tcg"),
        ("[guest]\nmemory_mb = 64\n", "guest.memory_mb: expected 256 to "),
        ("[guest]\nduration = 0\n", "guest.duration: expected 1 to 14400 seconds (4 hours), got 0"),
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


def _problems(path: Path) -> str:
    """The one line job.load refuses the job file with, after its name."""
    with pytest.raises(UserError) as e:
        job.load(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg
    return msg.removeprefix(f"{path}: ").removeprefix("invalid job file: ")


def _refused(tmp_path: Path, edit: str) -> str:
    return _problems(write(tmp_path, GOOD + edit))


@pytest.mark.parametrize(("edit", "expected"), [
    ("[guest]\nvcpus = [1000]\n",
     "guest.vcpus: expected counts of 1 to 64 (the guest kernel's NR_CPUS), got [1000]"),
    ("[guest]\nvcpus = [65]\n", "guest.vcpus: expected counts of 1 to 64"),
    ("[guest]\nvcpus = [1, 1]\n", "guest.vcpus: expected each count once, got [1, 1]"),
    ("[guest]\nvcpus = []\n", "guest.vcpus: expected at least one vCPU count, got []"),
    ("[guest]\nvcpus = [true]\n",
     "guest.vcpus: expected a list of positive integers, got list [True]"),
    ("[guest]\nvcpus = [1.5]\n",
     "guest.vcpus: expected a list of positive integers, got list [1.5]"),
    ("[guest]\nduration = 1000000000\n",
     "guest.duration: expected 1 to 14400 seconds (4 hours), got 1000000000"),
    ("[guest]\nduration = 14401\n", "guest.duration: expected 1 to 14400 seconds"),
    ("[guest]\nduration = 1e9\n", "guest.duration: expected a positive integer number of "
                                   "seconds, got float 1000000000.0"),
    ("[guest]\nmemory_mb = 1e8\n",
     "guest.memory_mb: expected an integer number of MiB, got float 100000000.0"),
    ("[guest]\nrepeats = 1000000\n", "guest.repeats: expected 1 to 100, got 1000000"),
    ("[guest]\nrepeats = 101\n", "guest.repeats: expected 1 to 100, got 101"),
    ("[guest]\nrepeats = 1e6\n", "guest.repeats: expected a positive integer"),
    ("[guest]\nrepeats = true\n", "guest.repeats: expected a positive integer: runs of each "
                                   "test per boot, got bool True"),
    ("[guest]\nrepeats = 0\n", "guest.repeats: expected 1 to 100, got 0"),
    ("[guest]\nseed = -1\n", "guest.seed: expected 0 to 9223372036854775807, got -1"),
    ("[guest]\nseed = 9223372036854775808\n", "guest.seed: expected 0 to 9223372036854775807"),
    ("[guest]\nnuma_nodes = 0\n", "guest.numa_nodes: expected 1 to 4, got 0"),
    ("[guest]\nnuma_nodes = 0\nmemory_per_node_mb = 512\n",
     "guest.numa_nodes: expected 1 to 4, got 0"),
    ("[guest]\nkhugepaged_sleep_ms = 10000000000\n",
     "guest.khugepaged_sleep_ms: expected 0 to 3600000 (an hour), got 10000000000"),
    ("[timeouts]\nbuild = 0\n", "timeouts.build: expected 1 to 86400 seconds (a day), got 0"),
    ("[timeouts]\nbuild = 100000\n", "timeouts.build: expected 1 to 86400 seconds (a day)"),
    ("[timeouts]\nboot = 3601\n", "timeouts.boot: expected 1 to 3600 seconds (an hour), "
                                   "got 3601"),
    ("[timeouts]\ntest_slack = -5\n", "timeouts.test_slack: expected 1 to 3600 seconds "
                                       "(an hour), got -5"),
    ("[timeouts]\nboot = 1.5\n", "timeouts.boot: expected seconds, got float 1.5"),
    ("[series]\n", "not valid TOML"),
    ("[series2]\nrevisions = [1]\n", "series2: unknown key"),
    ("[guest]\ntests = [1]\n", "guest.tests: expected a list of test names, got list [1]"),
    ("[guest]\nduration = " + "9" * 5000 + "\n", "a number with thousands of digits"),
    ("[guest]\nseed = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
])
def test_numbers_have_bounds_named_in_one_line(tmp_path, edit, expected):
    assert expected in _refused(tmp_path, edit)


@pytest.mark.parametrize(("old", "new", "key"), [
    ('"debian:linux-source-6.1"', '"a\\u0000b"', "tree.source"),
    ('source = "series"', 'source = "se\\u0000ries"', "series.source"),
    ('["frag.config"]', '["frag.config", "f\\u0000"]', "kconfig.fragments"),
    ('["frag.config"]', '["frag.config"]\nbase = "tiny\\u0000config"', "kconfig.base"),
])
def test_a_nul_in_a_name_is_refused(tmp_path, old, new, key):
    msg = _problems(write(tmp_path, GOOD.replace(old, new)))
    assert msg.startswith(f"{key}: expected ") and "got a NUL character in " in msg


def test_list_items_of_the_wrong_type_are_named(tmp_path):
    path = write(tmp_path, GOOD.replace('"series"', '"series"\nrevisions = ["v1", 2]')
                 .replace('["frag.config"]', '[3]'))
    with pytest.raises(UserError) as e:
        job.load(path)
    assert "series.revisions: expected a list of revision names" in str(e.value)
    assert "kconfig.fragments: expected a list of paths to config fragments, got list [3]" \
        in str(e.value)


def test_a_required_table_given_as_a_value_is_named_once(tmp_path):
    text = GOOD.replace('[series]\nsource = "series"\n', "").replace("name", "series = 1\nname")
    assert _problems(write(tmp_path, text)) == "[series]: expected a table"


def test_memory_is_bounded_by_the_hosts_ram(tmp_path, monkeypatch):
    monkeypatch.setattr(job, "host_memory_mb", lambda: 8000)
    assert job.load(write(tmp_path, GOOD + "[guest]\nmemory_mb = 6000\n")).memory_mb == 6000
    assert _refused(tmp_path, "[guest]\nmemory_mb = 6002\n") == (
        "guest.memory_mb: expected 256 to 6000 MiB (128 per NUMA node, at most 3/4 of "
        "this host's RAM), got 6002")
    assert _refused(tmp_path, "[guest]\nmemory_mb = 100000000\n").startswith(
        "guest.memory_mb: expected 256 to 6000 MiB")


def test_the_hosts_ram_is_read():
    assert 256 <= job.host_memory_mb() < 2**40  # MiB: a machine that runs kpv, not a byte count


def test_every_problem_on_one_line(tmp_path):
    msg = _refused(tmp_path, "[guest]\nvcpus = [1, 1]\nduration = 100000\n")
    assert msg == ("guest.vcpus: expected each count once, got [1, 1]; "
                   "guest.duration: expected 1 to 14400 seconds (4 hours), got 100000")


def _with_fragment(tmp_path: Path, text: str | bytes) -> Path:
    """The fragment of the GOOD job, holding `text`."""
    write(tmp_path, GOOD)
    frag = tmp_path / "frag.config"
    frag.write_bytes(text if isinstance(text, bytes) else text.encode())
    return frag


@pytest.mark.parametrize("line", [
    "CONFIG_FOO==",
    "CONFIG_FOO=y y",
    "CONFIG_FOO=y # why",
    "enable lockdep here",
    "# CONFIG_FOO is set",
    "#CONFIG_FOO=y",
    "# CONFIG_FOO=y",
    "CONFIG_NR_CPUS=8 ",
    "\tCONFIG_FOO=y",
    'CONFIG_CMDLINE="console=ttyS0',
    'CONFIG_CMDLINE="a"b"',
    "CONFIG_FOO=",
    "CONFIG_FOO=yes",
    " CONFIG_FOO=y",
    "CONFIG_FOO=0xg",
    "CONFIG_FOO",
])
def test_a_fragment_line_that_is_not_kconfig_is_refused(tmp_path, line):
    frag = _with_fragment(tmp_path, f"# mine\nCONFIG_SMP=y\n{line}\nCONFIG_NUMA=y\n")
    assert _problems(tmp_path / "job.toml") == f"{frag}:3: not a kconfig line: {line!r}"


def test_every_kind_of_kconfig_line_passes(tmp_path):
    _with_fragment(tmp_path, "\n".join([
        "# a comment", "# CONFIG_MODULES is not set", "", "   ", "# why CONFIG_X: prose",
        "#", "# note: CONFIG_X=y y is not a line", "CONFIG_lower_case=y", "CONFIG_H=0XFF",
        "CONFIG_SMP=y", "CONFIG_KVM=m", "CONFIG_EXPERT=n", "CONFIG_NR_CPUS=8",
        "CONFIG_ILLEGAL_POINTER_VALUE=0xdead000000000000", "CONFIG_LOG_BUF_SHIFT=-1",
        'CONFIG_CMDLINE="console=ttyS0 \\"quoted\\" a\\\\b"', 'CONFIG_LOCALVERSION=""',
        "CONFIG_64BIT=y\r",  # CRLF: Kconfig drops the \r
    ]) + "\n")
    assert job.load(tmp_path / "job.toml").fragments == ((tmp_path / "frag.config").resolve(),)


def test_a_fragment_of_junk_is_named_in_a_few_lines(tmp_path):
    frag = _with_fragment(tmp_path, "".join(f"line {i}\n" for i in range(50)))
    assert _problems(tmp_path / "job.toml") == "; ".join([
        f"{frag}:1: not a kconfig line: 'line 0'", f"{frag}:2: not a kconfig line: 'line 1'",
        f"{frag}:3: not a kconfig line: 'line 2'", f"{frag}: 47 more lines that are not kconfig"])
    frag = _with_fragment(tmp_path, b"CONFIG_SMP=y\n\xff\xfe\n")
    assert _problems(tmp_path / "job.toml") == (
        f"{frag}: not a kconfig fragment: not UTF-8 (byte offset 13)")


def test_the_repos_fragments_are_kconfig():
    fragments = sorted((ROOT / "kconfigs").glob("*.config"))
    assert fragments and [e for f in fragments for e in kconfig.lint(f)] == []


def test_verdict_keys_default_and_are_checked(tmp_path):
    j = job.load(write(tmp_path, GOOD))
    assert (j.gate, j.confirm, j.fail_intermittent, j.bisect) == ("new", 2, True, True)
    given = GOOD + '[verdict]\ngate = "any"\nconfirm = 0\nfail_intermittent = false\n' \
        'bisect = false\n'
    j = job.load(write(tmp_path, given))
    assert (j.gate, j.confirm, j.fail_intermittent, j.bisect) == ("any", 0, False, False)
    bad = GOOD + '[verdict]\ngate = "some"\nconfirm = 11\n'
    with pytest.raises(UserError) as e:
        job.load(write(tmp_path, bad))
    assert "verdict.gate: expected one of new, any, got 'some'" in str(e.value)
    assert "verdict.confirm: expected 0 to 10 boots, got 11" in str(e.value)
    with pytest.raises(UserError, match=r"--gate: verdict\.gate: expected one of new, any"):
        job.override(job.load(write(tmp_path, GOOD)), job.Overrides(gate="all"))
    with pytest.raises(UserError, match=r"--confirm: verdict\.confirm: expected 0 to 10 boots"):
        job.override(job.load(write(tmp_path, GOOD)), job.Overrides(confirm=-1))
    assert job.override(job.load(write(tmp_path, GOOD)), job.Overrides(confirm=0)).confirm == 0
