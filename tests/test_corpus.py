import pytest

from charmodel import CharModelError
from charmodel.run.corpus import Vocab, clean, decode, read_text, split
from charmodel.training.train import DEFAULTS, prepare_corpus


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


def test_cleaning_block_by_block_gives_exactly_the_whole_texts_cleaning(tmp_path):
    """Blocks of 1 to 64 bytes cut a text anywhere (CR LF, runs of spaces around a dropped control
    character, a BOM, multi-byte characters); the cleaned blocks must join to what cleaning the
    whole text gives, or to the same one-line error."""
    import random

    from charmodel.run.corpus import clean_blocks

    rng = random.Random(0)
    pieces = ["a", " ", "  ", "\r", "\n", "\r\n", "é", "漢", "\ufeff", "\x1a", "\x7f", "\t"]
    texts = ["\ufeffAlice  was\r\n  here\r\n\x1a", " \n\t ", "a \x1a b"]
    texts += ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 80))) for _ in range(200)]
    path = tmp_path / "t.txt"
    for text in texts:
        path.write_bytes(text.encode("utf-8"))
        for collapse in (True, False):
            try:
                whole = clean(read_text(path), collapse)
            except CharModelError as e:
                whole = f"error: {e}"
            for block_bytes in (1, 2, 3, 7, 64):
                try:
                    got = "".join(clean_blocks(path, collapse, block_bytes=block_bytes))
                except CharModelError as e:
                    got = f"error: {e}"
                assert got == whole, (text, collapse, block_bytes)


def test_tokenising_to_a_memory_mapped_file_matches_encoding_the_text(tmp_path, alice_text):
    import numpy as np

    from charmodel.run.corpus import scan, tokenise

    path = tmp_path / "alice.txt"
    path.write_text(alice_text, encoding="utf-8")
    found = scan(path)
    text = clean(read_text(path))
    assert found.vocab == Vocab.from_text(text) and found.chars == len(text)
    assert found.split_at() == len(split(text)[0])
    ids = tokenise(path, tmp_path / "ids.npy", found)
    assert isinstance(ids, np.memmap) and ids.dtype == np.uint8 and not ids.flags.writeable
    assert (np.asarray(ids) == found.vocab.encode(text)).all()
    assert not list(tmp_path.glob(".*tmp"))  # written through a temporary name, renamed
    wide = tmp_path / "wide.txt"
    wide.write_text("".join(chr(0x4E00 + i) for i in range(300)) * 3, encoding="utf-8")
    assert tokenise(wide, tmp_path / "wide.npy", scan(wide)).dtype == np.uint16


def test_an_opening_never_starts_inside_a_word():
    from charmodel.run.corpus import opening

    assert opening("x\n\n  `I'm glad you came") == "  `I'm glad "  # a paragraph: its first words
    assert opening("cept the king\nAnd the queen went\nto bed") == "And the "  # verse: the next line
    assert opening("cept the king went") == "the king "  # no lines: the next word
    assert opening("alone") == "alone"  # a single word: all there is
