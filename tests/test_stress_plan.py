"""The stress suite's plan: job keys, bad input refused before any boot, the init's
mm settings and repeats, rates and their median, and reach checks in cell cases."""

import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline import guest, job, markers, timings, vm
from pipeline.errors import UserError
from pipeline.results import Status
from pipeline.run import cell

from .test_job import GOOD, write

ROOT = Path(__file__).resolve().parent.parent
STRESS_SRC = ROOT / "stress"


def load(tmp_path: Path, guest_table: str) -> job.Job:
    """A minimal job (the one tests/test_job.py uses) with this [guest] table."""
    return job.load(write(tmp_path, GOOD + "[guest]\n" + guest_table))


# --- job keys and bad input ------------------------------------------------

def test_guest_keys_have_defaults_and_load(tmp_path):
    j = load(tmp_path, "")
    assert (j.repeats, j.thp, j.ksm, j.numa_nodes) == (1, "madvise", True, 2)
    j = load(tmp_path, 'numa_nodes = 4\nmemory_per_node_mb = 512\nrepeats = 3\nthp = "always"\n'
                       "ksm = false\nkhugepaged_sleep_ms = 10\ncompaction_proactiveness = 0\n"
                       "numa_balancing = false\n")
    assert j.memory_mb == 2048 and j.repeats == 3
    s = job.guest_settings(j)
    assert s == guest.GuestSettings("always", False, 10, 0, False)


@pytest.mark.parametrize("table, expected", [
    ("duration = 0\n", "guest.duration: expected 1 to 14400 seconds (4 hours), got 0"),
    ('tests = ["fork", "mremapp"]\n', "unknown test 'mremapp'; known: fork, stack, mmap"),
    ('tests = ["stress-ng:nosuch"]\n', "unknown stress-ng stressor 'nosuch'"),
    ("vcpus = [1, 0]\n", "guest.vcpus: expected counts of 1 to 64 (the guest kernel's "
                         "NR_CPUS), got [1, 0]"),
    ('tests = ["migrate"]\nmemory_mb = 256\n',
     "256 MiB is too small for test migrate (it needs at least 384 MiB)"),
    ('tests = ["race"]\nnuma_nodes = 1\n', "test race needs at least 2 NUMA nodes"),
    ("numa_nodes = 5\n", "guest.numa_nodes: expected 1 to 4, got 5"),
    ("memory_mb = 1024\nmemory_per_node_mb = 256\n", "give one of the two, or make them agree"),
    ("repeats = 0\n", "guest.repeats: expected 1 to 100, got 0"),
    ("numa_nodes = 3\nmemory_mb = 1000\n", "1000 MiB does not split evenly over 3 NUMA"),
    ('thp = "sometimes"\n', "guest.thp: expected one of always, madvise, never"),
    ("compaction_proactiveness = 101\n", "guest.compaction_proactiveness: expected 0 to 100"),
    ("ksm = 1\n", "guest.ksm: expected true or false, got int 1"),
])
def test_bad_input_is_a_clear_error_before_any_boot(tmp_path, table, expected):
    with pytest.raises(UserError) as e:
        load(tmp_path, table)
    assert expected in str(e.value)


def test_cli_overrides_are_checked_the_same_way(tmp_path):
    j = load(tmp_path, "")
    with pytest.raises(UserError, match="unknown test 'nope'"):
        job.override(j, job.Overrides(tests=("nope",)))
    with pytest.raises(UserError, match=r"--duration: guest\.duration: expected 1 to 14400 "):
        job.override(j, job.Overrides(duration=0))


@pytest.mark.parametrize("name, duration", [("fork", 0), ("nope", 5), ("stress-ng:x", 5)])
def test_stress_test_refuses_bad_input(name, duration):
    with pytest.raises(UserError):
        guest.stress_test(name, duration, 1)


# --- guest image: settings, repeats, stress-ng -------------------------------

