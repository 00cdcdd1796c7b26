"""symbols: file:line for report frames, on small real ELF files compiled here.

addr2line reads any ELF with DWARF line tables, so a few functions built
with `gcc -g` stand in for vmlinux: offsets come from the binary itself
(nm, objdump), never from guesses.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline import symbols

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("gcc", "nm", "addr2line", "objdump")),
    reason="needs gcc and binutils")

# -O0 keeps each statement's code apart: the instruction after `leaf(x);`
# (the return address) already belongs to the next line.
MAIN_C = """\
__attribute__((noinline)) int leaf(int x)
{
	return x * 3;
}

static inline __attribute__((always_inline)) int twice(int x)
{
	return leaf(x) + leaf(x + 1);
}

int other(int x);

__attribute__((noinline)) int caller(int x)
{
	leaf(x);
	other(x);
	return twice(x);
}

int main(int argc, char **argv)
{
	return caller(argc);
}
"""
LEAF_OPEN, IN_TWICE, CALL_LEAF, CALL_OTHER, CALL_TWICE = 2, 8, 15, 16, 17

# A second file with a static function of the same name and another size.
OTHER_C = """\
static __attribute__((noinline)) int helper(int x)
{
	return x + 1;
}

int other(int x)
{
	return helper(x);
}
"""
HELPER_C = """\
static __attribute__((noinline)) int helper(int x)
{
	int y = x * x;

	return y * y + x;
}

