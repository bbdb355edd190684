"""String-to-string pairs for the sequence-to-sequence task, and their tokens. Nothing here downloads
anything: the pairs are written by packages that ship their data, read from the gettext catalogs of the
machine, or read from the user's file.

    reader           source -> target                             written or read by
    numbers_to_words "1234" -> "mille deux cent trente-quatre"    num2words (`pip install num2words`)
    dates            "3 mars 2021" -> "2021-03-03"                babel's CLDR data (`pip install babel`)
    gettext_pairs    "Cannot open %s" -> "Impossible d'ouvrir %s" `<root>/<lang>/LC_MESSAGES/*.mo` of the
                                                                  machine (`/usr/share/locale`)
    read_pairs_tsv   the user's pairs                             a UTF-8 file, `source<TAB>target` a line

num2words and babel are imported only when their reader is called, so that the rest of rnnlab works
without them. `tokenize` cuts a text into characters or into words, punctuation marks and placeholders
("%s", "%1$d", "{name}"), which a translation must carry over whole; `detokenize` joins them back.
`split_pairs` holds out validation and test pairs, never putting one source on two sides.

Errors are the user's: a ConfigError for an argument (an unknown language or locale, a bad count), a
DataError starting with the path of a file or folder that cannot be read (and its line, where it has
one).
"""

from __future__ import annotations

import gettext
import io
import os
import random
import re
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

from rnnlab.errors import ConfigError, DataError
from rnnlab.tasks.text_files import decode
from rnnlab.tasks.vocab import FORMAT_FIELD, WORD

PathLike = str | os.PathLike[str]
Level = Literal["char", "word"]

#: the babel formats a date's source is written in, one drawn at random for each pair.
DATE_FORMATS = ("full", "long", "medium", "short")
#: how many pairs `dates` makes unless told.
DATE_COUNT = 10_000

#: a printf conversion as C, glibc and Python write them: "%s", "%d", "%%", "%-10s", "%.2f", "%lu",
#: "%'d", positional "%1$s" and "%*2$d", and Python's mapping key "%(name)s". Its flags leave out the
#: space ("% d" is valid C) so that "50% of" is not read as the conversion "% o".
PRINTF = (
    r"%(?:\(\w+\)|\d+\$)?[-+#0']*(?:\d+|\*(?:\d+\$)?)?(?:\.(?:\d+|\*(?:\d+\$)?))?"
    r"(?:hh|ll|[hlLqjzZt])?[diouxXeEfFgGaAcspnCS%]"
)
#: punctuation marks: any other character that is not white space, one at a time.
PUNCTUATION = r"[^\w\s]"
#: a placeholder (printf, then str.format's "{}", "{0}", "{name}"), a word, a punctuation mark.
WORD_TOKEN = re.compile(rf"{PRINTF}|{FORMAT_FIELD}|{WORD}|{PUNCTUATION}")
#: `detokenize` puts no space before these tokens, and none after `NO_SPACE_AFTER`.
NO_SPACE_BEFORE = frozenset(".,;:!?)]}")
NO_SPACE_AFTER = frozenset("([{")


@dataclass(frozen=True)
class Pair:
    """A text (`source`) and what the model should write for it (`target`)."""

    source: str
    target: str


def numbers_to_words(lang: str, count: int, low: int = 0, high: int = 999_999, seed: int = 0) -> list[Pair]:
    """`count` distinct integers of [low, high], each written in digits and in words of language `lang`.

    The numbers are drawn by `random.Random(seed).sample`, so one seed always gives the same pairs in the
    same order; when `count` is more than the high - low + 1 numbers there are, all of them come back,
    shuffled. The source is the digits ("1234", "-5"), the target `num2words(n, lang=lang)`.

    Example:
        >>> numbers_to_words("fr", 1, low=1234, high=1234)
        [Pair(source='1234', target='mille deux cent trente-quatre')]

    Raises:
        ConfigError: `lang` is not a language of num2words (as num2words does, "fr_FR" falls back to "fr"),
            `count` is below 1 or `low` above `high`, or num2words cannot write one of the numbers.
        ModuleNotFoundError: num2words is not installed.
    """
    from num2words import CONVERTER_CLASSES, num2words

    languages = sorted(CONVERTER_CLASSES)
    if lang not in CONVERTER_CLASSES and lang[:2] not in CONVERTER_CLASSES:
        shown = ", ".join(languages[:12])
        raise ConfigError(
            f"num2words has no language {lang!r}; it has {len(languages)}, among them {shown}, ..."
        )
    if count < 1:
        raise ConfigError(f"count must be at least 1, got {count}")
    if low > high:
        raise ConfigError(f"low must not be above high, got low {low} and high {high}")
    numbers = random.Random(seed).sample(range(low, high + 1), min(count, high - low + 1))
    pairs = []
    for number in numbers:
        try:
            words = num2words(number, lang=lang)
        except (NotImplementedError, OverflowError, ValueError, TypeError) as error:
            raise ConfigError(f"num2words cannot write {number} in {lang!r} ({error!r})") from None
        pairs.append(Pair(str(number), words))
    return pairs