def test_settings_reach_the_program_and_the_init():
    off = guest.GuestSettings(thp="never", ksm=False, khugepaged_sleep_ms=7,
                              compaction_proactiveness=0, numa_balancing=False)
    t = guest.stress_test("migrate", 5, 2, off, repeats=3)
    assert t.argv[-4:] == ("--thp", "0", "--ksm", "0")
    assert t.budget == 3 * t.timeout
    init = guest.render_init([t], off)
    for line in ("set_knob $thp/enabled never", "set_knob $ksm/run 0",
                 "set_knob $thp/khugepaged/scan_sleep_millisecs 7",
                 "set_knob /proc/sys/vm/compaction_proactiveness 0",
                 "set_knob /proc/sys/kernel/numa_balancing 0",
                 "run_test migrate 65 3 /stress/migrate"):
        assert line in init


def test_init_repeats_a_test_and_stops_at_the_first_failure(tmp_path):
    """Run init's run_test with a fake program: three runs, KPV_REPEAT each time."""
    init = guest.render_init([])
    body = init[init.index("run_test() {"):init.index("run_one() {")]
    prog = tmp_path / "prog"
    prog.write_text('#!/bin/sh\necho "run $KPV_REPEAT"\n[ "$KPV_REPEAT" != "$FAIL_AT" ]\n')
    prog.chmod(0o755)
    script = ("debug_locks() { echo 1; }\nuptime_ms() { echo 0; }\n" + body
              + f"run_test t 5 3 {prog}\n")
    out = subprocess.run(["busybox", "sh", "-c", script], capture_output=True, text=True,
                         env={"PATH": "/bin:/usr/bin", "FAIL_AT": "9"}).stdout
    assert out.splitlines() == ["@@kpv start t debug_locks=1", "run 1", "run 2", "run 3",
                                "@@kpv end t status=0 elapsed_ms=0 debug_locks=1"]
    out = subprocess.run(["busybox", "sh", "-c", script], capture_output=True, text=True,
                         env={"PATH": "/bin:/usr/bin", "FAIL_AT": "2"}).stdout
    assert out.splitlines()[1:] == ["run 1", "run 2",
                                    "@@kpv end t status=1 elapsed_ms=0 debug_locks=1"]


def test_init_knob_reads_the_bracketed_choice(tmp_path):
    init = guest.render_init([])
    body = init[init.index("knob() {"):init.index("thp=/sys")]
    (tmp_path / "enabled").write_text("always [madvise] never\n")
    (tmp_path / "run").write_text("1\n")
    out = subprocess.run(["busybox", "sh", "-c", body + f"knob {tmp_path}/enabled; "
                          f"knob {tmp_path}/run; knob {tmp_path}/none"],
                         capture_output=True, text=True).stdout
    assert out.split() == ["madvise", "1", "na"]


@pytest.mark.skipif(shutil.which("stress-ng") is None, reason="stress-ng not installed")
def test_stress_ng_goes_in_only_when_a_test_runs_it(tmp_path):
    bins = guest.build_stress(STRESS_SRC, tmp_path / "bins")
    t = guest.stress_test("stress-ng:mmap", 5, 1)
    assert t.name == "stress-ng-mmap"
    with_ng = guest.build_initramfs([t], tmp_path / "a.cpio", bins)
    without = guest.build_initramfs([guest.stress_test("mmap", 5, 1)], tmp_path / "b.cpio", bins)
    listing = subprocess.run(["cpio", "-it", "--quiet"], input=with_ng.read_bytes(),
                             capture_output=True, check=True).stdout.decode().split()
    assert {"bin/stress-ng", "bin/kpv-stress-ng", "lib/x86_64-linux-gnu/libc.so.6"} <= set(
        listing)
    assert without.stat().st_size < with_ng.stat().st_size / 2


