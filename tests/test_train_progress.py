"""The progress bar: silent when disabled, lines on stderr, the loss, the metric and the speed on the bar."""

import io
import subprocess
import sys

from rnnlab.training.progress import ProgressBar, stats


def test_a_disabled_bar_prints_nothing(capsys):
    bar = ProgressBar(10, enabled=False)
    bar.update(5, {"loss": 0.5, "mae": 0.25}, "mae")
    bar.close()
    assert capsys.readouterr() == ("", "")


def test_say_prints_its_line_to_stderr_with_or_without_a_bar(capsys):
    bar = ProgressBar(10, enabled=False)
    bar.say("step 3: encoder.l0 vanishing: [0.01, 0.99] kept as written")
    assert capsys.readouterr() == ("", "step 3: encoder.l0 vanishing: [0.01, 0.99] kept as written\n")
    bar = ProgressBar(10, enabled=True)
    bar.say("step 4: [bold]not markup[/bold]")
    bar.close()
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("step 4: [bold]not markup[/bold]\n")


def test_an_enabled_bar_shows_the_loss_the_metric_and_the_speed():
    stream = io.StringIO()
    bar = ProgressBar(10, start=2, file=stream)
    bar.update(7, {"loss": 0.123456, "mae": 1234.5678, "lr": 0.001}, "mae")
    bar.close()
    line = stream.getvalue().splitlines()[-1]
    assert "7/10" in line and "loss 0.1235" in line and "mae 1235" in line and "steps/s" in line
    assert "lr" not in line  # only the task's metric


def test_stats_text():
    assert stats({"loss": 0.123456, "mae": 1234.5678}, "mae", 12.34) == "loss 0.1235  mae 1235  12.3 steps/s"
    assert stats({"loss": float("nan")}, "accuracy", 3.0) == "loss nan  3.0 steps/s"  # metric not logged
    assert stats({}, None, 0.5) == "loss ?  0.5 steps/s"


def test_stats_show_the_baseline_beside_the_loss_and_the_metric():
    baseline = {"loss": 1 / 6, "mse": 1 / 6, "accuracy": 0.1}
    text = stats({"loss": 0.01, "mse": 0.0123}, "mse", 2.0, baseline)
    assert text == "loss 0.01 (baseline 0.1667)  mse 0.0123 (baseline 0.1667)  2.0 steps/s"
    assert stats({"loss": 2.0}, None, 1.0, {"accuracy": 0.1}) == "loss 2  1.0 steps/s"  # none for the loss


def test_rich_is_imported_only_when_a_bar_is_drawn():
    code = (
        "import sys, rnnlab; from rnnlab.training.progress import ProgressBar; "
        "ProgressBar(3, enabled=False).say('x'); print('rich' in sys.modules); "
        "ProgressBar(3).close(); print('rich' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "True"]
