"""Sequential images: the orders, the splits, the scaling and the majority-class baseline."""

import numpy as np
import pytest
import torch
from test_image_files import csv_rows

from rnnlab.cli import main
from rnnlab.tasks import SequentialImagesTask
from rnnlab.tasks import image_files as files


def write_mnist(tmp_path, per_class: int = 10):
    """A CSV in mnist_5k's format: `per_class` images of each class, pixel p of image n = (n + p) % 256."""
    n = 10 * per_class
    pixels = (np.arange(n)[:, None] + np.arange(784)[None]) % 256
    labels = np.repeat(np.arange(10), per_class)
    path = tmp_path / "mnist.csv"
    path.write_text(csv_rows(pixels.reshape(n, 28, 28).astype(np.uint8), labels))
    return path


@pytest.fixture
def mnist(tmp_path):
    return str(write_mnist(tmp_path))


def test_rows_pixels_and_permuted_orders(mnist):
    rows = SequentialImagesTask("mnist", order="rows", root=mnist, seed=1)
    pixels = SequentialImagesTask("mnist", order="pixels", root=mnist, seed=1)
    permuted = SequentialImagesTask("mnist", order="permuted", root=mnist, seed=1)
    assert (rows.seq_len, rows.input_size) == (28, 28) and rows.train[0].shape[1:] == (28, 28)
    assert (pixels.seq_len, pixels.input_size) == (784, 1)
    assert torch.equal(pixels.train[0][..., 0], rows.train[0].reshape(-1, 784))  # row after row
    a, b = pixels.train[0][..., 0], permuted.train[0][..., 0]
    assert torch.equal(b, a[:, permuted.permutation]) and not torch.equal(a, b)
    assert torch.equal(torch.sort(a, 1).values, torch.sort(b, 1).values)  # the same pixels, reordered
    again = SequentialImagesTask("mnist", order="permuted", root=mnist, seed=1)
    other = SequentialImagesTask("mnist", order="permuted", root=mnist, seed=2)
    assert torch.equal(again.permutation, permuted.permutation)
    assert not torch.equal(other.permutation, permuted.permutation)


def test_validation_is_held_out_of_training_stratified(mnist):
    task = SequentialImagesTask("mnist", root=mnist, val_fraction=0.25)
    train_labels, val_labels = task.train[1], task.val[1]
    assert len(train_labels) + len(val_labels) == 80  # the 80 training images of the file's split
    assert torch.bincount(val_labels).tolist() == [2] * 10  # 25% of each class's 8
    seen = {tuple(x.flatten().tolist()) for x in task.train[0]}
    assert not any(tuple(x.flatten().tolist()) in seen for x in task.val[0])
    assert len(task.test[1]) == 20


def test_inputs_are_standardised_with_the_training_statistics(mnist):
    task = SequentialImagesTask("mnist", root=mnist, batch_size=1000)
    x = next(iter(task.train_batches(torch.Generator().manual_seed(0)))).inputs
    assert x.shape == (70, 28, 28)  # 80 training images less one per class for validation
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-3


def test_the_baseline_is_the_majority_class():
    task = SequentialImagesTask("digits")
    counts = torch.bincount(task.train[1], minlength=10)
    majority = int(counts.argmax())
    expected = float((task.val[1] == majority).double().mean())
    assert task.baseline()["accuracy"] == pytest.approx(expected)
    # the loss of predicting the training frequencies, on the validation labels
    prior = counts.double() / counts.sum()
    assert task.baseline()["loss"] == pytest.approx(float(-prior.log()[task.val[1]].mean()))
    assert task.output_size == 10 and (task.seq_len, task.input_size) == (8, 8)


def test_training_batches_cover_the_training_set_once_per_epoch(mnist):
    task = SequentialImagesTask("mnist", root=mnist, batch_size=16)
    labels = torch.cat([b.targets for b in task.train_batches(torch.Generator().manual_seed(0))])
    assert torch.equal(torch.sort(labels).values, torch.sort(task.train[1]).values)


def test_a_missing_dataset_on_the_command_line_gives_the_install_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(files, "FASHION_MNIST_ROOT", tmp_path / "nowhere")
    args = ["train", "--task", "images", "--task.dataset", "fashion_mnist", "--out", str(tmp_path / "r")]
    assert main([*args, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "apt-get install dataset-fashion-mnist" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()