def test_stress_ng_wrapper_makes_a_result_line(tmp_path):
    """The wrapper with stubs for stress-ng (writing its YAML) and /proc/vmstat."""
    wrapper = guest.render_stress_ng()
    fake = tmp_path / "stress-ng"
    fake.write_text("#!/bin/sh\nfor a; do case $prev in --yaml) y=$a;; esac; prev=$a; done\n"
                    "printf 'metrics:\\n    - stressor: mmap\\n      bogo-ops: 42\\n"
                    "      bogo-ops-per-second-real-time: 8.400000\\n"
                    "      wall-clock-time: 5.000000\\n' > $y\n")
    fake.chmod(0o755)
    script = wrapper.replace("/tmp/", f"{tmp_path}/").replace(
        "/proc/vmstat", str(tmp_path / "vmstat"))
    (tmp_path / "vmstat").write_text("pgmigrate_success 5\npgfault 100\n")
    (tmp_path / "w.sh").write_text(script)
    done = subprocess.run(["busybox", "sh", str(tmp_path / "w.sh"), "mmap", "5", "1"],
                          capture_output=True, text=True,
                          env={"PATH": f"{tmp_path}:/bin:/usr/bin", "KPV_REPEAT": "2"})
    assert done.returncode == 0, done.stderr
    [m] = markers.parse(done.stdout)
    assert m.test == "stress-ng-mmap"
    assert m.fields["bogo_ops"] == "42" and m.fields["ops_per_s"] == "8.4"
    assert m.fields["elapsed_ms"] == "5000" and m.fields["repeat"] == "2"
    assert m.fields["vm_pgmigrate_success"] == "0" and m.fields["vm_thp_split_pmd"] == "na"


# --- rates, repeats, and cell cases --------------------------------------------

def test_rates_per_kind_and_median_spread_of_repeats():
    runs = [{"ops_per_s": str(r), "elapsed_ms": "1000", "mremap_ops": str(r // 2),
             "mprotect_ops": "10", "bogo_ops": "1"} for r in (100, 300, 200)]
    one = timings.summarize(runs[:1])
    assert one == {"mremap_ops_per_s": "50.0", "mprotect_ops_per_s": "10.0"}
    props = timings.summarize(runs)
    assert props["repeats"] == "3"
    assert props["ops_per_s_median"] == "200.0" and props["ops_per_s_spread"] == "200.0"
    assert props["mremap_ops_per_s_median"] == "100.0"
    assert props["mprotect_ops_per_s_spread"] == "0.0"
    assert props["ops_per_s_runs"] == "100.0,300.0,200.0"
    assert timings.summarize([]) == {}


def boot(log: str) -> vm.Boot:
    return vm.Boot("tcg", "qemu", log.encode(), True, 1.0, True, 0, False, "", 5.0)


def case_for(test: guest.GuestTest, lines: list[str]):
    log = "\n".join(["@@kpv boot debug_locks=1 nodes=0-1 thp=madvise",
                     f"@@kpv start {test.name} debug_locks=1",
                     *lines, f"@@kpv end {test.name} status=0 elapsed_ms=9000 debug_locks=1",
                     "@@kpv done"])
    return cell.test_case(test, boot(log), markers.parse(log), [])


MMAP = ("mprotect_ops=5 mremap_ops=4 remap_ops=3 dontneed_ops=2 max_map_count=600 "
        "opt_size_mb=8 opt_cell_pages=8 elapsed_ms=1000")


def test_a_test_whose_path_did_not_run_is_an_error():
    t = guest.stress_test("mmap", 5, 1)
    c = case_for(t, [f"@@kpv result mmap ops=14 ops_per_s=14.0 {MMAP}".replace(
        "mremap_ops=4", "mremap_ops=0")])
    assert c.status == Status.ERROR and c.kind == "not-reached"
    assert c.message.startswith("mmap did not reach its path: mremap_ops=0, need >= 1")
    c = case_for(t, [])
    assert c.status == Status.ERROR and "printed no result line" in c.message


def test_repeats_give_median_and_spread_in_the_case():
    t = guest.stress_test("mmap", 5, 1, repeats=2)
    c = case_for(t, [f"@@kpv result mmap ops=14 ops_per_s=14.0 repeat=1 {MMAP}",
                     f"@@kpv result mmap ops=20 ops_per_s=20.0 repeat=2 {MMAP}"])
    assert c.status == Status.PASS, c.message
    assert c.properties["ops_per_s_median"] == "17.0"
    assert c.properties["ops_per_s_spread"] == "6.0"
    assert c.properties["repeat"] == "2"  # the last line's own fields stay
    assert c.properties["mremap_ops_per_s_median"] == "4.0"


def test_idle_has_nothing_to_reach_and_cases_record_the_guest():
    t = guest.stress_test("idle", 5, 1)
    c = case_for(t, [])
    assert c.status == Status.PASS
    assert c.properties["guest_thp"] == "madvise" and c.properties["guest_nodes"] == "0-1"
