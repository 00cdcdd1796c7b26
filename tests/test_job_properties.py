"""Whatever a job file holds, job.load returns a valid Job or raises UserError in one
line, and writes nothing: generated jobs and mutated copies of the repo's jobs/*.toml."""

import copy
import json
import math
import os
import tempfile
import tomllib
from datetime import date, datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import job
from pipeline.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
REPO_JOBS = {p.name: p.read_text() for p in sorted((ROOT / "jobs").glob("*.toml"))}
# What the repo's jobs name by relative path (../kconfigs/x.config), linked into a test's
# folder so that their copies load there as they do in the repo.
REPO_FOLDERS = ("kconfigs", "patches")
DEBIAN = "debian:linux-source-6.1"

SETTINGS = settings(derandomize=True, max_examples=200, deadline=None, database=None)

# Strings a job file would hold, so that generated jobs get past the first check often.
WORDS = st.sampled_from([
    DEBIAN, "series", ".", "frag.config", "bad.config", "nowhere", *job.ACCELS,
    "fork", "stack", "idle", "fault-x", "stress-ng:vm", "nosuch", "madvise", "always", "HEAD",
    "tinyconfig", "baseline", "v1", "pw:1", "<a@b.c>", "HEAD~2..HEAD", "b4/x", "", "a\0b",
    "x" * 300,
])
TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
# Small numbers, any number, and each bound and the number past it.
INTS = (st.integers(-3, 70) | st.integers()
        | st.sampled_from([64, 65, 100, 101, 3600, 3601, 14_400, 14_401, 86_400, 86_401,
                           2**63, 2**64, 3_600_001, 10**8]))
SCALARS = (st.booleans() | INTS | st.floats() | WORDS | TEXT | st.dates()
           | st.datetimes(timezones=st.none()))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(WORDS | TEXT, inner, max_size=3), max_leaves=8)
KEYS = [(table, key) for table, keys in job._SCHEMA.items() for key in keys]
# What an edit of a job file by hand leaves: half a table header, a stray quote, a value.
SNIPPETS = st.sampled_from([
    "=", "[", "]", '"', "\n", ",", "#", "1e9", "[guest]\nvcpus = [1000]\n",
    "\nrepeats = 1e6\n", "[[guest]]\n", "\n[tree]\n", "\ufeff", "\x00",
])


def _typed(want: object) -> st.SearchStrategy:
    """A value of the schema's own type for a key, of any size."""
    if want is int:
        return INTS
    if want is bool:
        return st.booleans()
    if want is str:
        return WORDS | TEXT
    return st.lists(INTS if "int" in str(want) else WORDS | TEXT, max_size=4)


def _mutate(draw: st.DrawFn, doc: dict) -> dict:
    """doc with a few of the schema's keys set (to their type or to anything) or dropped,
    and now and then a key of no table."""
    for table, key in draw(st.lists(st.sampled_from(KEYS), max_size=5, unique=True)):
        where = doc.setdefault(table, {}) if table else doc
        if not isinstance(where, dict):
            continue  # the table was made a value above
        how = draw(st.sampled_from(["typed", "typed", "typed", "any", "drop"]))
        if how == "typed":
            where[key] = draw(_typed(job._SCHEMA[table][key][0]))
        elif how == "any":
            where[key] = draw(VALUES)
        else:
            where.pop(key, None)
    if draw(st.integers(0, 4)) == 0:
        doc[draw(WORDS | TEXT)] = draw(VALUES)  # an unknown key, or a table made a value
    return doc


