"""Vocabularies and tokenisation for the text tasks: characters for a language model, words for
classification and translation, and the unigram baseline a character model must beat.

    CharVocab   id 0 is the unknown symbol (decoded as U+FFFD), then the characters of the training text
                by frequency, most frequent first, ties in code-point order
    WordVocab   id 0 is "<pad>", id 1 "<unk>", then the tokens by frequency, ties in code-point order of
                the token, at most `max_size` ids in all
    tokenize    lowercase words, single punctuation marks, and printf / str.format placeholders kept whole

Both vocabularies are saved with a run as JSON, `{"format": ..., "version": 1, "symbols": [...]}` where
`symbols[i]` is what id i means, and read back with `from_json` / `load`, which check the file and raise a
DataError naming it when it is corrupt or holds another kind of vocabulary.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from torch import Tensor

from rnnlab.errors import ConfigError, DataError

PathLike = str | os.PathLike[str]
VocabularyT = TypeVar("VocabularyT", bound="Vocabulary")

#: what `CharVocab.decode` gives for the unknown symbol: Unicode's REPLACEMENT CHARACTER.
UNKNOWN_CHAR = "\ufffd"
PAD, UNK = "<pad>", "<unk>"
JSON_VERSION = 1

#: a printf conversion, "%s", "%d", "%5.2f", "%%", or with a mapping key, "%(count)d". Its flags leave out
#: the space ("% d" is valid Python) so that "50% of" is not read as the conversion "% o".
PRINTF = r"%(?:\(\w+\))?[#0+\-]*(?:\d+|\*)?(?:\.(?:\d+|\*))?[diouxXeEfFgGcrsa%]"
#: a str.format field: "{}", "{0}", "{name}", "{user.name}", "{items[0]}", "{price:.2f}", "{name!r}".
FORMAT_FIELD = r"\{\w*(?:\.\w+|\[\w+\])*(?:![rsa])?(?::[^{}\s]*)?\}"
#: letters, digits and underscores, with apostrophes inside ("don't", "o'er" are one word each).
WORD = r"\w+(?:['\u2019]\w+)*"
#: any other character that is not white space, one at a time ("..." is three tokens).
PUNCTUATION = r"[^\w\s]"
TOKEN = re.compile(rf"(?P<placeholder>{PRINTF}|{FORMAT_FIELD})|{WORD}|{PUNCTUATION}")


def tokenize(text: str) -> list[str]:
    """The tokens of `text`: placeholders as they are, the rest lowercased (`str.lower`).

    `TOKEN` tries, at each place, a placeholder (`PRINTF`, `FORMAT_FIELD`), then a word (`WORD`), then a
    punctuation mark (`PUNCTUATION`); white space separates tokens and is dropped. Placeholders keep their
    case, since "%X" and "%x", "{userName}" and "{username}" differ, so a translation can carry them over.

    Example:
        >>> tokenize("Hello, {name}! You have %(count)d new messages (%s).")
        ['hello', ',', '{name}', '!', 'you', 'have', '%(count)d', 'new', 'messages', '(', '%s', ')', '.']
    """
    return [
        found[0] if found.lastgroup == "placeholder" else found[0].lower() for found in TOKEN.finditer(text)
    ]


class Vocabulary:
    """What both vocabularies share: `symbols[i]` is what id i means, and its JSON."""

    FORMAT: ClassVar[str]
    #: the symbols that lead every vocabulary of this kind, at ids 0, 1, ...
    SPECIALS: ClassVar[tuple[str, ...]]

    def __init__(self, symbols: Sequence[str]) -> None:
        """`symbols`, specials first: each once, and at least one beside the specials."""
        self.symbols = tuple(symbols)
        if len(self.symbols) == len(self.SPECIALS):
            raise DataError(f"an {self.FORMAT} needs a symbol beside {', '.join(self.SPECIALS)}")
        repeated = [symbol for symbol, count in Counter(self.symbols).items() if count > 1]
        if repeated:
            raise DataError(f"an {self.FORMAT} holds each symbol once; repeated: {repeated[:5]}")
        self._ids = {symbol: i for i, symbol in enumerate(self.symbols)}

    def __len__(self) -> int:
        return len(self.symbols)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and type(other) is type(self) and other.symbols == self.symbols

    def __hash__(self) -> int:
        return hash((type(self), self.symbols))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} symbols)"

    def to_json(self) -> str:
        """The vocabulary as JSON text (ASCII: other characters as \\u escapes)."""
        return json.dumps({"format": self.FORMAT, "version": JSON_VERSION, "symbols": list(self.symbols)})

    @classmethod
    def from_json(cls: type[VocabularyT], text: str, where: str = "vocabulary JSON") -> VocabularyT:
        """The vocabulary that `to_json` wrote; a DataError starting with `where` (the file) if `text` is
        not valid JSON, holds another format or version, or its symbols are not a vocabulary of this kind."""
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(
                f"{where}: not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})"
            ) from None
        found = data.get("format") if isinstance(data, dict) else None
        if found != cls.FORMAT:
            what = f"a {found!r}" if isinstance(found, str) else "no 'format'"
            raise DataError(
                f"{where}: holds {what}, expected an {cls.FORMAT!r} (is it an rnnlab vocabulary?)"
            )
        if data.get("version") != JSON_VERSION:
            raise DataError(f"{where}: {cls.FORMAT} version {data.get('version')!r}, expected {JSON_VERSION}")
        symbols = data.get("symbols")
        if not isinstance(symbols, list) or not all(isinstance(symbol, str) for symbol in symbols):
            raise DataError(f"{where}: 'symbols' must be a list of strings")
        specials = symbols[: len(cls.SPECIALS)]
        if specials != list(cls.SPECIALS):
            raise DataError(
                f"{where}: an {cls.FORMAT} starts with {list(cls.SPECIALS)}, this one with {specials}"
            )
        try:
            return cls(symbols[len(cls.SPECIALS) :])
        except DataError as error:
            raise DataError(f"{where}: {error}") from None

    def save(self, path: PathLike) -> None:
        """Write `to_json` to `path` (what `load` reads)."""
        Path(path).write_text(self.to_json() + "\n", encoding="ascii")

    @classmethod
    def load(cls: type[VocabularyT], path: PathLike) -> VocabularyT:
        """The vocabulary saved at `path`; a DataError naming the file if it is missing or corrupt."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(f"{path}: no such file") from None
        except UnicodeDecodeError as error:
            raise DataError(f"{path}: not UTF-8 (byte offset {error.start}), so not a vocabulary") from None
        return cls.from_json(text, where=str(path))

    def _checked_ids(self, ids: Tensor | Sequence[int]) -> np.ndarray:
        values = torch.as_tensor(ids, dtype=torch.int64).reshape(-1).cpu().numpy()
        outside = values[(values < 0) | (values >= len(self))]
        if outside.size:
            raise DataError(f"id {int(outside[0])} is outside this vocabulary of {len(self)} symbols")
        return values


