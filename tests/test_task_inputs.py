"""A file of the user's, prepared as the task's test split (`Task.input_batches`), and the model's outputs
as one row per predicted item (`Task.prediction_rows`): for every task that reads real files."""

import csv
import math
import shutil

import numpy as np
import pytest
import torch
from test_image_files import csv_rows, idx_bytes
from test_tasks_classify import write_long_csv, write_wav
from test_tasks_forecast import write_series
from test_tasks_images import write_mnist

from rnnlab import SequenceModel
from rnnlab.errors import ConfigError, DataError
from rnnlab.tasks import (
    AddingTask,
    CharLMTask,
    ClassifyTask,
    ForecastTask,
    SequentialImagesTask,
    SineTask,
    TextTask,
)
from rnnlab.tasks import image_files as files


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """An empty data cache of the test's own (the MFCC features of a wav folder are cached there)."""
    monkeypatch.setenv("RNNLAB_DATA", str(tmp_path / "cache"))


def assert_same_batches(got, expected):
    assert len(got) == len(expected) and got
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
        assert (a.lengths is None) == (b.lengths is None)
        assert a.lengths is None or torch.equal(a.lengths, b.lengths)


def write_rows(path, header, rows):
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_rows(path):
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader)


def check_class_rows(task, rows, outputs, targets, ids=None):
    """Each row's predicted class is the most probable output, its probability the softmax's, its label
    the target's (when there is one)."""
    probabilities = torch.softmax(outputs.double(), -1)
    assert len(rows) == len(outputs)
    for i, row in enumerate(rows):
        labelled = int(targets[i]) >= 0
        keys = {"predicted", "probability"} | ({"label"} if labelled else set()) | ({"id"} if ids else set())
        assert set(row) == keys
        assert row["predicted"] == task.classes[int(outputs[i].argmax())]
        assert row["probability"] == pytest.approx(float(probabilities[i].max()))
        if labelled:
            assert row["label"] == task.classes[int(targets[i])]
        if ids:
            assert row["id"] == ids[i]


# --- classify ---------------------------------------------------------------------------------------------


@pytest.fixture
def classify(tmp_path):
    path = write_long_csv(tmp_path / "s.csv")
    task = ClassifyTask(path=str(path), batch_size=4, test_fraction=0.25)
    rows = read_rows(path)
    test = [row for row in rows if row["id"] in set(task.test.ids)]
    return task, test


def test_a_csv_of_the_test_sequences_gives_the_test_batches_whatever_its_column_order(classify, tmp_path):
    task, test = classify
    header = ["label", "b", "extra", "step", "a", "id"]  # another order, and a column the task ignores
    path = write_rows(
        tmp_path / "in.csv", header, [[r[c] if c != "extra" else "9" for c in header] for r in test]
    )
    batches = task.input_batches(path)
    assert_same_batches(batches, list(task.test_batches()))
    assert sum((b.ids for b in batches), ()) == task.test.ids
    model = SequenceModel(task.input_size, 8, task.output_size, cell="gru")
    with torch.no_grad():
        outputs = model(batches[0].inputs, lengths=batches[0].lengths)
    rows = task.prediction_rows(outputs, batches[0])
    check_class_rows(task, rows, outputs, batches[0].targets, batches[0].ids)
    assert {row["label"] for row in rows} <= set(task.classes)


def test_a_csv_without_labels_is_read_for_prediction(classify, tmp_path):
    task, test = classify
    header = ["id", "step", "a", "b"]
    path = write_rows(tmp_path / "in.csv", header, [[r[c] for c in header] for r in test])
    batches = task.input_batches(path, labelled=False)
    expected = list(task.test_batches())
    assert all(torch.equal(a.inputs, b.inputs) for a, b in zip(batches, expected, strict=True))
    assert all(bool((b.targets == -1).all()) for b in batches)
    outputs = torch.randn(len(batches[0].targets), task.output_size)
    rows = task.prediction_rows(outputs, batches[0])
    check_class_rows(task, rows, outputs, batches[0].targets, batches[0].ids)
    assert all("label" not in row for row in rows)
    with pytest.raises(DataError, match="no column 'label'"):
        task.input_batches(path)  # to evaluate, the labels must be there


