"""Does a series fit a base? Compare the `index <old>..<new>` blobs of its patches with the tree.

Each file's first appearance in the series names the blob the author had; the
base either has that blob at that path (the file matches), another one (the
series was made against another version of the file), or no such file.
Later patches of the same file are checked against the blob the earlier one
produced, not against the base.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline import tree, udiff


@dataclass(frozen=True)
class BaseCheck:
    matching: tuple[str, ...]  # paths whose base blob is the one the series expects
    differing: tuple[str, ...]  # "path (base abc1234, series expects def5678)"
    absent: tuple[str, ...]  # paths the series changes that the base lacks
    unknown: tuple[str, ...]  # paths whose patch carries no index line

    def summary(self) -> str:
        parts = [f"{len(self.matching)} file(s) match the base"]
        if self.differing:
            parts.append(f"{len(self.differing)} differ: {', '.join(self.differing)}")
        if self.absent:
            parts.append(f"{len(self.absent)} missing from the base: {', '.join(self.absent)}")
        if self.unknown:
            parts.append(f"{len(self.unknown)} without index lines: {', '.join(self.unknown)}")
        return "; ".join(parts)


def check(repo: Path, commit: str, patches: list[Path]) -> BaseCheck:
    expected: dict[str, str] = {}  # path -> old blob at its first appearance
    for p in patches:
        for fp in udiff.parse(p.read_bytes().decode("utf-8", "replace")):
            path = fp.old_path
            if path and path != udiff.DEV_NULL and path not in expected:
                expected[path] = fp.old_blob
    if not expected:
        return BaseCheck((), (), (), ())
    out = tree.git(repo, "ls-tree", "-r", commit, "--", *expected).stdout
    have = {ln.split("\t", 1)[1]: ln.split()[2] for ln in out.splitlines() if "\t" in ln}
    matching, differing, absent, unknown = [], [], [], []
    for path, blob in expected.items():
        if not blob:
            unknown.append(path)
        elif path not in have:
            absent.append(path)
        elif have[path].startswith(blob):
            matching.append(path)
        else:
            differing.append(f"{path} (base {have[path][:len(blob)]}, series expects {blob})")
    return BaseCheck(tuple(matching), tuple(differing), tuple(absent), tuple(unknown))