class CharVocab(Vocabulary):
    """Characters and their ids: id 0 the unknown symbol, then one id per character.

    Example:
        >>> vocab = CharVocab.build(["abracadabra"])
        >>> vocab.symbols
        ('\ufffd', 'a', 'b', 'r', 'c', 'd')
        >>> vocab.encode("cab!").tolist()
        [4, 1, 2, 0]
        >>> vocab.decode([4, 1, 2, 0])
        'cab\ufffd'
    """

    FORMAT = "rnnlab.char_vocab"
    SPECIALS = (UNKNOWN_CHAR,)
    unknown_id = 0

    def __init__(self, characters: Sequence[str]) -> None:
        """A vocabulary of `characters` (ids 1, 2, ... in this order), each a single character."""
        not_single = [c for c in characters if not isinstance(c, str) or len(c) != 1]
        if not_single:
            raise DataError(f"an {self.FORMAT} holds single characters, not {not_single[0]!r}")
        super().__init__((UNKNOWN_CHAR, *characters))
        # code points sorted, and the id of each, for encoding by binary search
        code_points = np.array([ord(c) for c in characters], dtype=np.int64)
        order = np.argsort(code_points)
        self._sorted_code_points = code_points[order]
        self._sorted_ids = order + 1
        self._code_points = np.array([ord(c) for c in self.symbols], dtype=np.uint32)

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 1) -> CharVocab:
        """The characters of `texts` that occur at least `min_count` times, by frequency (most frequent
        first), ties in code-point order; the rarer ones are left to the unknown symbol, and so is U+FFFD
        (what a decoder puts for bytes it could not read)."""
        if min_count < 1:
            raise ConfigError(f"min_count must be at least 1, got {min_count}")
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(text)
        kept = [c for c, count in counts.items() if count >= min_count and c != UNKNOWN_CHAR]
        if not kept:
            raise DataError(f"no character occurs {min_count} times or more in the texts")
        return cls(sorted(kept, key=lambda c: (-counts[c], ord(c))))

    def encode(self, text: str) -> Tensor:
        """(len(text),) int64: the id of each character, `unknown_id` for those not in the vocabulary."""
        code_points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.int64)
        at = np.searchsorted(self._sorted_code_points, code_points).clip(max=len(self._sorted_ids) - 1)
        ids = np.where(self._sorted_code_points[at] == code_points, self._sorted_ids[at], self.unknown_id)
        return torch.from_numpy(ids.astype(np.int64))

    def decode(self, ids: Tensor | Sequence[int]) -> str:
        """The text of `ids` (flattened), U+FFFD for the unknown symbol; DataError for an id outside."""
        code_points = self._code_points[self._checked_ids(ids)]
        return code_points.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")


