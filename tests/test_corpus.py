import pytest

from charmodel import CharModelError
from charmodel.corpus import Vocab, clean, decode, read_text, split
from charmodel.train import prepare_corpus, DEFAULTS


def test_cleaning_normalises_line_endings_and_drops_control_characters():
    assert clean("a\r\nb\rc\x1a\x00d\te") == "a\nb\ncd\te"


def test_runs_of_spaces_collapse_but_newlines_stay():
    assert clean("  Alice   was\n\n  here") == " Alice was\n\n here"


def test_space_collapse_can_be_switched_off():
    assert clean("a   b", collapse_spaces=False) == "a   b"


def test_bundled_alice_cleans_without_crlf_or_eof_byte(alice_text):
    assert "\r" not in alice_text and "\x1a" not in alice_text and "  " not in alice_text
    assert "`Curiouser and curiouser!'" in alice_text


def test_split_is_the_last_tenth_contiguous_and_deterministic(alice_text):
    train, val = split(alice_text)
    assert train + val == alice_text
    assert len(val) == round(len(alice_text) * 0.1)
    assert split(alice_text) == (train, val)


def test_vocab_round_trips_and_names_unknown_characters():
    v = Vocab.from_text("hello world")
    assert v.decode(v.encode("hello")) == "hello"
    with pytest.raises(CharModelError, match=r"2 character\(s\).*'Z', '!'"):
        v.encode("hello Z!", "prime text")
    assert v.drop_unknown("hello Z!") == "hello "


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "is empty"),
        (b"   \n ", "is empty"),
        (b"abc\x00def", "binary"),
        ("café".encode("latin-1"), "not UTF-8"),
    ],
)
def test_bad_corpus_bytes_are_refused_with_one_line(data, message):
    with pytest.raises(CharModelError, match=message) as e:
        decode(data, "upload.txt")
    assert "\n" not in str(e.value)


def test_oversized_corpus_is_refused(tmp_path):
    p = tmp_path / "big.txt"
    p.write_text("a" * 2000)
    with pytest.raises(CharModelError, match="over the"):
        read_text(p, max_bytes=1000)


def test_missing_corpus_file_is_named(tmp_path):
    with pytest.raises(CharModelError, match="does not exist"):
        read_text(tmp_path / "nope.txt")


def test_text_too_short_for_one_batch_is_refused(tmp_path):
    p = tmp_path / "short.txt"
    p.write_text("Alice was beginning to get very tired. " * 20)
    with pytest.raises(CharModelError, match="fewer than the 6401 one batch needs"):
        prepare_corpus(p, dict(DEFAULTS))
