"""Sequence classification: speech and other labelled sequences of their own lengths.

    --task classify                                      JapaneseVowels (rnnlab data get sktime)
    --task classify --task.path recordings/              a folder of wavs, labels in the file names
    --task classify --task.path data.csv                 a long CSV: one row per (sequence, step)

Readers: `sequence_files.py`. A folder of audio becomes MFCC sequences (`audio.py`, cached); a CSV names
its columns (`id_column`, `order_column`, `label_column`, `feature_columns`). Batches are padded to their
longest sequence and carry each one's length, so the recurrent layer stops at it (`lengths`): padding never
reaches the state that is classified. Features are standardised per channel with the training part's
statistics. The test split is the data set's own where it has one (JapaneseVowels' files; a pattern with
{index}: recordings below `test_below`, the Free Spoken Digit Dataset's rule), else a stratified
`test_fraction`; validation is a stratified share of the training part. Baseline: the majority class.

A file of the user's to evaluate on or predict for (`input_batches`) is read as the task's own data is:
a JapaneseVowels-style .ts file, a folder of wavs named by the task's pattern (to predict: any .wav names),
or a long CSV with the task's id, order and feature columns (in the training CSV's order) and its label
column (which prediction does without); its labels must be training classes.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnlab.errors import ConfigError, DataError
from rnnlab.settings import option
from rnnlab.tasks.base import Batch, Task, class_ids
from rnnlab.tasks.config import TaskConfig
from rnnlab.tasks.sequence_files import (
    FSDD_PATTERN,
    Sequences,
    load_japanese_vowels,
    pattern_regex,
    read_audio_folder,
    read_long_csv,
    read_ts,
)
from rnnlab.tasks.text_files import stratified_split

DATASETS = ("japanese_vowels",)


class ClassifyTask(Task):
    """Classify variable-length sequences (see the module docstring).

    Args:
        dataset: "japanese_vowels" (when no path is given).
        path: a folder of wav files or a long-format CSV file ("" for the dataset).
        pattern: the wav files' names, with {label} (and {speaker}, {index}).
        id_column, order_column, label_column: the CSV's columns of the sequence id, the step order and
            the label; feature_columns: comma-separated feature columns ("" for all the others).
        test_below: with {index} in the pattern, recordings whose index is below this are the test set.
        test_fraction: share of the sequences held out for test when the data has no split of its own.
        val_fraction: share of the training sequences held out for validation.
        batch_size: sequences per batch.
        seed: seed of the stratified splits.
    """

    name = "classify"
    output = "last"

    @dataclass
    class Settings(TaskConfig):
        name: str = option("classify", "task to train on, from rnnlab.tasks.TASKS")
        dataset: str = option("japanese_vowels", "the data set, when no path is given", choices=DATASETS)
        path: str = option("", "a folder of wav files or a long-format CSV (empty: the data set)")
        pattern: str = option(FSDD_PATTERN, "names of the wav files: {label}, and {speaker}, {index}")
        id_column: str = option("id", "the CSV column of the sequence id")
        order_column: str = option("step", "the CSV column of the step order within a sequence")
        label_column: str = option("label", "the CSV column of the label")
        feature_columns: str = option("", "comma-separated CSV feature columns (empty: all the others)")
        test_below: int = option(5, "with {index} in the pattern: indices below this are the test set", min=0)
        test_fraction: float = option(0.2, "share held out for test when the data has no split", gt=0, lt=1)
        val_fraction: float = option(
            0.1, "share of the training sequences held out for validation", gt=0, lt=1
        )
        batch_size: int = option(32, "sequences per batch", min=1)
        seed: int = option(0, "seed of the stratified splits", min=0)

    def __init__(
        self,
        dataset: str = "japanese_vowels",
        path: str = "",
        pattern: str = FSDD_PATTERN,
        id_column: str = "id",
        order_column: str = "step",
        label_column: str = "label",
        feature_columns: str = "",
        test_below: int = 5,
        test_fraction: float = 0.2,
        val_fraction: float = 0.1,
        batch_size: int = 32,
        seed: int = 0,
    ) -> None:
        self.dataset, self.path, self.pattern = dataset, path, pattern
        self.id_column, self.order_column, self.label_column = id_column, order_column, label_column
        self.feature_columns, self.test_below = feature_columns, test_below
        self.test_fraction, self.val_fraction, self.batch_size, self.seed = (
            test_fraction,
            val_fraction,
            batch_size,
            seed,
        )
        #: a CSV's feature columns, in the order the model reads them (empty for audio and .ts files)
        self.feature_names: tuple[str, ...] = ()
        train, test = self._read()
        val_mask = stratified_split(train.labels, val_fraction, seed)
        self.train = train.subset(torch.nonzero(~val_mask).squeeze(1))
        self.val = train.subset(torch.nonzero(val_mask).squeeze(1))
        self.test = test
        steps = torch.cat(self.train.features)  # every training step: the statistics of each channel
        self.mean, self.std = steps.mean(0), steps.std(0).clamp(min=1e-8)
        self.classes = train.classes
        self.input_size, self.output_size = train.feature_size, len(train.classes)
        counts = torch.bincount(self.train.labels, minlength=self.output_size)
        self.majority = int(counts.argmax())
        self.prior = counts.double() / counts.sum()

    def _read(self) -> tuple[Sequences, Sequences]:
        """(train, test) of the data set or the user's files."""
        if not self.path:
            if self.dataset != "japanese_vowels":
                raise ConfigError(f"task.dataset: one of {', '.join(DATASETS)}, got {self.dataset!r}")
            return load_japanese_vowels("train"), load_japanese_vowels("test")
        path = Path(self.path)
        if path.is_dir():
            every = read_audio_folder(path, self.pattern)
            regex = pattern_regex(self.pattern)
            if "index" in regex.groupindex and every.ids is not None:
                matches = [regex.fullmatch(name) for name in every.ids]
                held = torch.tensor([m is not None and int(m["index"]) < self.test_below for m in matches])
                if bool(held.any()) and not bool(held.all()):
                    return _parts(every, held)
        else:
            self.feature_names = tuple(self._feature_columns(path))
            every = read_long_csv(
                path, self.id_column, self.order_column, self.feature_names, self.label_column
            )
        return _parts(every, stratified_split(every.labels, self.test_fraction, self.seed))

    def _feature_columns(self, path: Path) -> list[str]:
        """The CSV's feature columns: those `feature_columns` names, else every column of its header but
        the id, order and label columns."""
        named = [c.strip() for c in self.feature_columns.split(",") if c.strip()]
        others = (self.id_column, self.order_column, self.label_column)
        return named or [column for column in _csv_header(path) if column not in others]

    def input_batches(self, path: Path, labelled: bool = True) -> list[Batch]:
        """A .ts file, a folder of wavs or a long CSV (see the module docstring), standardised with the
        training statistics, in file order (a folder's files sorted by name; the rows carry their ids:
        the CSV's sequence ids, the wavs' names)."""
        path = Path(path)
        data = self._read_input(path, labelled)
        if data.feature_size != self.input_size:
            raise DataError(
                f"{path}: {data.feature_size} features per step, but the run's model reads {self.input_size}"
            )
        for i, x in enumerate(data.features):
            if not bool(torch.isfinite(x).all()):
                which = data.ids[i] if data.ids is not None else f"number {i + 1}"
                raise DataError(f"{path}: sequence {which} holds NaN (a missing value, '?')")
        if labelled:
            labels = class_ids((data.classes[k] for k in data.labels.tolist()), self.classes, str(path))
        else:
            labels = torch.full((len(data),), -1, dtype=torch.int64)
        return list(self._batches(data, torch.arange(len(data)), labels))

    def _read_input(self, path: Path, labelled: bool) -> Sequences:
        if path.is_dir():
            return read_audio_folder(path, self.pattern if labelled else _any_name(self.pattern))
        if not path.is_file():
            raise DataError(f"{path}: no such file or folder")
        if path.suffix.lower() == ".ts":
            return read_ts(path)
        columns = list(self.feature_names) or self._feature_columns(path)
        # without labels, the sequence id stands in for the label column, which the file may lack
        label = self.label_column if labelled else self.id_column
        return read_long_csv(path, self.id_column, self.order_column, columns, label)

    def _batches(self, data: Sequences, order: Tensor, labels: Tensor | None = None) -> Iterable[Batch]:
        """Batches of the sequences at `order`, standardised and padded, with their `labels` (default:
        the data's own) and ids."""
        labels = data.labels if labels is None else labels
        for i in range(0, len(order), self.batch_size):
            rows = order[i : i + self.batch_size].tolist()
            seqs = [(data.features[r] - self.mean) / self.std for r in rows]
            lengths = torch.tensor([len(s) for s in seqs], dtype=torch.int64)
            x = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True)
            ids = None if data.ids is None else tuple(data.ids[r] for r in rows)
            yield Batch(x, labels[rows], lengths, ids=ids)

    def train_batches(self, generator: torch.Generator) -> Iterable[Batch]:
        return self._batches(self.train, torch.randperm(len(self.train), generator=generator))

    def val_batches(self) -> Iterable[Batch]:
        return self._batches(self.val, torch.arange(len(self.val)))

    def test_batches(self) -> Iterable[Batch]:
        return self._batches(self.test, torch.arange(len(self.test)))

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(outputs, targets)

    def metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        return {"accuracy": float((outputs.argmax(-1) == targets).float().mean())}

    def baseline(self) -> dict[str, float]:
        """The training set's majority class on the validation set (and the loss of its frequencies)."""
        labels = self.val.labels
        log_prior = torch.log(self.prior.clamp(min=1e-12))
        return {
            "loss": float(-log_prior[labels].mean()),
            "accuracy": float((labels == self.majority).double().mean()),
        }

    @classmethod
    def recipe_for(cls, config: TaskConfig) -> dict[str, Any]:
        """A GRU over the whole sequence, classified from its last valid state."""
        return {
            "model.cell": "gru",
            "model.hidden_size": 128,
            "optim.name": "adam",
            "optim.lr": 2e-3,
            "clip.mode": "norm",
            "clip.max_norm": 1.0,
            "schedule.name": "cosine",
            "steps": 1500,
            "eval.every": 250,
            "eval.metric": "accuracy",
            "eval.mode": "max",
            "checkpoint.every": 500,
        }


def _any_name(pattern: str) -> str:
    """A pattern that any file name at `pattern`'s depth and with its ending matches: "{label}.wav" for
    the top folder (the "label" is then the name, which prediction ignores)."""
    folders = "".join(f"{{folder{i}}}/" for i in range(pattern.count("/")))
    return f"{folders}{{label}}{Path(pattern).suffix}"


def _csv_header(path: Path) -> list[str]:
    """The first non-blank row of a CSV file; a DataError naming the file when it cannot be read."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return next((row for row in csv.reader(f) if row), [])
    except OSError as e:
        raise DataError(f"{path}: cannot read it ({e.strerror or e})") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: not a UTF-8 CSV file ({e})") from None


def _parts(every: Sequences, held: Tensor) -> tuple[Sequences, Sequences]:
    return every.subset(torch.nonzero(~held).squeeze(1)), every.subset(torch.nonzero(held).squeeze(1))


__all__ = ["DATASETS", "ClassifyTask"]
