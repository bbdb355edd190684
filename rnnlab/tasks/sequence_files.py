"""Readers for the sequence-classification tasks: variable-length multichannel series with one label each.

Every reader returns `Sequences`: a list of float32 (T_i, F) tensors of their own lengths, int64 labels
that index `classes`, and optionally a group per sequence (the speaker) and an id (where it came from).

    reader                 reads                                              groups    ids
    load_japanese_vowels   sktime's JapaneseVowels .ts files: 12 LPC          -         -
                           cepstra, 7-29 steps, 9 speakers, 270 + 370
    read_ts                any sktime .ts classification file                 -         -
    read_long_csv          a CSV of one row per (sequence, step)              optional  sequence id
    read_audio_folder      a folder of PCM wavs, as MFCCs; labels from        speaker   file path
                           the file names ("{label}_{speaker}_{index}.wav")

Classes are sorted, numerically when every label is an integer ("2" before "10"); a .ts file keeps the
order its @classLabel line gives. Nothing here downloads anything: JapaneseVowels comes from the sktime
wheel in rnnlab's data cache (`rnnlab data get sktime`), and a missing wheel raises `MissingDataset`.

MFCCs of an audio folder are cached on disk, in rnnlab's data cache under features/: one file per folder and
MFCC settings, holding each wav's name, size and modification time beside its features. A later read
computes only the wavs that are new or changed since; a cache that cannot be read is ignored and rebuilt.
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import json
import math
import os
import pickle
import re
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from rnnlab.errors import ConfigError, DataError
from rnnlab.tasks import audio
from rnnlab.tasks.packages import archive_member, cache_dir

PathLike = str | os.PathLike[str]

#: the file names of the Free Spoken Digit Dataset: "7_jackson_32.wav" is the 32nd "seven" by jackson.
FSDD_PATTERN = "{label}_{speaker}_{index}.wav"
#: inside the sktime wheel: the folder of JapaneseVowels_TRAIN.ts and JapaneseVowels_TEST.ts.
JAPANESE_VOWELS = "sktime/datasets/data/JapaneseVowels/JapaneseVowels_{}.ts"
#: part of every feature cache's key: raise it when `audio.mfcc` computes something else for the same options.
FEATURES_VERSION = 1
#: the options of `audio.mfcc` (after the samples and the sample rate), with their defaults.
MFCC_OPTIONS = tuple(inspect.signature(audio.mfcc).parameters.values())[2:]
#: the header lines of a .ts file, lower-cased, in the order they usually come.
TS_TAGS = (
    "@problemname",
    "@timestamps",
    "@missing",
    "@univariate",
    "@dimensions",
    "@equallength",
    "@serieslength",
    "@classlabel",
    "@targetlabel",
    "@data",
)


@dataclass(frozen=True)
class Sequences:
    """Labelled sequences of their own lengths.

    Args:
        features: one float32 (T_i, F) tensor per sequence, T_i >= 1, the same F for all.
        labels: int64 (N,), each an index into `classes`.
        classes: the label names; class id k is `classes[k]`.
        groups: who or what each sequence comes from (the speaker), for splits that keep a group apart.
        name: what the data set is called in messages and reports.
        ids: what each sequence is called where it came from (a CSV's sequence id, a wav's path).
    """

    features: list[Tensor]
    labels: Tensor
    classes: tuple[str, ...]
    groups: tuple[str, ...] | None = None
    name: str = ""
    ids: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        n = len(self.features)
        if self.labels.dtype != torch.int64 or self.labels.shape != (n,):
            raise DataError(
                f"{self.name}: labels must be int64 ({n},), got {self.labels.dtype} "
                f"{tuple(self.labels.shape)}"
            )
        for what, values in (("groups", self.groups), ("ids", self.ids)):
            if values is not None and len(values) != n:
                raise DataError(f"{self.name}: {len(values)} {what} for {n} sequences")
        if n and not bool(((self.labels >= 0) & (self.labels < len(self.classes))).all()):
            raise DataError(f"{self.name}: labels outside 0..{len(self.classes) - 1}")
        shapes = {(x.dtype, x.dim(), x.shape[-1] if x.dim() else 0) for x in self.features}
        if len(shapes) > 1 or any(dtype != torch.float32 or dim != 2 for dtype, dim, _ in shapes):
            raise DataError(
                f"{self.name}: features must be float32 (T, F) with one F, got {sorted(map(str, shapes))}"
            )
        if any(len(x) == 0 for x in self.features):
            raise DataError(f"{self.name}: a sequence without steps")

    def __len__(self) -> int:
        return len(self.features)

    @property
    def feature_size(self) -> int:
        """F, the features per step."""
        return self.features[0].shape[1] if self.features else 0

    @property
    def lengths(self) -> Tensor:
        """int64 (N,): each sequence's T_i."""
        return torch.tensor([len(x) for x in self.features], dtype=torch.int64)

    def subset(self, indices: Sequence[int] | Tensor) -> Sequences:
        """The sequences at `indices`, in that order, with the same classes."""
        picked = [int(i) for i in indices]
        return Sequences(
            [self.features[i] for i in picked],
            self.labels[torch.tensor(picked, dtype=torch.int64)],
            self.classes,
            None if self.groups is None else tuple(self.groups[i] for i in picked),
            self.name,
            None if self.ids is None else tuple(self.ids[i] for i in picked),
        )