@st.composite
def job_files(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A job file (keys of the real schema, values right-typed or anything) and the lines
    of its fragment."""
    doc = _mutate(draw, {"tree": {"source": DEBIAN}, "series": {"source": "series"},
                         "kconfig": {"fragments": ["frag.config"]}})
    lines = draw(st.lists(st.sampled_from([
        "CONFIG_SMP=y", "# CONFIG_MODULES is not set", "", "# why", 'CONFIG_S="a b"',
        "CONFIG_N=0x10", "CONFIG_FOO==", "CONFIG_FOO=y y", "# CONFIG_FOO is set",
        'CONFIG_S="a', "prose", "\x00\x01",
    ]) | TEXT, max_size=6))
    return _document(doc), lines


@st.composite
def repo_job_copies(draw: st.DrawFn) -> tuple[str, str]:
    """A job of the repo's jobs/ and a copy of it: its keys changed, or its text edited."""
    name = draw(st.sampled_from(sorted(REPO_JOBS)))
    text = REPO_JOBS[name]
    if draw(st.booleans()):
        return name, _document(_mutate(draw, copy.deepcopy(tomllib.loads(text))))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 20))
        text = text[:at] + draw(SNIPPETS | TEXT) + text[at + cut:]
    return name, text


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, str):  # JSON's escapes are TOML's, but for DEL
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(map(_toml, value)) + "]"
    return "{" + ", ".join(f"{_toml(str(k))} = {_toml(v)}" for k, v in value.items()) + "}"


def _document(doc: dict) -> str:
    """TOML: top-level values first, then a [table] per table."""
    out = [f"{_toml(k)} = {_toml(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for name, table in doc.items():
        if isinstance(table, dict):
            out.append(f"[{_toml(name)}]")
            out += [f"{_toml(k)} = {_toml(v)}" for k, v in table.items()]
    return "\n".join(out) + "\n"


def _state(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under roots, with its size and change time."""
    out = {}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for name in [*dirs, *files]:
                st_ = os.lstat(os.path.join(folder, name))
                out[os.path.join(folder, name)] = (st_.st_size, st_.st_mtime_ns)
    return out


def _loads_or_is_refused_in_one_line(path: Path) -> None:
    """job.load of path gives a job check() finds nothing wrong with, or one UserError line
    that names the file; nothing under path's folder or the cache changes."""
    roots = (path.parent, Path(os.environ["KPV_CACHE"]))
    before = _state(*roots)
    try:
        loaded = job.load(path)
    except UserError as e:
        assert str(e).startswith(f"{path}: ") and "\n" not in str(e), str(e)
    else:
        assert job.check(loaded) == []
    assert _state(*roots) == before


@SETTINGS
@given(job_files())
def test_job_files_load_or_are_refused_in_one_line(case):
    text, lines = case
    with tempfile.TemporaryDirectory() as tmp:
        here = Path(tmp)
        (here / "series").mkdir()
        (here / "frag.config").write_text("\n".join(lines) + "\n")
        (here / "job.toml").write_text(text)
        _loads_or_is_refused_in_one_line(here / "job.toml")


@SETTINGS
@given(repo_job_copies())
def test_copies_of_the_repos_jobs_load_or_are_refused_in_one_line(case):
    name, text = case
    with tempfile.TemporaryDirectory() as tmp:
        here = Path(tmp)
        for folder in REPO_FOLDERS:
            (here / folder).symlink_to(ROOT / folder)
        (here / "jobs").mkdir()
        (here / "jobs" / name).write_text(text)
        _loads_or_is_refused_in_one_line(here / "jobs" / name)


def test_the_repos_jobs_load_from_a_copy():
    """The copies above start from jobs that load: their refusals come from the edits."""
    with tempfile.TemporaryDirectory() as tmp:
        here = Path(tmp)
        for folder in REPO_FOLDERS:
            (here / folder).symlink_to(ROOT / folder)
        (here / "jobs").mkdir()
        for name, text in REPO_JOBS.items():
            (here / "jobs" / name).write_text(text)
            assert job.load(here / "jobs" / name).name == name.removesuffix(".toml")


def test_the_generator_writes_toml_that_loads():
    """The writer above is TOML: a job of its making loads."""
    with tempfile.TemporaryDirectory() as tmp:
        here = Path(tmp)
        (here / "series").mkdir()
        (here / "frag.config").write_text("CONFIG_SMP=y\n")
        (here / "job.toml").write_text(_document({
            "name": "t\x7f\"", "tree": {"source": DEBIAN},
            "series": {"source": "series"}, "kconfig": {"fragments": ["frag.config"]},
            "guest": {"vcpus": [1, 4], "duration": 5, "ksm": False}}))
        loaded = job.load(here / "job.toml")
        assert (loaded.name, loaded.vcpus, loaded.duration, loaded.ksm) == \
            ("t\x7f\"", (1, 4), 5, False)
