"""endings: boots that never printed init's `done`, on consoles kpv captured.

v1-6.1-two-boots-stack-rcu-stall is a cell's console.log whose second boot
kpv killed in the stack test; v3-6.1-two-boots-clean has two clean boots,
each ended by init's `reboot -f` after `done`. Lines are removed from the
real logs to stand for an init that died, never added.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import analysis, endings, sanitize

DATA = Path(__file__).parent / "data" / "console"


def _log(name: str) -> str:
    return sanitize.clean((DATA / f"{name}.log").read_bytes())


def _endings(text: str, **how) -> list:
    return [r for r in analysis.analyse(text, **how).reports
            if r.type in (endings.REBOOT, endings.STOPPED)]


def test_killed_boot_is_a_stopped_console_of_the_running_test() -> None:
    text = _log("v1-6.1-two-boots-stack-rcu-stall")
    (stopped,) = _endings(text)
    assert (stopped.type, stopped.title, stopped.test) == ("console-stopped", "console stopped",
                                                           "stack")
    lines = text.split("\n")
    assert lines[stopped.first_line].endswith("</TASK>")  # the last line the guest printed
    assert stopped.first_line == len(lines) - 2  # the log ends with a newline
    assert stopped.text.startswith("console stopped: the log ends before init finished")
    assert stopped.text.endswith(lines[stopped.first_line])


@pytest.mark.parametrize(("exited", "type_", "says"), [
    (True, "unexpected-reboot", "QEMU exited (the guest reset)"),
    (False, "console-stopped", "the guest was stopped (killed by kpv)"),
])
def test_what_the_host_saw_decides(exited: bool, type_: str, says: str) -> None:
    text = _log("v1-6.1-two-boots-stack-rcu-stall")
    (got,) = _endings(text, qemu_exited=exited, note="test timed out after 90 s")
    assert got.type == type_ and got.test == "stack"
    assert got.text.split("\n")[0].endswith(f"{says} before init finished "
                                            "(test timed out after 90 s)")


def test_clean_boots_have_no_ending_report() -> None:
    assert _endings(_log("v3-6.1-two-boots-clean")) == []
    assert _endings(_log("v3-6.1-two-boots-clean"), qemu_exited=True) == []


def test_each_boot_of_a_cell_log_is_judged_on_its_own() -> None:
    lines = _log("v3-6.1-two-boots-clean").split("\n")
    first_done = lines.index("@@kpv done")
    # The first boot's init died before `done` and `end`: that boot, not the second.
    cut = lines[:first_done - 1] + lines[first_done + 1:]
    (got,) = _endings("\n".join(cut))
    assert got.test == "fork" and got.first_line < cut.index("@@kpv start stack debug_locks=1")
    # The restart message of the first boot says it went down on its own.
    assert got.type == "unexpected-reboot"
    assert got.text.split("\n")[0] == ("unexpected kernel reboot: the kernel restarted before "
                                       "init finished")


def test_cut_inside_a_test_stops_the_console_and_before_init_says_nothing() -> None:
    lines = _log("v3-6.1-two-boots-clean").split("\n")
    start = lines.index("@@kpv start stack debug_locks=1")
    (got,) = _endings("\n".join(lines[:start + 1]))
    assert (got.type, got.test) == ("console-stopped", "stack")
    # Cut before the second boot's init: no boot marker, so no claim about it.
    boot = max(n for n, t in enumerate(lines) if t.startswith("@@kpv boot"))
    assert _endings("\n".join(lines[:boot])) == []


def test_excerpt_without_boot_marker_says_nothing() -> None:
    assert _endings(_log("old-2.6.36-circular-and-warn.excerpt")) == []
    assert _endings("") == []


def test_only_the_kernel_banner_starts_a_boot() -> None:
    lines = _log("v3-6.1-two-boots-clean").split("\n")
    start = lines.index("@@kpv start stack debug_locks=1")
    banner = lines[0][lines[0].index("Linux version"):]
    # A test that prints /proc/version (after a timestamp-only line) and then finishes:
    # the same boot, which printed `done`.
    inside = [*lines[:start + 1], "[    5.100000] ", banner, *lines[start + 1:]]
    assert _endings("\n".join(inside)) == []
    # Cut right after it: still the stack test's boot that stopped.
    (got,) = _endings("\n".join(inside[:start + 3]))
    assert (got.type, got.test) == ("console-stopped", "stack")
    # Firmware text on the banner's line (its escapes cleaned away) does not hide it.
    second = lines.index(lines[0], 1)
    lines[second] = "Booting from ROM.." + lines[second]
    cut = lines.index("@@kpv done", second)  # the second boot's init dies before `done`
    assert [r.test for r in _endings("\n".join(lines[:cut]))] == ["stack"]
