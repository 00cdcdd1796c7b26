import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.sanitize import bound, clean, junit_name, one_line

# Any code point, lone surrogates included (hypothesis leaves them out by default).
any_text = st.text(st.characters(exclude_categories=()))
# What XML 1.0 allows, minus \r: clean() turns every \r into a line break.
XML_SAFE = re.compile(r"[\t\n\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")


def test_bytes_are_decoded_with_replacement():
    assert clean(b"ok \xff\xfe end") == "ok \ufffd\ufffd end"


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("a\r\r\nb", "a\nb"),  # serial console with the tty's extra \r
        ("a\r\nb", "a\nb"),
        ("a" + "\r" * 5 + "\nb\r\r\r\nc", "a\nb\nc"),  # longer runs are one line end too
        ("50%\r60%", "50%\n60%"),  # progress bar
        ("a\nb", "a\nb"),
    ],
)
def test_line_ends_become_newlines(raw, want):
    assert clean(raw) == want
    assert clean(raw.encode()) == want  # bytes take their own, faster path


@given(st.lists(st.sampled_from(["a", "b", "\r", "\n"]), max_size=12).map("".join))
def test_line_ends_are_the_same_for_bytes_and_text(raw):
    assert clean(raw.encode()) == clean(raw)


def test_a_long_run_of_carriage_returns_is_one_line_end():
    # Linear in the run's length: a million \r take a blink, not minutes.
    raw = "a\r" + "\r" * 1_000_000 + "\nb\rc"
    assert clean(raw) == clean(raw.encode()) == "a\nb\nc"


def test_a_long_run_of_carriage_returns_without_a_newline_is_linear():
    # Retrying the run from each of its \r would take hours here.
    raw = "a\r\r\r\r\nb" + "\r" * 1_000_000 + "c"
    assert clean(raw) == clean(raw.encode()) == "a\nb" + "\n" * 1_000_000 + "c"


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("\x1b[1;31mBUG:\x1b[0m x", "BUG: x"),  # SGR colour
        ("\x1b[?2004hroot# ", "root# "),  # bracketed paste from bash
        ("\x1b]0;title\x07x", "x"),  # OSC ended by BEL
        ("\x1b]8;;http://h/\x1b\\link", "link"),  # OSC ended by ST
        ("\x1b(B\x1b[m ok", " ok"),  # tput sgr0: charset selection + reset
        ("\x1b7x\x1b8\x1bc", "x"),  # save/restore cursor, full reset
    ],
)
def test_terminal_escapes_are_stripped(raw, want):
    assert clean(raw) == want


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("a\x00b", "a\\x00b"),
        ("bell\x07", "bell\\x07"),
        ("\x0b\x0c", "\\x0b\\x0c"),
        ("lone \x1b", "lone \\x1b"),  # an ESC starting no sequence is shown, not dropped
        ("\ufffe\uffff", "\\ufffe\\uffff"),
        ("\udcff", "\\udcff"),  # what surrogateescape decoding leaves
    ],
)
def test_illegal_characters_are_replaced_visibly(raw, want):
    assert clean(raw) == want


def test_legal_characters_are_kept():
    text = "tab\there é 漢 \U0001f600 <&>]]>\n"
    assert clean(text) == text


@given(st.one_of(any_text, st.binary()))
def test_clean_output_is_xml_safe_and_stable(raw):
    out = clean(raw)
    assert XML_SAFE.fullmatch(out)
    out.encode()  # no lone surrogates left
    assert clean(out) == out


def test_bound_keeps_short_text():
    assert bound("short\x00", 100) == "short\\x00"


def test_bound_keeps_head_and_tail_and_says_how_much_is_cut():
    text = "TITLE\n" + "x" * 10_000 + "\nEND"
    out = bound(text, 1000)
    assert len(out.encode()) <= 1000
    assert out.startswith("TITLE\n")
    assert out.endswith("\nEND")
    marker = re.fullmatch(r"(.*)\n\[\.\.\. (\d+) bytes cut \.\.\.\]\n(.*)", out, re.DOTALL)
    head, cut, tail = marker.groups()
    assert len(head) + int(cut) + len(tail) == len(text)


def test_bound_refuses_a_limit_smaller_than_its_marker():
    with pytest.raises(ValueError, match="cut marker"):
        bound("x" * 100, 10)


@given(any_text, st.integers(min_value=40, max_value=300))
def test_bound_respects_the_limit_in_utf8_bytes(text, limit):
    out = bound(text, limit)
    assert len(out.encode()) <= limit
    assert XML_SAFE.fullmatch(out)


def test_one_line_takes_the_first_non_blank_line():
    assert one_line("\r\n  \x1b[31mBUG: oops\x1b[0m  \r\nsecond line") == "BUG: oops"


def test_one_line_is_bounded():
    assert one_line("é" * 100, 11) == "éééé..."


@given(any_text, st.integers(min_value=0, max_value=50))
def test_one_line_is_one_bounded_line(text, limit):
    out = one_line(text, limit)
    assert "\n" not in out
    assert len(out.encode()) <= limit
    assert XML_SAFE.fullmatch(out)


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("fork-stress_2", "fork-stress_2"),
        ("v6.9-rc1", "v6_9-rc1"),
        ("a b/é", "a_b__"),
        ("", "_"),
    ],
)
def test_junit_name(name, want):
    assert junit_name(name) == want


def test_noncharacters_in_bytes_are_shown_as_in_str():
    # U+FFFE and U+FFFF are made visible in the bytes, before the decode.
    data = b"a\xef\xbf\xbe\xe2\x82\xef\xbf\xbfz\xff\x00"
    assert clean(data) == "a\\ufffe\ufffd\\uffffz\ufffd\\x00"
    assert clean(data.decode("utf-8", errors="replace")) == clean(data)