def write_ts(path, sequences, labels, classes, dimensions=2):
    lines = [
        "@problemName test",
        f"@dimensions {dimensions}",
        f"@classLabel true {' '.join(classes)}",
        "@data",
    ]
    for x, label in zip(sequences, labels, strict=True):
        columns = [",".join(v for v in column) for column in x]
        lines.append(":".join(columns) + ":" + label)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_ts_file_is_standardised_with_the_training_statistics(classify, tmp_path):
    task, _ = classify
    sequences = [[[f"{v:.6f}" for v in x[:, d].tolist()] for d in range(2)] for x in task.test.features]
    labels = [task.classes[k] for k in task.test.labels.tolist()]
    path = write_ts(tmp_path / "in.ts", sequences, labels, classes=("up", "down"))  # its own class order
    assert_same_batches(task.input_batches(path), list(task.test_batches()))
    missing = write_ts(tmp_path / "nan.ts", [[["1", "?"], ["2", "3"]]], ["up"], ("up", "down"))
    with pytest.raises(DataError, match=r"nan\.ts: sequence number 1 holds NaN"):
        task.input_batches(missing)
    wide = write_ts(tmp_path / "wide.ts", [[["1"], ["2"], ["3"]]], ["up"], ("up", "down"), dimensions=3)
    with pytest.raises(DataError, match="3 features per step, but the run's model reads 2"):
        task.input_batches(wide)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda rows: [[*row[:-1], "sideways" if row[0] == rows[-1][0] else row[-1]] for row in rows],
            r"the label 'sideways' is not one of .*'down', 'up'",
        ),
        (
            lambda rows: [[*row[:2], "nan", *row[3:]] for row in rows],
            r"column 'a': 'nan' is not a finite number",
        ),
        (lambda rows: [], "a header and no rows"),
    ],
)
def test_bad_csv_cells_are_errors_naming_the_file_and_the_problem(classify, tmp_path, change, message):
    task, test = classify
    header = ["id", "step", "a", "b", "label"]
    path = write_rows(tmp_path / "bad.csv", header, change([[r[c] for c in header] for r in test]))
    with pytest.raises(DataError, match=r"bad\.csv.*" + message):
        task.input_batches(path)


def test_missing_empty_and_short_csv_files_are_errors(classify, tmp_path):
    task, test = classify
    path = write_rows(
        tmp_path / "in.csv",
        ["id", "step", "a", "label"],
        [[r[c] for c in ("id", "step", "a", "label")] for r in test],
    )
    with pytest.raises(DataError, match=r"in\.csv: no column 'b'"):
        task.input_batches(path)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty\.csv: empty file"):
        task.input_batches(tmp_path / "empty.csv")
    with pytest.raises(DataError, match=r"nowhere\.csv: no such file or folder"):
        task.input_batches(tmp_path / "nowhere.csv")


def test_a_wav_folder_gives_the_test_batches_and_any_names_for_prediction(tmp_path):
    folder = tmp_path / "wavs"
    folder.mkdir()
    for label, freq in (("low", 300), ("high", 2000)):
        for index in range(4):
            write_wav(folder / f"{label}_ann_{index}.wav", freq + 10 * index, seconds=0.1)
    task = ClassifyTask(path=str(folder), test_below=1, batch_size=4)
    held = tmp_path / "held"
    held.mkdir()
    for name in task.test.ids:
        shutil.copy(folder / name, held / name)
    batches = task.input_batches(held)
    assert_same_batches(batches, list(task.test_batches()))
    assert batches[0].ids == task.test.ids
    anything = tmp_path / "anything"
    anything.mkdir()
    shutil.copy(folder / "low_ann_2.wav", anything / "clip one.wav")
    shutil.copy(folder / "high_ann_3.wav", anything / "x.wav")
    (batch,) = task.input_batches(anything, labelled=False)
    assert batch.ids == ("clip one.wav", "x.wav") and batch.targets.tolist() == [-1, -1]
    rows = task.prediction_rows(torch.tensor([[0.0, 2.0], [1.0, 0.0]]), batch)
    assert [(row["id"], row["predicted"]) for row in rows] == [("clip one.wav", "low"), ("x.wav", "high")]
    shutil.copy(folder / "low_ann_2.wav", anything / "mid_ann_0.wav")
    with pytest.raises(DataError, match="do not match the pattern .*: clip one.wav, x.wav"):
        task.input_batches(anything)  # to evaluate, the names must give the labels
    (anything / "clip one.wav").unlink()
    (anything / "x.wav").unlink()
    with pytest.raises(DataError, match=r"the label 'mid' is not one of the run's classes: 'high', 'low'"):
        task.input_batches(anything)


