"""The lock order a kernel tree documents, and lockdep's class names matched against it.

mm/rmap.c opens with "Lock ordering in mm:" and mm/filemap.c with "Lock ordering:":
trees drawn by indentation, each lock taken before the ones indented under it. They
are read from the tree under test, since each kernel (and a series) may change them.
Names differ between the comments and lockdep (`->anon_vma.lock`, `anon_vma->rwsem`,
`&anon_vma->rwsem`, `&(&mm->page_table_lock)->rlock`): both are reduced to a key.
"""

from __future__ import annotations

import re
from pathlib import Path

# Where a tree documents its mm lock order, and the line each comment starts at.
SOURCES = (("mm/rmap.c", "Lock ordering in mm:"), ("mm/filemap.c", "Lock ordering:"))

# A field named only by its kind needs its owner to say which lock it is.
_GENERIC = {"lock", "rwsem", "mutex", "sem", "rlock", "spinlock", "wait_lock"}
_CHAIN = re.compile(r"[A-Za-z_]\w*(?:\s*(?:->|\.)\s*[A-Za-z_]\w*)+")
_PART = re.compile(r"[A-Za-z_]\w*")
_WORD = re.compile(r"[A-Za-z_]\w*")
# lockdep's names for what the comments call the PTE lock.
_ALIASES = {"ptlock_ptr": "pte_lock", "ptl": "pte_lock"}


def key(name: str) -> str:
    """A lock's key: its field (page_table_lock), or owner.field for a generic field
    (anon_vma.rwsem); from a comment's name or from lockdep's class name."""
    name = re.sub(r"[#/]\d+$", "", name.strip())
    chain = _CHAIN.search(name)  # the innermost: &(&mm->page_table_lock)->rlock
    if chain:
        *_, owner, field = _PART.findall(chain.group())  # bdi.wb->list_lock: list_lock
        return f"{owner}.{field}" if field in _GENERIC else field
    words = _WORD.findall(name)
    if not words:
        return name
    return _ALIASES.get(words[0], words[0])


def documented(tree: Path) -> list[tuple[str, str]]:
    """(before, after) key pairs: every lock and each lock indented under it, in the
    tree's comments; [] when it has none."""
    pairs: dict[tuple[str, str], None] = {}
    for path, start in SOURCES:
        try:
            text = (tree / path).read_text(errors="replace")
        except OSError:
            continue
        for before, after in parse(text, start):
            pairs.setdefault((before, after))
    return list(pairs)


def parse(source: str, start: str) -> list[tuple[str, str]]:
    """The pairs of one comment, the one whose line holds `start`."""
    lines = source.splitlines()
    at = next((i for i, line in enumerate(lines) if start in line), None)
    if at is None:
        return []
    pairs: list[tuple[str, str]] = []
    stack: list[tuple[int, list[str]]] = []  # (indent, keys) of the open ancestors
    depth = 0  # of parentheses: an annotation may go on over the next lines
    for line in lines[at + 1:]:
        if "*/" in line:
            break
        body = line.split("*", 1)[1] if "*" in line else line
        text = body.expandtabs(8)
        was, depth = depth, max(0, depth + text.count("(") - text.count(")"))
        if was:
            continue
        names = _names(text)
        if not names:
            stack = []  # a blank line or a heading starts another tree
            continue
        indent = len(text) - len(text.lstrip())
        while stack and stack[-1][0] >= indent:
            stack.pop()
        pairs += [(a, b) for _, above in stack for a in above for b in names if a != b]
        stack.append((indent, names))
    return pairs


def _names(text: str) -> list[str]:
    """The keys a comment line names: before its (annotation), split at `or` and `,`."""
    text = text.strip()
    if not text or text.endswith(":"):
        return []
    text = re.split(r"\s{2,}|\(", text.removeprefix("->"), maxsplit=1)[0]
    parts = re.split(r"\s+or\s+|,", text)
    return [key(p.strip().removeprefix("->")) for p in parts if p.strip()]


def against(pairs: list[tuple[str, str]], held: str, taken: str) -> bool:
    """Taking `taken` while holding `held` goes against the documented order."""
    a, b = key(held), key(taken)
    order = set(pairs)
    return (b, a) in order and (a, b) not in order


def mentioned(pairs: list[tuple[str, str]], name: str) -> bool:
    return any(key(name) in pair for pair in pairs)
