"""Sequence classification: variable lengths through `lengths`, the splits, scaling, the majority baseline."""

import json
import math
import wave

import numpy as np
import pytest
import torch

from rnnlab.cli import main
from rnnlab.tasks import ClassifyTask, packages


def write_long_csv(path, n_per_class=12):
    """Sequences of 3-9 steps whose class is the sign of their mean: an easy, length-varying problem."""
    rng = np.random.default_rng(0)
    lines = ["id,step,a,b,label"]
    for i in range(2 * n_per_class):
        label = "up" if i % 2 else "down"
        steps = 3 + i % 7
        for t in rng.permutation(steps):  # rows in any order within a sequence
            a = (1 if label == "up" else -1) + 0.3 * rng.standard_normal()
            lines.append(f"s{i},{t},{a:.4f},{rng.standard_normal():.4f},{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_batches_are_padded_and_carry_each_sequences_length(tmp_path):
    task = ClassifyTask(path=str(write_long_csv(tmp_path / "s.csv")), batch_size=5, test_fraction=0.25)
    assert task.input_size == 2 and task.output_size == 2 and task.classes == ("down", "up")
    for batch in task.train_batches(torch.Generator().manual_seed(0)):
        assert batch.lengths is not None and batch.inputs.shape[1] == int(batch.lengths.max())
        for row, length in enumerate(batch.lengths.tolist()):
            assert torch.equal(batch.inputs[row, length:], torch.zeros_like(batch.inputs[row, length:]))
    assert len(task.train) + len(task.val) + len(task.test) == 24
    assert sorted(torch.bincount(task.test.labels).tolist()) == [3, 3]  # stratified


def test_features_are_standardised_with_the_training_statistics(tmp_path):
    task = ClassifyTask(path=str(write_long_csv(tmp_path / "s.csv")))
    steps = torch.cat([(x - task.mean) / task.std for x in task.train.features])
    assert torch.allclose(steps.mean(0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(steps.std(0), torch.ones(2), atol=1e-5)


def test_the_baseline_is_the_majority_class_of_the_training_part(tmp_path):
    task = ClassifyTask(path=str(write_long_csv(tmp_path / "s.csv", n_per_class=20)), val_fraction=0.2)
    expected = float((task.val.labels == task.majority).double().mean())
    assert task.baseline()["accuracy"] == pytest.approx(expected)
    assert task.baseline()["loss"] == pytest.approx(math.log(2), abs=0.05)


def write_wav(path, freq, seconds=0.25, rate=8000):
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.5 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())


def test_an_audio_folder_is_split_by_the_index_in_its_names(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLAB_DATA", str(tmp_path / "cache"))
    folder = tmp_path / "wavs"
    folder.mkdir()
    for label, freq in (("low", 300), ("high", 2000)):
        for speaker in ("ann", "bob"):
            for index in range(8):
                write_wav(folder / f"{label}_{speaker}_{index}.wav", freq + 10 * index)
    task = ClassifyTask(path=str(folder), test_below=2)
    assert len(task.test) == 8 and task.input_size == 13  # indices 0 and 1 of each label and speaker
    assert all(int(name.split("_")[2][0]) < 2 for name in task.test.ids)


def test_a_short_run_on_a_long_csv_beats_the_majority_class(tmp_path):
    path = write_long_csv(tmp_path / "s.csv", n_per_class=40)
    out = tmp_path / "run"
    args = ["train", "--task", "classify", "--task.path", str(path), "--model.hidden_size=16"]
    assert main([*args, "--steps=60", "--eval.every=30", "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test"]["accuracy"] >= 0.9 > summary["baseline"]["accuracy"]


@pytest.mark.skipif(not packages.source("sktime").available(), reason="the sktime wheel is not in the cache")
def test_japanese_vowels_has_its_own_split():
    task = ClassifyTask()
    assert len(task.test) == 370 and len(task.train) + len(task.val) == 270
    assert task.input_size == 12 and task.output_size == 9
    lengths = torch.cat([b.lengths for b in task.test_batches()])
    assert int(lengths.min()) == 7 and int(lengths.max()) == 29
