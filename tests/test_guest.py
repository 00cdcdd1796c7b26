"""pipeline.guest and stress/: build the programs for real, run them on the host,
render the init, build and list an initramfs. The boot test is in the slow tier."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import guest, markers, sanitize, vm
from pipeline.errors import InfraError, UserError

ROOT = Path(__file__).resolve().parent.parent

STRESS_SRC = Path(__file__).resolve().parent.parent / "stress"
BUSYBOX = Path("/bin/busybox")


@pytest.fixture(scope="module")
def stress_bins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return guest.build_stress(STRESS_SRC, tmp_path_factory.mktemp("stress"))


def run_native(binary: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)


def result_of(stdout: str) -> markers.Marker:
    found = markers.parse(stdout)
    assert [m.kind for m in found] == ["result"], stdout
    return found[0]


def test_builds_exactly_the_known_programs(stress_bins: dict[str, Path]) -> None:
    assert sorted(stress_bins) == sorted(guest.STRESS_PROGRAMS)
    for binary in stress_bins.values():
        assert os.access(binary, os.X_OK)
    assert not (STRESS_SRC / "fork").exists(), "OUT= must keep the source tree clean"


@pytest.mark.parametrize(
    "name, extra_keys",
    [
        ("fork", ["fork_ops", "verify", "cow_ops", "max_procs"]),
        ("stack", ["descent_ops", "exec_ops", "munmap_ops", "expansions", "max_depth_kb"]),
    ],
)
def test_program_runs_one_second_and_reports(
    stress_bins: dict[str, Path], name: str, extra_keys: list[str]
) -> None:
    args = list(guest.stress_test(name, duration=1, seed=3).argv[1:])
    done = run_native(stress_bins[name], args)
    assert done.returncode == 0, done.stderr
    result = result_of(done.stdout)
    f = result.fields
    assert result.test == name
    assert int(f["check_failures"]) == 0 and int(f["errors"]) == 0
    assert 1000 <= int(f["elapsed_ms"]) < 10000
    assert set(extra_keys) <= set(f)
    ops = int(f["ops"])
    assert ops > 0
    assert ops == sum(int(v) for k, v in f.items() if k.endswith("_ops"))
    assert float(f["ops_per_s"]) == pytest.approx(ops * 1000 / int(f["elapsed_ms"]), rel=0.01)


def test_fork_tree_overlaps_and_stack_grows_by_megabytes(stress_bins: dict[str, Path]) -> None:
    fork = result_of(run_native(stress_bins["fork"], ["--duration", "1"]).stdout).fields
    assert int(fork["max_procs"]) >= 9  # the root and all 8 children of one node at least
    stack = result_of(run_native(stress_bins["stack"], ["--duration", "1"]).stdout).fields
    assert int(stack["max_depth_kb"]) >= 4 * 1024
    assert int(stack["expansions"]) >= int(stack["descent_ops"]) >= 1


def test_corrupted_page_fails_the_check_with_address(stress_bins: dict[str, Path]) -> None:
    done = run_native(stress_bins["fork"], ["--duration", "1", "--corrupt", "1"])
    assert done.returncode == 1
    assert int(result_of(done.stdout).fields["check_failures"]) > 0
    assert "check failed at 0x" in done.stderr and "expected 0x" in done.stderr


def test_unknown_option_is_a_usage_error(stress_bins: dict[str, Path]) -> None:
    done = run_native(stress_bins["stack"], ["--no-such-option", "1"])
    assert done.returncode == 2
    assert "usage:" in done.stderr and done.stdout == ""


def test_compiler_error_becomes_infra_error(tmp_path: Path) -> None:
    src = shutil.copytree(
        STRESS_SRC, tmp_path / "src", ignore=shutil.ignore_patterns("fork", "stack")
    )
    (src / "broken.c").write_text("int main(void) { return undeclared; }\n")
    with pytest.raises(InfraError, match=r"broken\.c:1:.*undeclared"):
        guest.build_stress(src, tmp_path / "out")


def test_missing_make_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(InfraError, match="make not found"):
        guest.build_stress(STRESS_SRC, tmp_path / "out")


def test_stress_test_rejects_unknown_names() -> None:
    with pytest.raises(UserError, match="known: fork, stack, mmap, migrate, race, idle"):
        guest.stress_test("mremap", 10, 1)


@pytest.mark.parametrize("name", ["", "all", "two words", "a=b", "x;reboot"])
def test_guest_test_rejects_unsafe_names(name: str) -> None:
    with pytest.raises(UserError):
        guest.GuestTest(name, ("/bin/true",), 10)


# An argv that breaks naive quoting: spaces, quotes, $, backslash, glob, newline.
NASTY = guest.GuestTest("nasty", ("/bin/echo", "it's", '"$HOME"', "a b", "\\n", "*", "x\ny"), 7)
TESTS = [guest.stress_test("fork", 30, 1), guest.stress_test("stack", 30, 1), NASTY]


@pytest.mark.parametrize("shell", [["sh"], [str(BUSYBOX), "sh"]])
def test_init_has_valid_syntax(shell: list[str], tmp_path: Path) -> None:
    init = tmp_path / "init"
    init.write_text(guest.render_init(TESTS))
    done = subprocess.run([*shell, "-n", str(init)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_init_passes_argv_through_unchanged() -> None:
    """Run each test's case arm with run_test stubbed to print its arguments."""
    script = guest.render_init(TESTS)
    for test in TESTS:
        line = next(
            ln for ln in script.splitlines() if ln.strip().startswith(f"run_test {test.name}")
        )
        # The argv may hold a newline, so the arm can span lines: take up to ";;".
        start = script.index(line)
        arm = script[start : script.index(";;", start)]
        stub = "run_test() { printf '%s\\0' \"$@\"; }\n" + arm
        out = subprocess.run(["sh", "-c", stub], capture_output=True, text=True, check=True).stdout
        assert out.split("\0")[:-1] == [test.name, str(test.timeout), str(test.repeats),
                                         *test.argv]


