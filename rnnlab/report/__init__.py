"""The HTML report of run folders: one self-contained page comparing runs, with a section per run.

    from rnnlab.report import write_report
    write_report(["runs/rnn", "runs/lstm"], "report.html")

page.py       the page: reading the run folders, the summary table, a section per run, the file
figures.py    training curves: every run overlaid, and one run's
exhibits.py   what a trained model does on its task: a confusion matrix, forecasts, sampled text
"""

from rnnlab.report.page import write_report

__all__ = ["write_report"]
