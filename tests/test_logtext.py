"""A log read in pieces says what it says read whole, in a few times its size."""

import random
import tracemalloc
from dataclasses import asdict
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline import analysis, sanitize
from pipeline.logtext import Cleaned

CONSOLES = sorted((Path(__file__).resolve().parent / "data" / "console").glob("*.log"))

# The bytes clean() treats apart, a string opener and BEL among them, so cuts land
# inside escape strings, \r runs and UTF-8 sequences.
TRICKY = st.lists(st.sampled_from([b"\x1b", b"]", b"P", b"[", b"\x07", b"\\", b"\r", b"\n",
                                   b"a", b"\xc3", b"\xa9", b"\xef\xbf\xbe", b"\x00"]),
                  max_size=60).map(b"".join)


@given(st.one_of(TRICKY, st.binary(max_size=300)), st.integers(1, 16))
def test_cleaning_in_pieces_is_cleaning_whole(data: bytes, size: int) -> None:
    chunks = (data[i:i + size] for i in range(0, len(data), size))
    pieces = list(sanitize.clean_pieces(chunks))
    assert "".join(pieces) == sanitize.clean(data)
    assert all(p.endswith("\n") for p in pieces[:-1])


@pytest.mark.parametrize("path", CONSOLES, ids=lambda p: p.name)
def test_a_console_in_one_line_pieces_gives_what_it_gives_whole(path: Path) -> None:
    # A piece a line: every line end is a piece's end, so every read crosses one.
    text = sanitize.clean(path.read_bytes())
    *lines, rest = text.split("\n")
    whole = analysis.analyse(text)
    pieces = analysis.analyse(Cleaned([*(line + "\n" for line in lines), rest]))
    assert [asdict(r) for r in pieces.reports] == [asdict(r) for r in whole.reports]
    assert pieces.markers == whole.markers


def test_random_bytes_take_under_five_times_their_size(tmp_path: Path) -> None:
    # Read whole, 20 MB of them took 9.3x: the bytes, their cleaned copies and a
    # str of 4 bytes a character (random bytes hold astral characters).
    log = tmp_path / "random.log"
    log.write_bytes(random.Random(11).randbytes(20_000_000))
    tracemalloc.start()
    try:
        analysis.analyse(Cleaned.of_path(log))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * log.stat().st_size
