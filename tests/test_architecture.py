"""The arrows between packages point down, and `import rnnlab` pays only for what a layer needs."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import rnnlab

PACKAGE = Path(rnnlab.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top, inside functions or under TYPE_CHECKING alike."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("tasks", ("rnnlab.training", "rnnlab.diagnostics")),  # tasks are data
        (
            "diagnostics",
            ("rnnlab.training",),
        ),  # diagnostics observe a model; the loop's adapter is training's
    ],
)
def test_a_package_imports_nothing_from_the_packages_beside_or_above_it(package, forbidden):
    files = sorted((PACKAGE / package).glob("*.py"))
    assert files
    wrong = {
        f"{path.relative_to(PACKAGE.parent)} imports {module}"
        for path in files
        for module in imported_modules(path)
        if module.startswith(forbidden)
    }
    assert not wrong, sorted(wrong)


def test_diagnostics_know_nothing_of_run_folders():
    for path in (PACKAGE / "diagnostics").glob("*.py"):
        assert "RunDir" not in path.read_text(), path.name


HEAVY = ("matplotlib", "tensorboard", "torch.utils.tensorboard", "rich")


def test_import_rnnlab_loads_no_plotting_logging_or_progress_library():
    code = f"import sys, rnnlab; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = proc.stdout.split()
    hint = ""
    if loaded == ["rich"]:
        hint = " (only rich: rnnlab/training/progress.py must import it when a bar is made, not at import)"
    assert loaded == [], f"import rnnlab loaded {', '.join(loaded)}{hint}"
