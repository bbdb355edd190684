"""The sequence readers: .ts files and long CSVs read back exactly, each malformed input an error naming the
file and line, JapaneseVowels from a (fake or real) sktime wheel, and audio folders read by their pattern
through the on-disk feature cache; the real JapaneseVowels and Free Spoken Digit Dataset where present."""

from __future__ import annotations

import os
import re
import wave
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnlab.errors import ConfigError, DataError
from rnnlab.tasks import audio, packages
from rnnlab.tasks.packages import MissingDataset
from rnnlab.tasks.sequence_files import (
    JAPANESE_VOWELS,
    Sequences,
    fsdd_split,
    load_japanese_vowels,
    parse_ts,
    pattern_regex,
    read_audio_folder,
    read_long_csv,
    read_ts,
    sorted_classes,
)

FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd" / "recordings"

# --- .ts files --------------------------------------------------------------------------------------------


def some_cases(seed: int = 0) -> list[tuple[np.ndarray, str]]:
    """Cases of 3 channels and 2..6 steps, float32 values (so that their shortest repr reads back exactly)."""
    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal((int(rng.integers(2, 7)), 3)).astype(np.float32), "ba"[i % 2]) for i in range(5)
    ]


def ts_text(cases, header: str | None = None) -> str:
    """A .ts file as sktime writes JapaneseVowels: comments, the header, '@data', then one case per line."""
    header = header or (
        "@problemName Tiny\n@timeStamps false\n@missing false\n@univariate false\n@dimensions 3\n"
        "@equalLength false\n@classLabel true b a\n@data\n"
    )
    lines = [
        ":".join(",".join(repr(float(v)) for v in values[:, d]) for d in range(values.shape[1])) + f":{label}"
        for values, label in cases
    ]
    return "#A comment\n#\n" + header + "\n".join(lines) + "\n"


def test_a_ts_file_reads_back_exactly(tmp_path):
    cases = some_cases()
    path = tmp_path / "tiny.ts"
    path.write_text(ts_text(cases))
    data = read_ts(path)
    assert data.name == "Tiny" and data.classes == ("b", "a") and data.groups is None and len(data) == 5
    assert data.labels.tolist() == [0, 1, 0, 1, 0]  # in @classLabel's order, not sorted
    for got, (values, _) in zip(data.features, cases, strict=True):
        assert got.dtype == torch.float32 and torch.equal(got, torch.from_numpy(values))
    torch.testing.assert_close(data.lengths, torch.tensor([len(v) for v, _ in cases]))


def test_a_question_mark_is_a_missing_value():
    header = "@univariate true\n@equalLength true\n@seriesLength 3\n@classLabel true x\n@data\n"
    data = parse_ts(header + "1.5,?,3:x\n", "m.ts")
    assert data.features[0].shape == (3, 1) and data.feature_size == 1
    assert data.features[0][0, 0] == 1.5 and data.features[0][1, 0].isnan() and data.features[0][2, 0] == 3


HEADER = "@dimensions 2\n@classLabel true a b\n@data\n"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (HEADER + "1,2:3,4:a\n1,2:a\n", 5, "1 dimensions, expected 2 dimensions"),
        (HEADER + "1,2:3,4:a\n1,x:3,4:b\n", 5, "dimension 1, value 2: 'x' is not a number"),
        (HEADER + "1,2:3,4:c\n", 4, "class label 'c' is not one of @classLabel's: a b"),
        (HEADER + "1,2,3:3,4:a\n", 4, "dimensions of unequal length within a case: 3, 2"),
        (HEADER + "1,2::a\n", 4, "dimension 2, value 1: '' is not a number"),
        ("@classLabel true a\n1,2:a\n", 2, "a case before @data"),
        ("@dimension 2\n@data\n", 1, "unknown header line '@dimension'"),
        ("@timeStamps true\n@data\n", 1, "time-stamped series"),
        ("@classLabel false\n@data\n", 1, "not a classification file"),
        ("@targetLabel true\n@data\n", 1, "not a classification file"),
        ("@dimensions two\n@data\n", 1, "@dimensions must be a positive whole number"),
        ("@problemName x\n@data\n1:a\n", 2, "@data before any '@classLabel true"),
        (
            "@equalLength true\n@seriesLength 3\n" + HEADER + "1,2:3,4:a\n",
            6,
            "2 values, @seriesLength says 3",
        ),
    ],
)
def test_a_malformed_ts_file_is_an_error_naming_the_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "bad.ts"
    path.write_text("# comment\n" + text)
    with pytest.raises(DataError, match=message) as caught:
        read_ts(path)
    assert re.match(f"{re.escape(str(path))}, line {line + 1}[:,] ", str(caught.value))


