"""The string-to-string pairs of rnnlab.tasks.pairs: numbers in words, dates, gettext catalogs, TSV files,
their tokens and their split."""

from __future__ import annotations

import re
import struct
import zipfile
from datetime import date
from pathlib import Path

import pytest

from rnnlab.errors import ConfigError, DataError
from rnnlab.tasks import pairs as pairs_module
from rnnlab.tasks.packages import MissingDataset
from rnnlab.tasks.pairs import (
    Pair,
    dates,
    detokenize,
    django_pairs,
    gettext_pairs,
    numbers_to_words,
    read_pairs_tsv,
    split_pairs,
    tokenize,
)

pytest.importorskip("num2words")
babel_dates = pytest.importorskip("babel.dates")

COREUTILS_FR = Path("/usr/share/locale/fr/LC_MESSAGES/coreutils.mo")
HEADER = "Content-Type: text/plain; charset=UTF-8\nPlural-Forms: nplurals=2; plural=(n > 1);\n"


def write_mo(path: Path, messages: dict[str, str]) -> Path:
    """A GNU .mo catalog (little-endian, revision 0, no hash table) of `messages`: msgid -> msgstr, a
    plural entry's msgid and msgstr holding their forms apart by NUL, a context's by EOT ("ctx\\x04id")."""
    keys = sorted(messages)
    ids = [key.encode() for key in keys]
    strs = [messages[key].encode() for key in keys]
    count = len(keys)
    ids_table, strs_table = 28, 28 + 8 * count
    offset = 28 + 16 * count
    data, table = b"", []
    for text in ids + strs:
        table.append((len(text), offset + len(data)))
        data += text + b"\0"
    head = struct.pack("<7I", 0x950412DE, 0, count, ids_table, strs_table, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(head + b"".join(struct.pack("<2I", *entry) for entry in table) + data)
    return path


# numbers_to_words


def test_numbers_fr_writes_1234_in_words():
    assert numbers_to_words("fr", 1, low=1234, high=1234) == [Pair("1234", "mille deux cent trente-quatre")]


def test_numbers_are_distinct_in_range_and_fixed_by_the_seed():
    first = numbers_to_words("en", 200, low=10, high=5000, seed=3)
    sources = [pair.source for pair in first]
    assert len(first) == 200 and len(set(sources)) == 200
    assert all(10 <= int(source) <= 5000 for source in sources)
    assert numbers_to_words("en", 200, low=10, high=5000, seed=3) == first
    assert numbers_to_words("en", 200, low=10, high=5000, seed=4) != first
    assert Pair("21", "twenty-one") in numbers_to_words("en", 100, low=0, high=99)


def test_numbers_more_than_the_range_give_all_of_it_shuffled():
    got = numbers_to_words("de", 50, low=5, high=14, seed=1)
    assert sorted(int(pair.source) for pair in got) == list(range(5, 15))
    assert [pair.source for pair in got] != [str(n) for n in range(5, 15)]


def test_numbers_unknown_language_lists_some_num2words_has():
    with pytest.raises(ConfigError, match=r"no language 'xx'.*\bde\b.*\ben\b"):
        numbers_to_words("xx", 3)
    with pytest.raises(ConfigError, match="low must not be above high"):
        numbers_to_words("fr", 3, low=10, high=2)
    assert numbers_to_words("fr_FR", 1, low=2, high=2) == [Pair("2", "deux")]


# dates


def test_dates_targets_are_the_iso_dates_the_sources_were_written_from():
    written = pairs_module._written_dates(
        ("en", "fr", "de", "es"), 200, 7, date(1950, 1, 1), date(2049, 12, 31)
    )
    got = dates(count=200, seed=7)
    assert [pair.source for pair in got] == [source for _, _, _, source in written]
    assert len({pair.target for pair in got}) == 200
    for pair, (day, style, locale, source) in zip(got, written, strict=True):
        assert date.fromisoformat(pair.target) == day
        assert date(1950, 1, 1) <= day <= date(2049, 12, 31)
        assert babel_dates.format_date(date.fromisoformat(pair.target), style, locale=locale) == source
    assert {locale for _, _, locale, _ in written} == {"en", "fr", "de", "es"}
    assert {style for _, style, _, _ in written} == {"full", "long", "medium", "short"}
    assert dates(count=200, seed=8) != got


def test_dates_known_case_and_whole_range():
    assert (
        dates(["fr"], count=1, first=date(2021, 3, 3), last=date(2021, 3, 3), seed=0)[0].target
        == "2021-03-03"
    )
    one_day = {dates(["fr"], 1, seed, date(2021, 3, 3), date(2021, 3, 3))[0].source for seed in range(20)}
    assert one_day == {"mercredi 3 mars 2021", "3 mars 2021", "03/03/2021"}
    week = dates(["en"], 30, 0, date(2020, 1, 1), date(2020, 1, 7))
    assert sorted(pair.target for pair in week) == [f"2020-01-0{day}" for day in range(1, 8)]


def test_dates_unknown_locale_is_named():
    with pytest.raises(ConfigError, match="'zz_QQ'"):
        dates(["en", "zz_QQ"], count=3)
    with pytest.raises(ConfigError, match="at least one locale"):
        dates([], count=3)


# django_pairs


def fake_django_wheel(cache: Path) -> Path:
    """A wheel named as Django 5.2.8's with a French catalog for Django and one for a contrib app."""
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / "django-5.2.8-py3-none-any.whl"
    conf = write_mo(cache / "conf.mo", {"": HEADER, "Enter a valid value.": "Saisissez une valeur valide."})
    admin = write_mo(cache / "admin.mo", {"": HEADER, "Log out": "Déconnexion", "Save": "Enregistrer"})
    with zipfile.ZipFile(wheel, "w") as z:
        z.write(conf, "django/conf/locale/fr/LC_MESSAGES/django.mo")
        z.write(admin, "django/contrib/admin/locale/fr/LC_MESSAGES/django.mo")
        z.write(admin, "django/contrib/admin/locale/de/LC_MESSAGES/django.mo")
        z.writestr("django/__init__.py", "")
    return wheel


def test_django_pairs_come_from_the_catalogs_in_its_wheel(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLAB_DATA", str(tmp_path / "cache"))
    with pytest.raises(MissingDataset, match="rnnlab data get django"):
        django_pairs("fr")
    wheel = fake_django_wheel(tmp_path / "cache")
    assert django_pairs("fr") == [
        Pair("Enter a valid value.", "Saisissez une valeur valide."),
        Pair("Log out", "Déconnexion"),
        Pair("Save", "Enregistrer"),
    ]
    with pytest.raises(DataError, match=r"no catalog for 'es'; its languages are de, fr"):
        django_pairs("es")
    with zipfile.ZipFile(wheel, "a") as z:
        z.writestr("django/conf/locale/it/LC_MESSAGES/django.mo", b"not a catalog")
    with pytest.raises(DataError, match=r"locale/it/LC_MESSAGES/django\.mo: not a readable gettext catalog"):
        django_pairs("it")


def test_the_real_django_wheel_when_it_is_in_the_cache():
    from rnnlab.tasks import packages

    if not packages.source("django").available():
        pytest.skip("Django's wheel is not in the data cache (rnnlab data get django)")
    french = django_pairs("fr")
    assert len(french) > 500
    assert any("%(" in p.source and "%(" in p.target for p in french)  # named placeholders kept


# gettext_pairs


def catalog(root: Path, domain: str, messages: dict[str, str], lang: str = "fr") -> Path:
    return write_mo(root / lang / "LC_MESSAGES" / f"{domain}.mo", {"": HEADER, **messages})


def test_gettext_keeps_translated_single_messages_only(tmp_path):
    catalog(
        tmp_path,
        "app",
        {
            "Cannot open %s": "Impossible d'ouvrir %s",
            "%d file\0%d files": "%d fichier\0%d fichiers",
            "Not translated": "",
            "OK": "OK",
            "Usage: app [OPTION]...\n  -h, --help\tshow this\n": (
                "Utilisation : app [OPTION]...\n  -h, --help\taide\n"
            ),
            "menu\x04Quit": "Quitter",
            "Open": "Ouvrir",
            "x" * 60: "y" * 60,
        },
    )
    catalog(tmp_path, "zzz", {"Open": "Ouvrir (zzz)", "Close": "Fermer"})
    got = gettext_pairs("fr", root=tmp_path, max_length=59)
    assert got == [
        Pair("Cannot open %s", "Impossible d'ouvrir %s"),
        Pair("Open", "Ouvrir"),
        Pair("Quit", "Quitter"),
        Pair("Usage: app [OPTION]... -h, --help show this", "Utilisation : app [OPTION]... -h, --help aide"),
        Pair("Close", "Fermer"),
    ]
    assert gettext_pairs("fr", root=tmp_path, domains=["zzz"]) == [
        Pair("Close", "Fermer"),
        Pair("Open", "Ouvrir (zzz)"),
    ]
    assert Pair("x" * 60, "y" * 60) in gettext_pairs("fr", root=tmp_path)


def test_gettext_missing_folder_lists_the_languages(tmp_path):
    catalog(tmp_path, "app", {"Open": "Ouvrir"})
    catalog(tmp_path, "app", {"Open": "Öffnen"}, lang="de")
    with pytest.raises(DataError, match=r"xx/LC_MESSAGES: no such folder.*2 languages.* de, fr"):
        gettext_pairs("xx", root=tmp_path)
    with pytest.raises(DataError, match=r"nope\.mo: no such catalog"):
        gettext_pairs("fr", root=tmp_path, domains=["nope"])


def test_gettext_corrupt_catalog_is_named(tmp_path):
    good = catalog(tmp_path, "good", {"Open": "Ouvrir"})
    bad = good.with_name("bad.mo")
    bad.write_bytes(b"this is no catalog at all")
    with pytest.raises(
        DataError, match="^" + re.escape(str(bad)) + r": not a readable gettext catalog \(Bad magic number\)"
    ):
        gettext_pairs("fr", root=tmp_path, domains=["bad", "good"])
    with pytest.warns(UserWarning, match=r"left out 1 unreadable catalog.*bad\.mo"):
        assert gettext_pairs("fr", root=tmp_path) == [Pair("Open", "Ouvrir")]
    truncated = good.read_bytes()[:40]
    good.write_bytes(truncated)
    with pytest.raises(DataError, match=r"bad\.mo.*; .*good\.mo: not a readable gettext catalog"):
        gettext_pairs("fr", root=tmp_path)


@pytest.mark.skipif(not COREUTILS_FR.is_file(), reason="no French coreutils catalog on this machine")
def test_gettext_real_french_catalogs():
    coreutils = gettext_pairs("fr", root=COREUTILS_FR.parents[2], domains=["coreutils"])
    assert len(coreutils) >= 1000
    assert any("%s" in pair.source and "%s" in pair.target for pair in coreutils)
    assert all(pair.source != pair.target and "\n" not in pair.source + pair.target for pair in coreutils)
    assert len({pair.source for pair in coreutils}) == len(coreutils)


# read_pairs_tsv


def test_tsv_reads_pairs_and_ignores_a_third_column(tmp_path):
    path = tmp_path / "fra.txt"
    path.write_bytes(
        "\ufeffGo.\tVa !\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272\r\n"
        "\r\nHi. \t Salut !\nA\tB\n".encode()
    )
    assert read_pairs_tsv(path) == [Pair("Go.", "Va !"), Pair("Hi.", "Salut !"), Pair("A", "B")]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"a\tb\n\nno tab here\n", r": line 3: no tab between a source and a target: 'no tab here'"),
        (b"a\tb\n\tb\n", r": line 2: the source \(column 1\) is empty"),
        (b"a\tb\nc\t  \tattribution\n", r": line 2: the target \(column 2\) is empty"),
        (b"", r": the file is empty"),
        (b"\n  \n", r": the file is empty"),
        (b"a\tb\nc\td\xff\n", r": not UTF-8: byte 0xff at byte offset 7 \(line 2\)"),
    ],
)
def test_tsv_errors_name_the_file_and_line(tmp_path, data, message):
    path = tmp_path / "pairs.tsv"
    path.write_bytes(data)
    with pytest.raises(DataError, match="^" + re.escape(str(path)) + message):
        read_pairs_tsv(path)