class WordVocab(Vocabulary):
    """Tokens and their ids: 0 "<pad>" (fills short sequences), 1 "<unk>" (any token not in it), then one
    id per token.

    Example:
        >>> vocab = WordVocab.build([["a", "rose", "is", "a", "rose"]])
        >>> vocab.symbols
        ('<pad>', '<unk>', 'a', 'rose', 'is')
        >>> vocab.encode(["a", "tulip"]).tolist()
        [2, 1]
    """

    FORMAT = "rnnlab.word_vocab"
    SPECIALS = (PAD, UNK)
    pad_id, unknown_id = 0, 1

    def __init__(self, tokens: Sequence[str]) -> None:
        """A vocabulary of `tokens` (ids 2, 3, ... in this order), each a non-empty string."""
        bad = [token for token in tokens if not isinstance(token, str) or not token]
        if bad:
            raise DataError(f"an {self.FORMAT} holds non-empty strings, not {bad[0]!r}")
        super().__init__((PAD, UNK, *tokens))

    @classmethod
    def build(
        cls, token_lists: Iterable[Sequence[str]], max_size: int | None = None, min_count: int = 1
    ) -> WordVocab:
        """The tokens that occur at least `min_count` times, by frequency (most frequent first), ties in
        code-point order, cut to `max_size` ids in all ("<pad>" and "<unk>" included; None: no cap). The
        tokens "<pad>" and "<unk>" in the lists are not counted: they are the specials."""
        if min_count < 1:
            raise ConfigError(f"min_count must be at least 1, got {min_count}")
        if max_size is not None and max_size <= len(cls.SPECIALS):
            raise ConfigError(f"max_size must leave room for a token beside {PAD} and {UNK}, got {max_size}")
        counts = Counter(token for tokens in token_lists for token in tokens if token not in cls.SPECIALS)
        kept = sorted(
            (token for token, count in counts.items() if count >= min_count), key=lambda t: (-counts[t], t)
        )
        if not kept:
            raise DataError(f"no token occurs {min_count} times or more in the token lists")
        return cls(kept if max_size is None else kept[: max_size - len(cls.SPECIALS)])

    def encode(self, tokens: Sequence[str]) -> Tensor:
        """(len(tokens),) int64: the id of each token, `unknown_id` for those not in the vocabulary."""
        return torch.tensor([self._ids.get(token, self.unknown_id) for token in tokens], dtype=torch.int64)

    def decode(self, ids: Tensor | Sequence[int]) -> list[str]:
        """The tokens of `ids` (flattened), "<pad>" and "<unk>" included; DataError for an id outside."""
        return [self.symbols[i] for i in self._checked_ids(ids).tolist()]