# --- text -------------------------------------------------------------------------------------------------


@pytest.fixture
def text(tmp_path):
    words = ("great", "awful", "film", "plot", "music")
    rows = [
        (f"{words[2 + i % 3]} {'great' if i % 2 else 'awful'} {words[i % 5]}!", "pos" if i % 2 else "neg")
        for i in range(40)
    ]
    path = write_rows(tmp_path / "t.csv", ["text", "label"], rows)
    return TextTask(path=str(path), val_fraction=0.2, test_fraction=0.2, min_count=1)


def test_a_text_csv_of_the_test_texts_gives_the_test_batch(text, tmp_path):
    labels = [text.classes[k] for k in text.test.labels.tolist()]
    path = write_rows(
        tmp_path / "in.csv",
        ["label", "id", "text"],
        [(lab, i, t) for i, (t, lab) in enumerate(zip(text.test.texts, labels, strict=True))],
    )
    (batch,) = text.input_batches(path)
    assert_same_batches([batch], list(text.test_batches()))
    outputs = torch.randn(len(labels), text.output_size)
    check_class_rows(text, text.prediction_rows(outputs, batch), outputs, batch.targets)
    one_class = write_rows(tmp_path / "one.csv", ["text", "label"], [("great film", "pos")])
    assert text.input_batches(one_class)[0].targets.tolist() == [text.classes.index("pos")]


def test_texts_without_labels_and_unknown_words(text, tmp_path):
    path = write_rows(tmp_path / "in.csv", ["text"], [("zzyzx film",), ("great",)])
    (batch,) = text.input_batches(path, labelled=False)
    assert batch.targets.tolist() == [-1, -1] and batch.lengths.tolist() == [2, 1]
    assert batch.inputs[0].tolist() == [text.vocab.unknown_id, text.vocab.encode(["film"]).item()]
    rows = text.prediction_rows(torch.tensor([[0.0, 1.0], [3.0, 0.0]]), batch)
    assert rows == [
        {"predicted": text.classes[1], "probability": pytest.approx(1 / (1 + math.exp(-1)))},
        {"predicted": text.classes[0], "probability": pytest.approx(1 / (1 + math.exp(-3)))},
    ]


def test_text_csv_errors_name_the_file_and_the_problem(text, tmp_path):
    with pytest.raises(DataError, match=r"in\.csv: no column 'label'"):
        text.input_batches(write_rows(tmp_path / "in.csv", ["text"], [("great",)]))
    with pytest.raises(DataError, match=r"the label 'meh' is not one of the run's classes: 'neg', 'pos'"):
        text.input_batches(write_rows(tmp_path / "meh.csv", ["text", "label"], [("great", "meh")]))
    with pytest.raises(DataError, match=r"row 1 \(line 2\), column 'text': the cell is empty"):
        text.input_batches(write_rows(tmp_path / "blank.csv", ["text", "label"], [(" ", "pos")]))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty\.csv: the file is empty"):
        text.input_batches(tmp_path / "empty.csv")
    with pytest.raises(DataError, match=r"gone\.csv: no such file"):
        text.input_batches(tmp_path / "gone.csv")


# --- images -----------------------------------------------------------------------------------------------


@pytest.fixture
def images(tmp_path):
    root = write_mnist(tmp_path, per_class=5)
    task = SequentialImagesTask("mnist", order="permuted", root=str(root), seed=1)
    return task, *files.load_images("mnist", "test", root)


def test_idx_and_csv_files_of_the_test_images_give_the_test_batches(images, tmp_path):
    task, test_images, test_labels = images
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(test_images.numpy()))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(test_labels.numpy().astype(np.uint8)))
    expected = list(task.test_batches())
    assert_same_batches(task.input_batches(tmp_path / "t10k-images-idx3-ubyte"), expected)
    (tmp_path / "test.csv").write_text(csv_rows(test_images.numpy(), test_labels.numpy()))
    batches = task.input_batches(tmp_path / "test.csv")
    assert_same_batches(batches, expected)
    outputs = torch.randn(len(test_labels), 10)
    rows = task.prediction_rows(outputs, batches[0])
    check_class_rows(task, rows, outputs, test_labels)
    assert task.classes == tuple(str(d) for d in range(10))