def test_tsv_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"missing\.tsv: no such file"):
        read_pairs_tsv(tmp_path / "missing.tsv")


# tokenize, detokenize


def test_word_tokens_keep_placeholders_whole():
    text = "Cannot open %s: {reason} (%1$d files)."
    tokens = tokenize(text, "word")
    assert tokens == ["Cannot", "open", "%s", ":", "{reason}", "(", "%1$d", "files", ")", "."]
    assert detokenize(tokens, "word") == text
    assert tokenize("100%% of %-10s, %.2f %lu %(name)s {} {0} l'homme", "word") == [
        "100",
        "%%",
        "of",
        "%-10s",
        ",",
        "%.2f",
        "%lu",
        "%(name)s",
        "{}",
        "{0}",
        "l'homme",
    ]
    assert tokenize("50% of", "word") == ["50", "%", "of"]


def test_char_tokens_round_trip_exactly():
    text = "Impossible d'ouvrir « %s » :\n\tété {0}  "
    assert tokenize(text, "char") == list(text)
    assert detokenize(tokenize(text, "char"), "char") == text
    with pytest.raises(ConfigError, match="'char' or 'word'"):
        tokenize(text, "bpe")  # type: ignore[arg-type]


# split_pairs


def test_split_sizes_disjoint_and_fixed_by_the_seed():
    pairs = [Pair(str(n), f"t{n}") for n in range(100)]
    train, val, test = split_pairs(pairs, 0.1, 0.2, seed=5)
    assert (len(train), len(val), len(test)) == (70, 10, 20)
    assert sorted(train + val + test, key=lambda pair: int(pair.source)) == pairs
    assert not {pair.source for pair in train} & {pair.source for pair in val + test}
    assert split_pairs(pairs, 0.1, 0.2, seed=5) == (train, val, test)
    assert split_pairs(pairs, 0.1, 0.2, seed=6) != (train, val, test)
    assert train == sorted(train, key=lambda pair: int(pair.source))


def test_split_keeps_the_pairs_of_a_source_together():
    pairs = [Pair(f"s{n % 20}", f"t{n}") for n in range(60)]
    train, val, test = split_pairs(pairs, 0.25, 0.25, seed=0)
    sides = [{pair.source for pair in part} for part in (train, val, test)]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert len(train) + len(val) + len(test) == 60 and all(sides)
    with pytest.raises(DataError, match="too few"):
        split_pairs(pairs[:2], 0.4, 0.4)
    with pytest.raises(ConfigError, match="below 1"):
        split_pairs(pairs, 0.5, 0.5)
