"""Boot a kernel in QEMU, read its serial console, and always clean up.

One boot runs one test (named on the kernel command line); the raw console
bytes go to the caller's log file as they arrive, so a crash, a timeout or a
Ctrl-C still leaves the whole console on disk. QEMU is killed and reaped on
every way out of boot().
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import pexpect

from pipeline.console import BOOT_BANNER
from pipeline.errors import InfraError
from pipeline.markers import PRINTK_STAMP

QEMU = "qemu-system-x86_64"


def _marker_re(marker: bytes) -> re.Pattern[bytes]:
    # The serial driver sends init's output a FIFO-load at a time and printk
    # may write whole kernel lines between two loads: let them in anywhere.
    kernel_lines = rb"(?:%s[^\n]*\n)*" % PRINTK_STAMP.encode()
    return re.compile(kernel_lines.join(
        re.escape(marker[i:i + 1]) for i in range(len(marker))))


_BOOTED_RE = _marker_re(b"@@kpv boot")
_DONE_RE = _marker_re(b"@@kpv done")
# Ways a KVM guest says the host cannot really run it (nested virt without vmx).
_KVM_BROKEN = (b"KVM internal error", b"emulation failure")
# Console bytes searched again with each new chunk: a needle cut across two
# chunks, with kernel lines cut into it, is found unless those run longer.
_WINDOW = 16384
# A KVM guest that has printed nothing by then is hung at kernel entry: even
# under TCG the kernel prints its banner within a couple of seconds.
KVM_WATCHDOG = 20.0


@dataclass(frozen=True)
class Machine:
    kernel: Path
    initrd: Path
    vcpus: int
    memory_mb: int
    numa_nodes: int
    accel: str  # kvm or tcg, already probed
    append: str  # kernel command line beyond the console settings


@dataclass(frozen=True)
class Boot:
    accel: str  # the accelerator the guest ran under
    command: str  # the QEMU command line, shell-quoted
    log: bytes  # this boot's raw console bytes
    booted: bool  # init printed its first marker
    boot_time: float  # seconds from QEMU start to init's first marker (0 if never)
    done: bool  # init printed its last marker
    exit_status: int | None  # QEMU's, None when it did not exit on its own
    killed: bool  # kpv stopped QEMU (deadline, silence, KVM failure, Ctrl-C)
    problem: str  # "" when the guest finished; else what went wrong, one line
    fallback: str = ""  # why KVM was given up for TCG on this boot, if it was

    @property
    def qemu_exited(self) -> bool | None:
        """True if QEMU exited on its own (with -no-reboot: the guest reset), False if kpv
        killed it, None if a signal from elsewhere did (the host's OOM killer, say)."""
        if self.killed:
            return False
        return True if self.exit_status is not None else None


def boot_or_fallback(m: Machine, log: BinaryIO, boot_timeout: float,
                     run_timeout: float) -> Boot:
    """boot(), and under KVM a watchdog: a KVM guest that failed for KVM's sake (silent,
    an emulation failure, QEMU refusing /dev/kvm) is booted again under TCG."""
    if m.accel != "kvm":
        return boot(m, log, boot_timeout, run_timeout)
    b = boot(m, log, boot_timeout, run_timeout, silence_timeout=KVM_WATCHDOG)
    if b.booted or not kvm_at_fault(b.log):
        return b  # a kernel that panics or hangs on its way to init is the kernel's fault
    why = b.problem or "KVM guest did not start"
    tcg = boot(replace(m, accel="tcg"), log, boot_timeout, run_timeout)
    return replace(tcg, fallback=f"{why}: rebooted under TCG")


def kvm_at_fault(log: bytes) -> bool:
    """Whether a KVM boot that never reached init failed because of KVM: the kernel never
    printed its banner (a guest hung at entry, QEMU refusing /dev/kvm), or KVM said so."""
    return BOOT_BANNER.encode() not in log or any(s in log for s in _KVM_BROKEN)


def qemu_binary() -> str:
    path = shutil.which(QEMU)
    if path is None:
        raise InfraError(f"{QEMU} not found: install the qemu-system-x86 package")
    return path


def probe_accel(requested: str) -> tuple[str, str]:
    """(accelerator, why): KVM only when /dev/kvm opens read-write and the CPU has vmx/svm.

    /dev/kvm can exist and accept KVM_CREATE_VM while guests hang at kernel
    entry (nested virtualisation without vmx), so the CPU flags are checked too.
    """
    if requested == "tcg":
        return "tcg", "TCG requested"
    problem = _kvm_problem()
    if problem is None:
        return "kvm", "KVM usable"
    if requested == "kvm":
        raise InfraError(f"--accel kvm: KVM is not usable here: {problem}")
    return "tcg", f"KVM not usable ({problem}): guests run under TCG, timings are not KVM timings"


def _kvm_problem() -> str | None:
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
        os.close(fd)
    except OSError as e:
        return f"/dev/kvm: {e.strerror}"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "/proc/cpuinfo unreadable"
    if " vmx" not in flags and " svm" not in flags:
        return "no vmx or svm in the CPU flags (nested virtualisation?)"
    return None


def command(m: Machine, qemu: str = QEMU) -> list[str]:
    """The QEMU command line: m.numa_nodes nodes sharing memory and vCPUs evenly."""
    cmd = [qemu, "-accel", m.accel]
    if m.accel == "kvm":
        cmd += ["-cpu", "host"]
    # One socket per node (or per vCPU when they do not divide evenly): QEMU's
    # default puts every vCPU in one socket sharing a last-level cache, and a
    # cache shared across NUMA nodes makes the kernel WARN in topology_sane().
    sockets = m.numa_nodes if m.vcpus % m.numa_nodes == 0 else m.vcpus
    smp = f"{m.vcpus},sockets={sockets},cores={m.vcpus // sockets},threads=1"
    cmd += ["-m", f"{m.memory_mb}M", "-smp", smp]
    per_node = m.memory_mb // m.numa_nodes
    for node in range(m.numa_nodes):
        cmd += ["-object", f"memory-backend-ram,id=mem{node},size={per_node}M"]
        spec = f"node,nodeid={node},memdev=mem{node}"
        cpus = [c for c in range(m.vcpus) if c * m.numa_nodes // m.vcpus == node]
        if cpus:  # with fewer vCPUs than nodes, some nodes hold only memory
            spec += f",cpus={cpus[0]}-{cpus[-1]}"
        cmd += ["-numa", spec]
    cmd += [
        "-kernel", str(m.kernel), "-initrd", str(m.initrd),
        "-append", f"console=ttyS0 panic=-1 {m.append}".strip(),
        "-display", "none", "-serial", "stdio", "-monitor", "none",
        "-no-reboot", "-nodefaults",
    ]
    return cmd


class ConsoleWatch:
    """A guest's console bytes as they arrive, and what init has said so far."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.booted = False  # init printed its first marker
        self.done = False  # init printed its last marker
        self.kvm_broken = False  # KVM said it cannot run this guest

    def feed(self, chunk: bytes) -> None:
        tail_from = max(0, len(self.data) - _WINDOW)
        self.data += chunk
        window = bytes(self.data[tail_from:])
        self.booted = self.booted or _BOOTED_RE.search(window) is not None
        self.done = self.done or _DONE_RE.search(window) is not None
        self.kvm_broken = self.kvm_broken or any(s in window for s in _KVM_BROKEN)


def boot(m: Machine, log: BinaryIO, boot_timeout: float, run_timeout: float,
         silence_timeout: float | None = None) -> Boot:
    """Run the guest until QEMU exits (init reboots after `done`) or a deadline passes.

    boot_timeout bounds QEMU start to init's first marker; run_timeout bounds
    the rest; silence_timeout, when given, bounds QEMU start to the first
    console byte. Every console byte is written to `log` as it arrives.
    """
    cmd = command(m, qemu_binary())
    start = time.monotonic()
    child = pexpect.spawn(cmd[0], cmd[1:], timeout=None, echo=False)
    console = ConsoleWatch()
    data = console.data
    boot_time = 0.0
    problem = ""
    killed = True  # until QEMU is seen to exit on its own
    try:
        deadline = start + boot_timeout
        while True:
            if silence_timeout and not data and time.monotonic() - start > silence_timeout:
                problem = f"no console output under {m.accel} within {silence_timeout:.0f} s"
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                what = "test" if console.booted else "boot"
                limit = run_timeout if console.booted else boot_timeout
                problem = f"{what} timed out after {limit:.0f} s"
                if not data:
                    problem += " with no console output"
                break
            try:
                chunk = child.read_nonblocking(65536, timeout=min(remaining, 1.0))
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                killed = False
                break
            log.write(chunk)
            log.flush()
            booted = console.booted
            console.feed(chunk)
            if console.booted and not booted:
                deadline = time.monotonic() + run_timeout
                boot_time = time.monotonic() - start
            if m.accel == "kvm" and console.kvm_broken:
                problem = "KVM internal error: the host cannot run this guest under KVM"
                break
    finally:
        child.close(force=True)
    # QEMU exits with status 0 on the SIGHUP close() sends: only an exit seen
    # before kpv stopped it is QEMU's own.
    status = None if killed or child.signalstatus is not None else child.exitstatus
    if not problem and not console.done:
        how = (f"QEMU exited (status {status})" if status is not None
               else f"QEMU was killed by signal {child.signalstatus}, not sent by kpv,")
        problem = f"{how} before {'the guest finished' if console.booted else 'init started'}"
    return Boot(m.accel, shlex.join(cmd), bytes(data), console.booted, boot_time, console.done,
                status, killed, problem)