class TargetVocab(Vocabulary):
    """The tokens a decoder writes: 0 "<pad>", 1 "<bos>" (what it reads first), 2 "<eos>" (where it stops),
    3 "<unk>", then one id per token (as `rnnlab.seq2seq`'s PAD, BOS, EOS).

    Example:
        >>> vocab = TargetVocab.build([["d", "e", "u", "x"]])
        >>> vocab.encode(["d", "e", "?"]).tolist()
        [1, 4, 5, 3, 2]
    """

    FORMAT = "rnnlab.target_vocab"
    SPECIALS = (PAD, "<bos>", "<eos>", UNK)
    pad_id, bos_id, eos_id, unknown_id = 0, 1, 2, 3

    def __init__(self, tokens: Sequence[str]) -> None:
        super().__init__((*self.SPECIALS, *tokens))

    @classmethod
    def build(
        cls, token_lists: Iterable[Sequence[str]], max_size: int | None = None, min_count: int = 1
    ) -> TargetVocab:
        """As `WordVocab.build`, with this vocabulary's four specials."""
        words = WordVocab.build(token_lists, None if max_size is None else max_size - 2, min_count)
        return cls(words.symbols[len(WordVocab.SPECIALS) :])

    def encode(self, tokens: Sequence[str]) -> Tensor:
        """(len(tokens) + 2,) int64: BOS, the id of each token (`unknown_id` for those not in it), EOS."""
        ids = [self._ids.get(token, self.unknown_id) for token in tokens]
        return torch.tensor([self.bos_id, *ids, self.eos_id], dtype=torch.int64)

    def decode(self, ids: Tensor | Sequence[int]) -> list[str]:
        """The tokens of `ids` up to the first EOS, the specials left out (but "<unk>")."""
        out = []
        for i in self._checked_ids(ids).tolist():
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                out.append(self.symbols[i])
        return out


def unigram_bits_per_char(train_text: str, eval_text: str) -> float:
    """The bits per character of `eval_text` under a unigram model of `train_text`: the baseline that a
    character-level language model must beat.

    The model is over the vocabulary `CharVocab.build([train_text])` gives, the V - 1 characters of the
    training text and the unknown symbol, which every character unseen in training is. With add-one
    smoothing a symbol s of training count n_s has p(s) = (n_s + 1) / (N + V), N = len(train_text); the
    result is -(1 / len(eval_text)) * sum over eval_text of log2 p.

    Example: train "aab", eval "abc": V = 3 (a, b, unknown), p = 3/6, 2/6, 1/6 and the bits per character
    are (1 + log2 3 + log2 6) / 3 = 1.7233.
    """
    if not eval_text:
        raise DataError("unigram_bits_per_char: the evaluation text is empty")
    counts = Counter(train_text)
    unknown = counts.pop(UNKNOWN_CHAR, 0)  # U+FFFD in the training text is the unknown symbol too
    denominator = len(train_text) + len(counts) + 1
    bits = sum(
        count * -math.log2((counts.get(c, unknown) + 1) / denominator)
        for c, count in Counter(eval_text).items()
    )
    return bits / len(eval_text)


__all__ = [
    "PAD",
    "TOKEN",
    "UNK",
    "UNKNOWN_CHAR",
    "CharVocab",
    "Vocabulary",
    "WordVocab",
    "tokenize",
    "unigram_bits_per_char",
]