# --- sktime .ts files -------------------------------------------------------------------------------------


def load_japanese_vowels(split: Literal["train", "test"]) -> Sequences:
    """JapaneseVowels (Kudo, Toyama, Shimbo 1999; UCI): 9 speakers saying "ae", as 12 LPC cepstrum
    coefficients per 6.4 ms frame, 7-29 frames; the class is the speaker ("1".."9"). 270 train (30 per
    speaker) and 370 test sequences, read from sktime's .ts files in the sktime wheel in the data cache.

    Raises:
        MissingDataset: the wheel is not in the cache; the message says `rnnlab data get sktime`.
    """
    if split not in ("train", "test"):
        raise ConfigError(f"split must be 'train' or 'test', got {split!r}")
    member = JAPANESE_VOWELS.format(split.upper())
    return parse_ts(_decode(archive_member("sktime", member, "JapaneseVowels"), member), member)


def read_ts(path: PathLike) -> Sequences:
    """The labelled series of an sktime .ts classification file (see `parse_ts`)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read it ({e.strerror or e})") from None
    return parse_ts(_decode(data, path), path)


def parse_ts(text: str, where: PathLike) -> Sequences:
    """The series of an sktime .ts classification file's text; `where` names it in errors.

    The format: '#' comment lines; a header of '@tag value' lines (@problemName, @timeStamps false,
    @missing, @univariate, @dimensions D, @equalLength, @seriesLength T, @classLabel true LABEL...), then
    '@data' and one case per line: D dimensions separated by ':', each its T values separated by ',',
    the class label last. '?' is a missing value (NaN here). Time-stamped series are not read.

    Raises:
        DataError: naming `where` and the (1-based) line of a malformed header or case.
    """
    header: dict[str, str] = {}
    classes: tuple[str, ...] | None = None
    dimensions: int | None = None
    features: list[Tensor] = []
    labels: list[int] = []
    in_data = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        at = f"{where}, line {number}"
        if in_data:
            assert classes is not None
            case, label = _ts_case(line, at, classes, dimensions, header)
            dimensions = case.shape[1]
            features.append(case)
            labels.append(label)
            continue
        if not line.startswith("@"):
            raise DataError(f"{at}: a case before @data (the header ends with a line '@data')")
        tag, _, value = line.partition(" ")
        tag, value = tag.lower(), value.strip()
        if tag not in TS_TAGS:
            raise DataError(f"{at}: unknown header line {tag!r}; a .ts header has {', '.join(TS_TAGS)}")
        if tag in ("@timestamps", "@missing", "@univariate", "@equallength") and value not in (
            "true",
            "false",
        ):
            raise DataError(f"{at}: {tag} must be true or false, got {value!r}")
        if tag in ("@dimensions", "@serieslength") and not (value.isdigit() and int(value) > 0):
            raise DataError(f"{at}: {tag} must be a positive whole number, got {value!r}")
        if tag == "@timestamps" and value == "true":
            raise DataError(f"{at}: time-stamped series (@timeStamps true) are not read, only plain values")
        if tag == "@targetlabel" or (tag == "@classlabel" and value.split()[:1] != ["true"]):
            raise DataError(
                f"{at}: {tag} {value}: not a classification file (need '@classLabel true LABEL...')"
            )
        header[tag] = value
        if tag == "@classlabel":
            classes = tuple(value.split()[1:])
            if not classes or len(set(classes)) != len(classes):
                raise DataError(f"{at}: @classLabel true needs distinct labels after it, got {value!r}")
        if tag == "@data":
            if classes is None:
                raise DataError(f"{at}: @data before any '@classLabel true LABEL...' line")
            in_data = True
            dimensions = int(header["@dimensions"]) if "@dimensions" in header else None
            if dimensions is None and header.get("@univariate") == "true":
                dimensions = 1
    if not in_data:
        raise DataError(f"{where}: no @data line (a .ts file's header ends with '@data', then the cases)")
    if not features:
        raise DataError(f"{where}: no cases after @data")
    assert classes is not None
    name = header.get("@problemname") or Path(where).stem
    return Sequences(features, torch.tensor(labels, dtype=torch.int64), classes, name=name)


def _ts_case(
    line: str, at: str, classes: tuple[str, ...], dimensions: int | None, header: dict[str, str]
) -> tuple[Tensor, int]:
    """One case of a .ts file: its values (T, D) float32 and its class id."""
    *parts, label = line.split(":")
    if not parts or (dimensions is not None and len(parts) != dimensions):
        expected = "" if dimensions is None else f" {dimensions} dimensions"
        raise DataError(
            f"{at}: {len(parts)} dimensions, expected{expected or ' at least one'} separated by ':', "
            "then the class label"
        )
    label = label.strip()
    if label not in classes:
        raise DataError(f"{at}: class label {label!r} is not one of @classLabel's: {' '.join(classes)}")
    columns = [_ts_values(part, f"{at}, dimension {d}") for d, part in enumerate(parts, start=1)]
    lengths = [len(column) for column in columns]
    if len(set(lengths)) > 1:
        raise DataError(f"{at}: dimensions of unequal length within a case: {', '.join(map(str, lengths))}")
    if header.get("@equallength") == "true" and "@serieslength" in header:
        if lengths[0] != int(header["@serieslength"]):
            raise DataError(f"{at}: {lengths[0]} values, @seriesLength says {header['@serieslength']}")
    return torch.from_numpy(np.stack(columns, axis=1).astype(np.float32)), classes.index(label)


def _ts_values(part: str, at: str) -> np.ndarray:
    values = part.split(",")
    try:
        return np.array(values, dtype=np.float64)
    except ValueError:
        pass
    parsed = []
    for i, value in enumerate(values, start=1):
        if value.strip() == "?":
            parsed.append(math.nan)
            continue
        try:
            parsed.append(float(value))
        except ValueError:
            raise DataError(
                f"{at}, value {i}: {value!r} is not a number (nor '?', a missing value)"
            ) from None
    return np.array(parsed, dtype=np.float64)


def _decode(data: bytes, where: PathLike) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{where}: not a text file (byte {e.start} is not UTF-8)") from None


# --- long-format CSV --------------------------------------------------------------------------------------


def read_long_csv(
    path: PathLike,
    id_column: str,
    order_column: str,
    feature_columns: Sequence[str] | None,
    label_column: str,
    *,
    group_column: str | None = None,
) -> Sequences:
    """Sequences from a CSV with a header and one row per (sequence, step).

    Example, two sequences of two features ("a" of 2 steps, "b" of 1), rows in any order:

        id,t,x,y,label
        a,1,0.5,1.0,walk
        b,0,0.1,0.0,run
        a,0,0.2,0.3,walk

    Args:
        path: the CSV file (UTF-8, a byte-order mark allowed).
        id_column: names the sequence a row belongs to; sequences come in the order they first appear.
        order_column: a number that orders a sequence's rows (each value once per sequence).
        feature_columns: the step's features, in this order (None: every column not named here).
        label_column: the sequence's class, the same on all of its rows; strings or integers.
        group_column: optionally who or what the sequence comes from (the same on all of its rows).

    Raises:
        DataError: starting with the path, naming the line and column: a missing column, a cell that is
            not a finite number, rows of one sequence that disagree on its label (or group), an order value
            twice in one sequence, an empty file.
    """
    rows = _read_csv(path)
    if not rows:
        raise DataError(f"{path}: empty file (expected a header, then one row per sequence and step)")
    (_, header), body = rows[0], rows[1:]
    named = [id_column, order_column, label_column] + ([group_column] if group_column else [])
    if feature_columns is None:
        feature_columns = [column for column in header if column not in named]
    wanted = [*named, *feature_columns]
    missing = [column for column in wanted if column not in header]
    if missing:
        raise DataError(
            f"{path}: no column {', '.join(map(repr, missing))}; the columns are: {', '.join(header)}"
        )
    twice = sorted({column for column in wanted if header.count(column) > 1})
    if twice:
        raise DataError(f"{path}: column {', '.join(map(repr, twice))} appears more than once in the header")
    if not feature_columns:
        raise DataError(f"{path}: no feature columns (the columns are: {', '.join(header)})")
    if not body:
        raise DataError(f"{path}: a header and no rows")
    at = {column: header.index(column) for column in wanted}
    steps: dict[str, list[tuple[float, int, list[float]]]] = {}
    first: dict[str, tuple[int, str, str]] = {}  # id -> (line, label, group) where it first appears
    for line, row in body:
        if len(row) != len(header):
            raise DataError(f"{path}, line {line}: {len(row)} cells, the header has {len(header)}")
        sequence, label = row[at[id_column]], row[at[label_column]].strip()
        group = row[at[group_column]].strip() if group_column else ""
        if not label:
            raise DataError(f"{path}, line {line}, column {label_column!r}: an empty label")
        seen = first.setdefault(sequence, (line, label, group))
        for what, value, before in (("label", label, seen[1]), ("group", group, seen[2])):
            if value != before:
                raise DataError(
                    f"{path}, line {line}: sequence {sequence!r} has {what} {value!r} here and {before!r} "
                    f"on line {seen[0]}"
                )
        order = _number(row, at, order_column, f"{path}, line {line}")
        step = [_number(row, at, column, f"{path}, line {line}") for column in feature_columns]
        steps.setdefault(sequence, []).append((order, line, step))
    features = []
    for sequence, rows_of_one in steps.items():
        rows_of_one.sort(key=lambda step: step[0])
        for (order, line_a, _), (next_order, line_b, _) in zip(rows_of_one, rows_of_one[1:], strict=False):
            if order == next_order:
                raise DataError(
                    f"{path}: sequence {sequence!r} has {order_column!r} {order:g} twice (lines {line_a} and "
                    f"{line_b})"
                )
        features.append(torch.tensor([step[2] for step in rows_of_one], dtype=torch.float32))
    labels = [first[sequence][1] for sequence in steps]
    classes = sorted_classes(labels)
    return Sequences(
        features,
        torch.tensor([classes.index(label) for label in labels], dtype=torch.int64),
        classes,
        tuple(first[sequence][2] for sequence in steps) if group_column else None,
        Path(path).stem,
        tuple(steps),
    )


def _number(row: list[str], at: dict[str, int], column: str, where: str) -> float:
    cell = row[at[column]]
    try:
        value = float(cell)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DataError(f"{where}, column {column!r}: {cell!r} is not a finite number")
    return value


def _read_csv(path: PathLike) -> list[tuple[int, list[str]]]:
    """The non-blank rows of a CSV file, each with the (1-based) line it ends on."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            return [(reader.line_num, row) for row in reader if row]
    except OSError as e:
        raise DataError(f"{path}: cannot read it ({e.strerror or e})") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: not a UTF-8 CSV file ({e})") from None