@pytest.mark.parametrize(
    ("text", "message"),
    [("@classLabel true a\n", "no @data line"), (HEADER, "no cases after @data"), ("", "no @data line")],
)
def test_a_ts_file_without_data_is_an_error_naming_the_file(tmp_path, text, message):
    path = tmp_path / "short.ts"
    path.write_text(text)
    with pytest.raises(DataError, match=f"^{path}: {message}"):
        read_ts(path)


def fake_sktime_wheel(folder: Path, cases_by_split) -> Path:
    """A zip at the wheel's name holding JapaneseVowels_TRAIN.ts and _TEST.ts at their paths in sktime."""
    wheel = folder / "sktime-1.2.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for split, cases in cases_by_split.items():
            z.writestr(JAPANESE_VOWELS.format(split.upper()), ts_text(cases))
    return wheel


def test_japanese_vowels_come_from_the_sktime_wheel_in_the_data_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLAB_DATA", str(tmp_path))
    with pytest.raises(MissingDataset, match="rnnlab data get sktime"):
        load_japanese_vowels("train")
    cases = {"train": some_cases(1), "test": some_cases(2)[:3]}
    fake_sktime_wheel(tmp_path, cases)
    for split, expected in cases.items():
        data = load_japanese_vowels(split)
        assert len(data) == len(expected) and data.classes == ("b", "a")
        assert all(
            torch.equal(x, torch.from_numpy(v)) for x, (v, _) in zip(data.features, expected, strict=True)
        )
    with pytest.raises(ConfigError, match="split must be"):
        load_japanese_vowels("validation")  # type: ignore[arg-type]


@pytest.mark.skipif(
    not packages.source("sktime").available(), reason="the sktime wheel is not in the data cache"
)
def test_the_real_japanese_vowels():
    train, test = load_japanese_vowels("train"), load_japanese_vowels("test")
    assert (len(train), len(test)) == (270, 370)
    assert train.classes == test.classes == tuple("123456789")
    assert torch.bincount(train.labels).tolist() == [30] * 9
    assert torch.bincount(test.labels).tolist() == [31, 35, 88, 44, 29, 24, 40, 50, 29]
    lengths = torch.cat([train.lengths, test.lengths])
    assert train.feature_size == 12 and (lengths.min(), lengths.max()) == (7, 29)
    assert all(torch.isfinite(x).all() for x in train.features + test.features)


# --- long CSV ---------------------------------------------------------------------------------------------

LONG = "id,t,x,y,label,who\na,1,0.5,1.0,walk,p\nb,0,0.1,0.0,run,q\na,0,0.2,0.3,walk,p\nb,2,-1,2e3,run,q\n"