def dates(
    locales: Sequence[str] = ("en", "fr", "de", "es"),
    count: int = DATE_COUNT,
    seed: int = 0,
    first: date = date(1950, 1, 1),
    last: date = date(2049, 12, 31),
) -> list[Pair]:
    """`count` distinct dates of [first, last], each written by babel as a person would and in ISO 8601.

    For each date a locale of `locales` and a format of `DATE_FORMATS` are drawn at random, and the source
    is `babel.dates.format_date(day, format, locale)`: "Wednesday, March 3, 2021", "March 3, 2021",
    "Mar 3, 2021" or "3/3/21" for "en", "mercredi 3 mars 2021", "3 mars 2021" or "03/03/2021" for "fr".
    The target is `day.isoformat()`, "2021-03-03". The dates are drawn by `random.Random(seed).sample`
    (all of them, shuffled, when `count` is more than there are); one seed always gives the same pairs.

    The model does not see the locale, so every source must say its date alone. A short format that puts
    the month first ("3/4/21" is March 4 in "en") would clash with the day-first ones ("3/4/21" is April 3
    in "es"): a locale whose short pattern starts with the month writes its dates in the other three
    formats only. A two-digit year ("3/3/21") names its century only through the range, which is why it
    spans a hundred years (1950-2049) unless told otherwise: each two-digit year then stands for one year.

    Raises:
        ConfigError: a locale babel does not know (named; "en-US" is read as "en_US"), no locale at all,
            `count` below 1, or `first` after `last`.
        ModuleNotFoundError: babel is not installed.
    """
    return [
        Pair(source, day.isoformat())
        for day, _, _, source in _written_dates(locales, count, seed, first, last)
    ]


def _written_dates(
    locales: Sequence[str], count: int, seed: int, first: date, last: date
) -> list[tuple[date, str, str, str]]:
    """What `dates` makes, as (date, format, locale, source): the locale as the caller gave it."""
    from babel import Locale, UnknownLocaleError
    from babel.dates import format_date

    if isinstance(locales, str):
        locales = (locales,)
    if not locales:
        raise ConfigError("dates needs at least one locale, got none")
    parsed = {}
    for name in locales:
        try:
            parsed[name] = Locale.parse(name.replace("-", "_"))
        except (UnknownLocaleError, ValueError, TypeError) as error:
            raise ConfigError(f"babel does not know the locale {name!r} ({error})") from None
    if count < 1:
        raise ConfigError(f"count must be at least 1, got {count}")
    if first > last:
        raise ConfigError(f"first must not be after last, got {first} and {last}")
    rng = random.Random(seed)
    days = (last - first).days + 1
    written = []
    styles = {name: _unambiguous_formats(parsed[name]) for name in locales}
    for offset in rng.sample(range(days), min(count, days)):
        day = first + timedelta(days=offset)
        name = rng.choice(locales)
        style = rng.choice(styles[name])
        written.append((day, style, name, format_date(day, style, locale=parsed[name])))
    return written


def _unambiguous_formats(locale: Any) -> tuple[str, ...]:
    """DATE_FORMATS but a short format that starts with the month (see `dates`)."""
    pattern = locale.date_formats["short"].pattern.lstrip("'")
    return tuple(f for f in DATE_FORMATS if f != "short" or not pattern.startswith("M"))


