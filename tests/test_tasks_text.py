"""The character-level language model task: the stream, the split, the vocabulary and the unigram baseline."""

import json
import math

import pytest
import torch

from rnnlab.cli import main
from rnnlab.errors import DataError
from rnnlab.tasks import CharLMTask
from rnnlab.tasks.vocab import CharVocab, unigram_bits_per_char

TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog.\n" for i in range(200))


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    for i in range(5):  # five documents: split by whole documents
        (folder / f"doc{i}.txt").write_text(TEXT[i * 2000 : (i + 1) * 2000])
    return folder


def test_batches_continue_each_other_and_targets_are_the_next_character(corpus):
    task = CharLMTask(path=str(corpus), seq_len=7, batch_size=3, val_fraction=0.2, test_fraction=0.2)
    batches = list(task.train_batches(torch.Generator().manual_seed(0)))
    assert task.stream and task.output == "sequence" and len(batches) > 2
    for batch in batches:
        ids = batch.inputs.argmax(-1)
        assert batch.inputs.shape == (3, 7, len(task.vocab)) and torch.equal(
            ids[:, 1:], batch.targets[:, :-1]
        )
    for a, b in zip(batches, batches[1:], strict=False):
        assert torch.equal(a.targets[:, -1], b.inputs[:, 0].argmax(-1))  # row r goes on in the next batch
    shifted = list(task.train_batches(torch.Generator().manual_seed(1)))
    assert not torch.equal(shifted[0].targets, batches[0].targets)  # another epoch cuts elsewhere


def test_the_split_holds_out_whole_documents_and_the_vocabulary_is_the_training_parts(corpus):
    task = CharLMTask(path=str(corpus), seq_len=5, batch_size=2, val_fraction=0.2, test_fraction=0.2)
    sizes = (task.train_ids.numel(), task.val_ids.numel(), task.test_ids.numel())
    assert sizes[1] in (2000, 4002) and sizes[2] in (2000, 4002) and sum(sizes) == 10004  # "\n\n" joins
    train_text = task.vocab.decode(task.train_ids)
    assert set(task.vocab.decode(task.val_ids)) <= set(train_text) | {"\ufffd"}
    assert task.settings()["path"] == str(corpus) and task.settings()["seq_len"] == 5


def test_the_baseline_is_the_unigram_model_of_the_training_characters(corpus):
    task = CharLMTask(path=str(corpus), seq_len=5, batch_size=2)
    train, val = task.vocab.decode(task.train_ids), task.vocab.decode(task.val_ids)
    bpc = unigram_bits_per_char(train, val)
    assert task.baseline() == {"loss": pytest.approx(bpc * math.log(2)), "bpc": pytest.approx(bpc)}
    logits = torch.zeros(1, 4, len(task.vocab))
    targets = torch.tensor([[1, 2, 3, 4]])
    assert task.metrics(logits, targets)["bpc"] == pytest.approx(math.log2(len(task.vocab)))


def test_a_single_file_is_split_inside_its_text(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text(TEXT)
    task = CharLMTask(path=str(path), seq_len=5, batch_size=2, val_fraction=0.1, test_fraction=0.1)
    n = len(TEXT)
    assert task.train_ids.numel() == int(n * 0.8) and task.test_ids.numel() == n - int(n * 0.9)
    assert task.vocab.decode(task.test_ids) == TEXT[int(n * 0.9) :]


def test_a_text_too_short_for_the_batch_is_refused(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("abcdefghij" * 5)
    with pytest.raises(DataError, match=r"too short for batch_size 64 rows"):
        CharLMTask(path=str(path), seq_len=10, batch_size=64)


def test_a_short_stateful_run_beats_the_unigram_baseline(tmp_path, capsys):
    path = tmp_path / "one.txt"
    path.write_text(TEXT * 3)
    out = tmp_path / "run"
    args = ["train", "--task", "charlm", "--task.path", str(path), "--task.seq_len=20", "--task.batch_size=8"]
    args += ["--model.hidden_size=64", "--steps=400", "--eval.every=400", "--out", str(out), "--quiet"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert "stateful = true" in (out / "config.toml").read_text()
    assert summary["test"]["bpc"] < summary["baseline"]["bpc"] / 2  # the repeated lines are learnt
    vocab = CharVocab.from_json((out / "vocab.json").read_text())  # the vocabulary is kept with the run
    text = TEXT * 3
    assert set(vocab.symbols[1:]) == set(text[: int(len(text) * 0.8)])  # the training part's characters


def test_generate_continues_a_prompt_deterministically_for_a_seed(tmp_path, capsys):
    path = tmp_path / "one.txt"
    path.write_text(TEXT * 3)
    out = tmp_path / "run"
    args = ["train", "--task", "charlm", "--task.path", str(path), "--task.seq_len=20", "--task.batch_size=8"]
    assert (
        main(
            [*args, "--model.hidden_size=64", "--steps=300", "--eval.every=300", "--out", str(out), "--quiet"]
        )
        == 0
    )
    capsys.readouterr()
    generate = ["generate", str(out), "--prompt", "line 1", "--length", "40", "--seed", "3"]
    assert main(generate) == 0
    first = capsys.readouterr().out
    assert main(generate) == 0 and capsys.readouterr().out == first
    assert first.startswith("line 1") and len(first.rstrip("\n")) >= 40
    assert main([*generate[:-1], "4", "--temperature", "1.5"]) == 0 and capsys.readouterr().out != first
    greedy = ["generate", str(out), "--prompt", "line 12", "--length", "80", "--temperature", "0"]
    assert main(greedy) == 0
    text = capsys.readouterr().out
    assert "lazy dog" in text or "quick brown" in text  # pieces of the repeated line, learnt


def test_generate_refuses_a_run_of_another_task(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(["train", "--task", "sine", "--steps=2", "--task.train_size=32", "--out", str(out), "--quiet"])
        == 0
    )
    assert main(["generate", str(out)]) == 2
    assert "generate needs a charlm run" in capsys.readouterr().err
    assert main(["generate", str(tmp_path / "nowhere")]) == 1
