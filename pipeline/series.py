"""Read a patch series: its revisions, each an ordered list of patches.

For now a series is a folder: either with a series.toml naming its revisions
(each a subfolder of `git format-patch` files), or a folder of subfolders (one
revision each, in name order), or a folder of .patch files (one revision).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import UserError

BASELINE = "baseline"


@dataclass(frozen=True)
class Revision:
    name: str  # "v1", "v2-buildfix", or BASELINE for no patches
    patches: tuple[Path, ...]  # in order
    description: str = ""
    expect: str = ""  # what the series says should happen: pass, lockdep, build-error


@dataclass(frozen=True)
class Series:
    name: str
    source: str
    revisions: tuple[Revision, ...]
    meta: dict = field(default_factory=dict)  # the rest of series.toml, for the record

    def revision(self, name: str) -> Revision:
        if name == BASELINE:
            return Revision(BASELINE, (), "the base tree, no patches", "pass")
        for r in self.revisions:
            if r.name == name:
                return r
        known = ", ".join([BASELINE, *(r.name for r in self.revisions)])
        raise UserError(f"{self.source}: no revision {name!r} (known: {known})")


def load(source: str) -> Series:
    path = Path(source)
    if not path.exists():
        raise UserError(f"{source}: no such series file or folder")
    if path.is_file():
        return Series(path.stem, source, (Revision(path.stem, (path,)),))
    if (path / "series.toml").is_file():
        return _from_toml(path)
    subdirs = sorted(d for d in path.iterdir() if d.is_dir() and _patches(d))
    if subdirs:
        revs = tuple(Revision(d.name, _patches(d)) for d in subdirs)
        return Series(path.name, source, revs)
    if patches := _patches(path):
        return Series(path.name, source, (Revision(path.name, patches),))
    raise UserError(f"{source}: no patches found (expected *.patch files or revision folders)")


def _patches(folder: Path) -> tuple[Path, ...]:
    return tuple(sorted(p for p in folder.iterdir() if p.suffix in (".patch", ".diff")))


def _from_toml(path: Path) -> Series:
    toml = path / "series.toml"
    try:
        data = tomllib.loads(toml.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{toml}: not valid TOML: {e}") from None
    revs = []
    for i, r in enumerate(data.get("revision", [])):
        if not isinstance(r, dict) or not isinstance(r.get("name"), str):
            raise UserError(f"{toml}: revision #{i + 1}: expected a table with a name")
        folder = path / r.get("path", r["name"])
        if not folder.is_dir() or not _patches(folder):
            raise UserError(f"{toml}: revision {r['name']}: no patches in {folder}")
        revs.append(Revision(r["name"], _patches(folder), r.get("description", ""),
                             r.get("expect", "")))
    if not revs:
        raise UserError(f"{toml}: no [[revision]] tables")
    meta = {k: v for k, v in data.items() if k != "revision"}
    return Series(data.get("name", path.name), str(path), tuple(revs), meta)