def sorted_classes(labels: Sequence[str]) -> tuple[str, ...]:
    """The distinct labels, sorted: as numbers when all are integers ("2" before "10"), else as text."""
    distinct = set(labels)
    try:
        return tuple(sorted(distinct, key=int))
    except ValueError:
        return tuple(sorted(distinct))


# --- a folder of audio files ------------------------------------------------------------------------------


def read_audio_folder(
    folder: PathLike, pattern: str = FSDD_PATTERN, *, cache: bool = True, **mfcc_options: Any
) -> Sequences:
    """The MFCCs (`audio.mfcc`) of the wav files in `folder`, labelled by their names.

    Args:
        folder: the folder; with a '/' in `pattern`, its subfolders (e.g. "{label}/{speaker}_{index}.wav").
        pattern: the file names (paths inside `folder`), with {label} and optionally {speaker} (the group)
            and {index} (digits); any other {field} matches and is ignored. A field takes the shortest text
            that lets the rest match, so "{label}_{speaker}" reads "a_b_c" as label "a", speaker "b_c".
        cache: reuse and update the cached features (see the module docstring); False reads every file.
        mfcc_options: passed on to `audio.mfcc` (n_mfcc=13, n_mels=40, ...), and part of the cache's key.

    Every file at the pattern's depth whose name ends like the pattern (".wav") must match it: one that
    does not is an error naming it, so a misnamed file is never silently left out or mislabelled; files
    ending otherwise (README.md) and hidden files (".DS_Store", macOS's "._0_george_0.wav") are left alone.

    Raises:
        DataError: no such folder, no matching files, a file that does not match, a wav that cannot be read.
        ConfigError: a pattern without {label}, an unknown MFCC option.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    regex = pattern_regex(pattern)
    options = _mfcc_options(mfcc_options)
    files, fields = _matching_files(folder, pattern, regex)
    stats = [path.stat() for path in files]
    names = [path.relative_to(folder).as_posix() for path in files]
    key = json.dumps(
        {"version": FEATURES_VERSION, "folder": str(folder.resolve()), "mfcc": options}, sort_keys=True
    )
    digest = hashlib.sha256(key.encode()).hexdigest()
    cache_file = cache_dir() / "features" / f"{folder.resolve().name}-{digest[:16]}.pt"
    cached = _read_cache(cache_file, digest) if cache else {}
    features, computed = [], 0
    for path, name, stat in zip(files, names, stats, strict=True):
        hit = cached.get(name)
        if hit is not None and hit[0] == (stat.st_size, stat.st_mtime_ns):
            features.append(hit[1])
            continue
        samples, rate = audio.read_wav(path)
        features.append(audio.mfcc(samples, rate, **options))
        computed += 1
    if cache and (computed or set(cached) != set(names)):
        _write_cache(cache_file, digest, names, stats, features)
    labels = [match["label"] for match in fields]
    classes = sorted_classes(labels)
    return Sequences(
        features,
        torch.tensor([classes.index(label) for label in labels], dtype=torch.int64),
        classes,
        tuple(match["speaker"] for match in fields) if "speaker" in regex.groupindex else None,
        folder.resolve().name,
        tuple(names),
    )


def fsdd_split(
    sequences: Sequences, pattern: str = FSDD_PATTERN, test_below: int = 5
) -> tuple[Sequences, Sequences]:
    """The Free Spoken Digit Dataset's usual split: recordings 0..4 of each speaker and digit are the test
    set (300 of the 3,000), the rest train; (train, test). Read from the ids (`read_audio_folder`'s file
    paths) with `pattern`, which must have {index}."""
    regex = pattern_regex(pattern)
    if "index" not in regex.groupindex or sequences.ids is None:
        raise ConfigError(
            f"fsdd_split needs sequences with file names and a pattern with {{index}}, got {pattern!r}"
        )
    test = []
    for name in sequences.ids:
        match = regex.fullmatch(name)
        if match is None:
            raise DataError(f"{sequences.name}: {name} does not match the pattern {pattern!r}")
        test.append(int(match["index"]) < test_below)
    train_at = [i for i, held in enumerate(test) if not held]
    return sequences.subset(train_at), sequences.subset([i for i, held in enumerate(test) if held])


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """The regular expression of a file-name pattern: each {field} a named group ({index}: digits; any other:
    the shortest text without '/'), the rest literal. Use it with `fullmatch`."""
    pieces = re.split(r"\{(\w+)\}", pattern)  # literal, field, literal, field, ..., literal
    fields = pieces[1::2]
    if "label" not in fields or len(set(fields)) != len(fields):
        raise ConfigError(f"file-name pattern {pattern!r}: needs one {{label}} and each field once")
    regex = "".join(
        re.escape(piece)
        if i % 2 == 0
        else (rf"(?P<{piece}>\d+)" if piece == "index" else rf"(?P<{piece}>[^/]+?)")
        for i, piece in enumerate(pieces)
    )
    return re.compile(regex)


def _matching_files(
    folder: Path, pattern: str, regex: re.Pattern[str]
) -> tuple[list[Path], list[re.Match[str]]]:
    ending = Path(pattern).suffix
    depth = pattern.count("/") + 1
    candidates = sorted(
        path
        for path in folder.glob("/".join(["*"] * depth))
        if path.is_file() and path.name.endswith(ending) and not path.name.startswith(".")
    )
    matches = [regex.fullmatch(path.relative_to(folder).as_posix()) for path in candidates]
    wrong = [
        path.relative_to(folder).as_posix()
        for path, match in zip(candidates, matches, strict=True)
        if not match
    ]
    if wrong:
        raise DataError(
            f"{folder}: {len(wrong)} file(s) do not match the pattern {pattern!r}: {', '.join(wrong[:5])}"
            f"{', ...' if len(wrong) > 5 else ''}; rename them or move them out"
        )
    if not candidates:
        raise DataError(f"{folder}: no files matching the pattern {pattern!r}")
    return candidates, [match for match in matches if match is not None]


def _mfcc_options(given: dict[str, Any]) -> dict[str, Any]:
    """Every option of `audio.mfcc`, its default where not given, so that the cache's key names them all."""
    unknown = sorted(set(given) - {p.name for p in MFCC_OPTIONS})
    if unknown:
        known = ", ".join(p.name for p in MFCC_OPTIONS)
        raise ConfigError(f"unknown MFCC option {', '.join(unknown)}; the options: {known}")
    return {p.name: given.get(p.name, p.default) for p in MFCC_OPTIONS}


