"""Vocabularies and tokenisation: the documented order of ids, encode then decode giving the text back,
unknowns mapped to the unknown symbol, JSON round trips and the errors of a bad file, placeholders kept
whole, and the unigram baseline against a hand computation."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rnnlab.errors import ConfigError, DataError
from rnnlab.tasks.vocab import PAD, UNK, UNKNOWN_CHAR, CharVocab, WordVocab, tokenize, unigram_bits_per_char


def test_char_vocab_orders_by_frequency_then_code_point():
    # a: 5, b: 2, r: 2, c: 1, d: 1
    assert CharVocab.build(["abra", "cadabra"]).symbols == (UNKNOWN_CHAR, "a", "b", "r", "c", "d")
    assert CharVocab.build(["abracadabra"], min_count=2).symbols == (UNKNOWN_CHAR, "a", "b", "r")


def test_char_vocab_encode_then_decode_gives_the_text_back():
    text = "To be, or not to be:\nthat is the question. \u00e9\u4e2d\U0001f3ad"  # beyond the BMP too
    vocab = CharVocab.build([text])
    ids = vocab.encode(text)
    assert ids.dtype == torch.int64 and ids.shape == (len(text),)
    assert (ids > 0).all()
    assert vocab.decode(ids) == text
    assert vocab.decode(ids.reshape(2, -1)) == text  # flattened
    assert [vocab.symbols[i] for i in ids.tolist()] == list(text)
    assert vocab.encode("").dtype == torch.int64 and vocab.encode("").shape == (0,)


def test_char_vocab_maps_unseen_and_rare_characters_to_the_unknown_symbol():
    vocab = CharVocab.build(["abracadabra"], min_count=2)
    assert vocab.encode("cab!").tolist() == [0, 1, 2, 0]
    assert vocab.decode(vocab.encode("cab!")) == f"{UNKNOWN_CHAR}ab{UNKNOWN_CHAR}"
    # U+FFFD in the text is the unknown symbol already, not a character of its own
    assert CharVocab.build([f"ab{UNKNOWN_CHAR}"]).symbols == (UNKNOWN_CHAR, "a", "b")
    with pytest.raises(DataError, match="id 6 is outside this vocabulary of 4 symbols"):
        vocab.decode([1, 6])
    with pytest.raises(DataError, match="no character occurs 2 times"):
        CharVocab.build(["", "abc"], min_count=2)
    with pytest.raises(ConfigError, match="min_count"):
        CharVocab.build(["abc"], min_count=0)


def test_word_vocab_specials_order_and_size():
    lists = [["the", "cat", "sat"], ["the", "dog", "sat"], ["the", "<pad>", "<unk>", "end"]]
    vocab = WordVocab.build(lists)
    # the: 3, sat: 2, then cat, dog, end (1 each) in code-point order; the specials are not counted
    assert vocab.symbols == (PAD, UNK, "the", "sat", "cat", "dog", "end")
    assert (vocab.pad_id, vocab.unknown_id) == (0, 1)
    assert WordVocab.build(lists, max_size=4).symbols == (PAD, UNK, "the", "sat")
    assert WordVocab.build(lists, min_count=2).symbols == (PAD, UNK, "the", "sat")
    with pytest.raises(ConfigError, match="max_size"):
        WordVocab.build(lists, max_size=2)
    with pytest.raises(DataError, match="no token occurs 4 times"):
        WordVocab.build(lists, min_count=4)


def test_word_vocab_encode_then_decode_and_unknown_tokens():
    vocab = WordVocab.build([["a", "rose", "is", "a", "rose"]])
    tokens = ["a", "rose", "is"]
    ids = vocab.encode(tokens)
    assert ids.dtype == torch.int64 and ids.tolist() == [2, 3, 4]
    assert vocab.decode(ids) == tokens
    assert vocab.encode(["a", "tulip"]).tolist() == [2, 1]
    assert vocab.decode(torch.tensor([[2, 1], [0, 0]])) == ["a", UNK, PAD, PAD]
    assert vocab.encode([]).shape == (0,)


@pytest.mark.parametrize(
    "vocab",
    [
        CharVocab.build(['say "caf\u00e9"\n\t\\ \U0001f3ad']),
        WordVocab.build([tokenize('Hello, {name}! %(count)d new "messages" \u00e0 l\'\u00e9cole')]),
    ],
    ids=["char", "word"],
)
def test_json_round_trip(tmp_path, vocab):
    again = type(vocab).from_json(vocab.to_json())
    assert again == vocab and again.symbols == vocab.symbols
    path = tmp_path / "vocab.json"
    vocab.save(path)
    assert path.read_text(encoding="ascii").endswith("\n")
    assert type(vocab).load(path) == vocab


def test_a_corrupt_or_mismatched_json_is_a_data_error_naming_the_file(tmp_path):
    path = tmp_path / "vocab.json"
    good = json.loads(CharVocab.build(["abc"]).to_json())
    cases = {
        '{"format": "rnnlab.char_vocab", ': r"not valid JSON \(.* at line 1, column",
        WordVocab.build([["a"]]).to_json(): "holds a 'rnnlab.word_vocab', expected an 'rnnlab.char_vocab'",
        "[1, 2]": "holds no 'format'",
        json.dumps({**good, "version": 2}): "rnnlab.char_vocab version 2, expected 1",
        json.dumps({**good, "symbols": "abc"}): "'symbols' must be a list of strings",
        json.dumps(
            {**good, "symbols": [UNKNOWN_CHAR, "ab"]}
        ): "an rnnlab.char_vocab holds single characters, not 'ab'",
        json.dumps(
            {**good, "symbols": [UNKNOWN_CHAR, "a", "a"]}
        ): r"an rnnlab.char_vocab holds each symbol once; repeated: \['a'\]",
        json.dumps({**good, "symbols": ["a", "b"]}): "an rnnlab.char_vocab starts with",
        json.dumps({**good, "symbols": [UNKNOWN_CHAR]}): "an rnnlab.char_vocab needs a symbol beside",
    }
    for text, message in cases.items():
        path.write_text(text)
        with pytest.raises(DataError, match=f"^{path}: {message}"):
            CharVocab.load(path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(DataError, match=f"^{path}: not UTF-8"):
        CharVocab.load(path)
    with pytest.raises(DataError, match="no such file"):
        WordVocab.load(tmp_path / "absent.json")
    with pytest.raises(DataError, match=r"^run/vocab.json: .*starts with \['<pad>', '<unk>'\]"):
        WordVocab.from_json(
            json.dumps({"format": "rnnlab.word_vocab", "version": 1, "symbols": ["a"]}), "run/vocab.json"
        )


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        (
            "Hello, {name}! You have %(count)d new messages (%s).",
            ["hello", ",", "{name}", "!", "you", "have", "%(count)d", "new", "messages", "(", "%s", ")", "."],
        ),
        (
            "{} {0} {user.name} {items[0]} {price:.2f} {name!r}",
            ["{}", "{0}", "{user.name}", "{items[0]}", "{price:.2f}", "{name!r}"],
        ),
        ("%d%% of %5.2f and %-10s, %(Total)X", ["%d", "%%", "of", "%5.2f", "and", "%-10s", ",", "%(Total)X"]),
        ("Dear {userName}, WELCOME", ["dear", "{userName}", ",", "welcome"]),  # placeholders keep their case
        ("50% of them", ["50", "%", "of", "them"]),  # "% o" is not a conversion here
        (
            "Don't o\u2019er-reach... snake_case",
            ["don't", "o\u2019er", "-", "reach", ".", ".", ".", "snake_case"],
        ),
        ("  \n\t ", []),
    ],
    ids=["mixed", "format-fields", "printf", "case", "percent", "words", "blank"],
)
def test_tokenize(text, tokens):
    assert tokenize(text) == tokens


def test_unigram_bits_per_char_by_hand():
    # vocabulary a, b and the unknown symbol (V = 3), N = 3: p(a) = 3/6, p(b) = 2/6, p(c) = p(unknown) = 1/6
    expected = (math.log2(2) + math.log2(3) + math.log2(6)) / 3
    assert unigram_bits_per_char("aab", "abc") == pytest.approx(expected, rel=1e-15)
    assert expected == pytest.approx(1.7233083338141042)
    # four characters once each and the unknown symbol: p = 2/9 for each
    assert unigram_bits_per_char("abcd", "dcba") == pytest.approx(math.log2(9 / 2), rel=1e-15)
    with pytest.raises(DataError, match="evaluation text is empty"):
        unigram_bits_per_char("abc", "")


def test_unigram_bits_per_char_is_the_smoothed_model_over_the_char_vocabulary():
    train, held_out = "the cat sat on the mat\n" * 3 + "zebra", "that bat is quick\n"
    vocab = CharVocab.build([train])
    counts = torch.bincount(vocab.encode(train), minlength=len(vocab)).double()
    p = (counts + 1) / (len(train) + len(vocab))
    expected = -torch.log2(p[vocab.encode(held_out)]).mean().item()
    assert unigram_bits_per_char(train, held_out) == pytest.approx(expected, rel=1e-12)
    # U+FFFD in training is the unknown symbol: it adds to the unknown's count, not to the vocabulary
    assert unigram_bits_per_char(f"aab{UNKNOWN_CHAR}", "c") == pytest.approx(math.log2(7 / 2), rel=1e-15)