def gettext_pairs(
    lang: str = "fr",
    root: PathLike = "/usr/share/locale",
    domains: Sequence[str] | None = None,
    max_length: int = 200,
) -> list[Pair]:
    """The messages of the machine's programs (English, as written in their source) and their translation
    into `lang`, from the gettext catalogs `<root>/<lang>/LC_MESSAGES/<domain>.mo`: all of them, or those
    of `domains` ("coreutils", "grep").

    Each catalog is read by the standard library (`gettext.GNUTranslations`), which decodes it by the
    charset of its header. Left out: the header (msgid ""), messages with plural forms, messages not
    translated (an empty msgstr), those whose source or target is longer than `max_length` characters,
    and those the same in both languages ("OK", "%s"). A message's context (msgctxt) is dropped; its text
    is kept as it is ("_Open", "&File" keep their accelerator marks, "%s" and "{name}" their placeholders)
    but for white space: each run of spaces, tabs and line breaks becomes one space, and none is left at
    either end. The pairs come sorted by (domain, source, target), a source only once (its first pair).

    A catalog that cannot be read (corrupt, or not in the charset its header names: this machine's
    de/net-tools.mo says UTF-8 and is Latin-1) is a DataError naming it when `domains` names it; when all
    the catalogs of the folder are read, it is left out with a UserWarning naming it, so that one broken
    catalog of the system does not take a language's thousands of pairs with it.

    Raises:
        ConfigError: `max_length` below 1.
        DataError: the folder `<root>/<lang>/LC_MESSAGES` is missing (the message lists the languages that
            have catalogs under `root`) or holds no .mo file, a domain asked for has no catalog or a corrupt
            one (named), every catalog of the folder is corrupt (each named), or no pair is left.
    """
    if max_length < 1:
        raise ConfigError(f"max_length must be at least 1, got {max_length}")
    root = Path(root)
    folder = root / lang / "LC_MESSAGES"
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; {_languages(root)}")
    if domains is None:
        files = sorted(folder.glob("*.mo"))
        if not files:
            raise DataError(f"{folder}: holds no .mo catalog")
    else:
        files = [folder / f"{domain}.mo" for domain in domains]
        for file in files:
            if not file.is_file():
                raise DataError(f"{file}: no such catalog")
    catalogs, unreadable = [], []
    for file in files:
        try:
            catalogs.append((file.stem, _read_catalog(file.read_bytes(), str(file))))
        except OSError as error:
            raise DataError(f"{file}: cannot read it ({error.strerror or error})") from None
        except DataError as error:
            if domains is not None:
                raise
            unreadable.append(str(error))
    pairs = _pairs_of(catalogs, max_length)
    if unreadable and not pairs:
        raise DataError("; ".join(unreadable))
    if unreadable:
        warnings.warn(
            f"gettext_pairs left out {len(unreadable)} unreadable catalog(s): {'; '.join(unreadable)}",
            UserWarning,
            stacklevel=2,
        )
    if not pairs:
        raise DataError(f"{folder}: its catalogs hold no translated message")
    return pairs


def django_pairs(lang: str = "fr", max_length: int = 200) -> list[Pair]:
    """Django's messages (its own and its contrib apps') and their translation into `lang`, read from the
    catalogs inside Django's wheel, fetched once into rnnlab's data cache (`rnnlab data get django`; the
    package is never installed): `django/conf/locale/<lang>/LC_MESSAGES/*.mo` and
    `django/contrib/<app>/locale/<lang>/LC_MESSAGES/*.mo`, kept as `gettext_pairs` keeps the system's.

    Raises:
        MissingDataset: the wheel is not in the cache (the message is the command that gets it).
        DataError: the wheel has no catalog for `lang` (the message lists the languages it has), a
            catalog in it is corrupt (named), or no pair is left.
    """
    import zipfile

    from rnnlab.tasks import packages

    wheel = packages.archive_path("django", "Django's message catalogs")
    pattern = re.compile(r"django/(conf|contrib/[^/]+)/locale/([^/]+)/LC_MESSAGES/([^/]+)\.mo")
    catalogs, languages = [], set()
    try:
        with zipfile.ZipFile(wheel) as z:
            for name in sorted(z.namelist()):
                m = pattern.fullmatch(name)
                if m is None:
                    continue
                languages.add(m[2])
                if m[2] == lang:
                    catalogs.append((f"{m[1]}/{m[3]}", _read_catalog(z.read(name), f"{wheel}: {name}")))
    except (zipfile.BadZipFile, OSError) as error:
        raise DataError(f"{wheel}: cannot read the wheel ({error})") from None
    if not catalogs:
        shown = ", ".join(sorted(languages)[:40]) or "none"
        raise DataError(f"{wheel}: no catalog for {lang!r}; its languages are {shown}")
    pairs = _pairs_of(catalogs, max_length)
    if not pairs:
        raise DataError(f"{wheel}: its {lang!r} catalogs hold no translated message")
    return pairs


