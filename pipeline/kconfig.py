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

from pipeline.errors import InfraError, UserError

ARCH = "x86_64"  # not the default ARCH=x86: see design.md on 64-bit mm options

_SET_RE = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET_RE = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


@dataclass(frozen=True)
class ConfigResult:
    ok: bool
    config: Path  # the generated .config
    unmet: tuple[str, ...]  # "CONFIG_X: wanted y, got n (from lockdep.config)"
    log: str  # every command and its output


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
    log: list[str] = []
    steps = [
        ["make", "-s", "-C", str(tree), f"O={gen_dir}", f"ARCH={ARCH}", base],
        [str(tree / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(gen_dir),
         str(gen_dir / ".config"), *map(str, fragments)],
        ["make", "-s", "-C", str(tree), f"O={gen_dir}", f"ARCH={ARCH}", "olddefconfig"],
    ]
    for cmd in steps:
        _run(cmd, tree, log)
    log_path.write_text("".join(log))
    final = read_config((gen_dir / ".config").read_text())
    unmet = verify(want, final)
    return ConfigResult(not unmet, gen_dir / ".config", unmet, "".join(log))


def _run(cmd: list[str], cwd: Path, log: list[str]) -> None:
    log.append("$ " + " ".join(cmd) + "\n")
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                           env={**os.environ, "ARCH": ARCH})
    except FileNotFoundError as e:
        raise InfraError(f"{cmd[0]}: not found ({e.strerror}): install build-essential") from None
    log.append(p.stdout + p.stderr)
    if p.returncode != 0:
        tail = (p.stdout + p.stderr).strip().splitlines()[-5:]
        raise InfraError(f"{' '.join(cmd[:6])} failed (exit {p.returncode}): " + " | ".join(tail))


def install(config: Path, build_dir: Path) -> bool:
    """Copy the config into the build dir when it differs; True when it changed."""
    build_dir.mkdir(parents=True, exist_ok=True)
    dest = build_dir / ".config"
    if dest.exists() and filecmp.cmp(config, dest, shallow=False):
        return False
    shutil.copyfile(config, dest)
    return True
