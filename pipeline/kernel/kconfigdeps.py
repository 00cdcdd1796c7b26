"""Why a requested kconfig option did not stick: absent from the tree, or held off.

Read from the tree's own Kconfig files, starting at the top `Kconfig` and
following `source` as Kconfig does (with SRCARCH=x86), so only the options an
x86_64 build can see count. Each `config` entry keeps its conditions: its own
`depends on` lines and those inherited from the `if`, `menu` and `choice`
blocks around it, in that file and in the files that sourced it. An unmet
option is then described the way `make menuconfig` would show it: the
conditions that hold it below the wanted value, each symbol with its value in
the final config (`DEBUG_KERNEL [=n]`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

# With make's default ARCH=x86, tinyconfig plus a 64-bit fragment ends with other
# mm options (5-level paging, VMAP_STACK, SPARSEMEM_VMEMMAP) than with x86_64.
ARCH = "x86_64"
SRCARCH = "x86"
# The macros a prompt's or a dependency's condition may test the architecture with.
_MACROS = {"$(ARCH)": ARCH, "$(SRCARCH)": SRCARCH}
_ENTRY_RE = re.compile(r"(?:menu)?config\s+([A-Za-z0-9_]+)\s*$")
_SOURCE_RE = re.compile(r'[or]?source\s+"([^"]+)"')
_PROMPT_RE = re.compile(r'(?:bool|tristate|string|hex|int|prompt)\s+"(?:[^"\\]|\\.)*"'
                        r"(?:\s+if\s+(.+))?$")
_SELECT_RE = re.compile(r"select\s+([A-Za-z0-9_]+)")
_TOKEN_RE = re.compile(r'\s*(&&|\|\||!=|<=|>=|[!()=<>]|"[^"]*"|\$\([^)]*\)|[A-Za-z0-9_]+)')
_TRI = {"n": 0, "m": 1, "y": 2}


@dataclass
class Entry:
    where: str  # "lib/Kconfig.debug:1251"
    conditions: list[str]  # ANDed: inherited if/menu/choice conditions, then `depends on`
    prompt: bool = False  # a user can set it; without a prompt only `select` or a default can
    prompt_if: str = ""  # the condition on the prompt (`bool "64-bit kernel" if ARCH = "x86"`)
    selected_by: list[str] = field(default_factory=list)
    choice: list[str] | None = None  # the symbols of its choice block, itself included


def scan(tree: Path) -> dict[str, list[Entry]]:
    """Every config entry an x86 build sees, by symbol (a symbol may be defined twice)."""
    entries: dict[str, list[Entry]] = {}
    selects: list[tuple[str, str]] = []  # (selected, selecting entry's symbol)
    _read(tree, "Kconfig", [], entries, selects, set())
    for sym, by in selects:
        for e in entries.get(sym, []):
            e.selected_by.append(by)
    return entries


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Logical lines (a trailing backslash joins the next), numbered by their first."""
    pending, start = "", 0
    for n, raw in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not pending:
            start = n
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        yield start, pending + raw
        pending = ""
    if pending:
        yield start, pending


def _read(tree: Path, rel: str, outer: list[str], entries: dict[str, list[Entry]],
          selects: list[tuple[str, str]], seen: set[str]) -> None:
    if rel in seen or not (tree / rel).is_file():
        return
    seen.add(rel)
    # Each block (if/menu/choice) adds its conditions; its end pops them.
    blocks: list[list[str]] = []
    choices: list[list[str]] = []  # the choice blocks open here, innermost last
    entry: Entry | None = None
    block_deps: list[str] | None = None  # a menu or choice header still taking `depends on`
    symbol = ""
    help_indent: int | None = None  # in help text: None outside, 0 until its first line
    for n, line in _lines(tree / rel):
        text = line.strip()
        if help_indent is not None:
            # Help text ends at the first line indented less than its own first line.
            indent = len(line.expandtabs()) - len(line.expandtabs().lstrip())
            if not text:
                continue
            if help_indent == 0 and indent > 0:
                help_indent = indent
            if indent >= help_indent > 0:
                continue
            help_indent = None
        if not text or text.startswith("#"):
            continue
        word = text.split()[0]
        inherited = [c for b in blocks for c in b]
        if m := _ENTRY_RE.fullmatch(text):
            symbol, block_deps = m.group(1), None
            entry = Entry(f"{rel}:{n}", outer + inherited,
                          choice=choices[-1] if choices else None)
            if choices:
                choices[-1].append(symbol)
            entries.setdefault(symbol, []).append(entry)
        elif word in ("help", "---help---"):
            help_indent = 0
        elif word == "if":
            blocks.append([text[2:].strip()])
            entry = block_deps = None
        elif word in ("menu", "choice"):
            blocks.append([])
            block_deps, entry = blocks[-1], None
            if word == "choice":
                choices.append([])
        elif word in ("endif", "endmenu", "endchoice"):
            if blocks:
                blocks.pop()
            if word == "endchoice" and choices:
                choices.pop()
            entry = block_deps = None
        elif m := _SOURCE_RE.match(text):
            path = m.group(1).replace("$(SRCARCH)", SRCARCH)
            if text.startswith("rsource"):
                path = str(Path(rel).parent / path)
            for target in sorted(tree.glob(path)) if "*" in path else [tree / path]:
                _read(tree, str(target.relative_to(tree)), outer + inherited, entries, selects,
                      seen)
            entry = block_deps = None
        elif text.startswith("depends on"):
            cond = text.removeprefix("depends on").strip()
            if entry is not None:
                entry.conditions.append(cond)
            elif block_deps is not None:
                block_deps.append(cond)
        elif entry is not None and (m := _PROMPT_RE.match(text)):
            entry.prompt, entry.prompt_if = True, m.group(1) or ""
        elif entry is not None and (m := _SELECT_RE.match(text)):
            selects.append((m.group(1), symbol))
        elif word in ("comment", "mainmenu"):
            entry = block_deps = None