def test_init_reads_the_test_and_prints_the_markers() -> None:
    script = guest.render_init(TESTS)
    assert script.startswith("#!/bin/busybox sh\n")
    for needle in [
        "/proc/cmdline",
        "kpv.test=",
        "@@kpv boot",
        "@@kpv start",
        "@@kpv end",
        "status=127",
        "@@kpv done",
        "reboot -f",
        "trap finish EXIT",
        "timeout",
    ]:
        assert needle in script
    assert "set -e" not in [ln.strip() for ln in script.splitlines()]
    assert "for name in fork stack nasty; do" in script


def test_initramfs_holds_init_busybox_programs_and_console(
    stress_bins: dict[str, Path], tmp_path: Path
) -> None:
    tests = [guest.stress_test(n, 5, 1) for n in guest.STRESS_PROGRAMS]
    image = guest.build_initramfs(tests, tmp_path / "out/initramfs.cpio", stress_bins)
    data = image.read_bytes()
    listing = subprocess.run(["cpio", "-itv"], input=data, capture_output=True, check=True)
    lines = {ln.split()[-1]: ln for ln in listing.stdout.decode().splitlines()}
    assert set(lines) == {
        "bin",
        "bin/busybox",
        "dev",
        "dev/console",
        "init",
        "proc",
        "sys",
        "tmp",
        "stress",
        *(f"stress/{n}" for n in guest.STRESS_PROGRAMS),
    }
    assert lines["dev/console"].startswith("crw")
    for exe in ("init", "bin/busybox", *(f"stress/{n}" for n in guest.STRESS_PROGRAMS)):
        assert lines[exe].startswith("-rwxr-xr-x"), exe
    extracted = subprocess.run(
        ["cpio", "-i", "--to-stdout", "init"], input=data, capture_output=True, check=True
    ).stdout
    assert extracted.decode() == guest.render_init(tests)
    again = guest.build_initramfs(tests, tmp_path / "again.cpio", stress_bins)
    assert again.read_bytes() == data, "the image must be deterministic"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["initramfs.cpio"]


def test_dynamic_busybox_is_refused(stress_bins: dict[str, Path], tmp_path: Path) -> None:
    dynamic = Path(shutil.which("ls") or "/bin/ls")
    with pytest.raises(InfraError, match=r"not a static executable.*busybox-static"):
        guest.build_initramfs([], tmp_path / "i.cpio", stress_bins, busybox=dynamic)
    with pytest.raises(InfraError, match=r"not found.*busybox-static"):
        guest.build_initramfs([], tmp_path / "i.cpio", stress_bins, busybox=tmp_path / "none")


def test_program_not_built_is_refused(stress_bins: dict[str, Path], tmp_path: Path) -> None:
    only_fork = {"fork": stress_bins["fork"]}
    with pytest.raises(UserError, match="/stress/stack, which was not built"):
        guest.build_initramfs([guest.stress_test("stack", 5, 1)], tmp_path / "i.cpio", only_fork)
    with pytest.raises(UserError, match="repeat"):
        guest.build_initramfs([NASTY, NASTY], tmp_path / "i.cpio", stress_bins)


@pytest.mark.integration
def test_one_boot_runs_every_test_with_all(stress_bins: dict[str, Path], tmp_path: Path) -> None:
    """kpv.test=all on a real baseline kernel: every test's markers, in order, in one boot."""
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-m", "pipeline", "run", "--revisions", "baseline",
                        "--vcpus", "1", "--tests", "fork", "--duration", "3", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=5400)
    assert p.returncode == 0, p.stderr[-2000:]
    tests = [guest.stress_test(n, 3, 1) for n in guest.STRESS_PROGRAMS]
    image = guest.build_initramfs(tests, tmp_path / "initramfs.cpio", stress_bins)
    machine = vm.Machine(out / "baseline" / "bzImage", image, 2, 1024, 2, "tcg", "kpv.test=all")
    with open(tmp_path / "console.log", "wb") as console_log:
        b = vm.boot(machine, console_log, 120, 300)
    assert b.done, b.problem
    log = sanitize.clean(b.log)
    found = markers.parse(log)
    kinds = [(m.kind, m.test) for m in found]
    assert kinds == [("boot", None)] + [
        (kind, n) for n in guest.STRESS_PROGRAMS for kind in ("start", "result", "end")
    ] + [("done", None)], log
    for m in found:
        if m.kind == "end":
            assert m.fields["status"] == "0"
        if m.kind == "result":
            assert m.fields["check_failures"] == "0"


def test_initramfs_on_a_full_disk_leaves_nothing_behind(
    stress_bins: dict[str, Path], tmp_path: Path, tmpfs
) -> None:
    out = tmpfs(512)  # busybox alone is larger
    (out / "initramfs.cpio").write_bytes(b"an earlier image")
    tests = [guest.stress_test("fork", 5, 1)]
    with pytest.raises(OSError, match="No space left on device"):
        guest.build_initramfs(tests, out / "initramfs.cpio", stress_bins)
    assert [p.name for p in out.iterdir()] == ["initramfs.cpio"]
    assert (out / "initramfs.cpio").read_bytes() == b"an earlier image"
