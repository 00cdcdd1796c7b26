"""Whatever results.json holds, `kpv report` and `kpv merge` load it and say so by their
exit code, or refuse it in one `kpv: error:` line (exit 2): never a traceback."""

import contextlib
import io
import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.cli import main
from pipeline.results import Case, Run, Status
from tests.test_results_load import real_json, real_run

SETTINGS = settings(derandomize=True, max_examples=150, deadline=None, database=None)

# Names and values kpv's own files use, so that generated objects get past the first key.
WORDS = st.sampled_from(sorted({*real_json(), *real_json()["suites"][1],
                                *real_json()["suites"][1]["cases"][1], *Status}))
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
           | WORDS)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(WORDS | st.text(max_size=4), inner, max_size=4),
                    max_leaves=12)


def _kpv(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(list(argv))
    return code, err.getvalue()


def _report_holds(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "results.json"
        path.write_bytes(data)
        code, err = _kpv("report", tmp)
        if err:  # refused
            assert code == 2 and err.count("\n") == 1, err
            assert err.startswith(f"kpv: error: {path}: "), err
        else:  # loaded: the exit code is what its cases say
            assert code == Run.load(path).exit_code()


def _merge_holds(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        good, shard, out = Path(tmp) / "good", Path(tmp) / "shard", Path(tmp) / "out"
        run = real_run()
        for s in run.suites:  # other suites than the generated shard's, mostly
            s.name += ".good"
        run.save(good / "results.json")
        shard.mkdir()
        (shard / "results.json").write_bytes(data)
        code, err = _kpv("merge", str(good), str(shard), "-o", str(out))
        if err:
            assert code == 2 and err.count("\n") == 1 and err.startswith("kpv: error: "), err
        else:
            assert code == Run.load(out / "results.json").exit_code()


def _mutated(data: st.DataObject) -> bytes:
    """kpv's own results.json with one value replaced, removed or added somewhere."""
    doc = real_json()
    paths: list[list] = []

    def walk(value: object, path: list) -> None:
        paths.append(path)
        items = value.items() if isinstance(value, dict) else \
            enumerate(value) if isinstance(value, list) else ()
        for k, v in items:
            walk(v, [*path, k])

    walk(doc, [])
    path = data.draw(st.sampled_from(paths[1:]))
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    how = data.draw(st.sampled_from(["replace", "remove", "add"]))
    if how == "replace":
        parent[path[-1]] = data.draw(JSON)
    elif how == "remove":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[data.draw(WORDS | st.text(max_size=4))] = data.draw(JSON)
    else:
        parent.insert(path[-1], data.draw(JSON))
    return json.dumps(doc).encode()


def _cut(data: st.DataObject) -> bytes:
    """kpv's own results.json with a run of bytes replaced: a file torn or corrupted."""
    text = json.dumps(real_json(), indent=1).encode()
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, min(len(text), start + 40)))
    return text[:start] + data.draw(st.binary(max_size=8)) + text[end:]


@SETTINGS
@given(JSON)
def test_any_json_value(value):
    _report_holds(json.dumps(value).encode())


@SETTINGS
@given(st.data())
def test_kpvs_file_with_a_value_changed(data):
    _report_holds(_mutated(data))


@SETTINGS
@given(st.data())
def test_kpvs_file_with_bytes_changed(data):
    _report_holds(_cut(data))


@SETTINGS
@given(st.data())
def test_merge_with_a_changed_shard(data):
    _merge_holds(_mutated(data) if data.draw(st.booleans()) else _cut(data))


def test_a_changed_status_still_decides_the_exit_code(tmp_path):
    """The property's 'loaded' branch is reached: a valid change loads and counts."""
    run = real_run()
    run.suites[1].cases.append(Case("late", Status.ERROR))
    run.save(tmp_path / "results.json")
    assert _kpv("report", str(tmp_path)) == (2, "")