int helper_user(int x)
{
	return helper(x);
}
"""

# An assembly label, like entry_SYSCALL_64_after_hwframe: nm gives it no size.
LABEL_S = """\
\t.text
\t.globl asm_label
asm_label:
\tnop
\tnop
\tret
"""
LABEL_SECOND_NOP = 5


@pytest.fixture(scope="module")
def elf(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("elf")
    sources = {"main.c": MAIN_C, "other.c": OTHER_C, "helper.c": HELPER_C, "label.S": LABEL_S}
    for name, text in sources.items():
        (d / name).write_text(text)
    subprocess.run(["gcc", "-g", "-O0", "-o", "prog", *sources], cwd=d, check=True)
    return d / "prog"


def _symbols(elf: Path) -> dict[str, list[tuple[int, int]]]:
    out = subprocess.run(["nm", "-S", "--defined-only", str(elf)], capture_output=True,
                         text=True, check=True).stdout
    table: dict[str, list[tuple[int, int]]] = {}
    for row in out.splitlines():
        parts = row.split()
        if len(parts) == 4:
            table.setdefault(parts[3], []).append((int(parts[0], 16), int(parts[1], 16)))
    return table


def _frame(elf: Path, func: str, offset: int) -> str:
    (_, size), *_ = _symbols(elf)[func]
    return f"{func}+{offset:#x}/{size:#x}"


def _after_calls(elf: Path, func: str, callee: str) -> list[int]:
    """Offsets in func of the instructions after each call to callee: the return
    addresses a stack trace would print."""
    start, _ = _symbols(elf)[func][0]
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(elf)], capture_output=True,
                         text=True, check=True).stdout
    body = out.split(f"<{func}>:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    addrs = [int(line.split(":")[0], 16) for line in body if re.match(r"\s+[0-9a-f]+:", line)]
    return [addrs[i + 1] - start for i, line in enumerate(body[:-1])
            if re.search(rf"call\s+[0-9a-f]+ <{callee}>", line)]


def _resolve(elf: Path, text: str) -> symbols.Symbols:
    # Not a kernel tree: name the sources' folder to get paths relative to it.
    return symbols.resolve(elf, symbols.frames_in(text), src=str(elf.parent))


def test_return_addresses_name_the_call(elf: Path) -> None:
    ret = _after_calls(elf, "caller", "leaf")[0]
    frame = _frame(elf, "caller", ret)
    found = _resolve(elf, f"Call Trace:\n {frame}\n")
    # The return address itself is on the next line (other(x);): kpv looks one byte back.
    assert found.lines == {frame: f"main.c:{CALL_LEAF}"}
    assert found.reason == ""


def test_annotate_puts_the_place_after_each_resolved_frame(elf: Path) -> None:
    frame = _frame(elf, "caller", _after_calls(elf, "caller", "leaf")[0])
    text = f"Call Trace:\n <TASK>\n {frame}\n unknown_fn+0x1/0x2\n mod_fn+0x1/0x2 [kpv]\n </TASK>"
    assert symbols.annotate(text, _resolve(elf, text)).split("\n") == [
        "Call Trace:", " <TASK>", f" {frame} (main.c:{CALL_LEAF})", " unknown_fn+0x1/0x2",
        " mod_fn+0x1/0x2 [kpv]", " </TASK>"]
    assert symbols.annotate(text, symbols.Symbols()) == text


def test_rip_is_looked_up_as_printed(elf: Path) -> None:
    # The faulting instruction itself: no step back to the call before it.
    frame = _frame(elf, "caller", _after_calls(elf, "caller", "leaf")[0])
    text = f"RIP: 0010:{frame}\nCall Trace:\n"
    assert _resolve(elf, text).lines == {frame: f"main.c:{CALL_OTHER}"}
    start = _frame(elf, "leaf", 0)
    assert _resolve(elf, f"RIP: 0010:{start}\n").lines == {start: f"main.c:{LEAF_OPEN}"}


def test_inlined_calls_are_listed_innermost_first(elf: Path) -> None:
    ret = _after_calls(elf, "caller", "leaf")[1]  # the first call inside twice()
    frame = _frame(elf, "caller", ret)
    found = _resolve(elf, f" {frame}\n")
    # The frame's own line is where caller() calls into the inlined code.
    assert found.lines[frame] == f"main.c:{CALL_TWICE}"
    assert found.inlined[frame] == (f"twice main.c:{IN_TWICE}",)
    assert symbols.annotate(f" {frame}\n", found) == \
        f" {frame} (main.c:{CALL_TWICE}; inlined: twice main.c:{IN_TWICE})\n"


def test_static_functions_sharing_a_name_are_told_apart_by_size(elf: Path) -> None:
    ours = _symbols(elf)["helper"]
    assert len(ours) == 2 and ours[0][1] != ours[1][1]
    frames = [f"helper+0x1/{size:#x}" for _, size in ours]
    found = _resolve(elf, "\n".join(f" {f}" for f in frames))
    files = {f: found.lines[f].partition(":")[0] for f in frames}
    assert sorted(files.values()) == ["helper.c", "other.c"]


def test_labels_without_a_size(elf: Path) -> None:
    assert _resolve(elf, "RIP: 0010:asm_label+0x1/0x40\n").lines == \
        {"asm_label+0x1/0x40": f"label.S:{LABEL_SECOND_NOP}"}


def test_one_batched_call_for_many_frames(elf: Path, monkeypatch) -> None:
    calls = []
    real = subprocess.run

    def spy(cmd, *args, **kwargs):
        calls.append(cmd[0])
        return real(cmd, *args, **kwargs)

    text = "\n".join(f" {_frame(elf, f, 1)}" for f in ("leaf", "caller", "main", "other"))
    monkeypatch.setattr(symbols.subprocess, "run", spy)
    found = _resolve(elf, text)
    assert len(found.lines) == 4
    assert calls == ["nm", "addr2line"]


def test_module_and_unknown_frames(elf: Path) -> None:
    known = _frame(elf, "leaf", 1)
    text = f" {known}\n ext4_map_blocks+0x1/0x10 [ext4]\n no_such_func+0x1/0x2\n"
    assert [f.text for f in symbols.frames_in(text)] == [known, "no_such_func+0x1/0x2"]
    found = _resolve(elf, text)
    assert set(found.lines) == {known}
    assert "no_such_func+0x1/0x2" in found.reason


def test_frames_as_the_kernel_prints_them() -> None:
    text = (
        "[   12.3] WARNING: CPU: 0 PID: 1 at kernel/kpv_fault.c:62 kpv_warn+0x5/0x10\n"
        "[   12.3] RIP: 0010:kpv_warn+0x5/0x10\n"
        "[   12.3]  <TASK>\n"
        "[   12.3]  ? kpv_warn+0x5/0x10\n"
        "[   12.3]  kpv_fault_write+0x6b/0xa0\n"
        "[   12.3]  [<ffffffff81234567>] vfs_write+0xc4/0x3c0\n"
        "[   12.3]  #0: ffff8880 (&mm->mmap_lock){++++}-{3:3}, at: do_exit+0x1a/0x2b0\n")
    frames = symbols.frames_in(text)
    assert [(f.text, f.exact) for f in frames] == [
        ("kpv_warn+0x5/0x10", True), ("kpv_fault_write+0x6b/0xa0", False),
        ("vfs_write+0xc4/0x3c0", False), ("do_exit+0x1a/0x2b0", False)]


def test_without_debug_info_says_why(tmp_path: Path) -> None:
    (tmp_path / "main.c").write_text("int main(void) { return 0; }\n")
    subprocess.run(["gcc", "-g0", "-o", "prog", "main.c"], cwd=tmp_path, check=True)
    found = symbols.resolve(tmp_path / "prog", symbols.frames_in(" main+0x1/0x8\n"))
    assert found.lines == {}
    assert "CONFIG_DEBUG_INFO" in found.reason


@pytest.mark.parametrize("path", [None, Path("/nonexistent/vmlinux")])
def test_no_vmlinux_says_why(path: Path | None) -> None:
    found = symbols.resolve(path, symbols.frames_in(" leaf+0x1/0x8\n"))
    assert found.lines == {} and found.reason


def test_not_an_elf_file(tmp_path: Path) -> None:
    for data in (b"", b"hello", b"\x7fELF" + b"\xff" * 60):
        (tmp_path / "vmlinux").write_bytes(data)
        found = symbols.resolve(tmp_path / "vmlinux", symbols.frames_in(" f+0x1/0x8\n"))
        assert found.lines == {} and "vmlinux" in found.reason


def test_missing_binutils_says_so(elf: Path, monkeypatch) -> None:
    monkeypatch.setattr(symbols.shutil, "which", lambda tool: None)
    found = _resolve(elf, f" {_frame(elf, 'leaf', 1)}\n")
    assert found.lines == {} and "binutils" in found.reason


def test_no_frames_is_nothing_to_do() -> None:
    assert symbols.resolve(None, []) == symbols.Symbols()


@pytest.mark.parametrize(("places", "root"), [
    # An O= build: sources under the worktree, generated headers under the build dir.
    (["/c/kpv/worktrees/ab/mm/mmap.c:10", "/c/kpv/worktrees/ab/include/linux/mm.h:3",
      "/c/kpv/builds/x/build/./include/generated/autoconf.h:1"], ["/c/kpv/worktrees/ab"]),
    # C files with tree-relative names under the build dir, assembler files under the tree.
    (["/c/b/x/build/kernel/fork.c:1", "/c/b/x/build/mm/mmap.c:2", "/c/w/ab/arch/x86/entry.S:3"],
     ["/c/b/x/build", "/c/w/ab"]),
    # A top-level name inside the tree's own path does not cut it short.
    (["/home/kernel/linux/mm/rmap.c:1", "/home/kernel/linux/kernel/fork.c:2"],
     ["/home/kernel/linux"]),
    (["mm/mmap.c:1"], []),
    # A tree at / is no tree: nothing to cut.
    (["/mm/mmap.c:1"], []),
])
def test_source_root(places: list[str], root: list[str]) -> None:
    assert symbols._roots(places) == root


def test_relative_paths() -> None:
    assert symbols._relative("/t/mm/mmap.c:3", ["/t"]) == "mm/mmap.c:3"
    assert symbols._relative("/b/./include/generated/a.h:1", ["/t"]) == "include/generated/a.h:1"
    assert symbols._relative("/w/arch/x86/a.S:1", ["/b", "/w"]) == "arch/x86/a.S:1"
    assert symbols._place("??:0") == symbols._place("??:?") == ""
    assert symbols._place("/t/mm/mmap.c:12 (discriminator 3)") == "/t/mm/mmap.c:12"


def test_a_trace_inside_one_subtree_keeps_the_tree_root(tmp_path: Path) -> None:
    # Every frame under arch/x86/: the tree's root, not arch/x86, is what
    # the paths lose, because start_kernel's init/main.c joins the vote.
    tree = tmp_path / "linux"
    sources = {"init/main.c": "void start_kernel(void) {}\nint main(void) { return 0; }\n",
               "arch/x86/kernel/traps.c": "int exc_trap(int x)\n{\n\treturn x + 1;\n}\n"}
    for name, text in sources.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
    # Absolute source names, as an O= build records them.
    subprocess.run(["gcc", "-g", "-O0", "-o", str(tmp_path / "vmlinux"),
                    *(str(tree / n) for n in sources)], check=True)
    frame = _frame(tmp_path / "vmlinux", "exc_trap", 4)
    found = symbols.resolve(tmp_path / "vmlinux", symbols.frames_in(f" {frame}\n"))
    assert found.lines[frame].rpartition(":")[0] == "arch/x86/kernel/traps.c"
