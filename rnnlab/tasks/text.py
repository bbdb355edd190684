"""Text tasks: a character-level language model over Shakespeare, the Python standard library or your text.

    --task charlm                       Shakespeare's plays (rnnlab data get shakespeare), ~5M characters
    --task charlm --task.corpus stdlib  the standard library's own source: always here
    --task charlm --task.path F         your text file, or a folder of .txt files

The corpus is split by whole documents (held-out plays for validation and test, `text_files.split_documents`);
a corpus of fewer than three documents is split inside its text instead, the last parts held out. The
vocabulary is the training part's characters (unseen ones map to the unknown symbol). Training is a stream:
the training text laid out as `batch_size` rows, cut into consecutive `seq_len`-step batches, for stateful
truncated BPTT (each batch continues the last; the recipe sets `bptt.stateful`), with a random shift of the
cuts each epoch. Inputs are one-hot characters; the target is the next character. Metric: bits per character
(`bpc`, the cross-entropy / ln 2) beside the unigram baseline (character frequencies of the training text).

A text of the user's to evaluate on (`input_batches`: a file, or a folder of .txt files joined as the corpus
is) is streamed as the test text is, in the run's vocabulary: a character outside it is the unknown symbol,
as in the validation and test texts. A language model predicts no items: it continues a prompt
(`rnnlab generate`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnlab.errors import ConfigError, DataError
from rnnlab.settings import option
from rnnlab.tasks.base import Batch, Task
from rnnlab.tasks.config import TaskConfig
from rnnlab.tasks.text_files import Document, load_shakespeare, load_stdlib_source, read_text, split_documents
from rnnlab.tasks.vocab import CharVocab, unigram_bits_per_char

CORPORA = ("shakespeare", "stdlib")


class CharLMTask(Task):
    """Predict the next character (see the module docstring).

    Args:
        corpus: "shakespeare" or "stdlib" (ignored when `path` is given).
        path: a text file or a folder of .txt files ("" for the corpus).
        seq_len: steps per batch (the truncation length of BPTT).
        batch_size: parallel rows of the stream.
        val_fraction, test_fraction: shares of the characters held out (by whole documents).
        max_chars: use at most this many characters of each part (0: all), for quick runs.
        seed: seed of the split by documents.
    """

    name = "charlm"
    output = "sequence"
    stream = True

    @dataclass
    class Settings(TaskConfig):
        name: str = option("charlm", "task to train on, from rnnlab.tasks.TASKS")
        corpus: str = option("shakespeare", "the text, when no path is given", choices=CORPORA)
        path: str = option("", "your text file or folder of .txt files (empty: the corpus)")
        seq_len: int = option(100, "characters per batch: the truncation length of BPTT", min=1)
        batch_size: int = option(64, "parallel rows of the text stream", min=1)
        val_fraction: float = option(0.1, "share of the characters held out for validation", gt=0, lt=1)
        test_fraction: float = option(0.1, "share of the characters held out for test", min=0, lt=1)
        max_chars: int = option(0, "at most this many characters of each part (0: all)", min=0)
        seed: int = option(0, "seed of the split by documents", min=0)

    def __init__(
        self,
        corpus: str = "shakespeare",
        path: str = "",
        seq_len: int = 100,
        batch_size: int = 64,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        max_chars: int = 0,
        seed: int = 0,
    ) -> None:
        self.corpus, self.path, self.seq_len, self.batch_size = corpus, path, seq_len, batch_size
        self.val_fraction, self.test_fraction, self.max_chars, self.seed = (
            val_fraction,
            test_fraction,
            max_chars,
            seed,
        )
        documents = read_text(path) if path else _corpus(corpus)
        train, val, test = _split(documents, val_fraction, test_fraction, seed)
        if max_chars:
            train, val, test = train[:max_chars], val[:max_chars], test[:max_chars]
        self.vocab = CharVocab.build([train])
        self.input_size = self.output_size = len(self.vocab)
        self.train_ids = self.vocab.encode(train)
        self.val_ids, self.test_ids = self.vocab.encode(val), self.vocab.encode(test)
        rows = max(1, self.train_ids.numel() // (seq_len + 1))
        if self.train_ids.numel() < 2 * (seq_len + 1) or rows < batch_size:
            raise DataError(
                f"the training text ({self.train_ids.numel()} characters) is too short for batch_size "
                f"{batch_size} rows of at least seq_len + 1 = {seq_len + 1} characters each"
            )
        self._unigram = unigram_bits_per_char(train, val) if val else math.nan

    def train_batches(self, generator: torch.Generator) -> Iterable[Batch]:
        shift = int(torch.randint(0, self.seq_len, (), generator=generator))
        return self._stream(self.train_ids[shift:], self.batch_size)

    def val_batches(self) -> Iterable[Batch]:
        return self._stream(self.val_ids, self.batch_size)

    def test_batches(self) -> Iterable[Batch]:
        return self._stream(self.test_ids, self.batch_size)

    def input_batches(self, path: Path, labelled: bool = True) -> list[Batch]:
        """A text file, or a folder of .txt files, as the test text is streamed: `batch_size` rows of
        `seq_len`-step batches, in the run's vocabulary (unseen characters: the unknown id). The targets are
        the text's own next characters, so `labelled` changes nothing."""
        text = "\n\n".join(document.text for document in read_text(path))
        ids = self.vocab.encode(text)
        if ids.numel() < self.seq_len + 1:
            raise DataError(
                f"{path}: {ids.numel()} characters, fewer than one batch of seq_len + 1 = {self.seq_len + 1}"
            )
        return list(self._stream(ids, self.batch_size))

    def prediction_rows(self, outputs: Tensor, batch: Batch) -> list[dict[str, Any]]:
        """None: a language model continues a prompt instead."""
        raise ConfigError(
            "the charlm task makes no per-item predictions; continue a prompt with: rnnlab generate RUN "
            '--prompt "..."'
        )

    def _stream(self, ids: Tensor, rows: int) -> Iterable[Batch]:
        """`ids` as `rows` consecutive streams cut into seq_len-step batches: inputs one-hot (rows, T, V),
        targets the next character (rows, T); row r of batch k + 1 continues row r of batch k."""
        rows = min(rows, max(1, (ids.numel() - 1) // self.seq_len))
        length = (ids.numel() - 1) // rows
        if length < 1:
            return
        x = ids[: rows * length].reshape(rows, length)
        y = ids[1 : rows * length + 1].reshape(rows, length)
        for start in range(0, length - self.seq_len + 1, self.seq_len):
            chunk = x[:, start : start + self.seq_len]
            yield Batch(self.inputs(chunk), y[:, start : start + self.seq_len])

    def inputs(self, ids: Tensor) -> Tensor:
        """The model's inputs for character ids (B, T): one-hot (B, T, V)."""
        return F.one_hot(ids, self.input_size).float()

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1))

    def metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        return {"bpc": float(self.loss(outputs, targets)) / math.log(2)}

    def artifacts(self) -> dict[str, str]:
        """The vocabulary, built on the training part: `vocab.json` in the run folder."""
        return {"vocab.json": self.vocab.to_json()}

    def baseline(self) -> dict[str, float]:
        """The unigram model of the training characters (add-one smoothing) on the validation text."""
        return {"loss": self._unigram * math.log(2), "bpc": self._unigram}

    @classmethod
    def recipe_for(cls, config: TaskConfig) -> dict[str, Any]:
        """A stateful LSTM over 100-character windows (Karpathy's char-rnn setup, smaller for a CPU)."""
        return {
            "model.cell": "lstm",
            "model.hidden_size": 512,
            "task.batch_size": 32,
            "bptt.stateful": True,
            "optim.name": "adam",
            "optim.lr": 2e-3,
            "clip.mode": "norm",
            "clip.max_norm": 1.0,
            "schedule.name": "cosine",
            "steps": 3000,
            "eval.every": 1000,
            "eval.metric": "bpc",
            "checkpoint.every": 500,
        }


def _corpus(name: str) -> list[Document]:
    if name == "stdlib":
        return load_stdlib_source()
    if name == "shakespeare":
        return load_shakespeare()
    raise ValueError(f"corpus must be one of {', '.join(CORPORA)}, got {name!r}")


def _split(documents: list[Document], val: float, test: float, seed: int) -> tuple[str, str, str]:
    """The training, validation and test texts: by whole documents when there are three or more, else the
    last parts of the joined text (in order: train, validation, test)."""
    if len(documents) >= 3:
        parts = split_documents(documents, val, test, seed)
        return tuple("\n\n".join(d.text for d in part) for part in (parts.train, parts.val, parts.test))  # type: ignore[return-value]
    text = "\n\n".join(d.text for d in documents)
    a, b = int(len(text) * (1 - val - test)), int(len(text) * (1 - test))
    return text[:a], text[a:b], text[b:]


__all__ = ["CORPORA", "CharLMTask"]
