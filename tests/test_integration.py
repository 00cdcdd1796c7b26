"""The whole pipeline for real: Debian's 6.1 tree, git am, lockdep builds, QEMU, stress.

Slow tier: these build kernels (minutes each) and boot them under TCG. The
build dirs live in the shared kpv cache, so later tests reuse earlier builds.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import xmlschema
from junitparser import Error, Failure, JUnitXml, Skipped

from pipeline import analysis, markers, sanitize, vm
from pipeline.results import Run

ROOT = Path(__file__).resolve().parent.parent
XSD = ROOT / "tests" / "data" / "junit-10.xsd"
VCPUS = (1, 2, 4)

pytestmark = pytest.mark.integration


def kpv(*args: str, timeout: float = 5400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout)


def cases(out: Path) -> dict[tuple[str, str], object]:
    xml = JUnitXml.fromfile(str(out / "junit.xml"))
    return {(suite.name, case.name): case for suite in xml for case in suite}


def result_of(case) -> object | None:
    return case.result[0] if case.result else None


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> Path:
    """The default job (every revision, vCPUs 1, 2, 4), with short stress runs."""
    out = tmp_path_factory.mktemp("default")
    p = kpv("run", "--out", str(out), "--duration", "5")
    (out / "kpv.stderr").write_text(p.stderr)
    assert p.returncode == 1, p.stderr[-3000:]  # v1, v2 and v2-buildfix fail: exit 1
    return out


def test_junit_validates_and_names_are_unique(default_run):
    xmlschema.XMLSchema(str(XSD)).validate(str(default_run / "junit.xml"))
    names = list(cases(default_run))
    assert len(names) == len(set(names))


def test_baseline_and_v3_pass_at_every_vcpu_count(default_run):
    c = cases(default_run)
    for rev in ("baseline", "v3"):
        for stage in ("apply", "kconfig", "build"):
            assert result_of(c[(f"kpv.{rev}", stage)]) is None, (rev, stage)
        for n in VCPUS:
            suite = f"kpv.{rev}.vcpus_{n}"
            for test in ("boot", "fork", "stack"):
                r = result_of(c[(suite, test)])
                assert r is None, (suite, test, r)


def test_v1_lockdep_report_in_expand_downwards(default_run):
    c = cases(default_run)
    for n in VCPUS:
        r = result_of(c[(f"kpv.v1.vcpus_{n}", "boot")])
        assert isinstance(r, Failure)
        assert "expand_downwards" in r.message
        assert r.type in ("lockdep-invalid-wait-context", "sleep-in-atomic")
        # might_sleep fires again at each exec in the test; lockdep, off since boot, does
        # not: either way the test is not a pass.
        assert isinstance(result_of(c[(f"kpv.v1.vcpus_{n}", "fork")]), (Failure, Skipped))


def test_v2_build_error_only_with_lockdep(default_run):
    c = cases(default_run)
    r = result_of(c[("kpv.v2", "build")])
    assert isinstance(r, Failure) and r.type == "build-error"
    assert "request for member 'dep_map'" in r.message
    assert r.message.startswith("init/main.c:") or ".h:" in r.message
    for n in VCPUS:
        s = result_of(c[(f"kpv.v2.vcpus_{n}", "fork")])
        assert isinstance(s, Skipped) and "build failed" in s.message


def test_v2_buildfix_circular_dependency(default_run):
    results = json.loads((default_run / "results.json").read_text())
    for suite in results["suites"]:
        if suite["revision"] != "v2-buildfix" or suite["vcpus"] is None:
            continue
        reports = [r for c in suite["cases"] for r in c["reports"]]
        circular = [r for r in reports if r["type"] == "lockdep-circular"]
        assert circular, suite["name"]
        locks = " ".join(circular[0]["locks"])
        assert "anon_vma_chain_lock" in locks and "anon_vma->rwsem" in locks
        # The job's debug-info.config: each frame is followed by its file:line.
        assert re.search(r" expand_downwards\+0x[0-9a-f]+/0x[0-9a-f]+ \(mm/mmap\.c:\d+\)",
                         circular[0]["text"]), circular[0]["text"][:3000]


def test_v1_takes_the_anon_vma_lock_against_the_documented_order_v3_does_not(default_run):
    results = json.loads((default_run / "results.json").read_text())
    v1 = results["comparison"]["v1"]
    edge = {"from": "&mm->page_table_lock", "to": "&anon_vma->rwsem"}
    assert edge in v1["lock_dependencies"]["against_documented_order"], v1
    assert v1["reports"]["new"] and v1["reports"]["new"][0]["boots_run"] >= 3, v1["reports"]
    v3 = results["comparison"]["v3"]
    assert v3["reports"]["new"] == [] and v3["lock_dependencies"]["against_documented_order"] \
        == [], v3
    junit = JUnitXml.fromfile(str(default_run / "junit.xml"))
    order = {s.name: c for s in junit for c in s if c.name == "lock_order"}
    assert not order["kpv.v1.changes"].is_passed and order["kpv.v3.changes"].is_passed


def test_results_record_accel_timings_and_logs(default_run):
    results = json.loads((default_run / "results.json").read_text())
    assert results["properties"]["accel"] in ("kvm", "tcg")
    for tool in ("kpv", "python", "qemu", "cc", "make", "binutils"):
        assert not results["properties"][f"{tool}_version"].startswith("unknown")
    config = hashlib.sha256((default_run / "v3" / ".config").read_bytes()).hexdigest()
    assert {s["properties"].get("config_sha256") for s in results["suites"]
            if s["properties"]["revision"] == "v3"} == {config}
    for stage in ("apply", "kconfig", "build", "boot+run"):
        assert results["stage_times"][stage] > 0
    cell = next(s for s in results["suites"] if s["name"] == "kpv.v3.vcpus_2")
    assert cell["properties"]["accel"] == results["properties"]["accel"]
    fork = next(c for c in cell["cases"] if c["name"] == "fork")
    assert fork["time"] > 0 and float(fork["properties"]["ops_per_s"]) > 0
    log = (default_run / "v3" / "vcpus-2" / "console.log").read_bytes()
    tests = [c["name"] for c in cell["cases"] if c["name"] != "boot"]
    done = [m for m in markers_in(log) if m.kind == "done"]
    assert len(done) == len(tests) >= 2  # a boot per test, each kept whole


def job_file(tmp_path: Path, **over: str) -> Path:
    """A job like the default one, with some keys replaced (values are TOML)."""
    text = (ROOT / "jobs" / "anon-vma.toml").read_text()
    text = text.replace('"../', f'"{ROOT}/')
    for key, value in over.items():
        lines = text.splitlines()
        i = next(i for i, ln in enumerate(lines) if ln.startswith(f"{key} ="))
        # A multi-line array: drop its continuation lines.
        j = i + 1
        if lines[i].rstrip().endswith("["):
            while not lines[j].startswith("]"):
                j += 1
            j += 1
        lines[i:j] = [f"{key} = {value}"]
        text = "\n".join(lines) + "\n"
    path = tmp_path / "job.toml"
    path.write_text(text)
    return path


def test_reproduce_boots_the_cell_by_hand(default_run, tmp_path):
    """A cell's reproduce.sh, with the output folder copied elsewhere, boots the same kernel
    and image and runs the test it is given: kpv itself is not involved."""
    copy = tmp_path / "out"
    shutil.copytree(default_run, copy, ignore=shutil.ignore_patterns("console.log"))
    script = copy / "v1" / "vcpus-1" / "reproduce.sh"
    cell = next(s for s in Run.load(default_run / "results.json").suites
                if s.name == "kpv.v1.vcpus_1")
    assert cell.properties["reproduce"] == "v1/vcpus-1/reproduce.sh"
    p = subprocess.run([str(script), "stack"], cwd=tmp_path, capture_output=True, timeout=600,
                       stdin=subprocess.DEVNULL, env={**os.environ, "KPV_ACCEL": "tcg"})
    assert p.returncode == 0, p.stderr
    marks = markers_in(p.stdout)
    assert [m.test for m in marks if m.kind == "start"] == ["stack"]
    assert any(m.kind == "done" for m in marks)
    # v1's lockdep report at the first exec, as in kpv's own boot of it.
    titles = [r.title for r in analysis.analyse(sanitize.clean(p.stdout), True, "").reports]
    assert any(t.endswith("in expand_downwards") for t in titles), titles


def test_v2_builds_and_boots_without_lockdep(tmp_path):
    frags = f'["{ROOT}/kconfigs/guest.config", "{ROOT}/kconfigs/mm.config"]'
    job = job_file(tmp_path, fragments=frags, revisions='["v2"]', vcpus="[1]",
                   tests='["fork"]', duration="3")
    p = kpv("run", str(job), "--out", str(tmp_path / "out"))
    c = cases(tmp_path / "out")
    assert result_of(c[("kpv.v2", "build")]) is None, p.stderr[-2000:]
    assert result_of(c[("kpv.v2.vcpus_1", "boot")]) is None
    cfg = (tmp_path / "out" / "v2" / ".config").read_text()
    assert "# CONFIG_LOCKDEP is not set" in cfg or "CONFIG_LOCKDEP=y" not in cfg


def test_seeded_faults_reset_and_freeze(tmp_path):
    """patches/faults on a lockdep kernel: a WARN with file:line, a guest that resets
    itself (QEMU exits) and one that freezes silently (kpv kills QEMU)."""
    frags = (f'["{ROOT}/kconfigs/guest.config", "{ROOT}/kconfigs/lockdep.config", '
             f'"{ROOT}/kconfigs/debug-info.config"]')
    job = job_file(tmp_path, fragments=frags, test_slack="10")
    out = tmp_path / "out"
    p = kpv("run", str(job), "--out", str(out), "--series", str(ROOT / "patches" / "faults"),
            "--revisions", "faults", "--vcpus", "2",
            "--tests", "fault-warn,fault-reboot,fault-freeze")
    assert p.returncode == 1, p.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    (suite,) = [s for s in results["suites"] if s["vcpus"] == 2]
    got = {c["name"]: c for c in suite["cases"]}
    assert (got["fault-warn"]["kind"], got["fault-warn"]["message"]) == \
        ("warning", "WARNING in kpv_warn")
    assert re.search(r"kpv_warn\+0x[0-9a-f]+/0x[0-9a-f]+ \(kernel/kpv_fault\.c:\d+[;)]",
                     got["fault-warn"]["text"])
    assert (got["fault-reboot"]["kind"], got["fault-reboot"]["message"]) == \
        ("unexpected-reboot", "unexpected kernel reboot")
    assert (got["fault-freeze"]["kind"], got["fault-freeze"]["message"]) == \
        ("console-stopped", "console stopped")
    assert "killed by kpv" in got["fault-freeze"]["text"]
    assert got["fault-freeze"]["text"].rstrip().endswith("kpv_fault: freeze")
    assert got["boot"]["status"] == "pass"


def test_patch_that_does_not_apply(tmp_path):
    series = tmp_path / "series" / "bad"
    series.mkdir(parents=True)
    good = sorted((ROOT / "patches" / "anon-vma-lock" / "v1").glob("*.patch"))[0]
    text = good.read_text()
    # Corrupt a context line of the first hunk so it no longer matches mm/mmap.c
    # (not even ignoring whitespace).
    head, hunks = text.split("\n@@", 1)
    ctx = next(ln for ln in hunks.splitlines()[1:] if ln.startswith(" ") and ln.strip())
    hunks = hunks.replace(ctx, ctx + " /* not in 6.1 */", 1)
    (series / good.name).write_text(head + "\n@@" + hunks)
    p = kpv("run", "--series", str(tmp_path / "series"), "--revisions", "bad",
            "--out", str(tmp_path / "out"))
    assert p.returncode == 1, p.stderr
    c = cases(tmp_path / "out")
    r = result_of(c[("kpv.bad", "apply")])
    assert isinstance(r, Failure) and r.type == "apply-error"
    assert good.name in r.message and "mm/mmap.c" in r.message
    assert isinstance(result_of(c[("kpv.bad", "build")]), Skipped)


def test_kconfig_option_that_cannot_be_set(tmp_path):
    frag = tmp_path / "impossible.config"
    # An option no Kconfig defines (a warning: renamed or gone in this kernel), and one
    # ARCH=x86_64 forces on (a failure: its prompt is for ARCH=x86 only).
    frag.write_text("CONFIG_KPV_NO_SUCH_OPTION=y\n# CONFIG_64BIT is not set\n")
    frags = f'["{ROOT}/kconfigs/guest.config", "{frag}"]'
    job = job_file(tmp_path, fragments=frags, revisions='["baseline"]', vcpus="[1]")
    p = kpv("run", str(job), "--out", str(tmp_path / "out"))
    assert p.returncode == 1, p.stderr
    r = result_of(cases(tmp_path / "out")[("kpv.baseline", "kconfig")])
    assert isinstance(r, Failure) and r.type == "kconfig-error"
    assert r.message.startswith("1 requested options did not stick: CONFIG_64BIT: wanted n, "
                                "got y (from impossible.config): has no prompt on x86_64 (its "
                                'prompt only if "$(ARCH)" = "x86")'), r.message
    assert "KPV_NO_SUCH_OPTION" not in r.text
    run = json.loads((tmp_path / "out" / "results.json").read_text())
    case = next(c for s in run["suites"] if s["name"] == "kpv.baseline" for c in s["cases"]
                if c["name"] == "kconfig")
    assert case["properties"]["kconfig_absent"] == (
        "CONFIG_KPV_NO_SUCH_OPTION: wanted y, got n (from impossible.config): this tree has no "
        "such option (removed or renamed?)")


def test_patch_that_breaks_kconfig_fails_its_revision(tmp_path):
    shutil.copytree(ROOT / "tests" / "data" / "series" / "kconfig-broken",
                    tmp_path / "series" / "broken")
    p = kpv("run", "--series", str(tmp_path / "series"), "--revisions", "broken", "--vcpus", "1",
            "--out", str(tmp_path / "out"))
    assert p.returncode == 1, p.stderr  # the series failed; kpv did its job
    c = cases(tmp_path / "out")
    r = result_of(c[("kpv.broken", "kconfig")])
    assert isinstance(r, Failure) and r.type == "kconfig-error"
    assert r.message == "tinyconfig failed (exit 2): mm/Kconfig:1190: syntax error"
    assert isinstance(result_of(c[("kpv.broken", "build")]), Skipped)
    assert not (tmp_path / "out" / "broken" / ".config").exists()


def test_ctrl_c_leaves_no_qemu_and_keeps_results(default_run, tmp_path):
    """Interrupt during a boot: QEMU is gone, the console and results are on disk."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--revisions", "v3",
                             "--vcpus", "2", "--tests", "fork", "--duration", "30",
                             "--out", str(out)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 900
    log = out / "v3" / "vcpus-2" / "console.log"
    while time.monotonic() < deadline and not started(_read(log)):
        time.sleep(0.5)
    assert started(_read(log))
    qemu = _qemu_children(proc.pid)
    assert qemu, "no QEMU running during the test"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    for pid in qemu:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie_gone(pid)
    assert [m.test for m in markers_in(log.read_bytes()) if m.kind == "start"] == ["fork"]
    assert (out / "results.json").is_file() and (out / "junit.xml").is_file()


