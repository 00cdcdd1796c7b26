"""Make a kernel .config from fragments and check that every requested option stuck.

The base is a make target (tinyconfig, defconfig) or the user's own .config;
the fragments go on top. The config is generated in a scratch O= dir of its
own and copied into the build dir only when it differs, so an unchanged config
costs no rebuild.

A requested option that did not stick is one of two things. The tree has no
such option (removed or renamed since the fragment was written): a warning,
unless the job lists it as required. Or it exists and a dependency held it
off: a failure, naming the dependency as menuconfig shows it. The options the
guest cannot boot without are checked whatever the base and fragments.

Fragments may say which kernels a line is for, on the comment line before it:
`# kpv: since 6.4` or `# kpv: before 6.4` (VERSION.PATCHLEVEL of the tree's
Makefile). merge_config.sh reads that as a comment; kpv drops the next line on
other kernels, so one fragment serves trees from before and after a rename.
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pipeline import atomic
from pipeline import tree as kernel_tree
from pipeline.errors import InfraError, UserError
from pipeline.kernel import kconfigdeps
from pipeline.kernel.kconfigdeps import ARCH
from pipeline.sanitize import one_line

_NAME = r"CONFIG_[A-Za-z0-9_]+"
_SET_RE = re.compile(rf"^({_NAME})=(.*)$")
_UNSET_RE = re.compile(rf"^# ({_NAME}) is not set$")

# A fragment line that merge_config.sh, Kconfig and verify() all read as it was meant:
# blank, a comment, `# CONFIG_X is not set`, or CONFIG_X= y, m, n, a decimal or 0x hex
# number, or a quoted string (\" and \\ escaped inside). Kconfig skips anything else
# with a warning nobody reads (`CONFIG_X==`, prose, `CONFIG_N=8 `) or cuts it short
# (`CONFIG_X=y y` is y, `CONFIG_S="a"b` is "a"), and the kconfig case then fails for a
# typo in the job, as if the series were at fault. A comment that starts with an option
# (`# CONFIG_X is set`, `#CONFIG_X=y`) looks like a statement and does nothing.
_FRAGMENT_LINE_RE = re.compile(
    r"[ \t]*"
    r"|#(?!.?\s*CONFIG_).*"
    rf"|# {_NAME} is not set"
    rf'|{_NAME}=(?:[ymn]|-?[0-9]+|0[xX][0-9A-Fa-f]+|"(?:[^"\\]|\\.)*")')
_LINT_SHOWN = 3  # bad lines named per fragment; a binary file has thousands
_FOR_RE = re.compile(r"#\s*kpv:\s*(since|before)\s+(\d+)\.(\d+)\s*$")

# What the guest cannot do without, whatever the base config: kpv boots a
# bzImage with an initramfs under QEMU's pc machine, two NUMA nodes, ttyS0.
ESSENTIALS = {
    "CONFIG_SERIAL_8250_CONSOLE": "the serial console kpv reads (console=ttyS0)",
    "CONFIG_BLK_DEV_INITRD": "the initramfs",
    "CONFIG_DEVTMPFS": "/dev in the initramfs",
    "CONFIG_BINFMT_SCRIPT": "/init, a shell script",
    "CONFIG_BINFMT_ELF": "the stress programs",
    "CONFIG_PROC_FS": "/proc, which the tests read",
    "CONFIG_NUMA": "the two NUMA nodes page migration moves between",
    "CONFIG_ACPI": "QEMU's NUMA tables and power-off",
}


# Kconfig's parser names the file and line: "mm/Kconfig:1190: syntax error".
_PARSE_ERROR_RE = re.compile(r"^\S+:\d+: .+$", re.M)


@dataclass(frozen=True)
class ConfigResult:
    config: Path  # the generated .config (absent when a command failed)
    unmet: tuple[str, ...]  # "CONFIG_X: wanted y, got n (from lockdep.config): depends on ..."
    error: str = ""  # the command that failed and its first error: the tree's Kconfig is broken
    absent: tuple[str, ...] = ()  # warnings: requested options this tree does not have

    @property
    def ok(self) -> bool:
        return not self.unmet and not self.error


def read_config(text: str) -> dict[str, str]:
    """Options of a .config or fragment; `# X is not set` reads as "n"."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if m := _SET_RE.match(line):
            out[m.group(1)] = m.group(2)
        elif m := _UNSET_RE.match(line):
            out[m.group(1)] = "n"
    return out


