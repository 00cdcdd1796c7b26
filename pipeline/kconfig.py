"""Make a kernel .config from fragments and check that every requested option stuck.

The config is generated in a scratch O= dir of its own and copied into the
build dir only when it differs, so an unchanged config costs no rebuild.
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
from pipeline.errors import InfraError, UserError
from pipeline.sanitize import one_line

# With make's default ARCH=x86, tinyconfig plus a 64-bit fragment ends with other
# mm options (5-level paging, VMAP_STACK, SPARSEMEM_VMEMMAP) than with x86_64.
ARCH = "x86_64"

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


# Kconfig's parser names the file and line: "mm/Kconfig:1190: syntax error".
_PARSE_ERROR_RE = re.compile(r"^\S+:\d+: .+$", re.M)


@dataclass(frozen=True)
class ConfigResult:
    config: Path  # the generated .config (absent when a command failed)
    unmet: tuple[str, ...]  # "CONFIG_X: wanted y, got n (from lockdep.config)"
    error: str = ""  # the command that failed and its first error: the tree's Kconfig is broken

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


def generate(
    tree: Path, gen_dir: Path, base: str, fragments: tuple[Path, ...], log_path: Path
) -> ConfigResult:
    """base config + fragments + olddefconfig in gen_dir, then verify."""
    want = requested(fragments)
    gen_dir.mkdir(parents=True, exist_ok=True)
    (gen_dir / ".config").unlink(missing_ok=True)  # never an earlier revision's, if a step fails
    log: list[str] = []
    steps = [
        ["make", "-s", "-C", str(tree), f"O={gen_dir}", f"ARCH={ARCH}", base],
        [str(tree / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(gen_dir),
         str(gen_dir / ".config"), *map(str, fragments)],
        ["make", "-s", "-C", str(tree), f"O={gen_dir}", f"ARCH={ARCH}", "olddefconfig"],
    ]
    try:
        for cmd in steps:
            error = _run(cmd, tree, log)
            if error:
                return ConfigResult(gen_dir / ".config", (), error)
    finally:
        atomic.write(log_path, "".join(log).encode())
    final = read_config((gen_dir / ".config").read_text())
    return ConfigResult(gen_dir / ".config", verify(want, final))


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