def test_images_without_labels_are_read_for_prediction(images, tmp_path):
    task, test_images, _ = images
    (tmp_path / "mine.idx").write_bytes(idx_bytes(test_images.numpy()))
    (batch,) = task.input_batches(tmp_path / "mine.idx", labelled=False)
    assert torch.equal(batch.inputs, next(iter(task.test_batches())).inputs)
    assert bool((batch.targets == -1).all())
    with pytest.raises(DataError, match=r"its labels are read from the IDX file beside it .* no 'images'"):
        task.input_batches(tmp_path / "mine.idx")
    (tmp_path / "my-images.idx").write_bytes(idx_bytes(test_images.numpy()))
    with pytest.raises(DataError, match=r"my-labels\.idx: no such file"):
        task.input_batches(tmp_path / "my-images.idx")
    pixels = "".join(",".join(map(str, image.ravel())) + "\n" for image in test_images.numpy())
    (tmp_path / "pixels.csv").write_text(pixels)
    (batch,) = task.input_batches(tmp_path / "pixels.csv", labelled=False)
    assert torch.equal(batch.inputs, next(iter(task.test_batches())).inputs)
    with pytest.raises(
        DataError, match=r"row 1 has 784 columns, expected 785 \(784 pixels, then the label\)"
    ):
        task.input_batches(tmp_path / "pixels.csv")


def test_bad_image_files_are_errors_naming_the_file_and_the_problem(images, tmp_path):
    task, test_images, test_labels = images
    (tmp_path / "small-images").write_bytes(idx_bytes(np.zeros((2, 8, 8), np.uint8)))
    with pytest.raises(DataError, match=r"small-images: expected uint8 images \(N, 28, 28\) for mnist"):
        task.input_batches(tmp_path / "small-images", labelled=False)
    rows = csv_rows(test_images.numpy()[:2], np.array([3, 12]))
    (tmp_path / "label.csv").write_text(rows)
    with pytest.raises(DataError, match=r"label\.csv: row 2: the label is outside 0\.\.9"):
        task.input_batches(tmp_path / "label.csv")
    (tmp_path / "nan.csv").write_text(rows.replace("12", "nan", 1) if "12\n" in rows else "nan," + rows)
    with pytest.raises(DataError, match=r"nan\.csv: row \d+, column \d+: 'nan' is not an integer"):
        task.input_batches(tmp_path / "nan.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty\.csv: the file is empty"):
        task.input_batches(tmp_path / "empty.csv")


# --- forecast ---------------------------------------------------------------------------------------------


@pytest.fixture
def forecast(tmp_path):
    path, y = write_series(tmp_path / "sales.csv", n=120)
    task = ForecastTask(path=str(path), target="sales", time="month", features="price", lookback=6, horizon=3)
    return task, path, y


def test_a_csv_of_the_test_part_gives_the_test_windows(forecast, tmp_path):
    task, path, _ = forecast
    lines = path.read_text().splitlines()
    rows = [line.split(",") for line in lines[1 + task.val_end - task.lookback :]]  # the test windows' rows
    mine = write_rows(
        tmp_path / "in.csv", ["price", "note", "month", "sales"], [(r[2], "x", r[0], r[1]) for r in rows]
    )
    (batch,) = task.input_batches(mine)
    (expected,) = task.test_batches()
    assert_same_batches([batch], [expected])
    assert batch.ids == expected.ids and batch.ids[0] == tuple(r[0] for r in rows[6:9])
    naive = task.prediction_rows(torch.zeros(len(batch.targets), 3), batch)  # each window's last value
    assert [row["forecast"] for row in naive[::3]] == pytest.approx([float(r[1]) for r in rows[5:-3]])
    outputs = task.predict(SequenceModel(2, 8, 3, cell="gru"), batch).detach()
    forecast_rows = task.prediction_rows(outputs, batch)
    assert len(forecast_rows) == 3 * len(batch.targets) and set(forecast_rows[0]) == {
        "time",
        "step",
        "forecast",
    }
    assert [row["step"] for row in forecast_rows[:4]] == [1, 2, 3, 1]