def test_a_long_csv_reads_back_each_sequence_in_order_of_its_steps(tmp_path):
    path = tmp_path / "moves.csv"
    path.write_text(LONG)
    data = read_long_csv(path, "id", "t", ["y", "x"], "label", group_column="who")
    assert data.ids == ("a", "b") and data.classes == ("run", "walk") and data.labels.tolist() == [1, 0]
    assert data.groups == ("p", "q") and data.name == "moves"
    assert torch.equal(data.features[0], torch.tensor([[0.3, 0.2], [1.0, 0.5]]))
    assert torch.equal(data.features[1], torch.tensor([[0.0, 0.1], [2000.0, -1.0]]))
    every_other = read_long_csv(path, "id", "t", None, "label", group_column="who")  # x, y
    assert torch.equal(every_other.features[0], torch.tensor([[0.2, 0.3], [0.5, 1.0]]))
    without_groups = read_long_csv(path, "id", "t", ["x"], "label")
    assert without_groups.groups is None and without_groups.feature_size == 1


def test_integer_labels_sort_as_numbers():
    assert sorted_classes(["10", "2", "9", "2"]) == ("2", "9", "10")
    assert sorted_classes(["b", "10", "a"]) == ("10", "a", "b")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("id,t,x,label\n", "a header and no rows"),
        ("id,step,x,lab\n1,0,1,a\n", "no column 't', 'label'; the columns are: id, step, x, lab"),
        ("id,t,x,label\n1,0,1,a\n1,1,oops,a\n", "line 3, column 'x': 'oops' is not a finite number"),
        ("id,t,x,label\n1,0,1,a\n1,,2,a\n", "line 3, column 't': '' is not a finite number"),
        ("id,t,x,label\n1,0,nan,a\n", "line 2, column 'x': 'nan' is not a finite number"),
        (
            "id,t,x,label\n1,0,1,a\n2,0,1,b\n1,1,1,b\n",
            "line 4: sequence '1' has label 'b' here and 'a' on line 2",
        ),
        ("id,t,x,label\n1,0,1,a\n1,2,1,a\n1,0,3,a\n", "sequence '1' has 't' 0 twice \\(lines 2 and 4\\)"),
        ("id,t,x,label\n1,0,1\n", "line 2: 3 cells, the header has 4"),
        ("id,t,x,label\n1,0,1, \n", "line 2, column 'label': an empty label"),
        ("id,t,label,t\n1,0,a,1\n", "column 't' appears more than once"),
    ],
)
def test_a_bad_long_csv_is_an_error_naming_the_file_row_and_column(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as caught:
        read_long_csv(path, "id", "t", None if "t,label,t" in text else ["x"], "label")
    assert str(caught.value).startswith(str(path))


# --- audio folders ----------------------------------------------------------------------------------------


def write_wav(path: Path, samples: int, seed: int, channels: int = 1, width: int = 2) -> Path:
    ints = np.random.default_rng(seed).integers(-3000, 3000, (samples, channels))
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(width)
        f.setframerate(8000)
        f.writeframes(
            (ints // 256 + 128).astype("u1").tobytes() if width == 1 else ints.astype("<i2").tobytes()
        )
    return path


def digit_folder(folder: Path, speakers=("ann", "bo_b"), indices=range(3)) -> Path:
    """Wavs named like the Free Spoken Digit Dataset's, digits 0, 1 and 10; 8-bit, 16-bit and stereo."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed, (digit, speaker, index) in enumerate(
        (d, s, i) for d in (0, 1, 10) for s in speakers for i in indices
    ):
        write_wav(
            folder / f"{digit}_{speaker}_{index}.wav", 600 + 40 * seed, seed, 1 + seed % 2, 1 + (seed % 3 > 0)
        )
    (folder / "README.md").write_text("not a recording")
    (folder / "._0_ann_0.wav").write_bytes(b"macOS metadata")
    return folder


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("RNNLAB_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache" / "features"


def test_an_audio_folder_reads_its_labels_and_speakers_from_the_file_names(tmp_path, cache):
    folder = digit_folder(tmp_path / "digits")
    data = read_audio_folder(folder, cache=False)
    assert len(data) == 18 and data.classes == ("0", "1", "10") and data.name == "digits"
    assert data.ids is not None and data.groups is not None
    for x, name, label, speaker in zip(data.features, data.ids, data.labels, data.groups, strict=True):
        digit, rest = name.split("_", 1)
        who = rest.rsplit("_", 1)[0]
        assert data.classes[label] == digit and speaker == who
        torch.testing.assert_close(x, audio.mfcc(*audio.read_wav(folder / name)), rtol=0, atol=0)
    assert not cache.exists()


def test_the_second_read_comes_from_the_cache_and_a_changed_file_is_read_again(tmp_path, cache, monkeypatch):
    folder = digit_folder(tmp_path / "digits")
    first = read_audio_folder(folder, n_mfcc=8)
    (written,) = cache.iterdir()
    assert written.suffix == ".pt" and first.feature_size == 8

    computed = []
    real_mfcc = audio.mfcc

    def counting_mfcc(samples, rate, **options):
        computed.append(len(samples))
        return real_mfcc(samples, rate, **options)

    monkeypatch.setattr(audio, "mfcc", counting_mfcc)
    again = read_audio_folder(folder, n_mfcc=8)
    assert computed == [] and again.ids == first.ids
    assert all(torch.equal(a, b) for a, b in zip(first.features, again.features, strict=True))

    changed = write_wav(folder / "1_ann_2.wav", 999, seed=99)
    os.utime(changed, ns=(1, 1))
    third = read_audio_folder(folder, n_mfcc=8)
    assert computed == [999]  # only the changed file
    assert third.ids is not None
    at = third.ids.index("1_ann_2.wav")
    torch.testing.assert_close(
        third.features[at], real_mfcc(*audio.read_wav(changed), n_mfcc=8), rtol=0, atol=0
    )
    read_audio_folder(folder, n_mfcc=8)
    assert computed == [999]  # the update was cached

    (folder / "0_ann_0.wav").unlink()
    assert len(read_audio_folder(folder, n_mfcc=8)) == 17 and computed == [999]
    other = read_audio_folder(folder, n_mfcc=5)  # other options: another cache
    assert other.feature_size == 5 and len(computed) == 1 + 17 and len(list(cache.iterdir())) == 2
    assert not [p for p in cache.iterdir() if p.suffix != ".pt"]  # no temporary file left behind


@pytest.mark.parametrize("damage", [b"not a torch file", None], ids=["garbage", "truncated"])
def test_a_corrupt_cache_is_ignored_and_rebuilt(tmp_path, cache, monkeypatch, damage):
    folder = digit_folder(tmp_path / "digits", speakers=("ann",), indices=range(2))
    first = read_audio_folder(folder)
    (written,) = cache.iterdir()
    written.write_bytes(damage if damage is not None else written.read_bytes()[:100])
    rebuilt = read_audio_folder(folder)
    assert all(torch.equal(a, b) for a, b in zip(first.features, rebuilt.features, strict=True))

    def no_mfcc(*args, **kwargs):
        raise AssertionError("the rebuilt cache should have been read")

    monkeypatch.setattr(audio, "mfcc", no_mfcc)
    assert len(read_audio_folder(folder)) == len(first)


def test_a_cache_that_cannot_be_written_is_a_warning_and_leaves_no_temporary_file(
    tmp_path, cache, monkeypatch
):
    folder = digit_folder(tmp_path / "digits", speakers=("ann",), indices=range(1))

    def failing_save(content, f):
        f.write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.warns(UserWarning, match="not cached: cannot write .*No space left"):
        data = read_audio_folder(folder)
    assert len(data) == 3 and list(cache.iterdir()) == []


def test_a_pattern_with_subfolders_and_fields_that_take_the_shortest_text(tmp_path, cache):
    for label in ("yes", "no"):
        (tmp_path / "words" / label).mkdir(parents=True)
        write_wav(tmp_path / "words" / label / f"x_y_{len(label)}.wav", 500, len(label))
    data = read_audio_folder(tmp_path / "words", "{label}/{speaker}_{take}.wav", cache=False)
    assert data.ids == ("no/x_y_2.wav", "yes/x_y_3.wav") and data.classes == ("no", "yes")
    assert data.groups == ("x", "x")  # the shortest speaker that lets "{take}.wav" match the rest
    match = pattern_regex("{label}_{speaker}_{index}.wav").fullmatch("7_jack_son_32.wav")
    assert match is not None and match.groupdict() == {"label": "7", "speaker": "jack_son", "index": "32"}


def test_audio_folder_errors(tmp_path, cache):
    folder = digit_folder(tmp_path / "digits", speakers=("ann",), indices=range(1))
    write_wav(folder / "ann-zero.wav", 500, 0)
    with pytest.raises(DataError, match="1 file\\(s\\) do not match the pattern '.*': ann-zero.wav"):
        read_audio_folder(folder)
    with pytest.raises(DataError, match="no files matching"):
        read_audio_folder(tmp_path / "digits", "{label}.flac")
    with pytest.raises(DataError, match="no such folder"):
        read_audio_folder(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="needs one \\{label\\}"):
        read_audio_folder(folder, "{speaker}_{index}.wav")
    with pytest.raises(ConfigError, match="unknown MFCC option n_mfccs; the options: n_mfcc, n_mels"):
        read_audio_folder(folder, n_mfccs=12)
    (folder / "ann-zero.wav").write_bytes(b"")
    (folder / "ann-zero.wav").rename(folder / "1_ann_9.wav")
    with pytest.raises(DataError, match="1_ann_9.wav: not a wav file"):
        read_audio_folder(folder)


def test_the_fsdd_split_holds_out_recordings_0_to_4_of_each_speaker_and_digit(tmp_path, cache):
    data = read_audio_folder(digit_folder(tmp_path / "d", indices=range(7)), cache=False)
    train, test = fsdd_split(data)
    assert (len(train), len(test)) == (12, 30)
    assert test.ids is not None and train.ids is not None
    assert all(int(name[-5]) < 5 for name in test.ids) and all(int(name[-5]) >= 5 for name in train.ids)
    assert torch.equal(test.labels, torch.tensor([data.classes.index(n.split("_")[0]) for n in test.ids]))
    assert train.classes == test.classes == data.classes
    with pytest.raises(ConfigError, match="\\{index\\}"):
        fsdd_split(data, "{label}_{speaker}.wav")


def test_sequences_check_what_they_hold():
    x = [torch.zeros(3, 2), torch.zeros(1, 2)]
    with pytest.raises(DataError, match="labels must be int64"):
        Sequences(x, torch.tensor([0, 1], dtype=torch.int32), ("a", "b"))
    with pytest.raises(DataError, match="labels outside 0..1"):
        Sequences(x, torch.tensor([0, 2]), ("a", "b"))
    with pytest.raises(DataError, match="1 groups for 2 sequences"):
        Sequences(x, torch.tensor([0, 1]), ("a", "b"), groups=("g",))
    with pytest.raises(DataError, match="one F"):
        Sequences([torch.zeros(3, 2), torch.zeros(3, 4)], torch.tensor([0, 1]), ("a", "b"))
    with pytest.raises(DataError, match="without steps"):
        Sequences([torch.zeros(0, 2)], torch.tensor([0]), ("a",))


@pytest.mark.skipif(not FSDD.is_dir(), reason="the Free Spoken Digit Dataset is not in ../shared/data/fsdd")
def test_the_real_free_spoken_digit_dataset(cache):
    data = read_audio_folder(FSDD)
    assert len(data) == 3000 and data.classes == tuple("0123456789") and data.feature_size == 13
    assert data.groups is not None and len(set(data.groups)) == 6
    train, test = fsdd_split(data)
    assert (len(train), len(test)) == (2700, 300)
    assert torch.bincount(test.labels).tolist() == [30] * 10
    assert all(torch.isfinite(x).all() for x in data.features)
