"""reproduce.sh in every cell folder: the cell's boot by hand, for someone without kpv."""

import os
import shlex
from dataclasses import replace
from pathlib import Path

from pipeline import atomic, vm
from pipeline.render import TEMPLATES

NAME = "reproduce.sh"


def write(m: vm.Machine, revision: str, tests: list[str], folder: Path) -> Path:
    """folder/reproduce.sh booting m's kernel and image, the test given as its argument."""
    here = replace(m, kernel=Path("$here", os.path.relpath(m.kernel, folder)),
                   initrd=Path("$here", os.path.relpath(m.initrd, folder)),
                   accel="$accel", append="kpv.test=$test")
    # Words naming the script's own variables are expanded by the shell; the rest
    # are quoted as they are.
    command = " ".join(f'"{w}"' if "$" in w else shlex.quote(w) for w in vm.command(here))
    text = TEMPLATES.get_template("reproduce.sh.j2").render(
        revision=revision, vcpus=m.vcpus, tests=tests, accel=m.accel, command=command)
    path = folder / NAME
    atomic.write(path, text.encode(), mode=0o777)
    return path
