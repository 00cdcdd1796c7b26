"""The whole `kpv parse` path (clean, markers, reports, endings) on generated console
bytes: random bytes, and the real consoles of tests/data/console mutated, cut and
spliced. It never raises, and the same bytes always give the same reports."""

from dataclasses import asdict
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import analysis, console, sanitize

CONSOLES = sorted((Path(__file__).resolve().parent / "data" / "console").glob("*.log"))
# Small consoles keep each example quick; the big ones are cut to a window below.
WINDOW = 60_000


@st.composite
def real_console(draw) -> bytes:
    """A window of one of the real consoles."""
    data = draw(st.sampled_from(CONSOLES)).read_bytes()
    start = draw(st.integers(0, max(len(data) - 1, 0)))
    return data[start:start + draw(st.integers(0, WINDOW))]


@st.composite
def mutated(draw) -> bytes:
    """A real console with bytes overwritten, inserted or deleted, and maybe another
    console's window spliced in."""
    data = bytearray(draw(real_console()))
    for _ in range(draw(st.integers(0, 8))):
        at = draw(st.integers(0, len(data)))
        junk = draw(st.binary(max_size=16))
        match draw(st.sampled_from(("overwrite", "insert", "delete"))):
            case "overwrite":
                data[at:at + len(junk)] = junk
            case "insert":
                data[at:at] = junk
            case "delete":
                del data[at:at + len(junk)]
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(real_console())
    return bytes(data)


CONSOLE_BYTES = st.one_of(st.binary(max_size=4096), real_console(), mutated())


def _parsed(data: bytes) -> list[dict]:
    return [asdict(r) for r in analysis.analyse(sanitize.clean(data)).reports]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CONSOLE_BYTES)
def test_never_raises_and_is_deterministic(data):
    assert _parsed(data) == _parsed(data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CONSOLE_BYTES)
def test_reports_lie_in_the_log_in_order(data):
    text = sanitize.clean(data)
    found, unread = console.scan(text)
    lines = text.count("\n") + 1
    assert unread == 0  # no generated input here holds a storm
    assert [r.first_line for r in found] == sorted(r.first_line for r in found)
    assert all(0 <= r.first_line <= r.last_line < lines for r in found)


def test_a_report_storm_is_cut_at_reports_max_and_the_rest_counted():
    storm = "".join(f"[{i / 1000:12.6f}] BUG: scheduling while atomic: storm/{i}/0x00000002\n"
                    for i in range(console.REPORTS_MAX + 7))
    found, unread = console.scan(storm)
    assert len(found) == console.REPORTS_MAX and unread == 7
