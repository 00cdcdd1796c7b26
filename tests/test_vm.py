"""QEMU command lines and the accelerator probe (no guest booted here)."""

from pathlib import Path

import pytest

from pipeline import vm
from pipeline.errors import InfraError

DATA = Path(__file__).parent / "data" / "console"


def machine(vcpus: int, nodes: int = 2) -> vm.Machine:
    return vm.Machine(Path("bz"), Path("rd"), vcpus, 1024, nodes, "tcg", "kpv.test=fork")


def arg_after(cmd: list[str], flag: str) -> list[str]:
    return [cmd[i + 1] for i, a in enumerate(cmd) if a == flag]


def test_numa_nodes_split_memory_and_vcpus_without_sharing_a_socket():
    cmd = vm.command(machine(4))
    assert arg_after(cmd, "-smp") == ["4,sockets=2,cores=2,threads=1"]
    assert arg_after(cmd, "-numa") == ["node,nodeid=0,memdev=mem0,cpus=0-1",
                                       "node,nodeid=1,memdev=mem1,cpus=2-3"]
    assert arg_after(cmd, "-object") == ["memory-backend-ram,id=mem0,size=512M",
                                         "memory-backend-ram,id=mem1,size=512M"]
    assert "-no-reboot" in cmd
    assert arg_after(cmd, "-append") == ["console=ttyS0 panic=-1 kpv.test=fork"]


def test_one_vcpu_leaves_a_memory_only_node():
    cmd = vm.command(machine(1))
    assert arg_after(cmd, "-smp") == ["1,sockets=1,cores=1,threads=1"]
    assert arg_after(cmd, "-numa") == ["node,nodeid=0,memdev=mem0,cpus=0-0",
                                       "node,nodeid=1,memdev=mem1"]


def test_uneven_vcpus_get_a_socket_each():
    assert arg_after(vm.command(machine(3)), "-smp") == ["3,sockets=3,cores=1,threads=1"]


def test_tcg_requested_and_probe_reason():
    assert vm.probe_accel("tcg") == ("tcg", "TCG requested")
    accel, why = vm.probe_accel("auto")
    if accel == "kvm":
        assert why == "KVM usable" and vm.probe_accel("kvm") == ("kvm", "KVM usable")
    else:
        # Said in the run's properties: timings under TCG are not KVM's.
        assert why.startswith("KVM not usable (") and why.endswith("not KVM timings")
        with pytest.raises(InfraError, match="--accel kvm: KVM is not usable here: "):
            vm.probe_accel("kvm")


def test_only_a_kvm_failure_sends_a_boot_to_tcg():
    # A console kpv captured: the kernel printed its banner, then panicked. Its fault.
    panicked = (DATA / "faults-6.1-sanitizers-eighteen-boots.log").read_bytes()
    assert b"Kernel panic" in panicked and not vm.kvm_at_fault(panicked)
    assert vm.kvm_at_fault(b"")  # the watchdog's case: silent at kernel entry
    assert vm.kvm_at_fault(b"qemu-system-x86_64: failed to initialize kvm: Permission denied\r\n")
    assert vm.kvm_at_fault(panicked + b"KVM internal error. Suberror: 1\r\nemulation failure\r\n")


def watched(data: bytes, size: int) -> vm.ConsoleWatch:
    watch = vm.ConsoleWatch()
    for i in range(0, len(data), size):
        watch.feed(data[i:i + size])
    return watch


def test_init_markers_are_seen_when_a_kernel_line_cuts_them():
    # A console kpv captured at 4 vCPUs, where printk cut into a marker; the
    # same cut is made here in the boot and done markers, at every byte.
    real = (DATA / "baseline-6.1-five-boots-marker-cut.log").read_bytes()
    first = real[: real.index(b"@@kpv done") + len(b"@@kpv done\r\n")]
    kernel = b"[    2.268020][   T41] input: ImExPS/2 Generic Explorer Mouse\r\n"
    for marker in (b"@@kpv boot", b"@@kpv done"):
        for at in range(1, len(marker)):
            cut = first.replace(marker, marker[:at] + kernel + marker[at:])
            for size in (5, 4096):
                watch = watched(cut, size)
                assert (watch.booted, watch.done) == (True, True), (marker, at, size)
    assert bytes(watched(first, 13).data) == first
    early = watched(first[: first.index(b"@@kpv done")], 13)
    assert (early.booted, early.done) == (True, False)
    assert not watched(first[: first.index(b"@@kpv boot")], 13).booted