def _read_cache(path: Path, digest: str) -> dict[str, tuple[tuple[int, int], Tensor]]:
    """name -> ((size, mtime_ns), features) of a feature cache; {} when it is absent, corrupt or another's."""
    if not path.is_file():
        return {}
    try:
        content = torch.load(path, weights_only=True)
        if content["key"] != digest:
            return {}
        features = torch.split(content["features"], content["lengths"].tolist())
        sizes, mtimes = content["sizes"].tolist(), content["mtimes"].tolist()
        return {
            name: ((size, mtime), x)
            for name, size, mtime, x in zip(content["files"], sizes, mtimes, features, strict=True)
        }
    except (OSError, RuntimeError, EOFError, ValueError, KeyError, TypeError, pickle.UnpicklingError):
        return {}


def _write_cache(
    path: Path, digest: str, names: list[str], stats: list[os.stat_result], features: list[Tensor]
) -> None:
    """Write the cache atomically: into a temporary file beside it, then renamed over it."""
    content = {
        "key": digest,
        "files": names,
        "sizes": torch.tensor([stat.st_size for stat in stats], dtype=torch.int64),
        "mtimes": torch.tensor([stat.st_mtime_ns for stat in stats], dtype=torch.int64),
        "lengths": torch.tensor([len(x) for x in features], dtype=torch.int64),
        "features": torch.cat(features),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as f:
                torch.save(content, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as e:
        warnings.warn(f"MFCC features not cached: cannot write {path} ({e.strerror or e})", stacklevel=3)


__all__ = [
    "FSDD_PATTERN",
    "Sequences",
    "fsdd_split",
    "load_japanese_vowels",
    "parse_ts",
    "pattern_regex",
    "read_audio_folder",
    "read_long_csv",
    "read_ts",
    "sorted_classes",
]