def lint(fragment: Path) -> list[str]:
    """`FRAGMENT:LINE: not a kconfig line: ...` for each line that is not one (the first few)."""
    try:
        text = fragment.read_bytes().decode()
    except OSError as e:
        return [f"{fragment}: cannot read kconfig fragment: {e.strerror}"]
    except UnicodeDecodeError as e:
        return [f"{fragment}: not a kconfig fragment: not UTF-8 (byte offset {e.start})"]
    # Numbered as Kconfig numbers them: \n ends a line, a \r before it is dropped.
    bad = [f"{fragment}:{n}: not a kconfig line: {one_line(repr(line), 100)}"
           for n, line in enumerate(text.split("\n"), 1)
           if not _FRAGMENT_LINE_RE.fullmatch(line.removesuffix("\r"))]
    if len(bad) > _LINT_SHOWN:
        bad[_LINT_SHOWN:] = [f"{fragment}: {len(bad) - _LINT_SHOWN} more lines that are not "
                             "kconfig"]
    return bad


def requested(fragments: tuple[Path, ...]) -> dict[str, tuple[str, str]]:
    """Option -> (value, fragment name); later fragments win, as in merge_config.sh."""
    out: dict[str, tuple[str, str]] = {}
    for f in fragments:
        try:
            text = f.read_text()
        except OSError as e:
            raise UserError(f"{f}: cannot read kconfig fragment: {e}") from None
        for opt, val in read_config(text).items():
            out[opt] = (val, f.name)
    return out


def verify(want: dict[str, tuple[str, str]], final: dict[str, str]) -> tuple[str, ...]:
    """Every requested option whose final value differs, one line each."""
    unmet = []
    for opt, (val, frag) in want.items():
        got = final.get(opt, "n")
        if got != val:
            unmet.append(f"{opt}: wanted {val}, got {got} (from {frag})")
    return tuple(unmet)


def for_version(text: str, version: tuple[int, int]) -> str:
    """The fragment as it applies to this kernel: a line marked for others made a comment."""
    out, skip = [], False
    for line in text.splitlines(keepends=True):
        if skip:  # kept as a comment, so line numbers stay the fragment's own
            line, skip = f"# kpv: not for {version[0]}.{version[1]}: {line}", False
        elif m := _FOR_RE.fullmatch(line.strip()):
            since = (int(m.group(2)), int(m.group(3)))
            skip = (version >= since) != (m.group(1) == "since")
        out.append(line)
    return "".join(out)


def _version(tree: Path) -> tuple[int, int]:
    major, minor, *_ = (kernel_tree.kernel_version(tree) + ".0.0").split(".")
    return (int(major), int(minor)) if major.isdigit() and minor.isdigit() else (0, 0)