def markers_in(raw: bytes) -> list[markers.Marker]:
    # Not a byte search: a kernel line may cut into a marker on the console.
    return markers.parse(sanitize.clean(raw))


def started(raw: bytes, test: str = "fork") -> bool:
    return any(m.kind == "start" and m.test == test for m in markers_in(raw))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _qemu_children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,comm="], capture_output=True,
                         text=True).stdout
    return [int(p) for p, pp, comm in (ln.split(None, 2) for ln in out.splitlines())
            if int(pp) == pid and comm.startswith("qemu")]


def _is_zombie_gone(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


def test_qemu_killed_from_outside_is_not_blamed_on_kpv_or_the_guest(default_run, tmp_path):
    """A QEMU the host kills (the OOM killer, say) is neither a guest reset nor kpv's stop."""
    tag = f"kpv.victim={tmp_path.name}"
    m = vm.Machine(default_run / "baseline" / "bzImage", default_run / "initramfs.cpio", 1, 512,
                   1, "tcg", f"kpv.test=fork {tag}")
    path = tmp_path / "console.log"
    with open(path, "wb") as log, ThreadPoolExecutor(1) as pool:
        running = pool.submit(vm.boot, m, log, 120, 120)
        deadline = time.monotonic() + 120
        while not started(_read(path)) and time.monotonic() < deadline:
            time.sleep(0.2)
        subprocess.run(["pkill", "-KILL", "-f", tag], check=True)
        b = running.result()
    assert (b.killed, b.exit_status, b.qemu_exited) == (False, None, None)
    assert b.problem == ("QEMU was killed by signal 9, not sent by kpv, before the guest "
                         "finished")
    # A log alone says only that it ends; kpv run, knowing more, blames the host (below).
    seen = analysis.analyse(sanitize.clean(b.log), b.qemu_exited, b.problem)
    (stopped,) = [r for r in seen.reports if r.test == "fork"]
    assert stopped.type == "console-stopped"
    assert stopped.text.split("\n")[0] == ("console stopped: the log ends before init finished "
                                           f"({b.problem})")


def _run_until(out: Path, args: list[str], test: str, timeout: float = 900) -> subprocess.Popen:
    """kpv run started in the background, returned once `test` has started in its guest."""
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", *args, "--out", str(out)],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    log = out / "baseline" / "vcpus-1" / "console.log"
    while time.monotonic() < deadline and not started(_read(log), test) \
            and proc.poll() is None:
        time.sleep(0.2)
    assert started(_read(log), test), proc.stderr.read() if proc.poll() is not None else ""
    return proc


def test_qemu_killed_from_outside_fails_the_runner_not_the_kernel(default_run, tmp_path):
    """kpv run: a QEMU killed by someone else is an <error> and exit 2, not a kernel report."""
    out = tmp_path / "out"
    proc = _run_until(out, ["--revisions", "baseline", "--vcpus", "1", "--tests", "fork",
                            "--duration", "30"], "fork")
    (qemu,) = _qemu_children(proc.pid)
    os.kill(qemu, signal.SIGKILL)
    assert proc.wait(timeout=300) == 2
    case = cases(out)[("kpv.baseline.vcpus_1", "fork")]
    assert isinstance(result_of(case), Error)
    assert result_of(case).message == ("QEMU was killed by signal 9, not sent by kpv, before "
                                       "the guest finished")
    (suite,) = [s for s in Run.load(out / "results.json").suites if s.name.endswith("vcpus_1")]
    assert [r.type for c in suite.cases for r in c.reports] == []


def test_ctrl_c_mid_test_keeps_the_tests_that_finished(default_run, tmp_path):
    """SIGINT during the second test of a cell: the first test's pass is in the results."""
    out = tmp_path / "out"
    proc = _run_until(out, ["--revisions", "baseline", "--vcpus", "1", "--tests", "fork,stack",
                            "--duration", "20"], "stack")
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert subprocess.run(["pgrep", "-f", str(out)]).returncode == 1, "a QEMU was left"
    (suite,) = [s for s in Run.load(out / "results.json").suites if s.name.endswith("vcpus_1")]
    assert [(c.name, c.status.value) for c in suite.cases] == [("boot", "pass"),
                                                               ("fork", "pass")]
    assert ("kpv.baseline.vcpus_1", "fork") in cases(out)  # junit.xml is rewritten too
    assert b"@@kpv start stack" in (out / "baseline" / "vcpus-1" / "console.log").read_bytes()


def test_disk_filling_mid_run_is_exit_2_and_leaves_no_partial_kernel(default_run, tmp_path):
    """The output folder holds the guest image (6.5 MB) but not the kernel after it: exit 2,
    one line naming the folder, results.json valid, no bzImage at all."""
    out = tmp_path / "out"
    out.mkdir()
    image = (default_run / "initramfs.cpio").stat().st_size
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={image // 1024 + 512}k", "tmpfs",
                    str(out)], check=True)
    try:
        p = kpv("run", "--revisions", "baseline", "--vcpus", "1", "--tests", "fork",
                "--duration", "5", "--out", str(out))
        assert p.returncode == 2, p.stderr[-3000:]
        assert p.stderr.strip().splitlines()[-1] == (
            f"kpv: error: {out / 'baseline'}: cannot write bzImage: No space left on device")
        assert not (out / "baseline" / "bzImage").exists()
        assert [f.name for f in out.rglob(".*")] == [".config"], "a temporary file was left"
        run = Run.load(out / "results.json")
        assert [s.name for s in run.suites] == ["kpv.baseline"]
    finally:
        subprocess.run(["umount", "-l", str(out)], check=False)


def test_kvm_watchdog_falls_back_to_tcg(default_run, tmp_path):
    """Where /dev/kvm exists but cannot run guests (nested, no vmx), boot still succeeds."""
    if not Path("/dev/kvm").exists():
        pytest.skip("no /dev/kvm: nothing for the watchdog to catch")
    m = vm.Machine(default_run / "baseline" / "bzImage", default_run / "initramfs.cpio", 1, 512,
                   2, "kvm", "kpv.test=none")
    with open(tmp_path / "console.log", "wb") as log:
        b = vm.boot_or_fallback(m, log, 120, 60)
    assert b.done, b.problem
    if vm.probe_accel("auto")[0] == "kvm":
        assert b.accel == "kvm" and not b.fallback
    else:
        assert b.accel == "tcg" and "rebooted under TCG" in b.fallback


def test_no_qemu_left_anywhere():
    # Runs last in this module: no guest kpv started (each has kpv.test= on its
    # command line) may outlive it.
    time.sleep(1)
    out = subprocess.run(["pgrep", "-af", "kpv[.]test="], capture_output=True, text=True)
    assert out.stdout.strip() == "", out.stdout