def _pairs_of(catalogs: Sequence[tuple[str, dict[Any, str]]], max_length: int) -> list[Pair]:
    """The single, translated, distinct messages of (domain, catalog) pairs (see `gettext_pairs`): sorted
    by (domain, source, target), a source only once."""
    found = []
    for domain, catalog in catalogs:
        for source, target in catalog.items():
            if isinstance(source, tuple) or not source:
                continue
            source = _collapse(source.rpartition("\x04")[2])
            target = _collapse(target)
            if source and target and source != target and max(len(source), len(target)) <= max_length:
                found.append((domain, source, target))
    pairs, seen = [], set()
    for _, source, target in sorted(found):
        if source not in seen:
            seen.add(source)
            pairs.append(Pair(source, target))
    return pairs


def _read_catalog(data: bytes, where: str) -> dict[str | tuple[str, int], str]:
    """The `_catalog` of a .mo file's bytes: msgid -> msgstr, (msgid, n) -> the n-th plural form; a
    DataError starting with `where` (the file) if it is not a readable catalog."""

    try:
        translations = gettext.GNUTranslations(io.BytesIO(data))
    except (OSError, struct.error, UnicodeDecodeError, LookupError, ValueError, IndexError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise DataError(f"{where}: not a readable gettext catalog ({reason})") from None
    catalog: dict[str | tuple[str, int], str] = vars(translations)["_catalog"]
    return catalog


def _languages(root: Path) -> str:
    """Which languages have catalogs under `root`, in a phrase for an error message."""
    try:
        languages = sorted(
            folder.parent.name for folder in root.glob("*/LC_MESSAGES") if any(folder.glob("*.mo"))
        )
    except OSError:
        languages = []
    if not languages:
        return f"{root} holds no <lang>/LC_MESSAGES/*.mo"
    shown = ", ".join(languages[:30]) + (", ..." if len(languages) > 30 else "")
    return f"the {len(languages)} languages with catalogs under {root} are {shown}"


def _collapse(text: str) -> str:
    """`text` with each run of white space made one space, and none at either end."""
    return " ".join(text.split())


def read_pairs_tsv(path: PathLike) -> list[Pair]:
    """The user's pairs: a UTF-8 file of lines `source<TAB>target`, in file order.

    Columns after the second are ignored (the exports of Tatoeba and Anki add one, the attribution), and
    so are blank lines; white space around each side is dropped. Not quoted as a CSV would be: a tab
    always separates, and a quote mark is text. A leading byte-order mark and Windows line ends are fine.

    Raises:
        DataError: starting with the path: the file is missing, empty or not UTF-8 (with the byte offset
            and line); a line (counted from 1) has no tab, or an empty source or target.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: a folder, not a file of pairs") from None
    text = decode(data, str(path))
    pairs = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise DataError(f"{path}: line {number}: no tab between a source and a target: {line[:60]!r}")
        source, target = (cell.strip() for cell in line.split("\t")[:2])
        for side, cell in (("source", source), ("target", target)):
            if not cell:
                raise DataError(
                    f"{path}: line {number}: the {side} (column {1 + (side == 'target')}) is empty"
                )
        pairs.append(Pair(source, target))
    if not pairs:
        raise DataError(f"{path}: the file is empty: no line source<TAB>target")
    return pairs


def tokenize(text: str, level: Level) -> list[str]:
    """The tokens of `text`: its characters ("char"), or ("word") its words, punctuation marks and
    placeholders.

    At word level `WORD_TOKEN` tries, at each place, a printf conversion (`PRINTF`: "%s", "%1$d", "%-10s",
    "%.2f", "%lu", "%%", "%(name)s"), a str.format field ("{}", "{0}", "{name}"), a word (letters, digits
    and underscores, with apostrophes inside: "don't", "l'homme"), then a single punctuation mark; white
    space separates tokens and is dropped. Case is kept (unlike `vocab.tokenize`), so that `detokenize`
    can give the text back.

    Example:
        >>> tokenize("Cannot open %s: {reason} (%1$d files).", "word")
        ['Cannot', 'open', '%s', ':', '{reason}', '(', '%1$d', 'files', ')', '.']

    Raises:
        ConfigError: `level` is neither "char" nor "word".
    """
    if level == "char":
        return list(text)
    if level == "word":
        return WORD_TOKEN.findall(text)
    raise ConfigError(f"level must be 'char' or 'word', got {level!r}")


def detokenize(tokens: Sequence[str], level: Level) -> str:
    """The text of `tokens`, as `tokenize` cut it at `level`.

    Characters are joined as they are, so `detokenize(tokenize(text, "char"), "char") == text`. Words are
    joined by single spaces, but for none before `NO_SPACE_BEFORE` (". , ; : ! ? ) ] }") and none after
    `NO_SPACE_AFTER` ("( [ {"): "Cannot open %s: {reason} (%1$d files)." comes back as it was, but a word
    round trip is approximate, since `tokenize` drops white space: line breaks and runs of spaces become one
    space, "a-b" comes back "a - b", and French "Erreur : %s" comes back "Erreur: %s".

    Raises:
        ConfigError: `level` is neither "char" nor "word".
    """
    if level == "char":
        return "".join(tokens)
    if level != "word":
        raise ConfigError(f"level must be 'char' or 'word', got {level!r}")
    text = ""
    for index, token in enumerate(tokens):
        glued = index == 0 or token in NO_SPACE_BEFORE or tokens[index - 1] in NO_SPACE_AFTER
        text += token if glued else " " + token
    return text


def split_pairs(
    pairs: Sequence[Pair], val_fraction: float, test_fraction: float, seed: int = 0
) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """The pairs in (train, validation, test) parts, by a shuffle of `random.Random(seed)`.

    The distinct sources are shuffled, then test takes them in that order until it holds
    round(test_fraction * len(pairs)) pairs (at least one when the fraction is positive), validation does
    the same, and train keeps the rest. All the pairs of one source (a sentence with two translations) go
    to the same part, so no held-out source has been seen in training; with every source distinct the
    parts have exactly those sizes. Each part keeps the order of `pairs`; the same pairs and seed always
    give the same parts.

    Raises:
        ConfigError: a fraction below 0, or fractions that sum to 1 or more.
        DataError: too few pairs (or sources) to hold out those fractions and keep one for training.
    """
    for what, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= fraction < 1:
            raise ConfigError(f"{what} must be in [0, 1), got {fraction}")
    if val_fraction + test_fraction >= 1:
        raise ConfigError(f"val_fraction + test_fraction must be below 1, got {val_fraction + test_fraction}")
    by_source: dict[str, list[int]] = {}
    for index, pair in enumerate(pairs):
        by_source.setdefault(pair.source, []).append(index)
    order = list(by_source)
    random.Random(seed).shuffle(order)
    parts: list[set[int]] = []
    taken_sources = 0
    for fraction in (test_fraction, val_fraction):
        wanted = max(round(fraction * len(pairs)), 1) if fraction > 0 else 0
        part: set[int] = set()
        while taken_sources < len(order) and len(part) < wanted:
            part.update(by_source[order[taken_sources]])
            taken_sources += 1
        parts.append(part)
    if taken_sources == len(order):
        raise DataError(
            f"{len(pairs)} pairs ({len(by_source)} distinct sources) are too few to hold out val_fraction "
            f"{val_fraction} and test_fraction {test_fraction} and keep one for training"
        )
    test, val = parts
    held_out = test | val

    def taken(part: set[int]) -> list[Pair]:
        return [pairs[index] for index in sorted(part)]

    train = [pair for index, pair in enumerate(pairs) if index not in held_out]
    return train, taken(val), taken(test)


__all__ = [
    "DATE_FORMATS",
    "Pair",
    "dates",
    "detokenize",
    "gettext_pairs",
    "numbers_to_words",
    "read_pairs_tsv",
    "split_pairs",
    "tokenize",
]