def generate(tree: Path, gen_dir: Path, base: str, fragments: tuple[Path, ...],
             log_path: Path, required: tuple[str, ...] = ()) -> ConfigResult:
    """base config + fragments + olddefconfig in gen_dir, then verify."""
    gen_dir.mkdir(parents=True, exist_ok=True)
    (gen_dir / ".config").unlink(missing_ok=True)  # never an earlier revision's, if a step fails
    fragments = _for_this_kernel(fragments, gen_dir / "fragments", _version(tree))
    want = requested(fragments)
    log: list[str] = []
    make = ["make", "-s", "-C", str(tree), f"O={gen_dir}", f"ARCH={ARCH}"]
    # A path is the user's own .config; anything else is a make target.
    start = ["cp", base, str(gen_dir / ".config")] if Path(base).is_absolute() else [*make, base]
    steps = [
        start,
        [str(tree / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(gen_dir),
         str(gen_dir / ".config"), *map(str, fragments)],
        [*make, "olddefconfig"],
    ]
    try:
        for cmd in steps:
            error = _run(cmd, tree, log)
            if error:
                return ConfigResult(gen_dir / ".config", (), error)
    finally:
        atomic.write(log_path, "".join(log).encode())
    final = read_config((gen_dir / ".config").read_text())
    return _judge(tree, gen_dir / ".config", want, final, required)


def _for_this_kernel(fragments: tuple[Path, ...], folder: Path,
                     version: tuple[int, int]) -> tuple[Path, ...]:
    """Copies of the fragments with the lines for other kernels dropped, same names."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, f in enumerate(fragments):
        try:
            text = f.read_text()
        except OSError as e:
            raise UserError(f"{f}: cannot read kconfig fragment: {e}") from None
        copy = folder / f"{i:02d}" / f.name  # two fragments may share a name
        copy.parent.mkdir(exist_ok=True)
        copy.write_text(for_version(text, version))
        out.append(copy)
    return tuple(out)


def _judge(tree: Path, config: Path, want: dict[str, tuple[str, str]],
           final: dict[str, str], required: tuple[str, ...]) -> ConfigResult:
    """Unmet options explained, absent ones told apart, the guest's essentials checked."""
    wrong = verify(want, final)
    lacking = [o for o in ESSENTIALS if o not in want and final.get(o, "n") != "y"]
    if not wrong and not lacking:
        return ConfigResult(config, ())
    entries = kconfigdeps.scan(tree)
    unmet, absent = [], []
    for line in wrong:
        opt = line.split(":", 1)[0]
        reason = kconfigdeps.why(opt, want[opt][0], final, entries)
        if reason:
            unmet.append(f"{line}: {reason}")
        elif reason == "":
            unmet.append(f"{line}: its dependencies are met; see kconfig.log")
        elif opt in required:
            unmet.append(f"{line}: this tree has no such option (required by the job)")
        else:
            absent.append(f"{line}: this tree has no such option (removed or renamed?)")
    for opt in lacking:
        held = kconfigdeps.why(opt, "y", final, entries)
        unmet.append(f"{opt}: kpv's guest needs it for {ESSENTIALS[opt]}, got "
                     f"{final.get(opt, 'n')}: " + (held or "neither the base config nor a "
                                                   "fragment sets it (kconfigs/guest.config "
                                                   "does)"))
    return ConfigResult(config, tuple(unmet), absent=tuple(absent))


def _run(cmd: list[str], cwd: Path, log: list[str]) -> str:
    """Run one step, logging it: "" or the Kconfig error that stopped it; raises InfraError
    when it failed for another reason."""
    log.append("$ " + " ".join(cmd) + "\n")
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                           env={**os.environ, "ARCH": ARCH})
    except FileNotFoundError as e:
        raise InfraError(f"{cmd[0]}: not found ({e.strerror}): install build-essential") from None
    out = p.stdout + p.stderr
    log.append(out)
    if p.returncode == 0:
        return ""
    step = cmd[-1] if cmd[0] == "make" else Path(cmd[0]).name
    # A Kconfig parse error is the tree's (a patch broke it): the series failed. Anything
    # else (a missing tool, a bad make target, a full disk) is kpv's to report.
    if m := _PARSE_ERROR_RE.search(out):
        return f"{step} failed (exit {p.returncode}): {m.group(0)}"
    tail = " | ".join(out.strip().splitlines()[-5:])
    raise InfraError(f"{step} failed (exit {p.returncode}): {tail}")


def install(config: Path, build_dir: Path) -> None:
    """Copy the config into the build dir when it differs: an unchanged one rebuilds nothing."""
    build_dir.mkdir(parents=True, exist_ok=True)
    dest = build_dir / ".config"
    if not (dest.exists() and filecmp.cmp(config, dest, shallow=False)):
        shutil.copyfile(config, dest)
