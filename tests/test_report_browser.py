"""The report in a real browser (headless Chromium): no error, every figure drawn, one table row per run."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_report import PNG, train_adding

from rnnlab.report import write_report

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def sync_playwright():
    if not CHROMIUM.exists():
        pytest.skip(f"no browser: {CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    return sync_playwright


def test_the_report_renders_in_chromium_without_errors(sync_playwright, tmp_path):
    runs = [
        train_adding(
            tmp_path / "rnn", "--model.cell=rnn", "--diagnostics.every=10", "--diagnostics.plots=false"
        ),
        train_adding(tmp_path / "lstm"),
    ]
    report = write_report(runs, tmp_path / "report.html")
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless=new", "--no-sandbox", "--disable-gpu"]
        )
        try:
            context = browser.new_context(viewport={"width": 1200, "height": 900})  # a fresh profile
            page = context.new_page()
            page.on(
                "console",
                lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.goto(report.resolve().as_uri(), wait_until="load")
            images = page.eval_on_selector_all(
                "img",
                """images => images.map(i => {
                    const box = i.getBoundingClientRect();
                    return {alt: i.alt, complete: i.complete, natural: i.naturalWidth,
                            width: box.width, height: box.height};
                })""",
            )
            rows = page.locator("table#summary > tbody > tr").count()
            shot = tmp_path / "shot.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert len(images) >= 5  # the comparison, two runs' curves, the RNN's diagnostics
    for image in images:
        assert image["complete"] and image["natural"] > 0, image["alt"]
        assert image["width"] > 0 and image["height"] > 0, image["alt"]
    assert rows == 2
    data = shot.read_bytes()
    assert data.startswith(PNG) and len(data) > 10_000