def _value(token: str, config: dict[str, str]) -> str:
    if token.startswith('"'):
        return token[1:-1]
    if token in _TRI or token.isdigit():
        return token
    return config.get(f"CONFIG_{token}", "n").strip('"')


def evaluate(expr: str, config: dict[str, str]) -> int | None:
    """The tristate value (0 n, 1 m, 2 y) of a Kconfig expression; None when not understood."""
    for macro, value in _MACROS.items():
        expr = expr.replace(macro, value)
    tokens = _TOKEN_RE.findall(expr)
    if "".join(tokens).replace(" ", "") != expr.replace(" ", ""):
        return None
    pos = 0

    def peek() -> str:
        return tokens[pos] if pos < len(tokens) else ""

    def take() -> str:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def atom() -> int:
        tok = take()
        if tok == "!":
            return 2 - atom()
        if tok == "(":
            v = either()
            if take() != ")":
                raise ValueError(expr)
            return v
        if tok.startswith("$(") or tok in ("", ")", "&&", "||"):
            raise ValueError(expr)
        if peek() in ("=", "!="):
            op, right = take(), take()
            same = _value(tok, config) == _value(right, config)
            return 2 if same == (op == "=") else 0
        if peek() in ("<", ">", "<=", ">="):
            raise ValueError(expr)  # numeric comparisons: rare in depends on, not evaluated
        return _TRI.get(_value(tok, config), 0)

    def both() -> int:
        v = atom()
        while peek() == "&&":
            take()
            v = min(v, atom())
        return v

    def either() -> int:
        v = both()
        while peek() == "||":
            take()
            v = max(v, both())
        return v

    try:
        v = either()
    except (ValueError, IndexError):
        return None
    return v if pos == len(tokens) else None


def annotate(expr: str, config: dict[str, str]) -> str:
    """`DEBUG_KERNEL && X86` -> `DEBUG_KERNEL [=n] && X86 [=y]`, as menuconfig prints it."""
    def one(m: re.Match[str]) -> str:
        tok = m.group(0)
        if not tok[0].isalpha() or tok in _TRI:  # a string, a macro, y/m/n
            return tok
        return f"{tok} [={config.get(f'CONFIG_{tok}', 'n').strip(chr(34))}]"

    return re.sub(r'"[^"]*"|\$\([^)]*\)|\b[A-Za-z][A-Za-z0-9_]*\b', one, expr)


def why(option: str, wanted: str, config: dict[str, str],
        entries: dict[str, list[Entry]]) -> str | None:
    """What held `option` below `wanted`; None when this tree has no such option.

    "" when nothing did: its dependencies are met and it has a prompt, so only
    not asking for it (or asking for something else) leaves it unset.
    """
    defs = entries.get(option.removeprefix("CONFIG_"))
    if not defs:
        return None
    want = _TRI.get(wanted, 2)
    reasons = []
    for e in defs:
        held = [c for c in e.conditions if (v := evaluate(c, config)) is None or v < want]
        chosen = [c for c in e.choice or [] if config.get(f"CONFIG_{c}") == "y"]
        if held:
            reasons.append(f"depends on {' && '.join(annotate(c, config) for c in held)} "
                           f"({e.where})")
        elif chosen:
            reasons.append(f"in a choice where {', '.join(f'CONFIG_{c}=y' for c in chosen)} "
                           f"won ({e.where})")
        elif not e.prompt or evaluate(e.prompt_if or "y", config) == 0:
            by = ", ".join(annotate(s, config) for s in e.selected_by[:4]) or "nothing"
            shown = f" (its prompt only if {e.prompt_if})" if e.prompt else ""
            reasons.append(f"has no prompt on {ARCH}{shown}: its default and the options "
                           f"selecting it decide (selected by: {by}) ({e.where})")
    return "; ".join(reasons)