def test_prediction_forecasts_the_horizon_after_the_files_end(forecast):
    task, path, y = forecast
    (batch,) = task.input_batches(path, labelled=False)
    assert torch.equal(batch.inputs, task.future_inputs())
    assert batch.ids == (("2000-01-01", "2000-02-01", "2000-03-01"),)
    assert list(batch.ids[0]) == [str(t) for t in np.datetime_as_string(task.future_times(), unit="D")]
    rows = task.prediction_rows(torch.zeros(1, 3), batch)  # a zero output is the naive forecast: y[-1]
    assert [row["time"] for row in rows] == list(batch.ids[0]) and [row["step"] for row in rows] == [1, 2, 3]
    assert [row["forecast"] for row in rows] == pytest.approx([y[-1]] * 3, rel=1e-6)


def test_bad_series_files_are_errors_naming_the_file_and_the_problem(forecast, tmp_path):
    task, path, _ = forecast
    lines = path.read_text().splitlines()
    short = tmp_path / "short.csv"
    short.write_text("\n".join(lines[:9]) + "\n")  # 8 rows
    with pytest.raises(
        DataError, match=r"short\.csv: 8 rows, but one window needs lookback 6 \+ horizon 3 = 9"
    ):
        task.input_batches(short)
    assert len(task.input_batches(short, labelled=False)[0].inputs[0]) == 6
    short.write_text("\n".join(lines[:6]) + "\n")
    with pytest.raises(DataError, match=r"5 rows, but one window needs lookback = 6"):
        task.input_batches(short, labelled=False)
    cut = tmp_path / "cut.csv"
    cut.write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
    with pytest.raises(DataError, match=r"cut\.csv: no column 'price'"):
        task.input_batches(cut)
    gap = tmp_path / "gap.csv"
    gap.write_text(
        "\n".join([*lines[:5], lines[5].replace(lines[5].split(",")[1], "nan"), *lines[6:20]]) + "\n"
    )
    with pytest.raises(DataError, match=r"gap\.csv: row 6, column 'sales': a missing value"):
        task.input_batches(gap)
    negative = tmp_path / "negative.csv"
    negative.write_text(
        "\n".join([*lines[:5], lines[5].replace(lines[5].split(",")[1], "-1"), *lines[6:20]]) + "\n"
    )
    with pytest.raises(DataError, match=r"column 'sales' holds -1 .* models it as its log"):
        task.input_batches(negative)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty\.csv: the file is empty"):
        task.input_batches(tmp_path / "empty.csv")


# --- charlm and the tasks that make their own data --------------------------------------------------------


def test_charlm_evaluates_a_text_in_the_runs_vocabulary(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    text = "".join(f"line {i}: the quick brown fox jumps over the lazy dog.\n" for i in range(60))
    for i in range(5):
        (folder / f"doc{i}.txt").write_text(text[i * 600 : (i + 1) * 600])
    task = CharLMTask(path=str(folder), seq_len=7, batch_size=3, val_fraction=0.2, test_fraction=0.2)
    (tmp_path / "test.txt").write_text(task.vocab.decode(task.test_ids))
    assert_same_batches(task.input_batches(tmp_path / "test.txt"), list(task.test_batches()))
    (tmp_path / "new.txt").write_text("the fox ate 17 €€ quickly, and the dog?")
    batches = task.input_batches(tmp_path / "new.txt")
    ids = torch.cat([batch.inputs.argmax(-1).flatten() for batch in batches])
    assert "€" not in task.vocab.symbols and task.vocab.unknown_id in ids.tolist()  # as in the test text
    (tmp_path / "short.txt").write_text("the fox")
    with pytest.raises(
        DataError, match=r"short\.txt: 7 characters, fewer than one batch of seq_len \+ 1 = 8"
    ):
        task.input_batches(tmp_path / "short.txt")
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(DataError, match=r"empty\.txt: the file is empty"):
        task.input_batches(tmp_path / "empty.txt")
    with pytest.raises(ConfigError, match="no per-item predictions.*rnnlab generate"):
        task.prediction_rows(torch.zeros(3, 7, task.output_size), batches[0])


@pytest.mark.parametrize(
    "task", [AddingTask(length=10, val_size=4, test_size=4), SineTask(train_size=8, val_size=0)]
)
def test_a_task_that_makes_its_data_reads_no_files(task, tmp_path):
    with pytest.raises(ConfigError, match=f"the {task.name} task generates its data .* rnnlab evaluate RUN"):
        task.input_batches(tmp_path / "any.csv")
    batch = next(iter(task.train_batches(torch.Generator().manual_seed(0))))
    with pytest.raises(ConfigError, match=f"the {task.name} task makes no per-item predictions"):
        task.prediction_rows(torch.zeros_like(batch.targets), batch)
