"""Learning results: every task's recipe over seeds, beside the memoryless baseline and torch's defaults.

Each run is `rnnlab train --task T` exactly as a user types it (the recipe the task ships, so what is
measured is what is shipped), in its own process with `--threads` threads, `--jobs` at a time. For contrast
the same task is trained, with the same budget of steps, by a tanh RNN and an LSTM of the recipe's size
with torch's default initialisation. Every row measured so far is kept in benchmarks/results.json (a run
replaces the rows of the experiments it ran) and the table of all of them goes into RESULTS.md between its
markers; the text around them (what was tried, and why) is written by hand.

    python benchmarks/results.py                          # every experiment, 3 seeds, 2 jobs of 1 thread
    python benchmarks/results.py --only adding1000 --seeds 1 --no-contrast
    python benchmarks/results.py --list
    python benchmarks/results.py --render                 # RESULTS.md again from benchmarks/results.json

Columns: the test metric (mean ± standard deviation over seeds; the test split is scored once, at the end,
with the final weights), how many seeds solved the goal (the validation metric reaching eval.target, which
stops the run), the steps and the wall time to solve (means over the seeds that solved), and the baseline.
A run that exceeds `--timeout` is stopped by SIGTERM (rnnlab ends the step and writes its summary, with the
steps it reached) and counts as unsolved.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- results:start -->", "<!-- results:end -->"


@dataclass
class Experiment:
    key: str
    title: str
    task: dict[str, str]  # the task's flags
    metric: str  # the metric the goal is about (and the table shows), e.g. "mse"
    goal: str  # in words, e.g. "test MSE < 0.01 within 10 minutes"
    published: str = ""  # marks from the literature, with their source
    contrast: bool = True  # also train the torch-default tanh RNN and LSTM
    extra: dict[str, str] = field(default_factory=dict)  # flags on top of the recipe (none by default)


EXPERIMENTS = [
    Experiment(
        "adding1000",
        "adding, T = 1000",
        {"task.name": "adding", "task.length": "1000"},
        "mse",
        "test MSE < 0.01 within 10 minutes",
        "IRNN solves T ≈ 400 (Le et al. 2015); IndRNN solves T = 5000 (Li et al. 2018); uRNN T = 750 "
        "(Arjovsky et al. 2016)",
    ),
    Experiment(
        "copy200",
        "copy, T = 200",
        {"task.name": "copy", "task.delay": "200"},
        "accuracy",
        "recall accuracy >= 99% within 10 minutes",
        "expRNN, scoRNN and uRNN solve T = 1000-2000; LSTM stays at the baseline (Arjovsky et al. 2016)",
    ),
    Experiment(
        "copy500",
        "copy, T = 500 (stretch)",
        {"task.name": "copy", "task.delay": "500"},
        "accuracy",
        "recall accuracy >= 99% within 10 minutes",
        "as copy T = 200",
        contrast=False,
    ),
    Experiment(
        "fashion_rows",
        "Fashion-MNIST, row by row (28 steps)",
        {"task.name": "images", "task.dataset": "fashion_mnist", "task.order": "rows"},
        "accuracy",
        "test accuracy >= 90% within 10 minutes",
        "GRU+SVM 88.8% (Agarap 2017); an LSTM over rows ~89-91%",
    ),
    Experiment(
        "digits_pixels",
        "8x8 digits, pixel by pixel (64 steps)",
        {"task.name": "images", "task.dataset": "digits", "task.order": "pixels"},
        "accuracy",
        "test accuracy >= 95% within 10 minutes",
        "LSTM on sequential MNIST (784 pixels) 98.8%, permuted 92.9% (Arjovsky et al. 2016, table 1)",
    ),
    *(
        Experiment(
            f"forecast_{name}",
            f"forecast {name}, 12 steps ahead",
            {"task.name": "forecast", "task.series": name},
            "mase",
            "beat the naive forecast everywhere and ETS on most (test MASE)",
            "statistical baselines are hard to beat on short univariate series (M3/M4 competitions)",
            contrast=False,
        )
        for name in ("airline", "co2", "elnino", "sunspots", "msft")
    ),
    Experiment(
        "japanese_vowels",
        "JapaneseVowels (9 speakers, 7-29 steps)",
        {"task.name": "classify"},
        "accuracy",
        "beat the majority class",
        "1-NN DTW 95.1%, LSTM-FCN ~99% (UCR/UEA archive results)",
        contrast=False,
    ),
    Experiment(
        "fsdd",
        "Free Spoken Digits (MFCC, 3,000 recordings)",
        {"task.name": "classify", "task.path": str(ROOT.parent / "shared" / "data" / "fsdd" / "recordings")},
        "accuracy",
        "test accuracy >= 95% within 10 minutes",
        "CNNs on spectrograms ~97-99% (FSDD README and reports)",
        contrast=False,
    ),
    Experiment(
        "rotten_tomatoes",
        "Rotten Tomatoes sentiment (12,808 snippets)",
        {"task.name": "text"},
        "accuracy",
        "test accuracy >= 75% within 10 minutes",
        "Pang & Lee's sentence polarity: NB-SVM ~79%, CNN (Kim 2014) 81.5% with pretrained vectors",
        contrast=False,
    ),
    Experiment(
        "shakespeare",
        "Shakespeare, characters (held-out plays)",
        {"task.name": "charlm"},
        "bpc",
        "<= 2.31 bits (1.6 nats) per character within 10 minutes on 2 cores",
        "nanoGPT's CPU configuration reaches about 1.88 nats in comparable time",
        contrast=False,
    ),
]


def recipe_of(experiment: Experiment) -> dict[str, object]:
    """The recipe the task ships for these settings (read through rnnlab, as the command line does)."""
    sys.path.insert(0, str(ROOT))
    from rnnlab.training import config as cfg

    _, used = cfg.compose({**experiment.task, **experiment.extra})
    return used


def contrasts(experiment: Experiment, recipe: dict[str, object]) -> dict[str, dict[str, str]]:
    """The torch-default tanh RNN and LSTM at the recipe's size (its other model settings dropped), less
    any that is the recipe itself (a recipe that is a plain LSTM)."""
    from rnnlab.training import config as cfg

    size = str(recipe.get("model.hidden_size", 32))
    plain = {"model.hidden_size": size, "model.init": "default", "model.chrono": "none"}
    candidates = {
        "tanh RNN, torch defaults": {"model.cell": "rnn", **plain, "model.nonlinearity": "tanh"},
        "LSTM, torch defaults": {"model.cell": "lstm", **plain, "model.forget_bias": "none"},
    }
    ours = cfg.compose({**experiment.task, **experiment.extra})[0]
    return {
        name: flags
        for name, flags in candidates.items()
        if cfg.compose({**experiment.task, **experiment.extra, **flags})[0] != ours
    }


def run_one(flags: dict[str, str], seed: int, threads: int, timeout: float, folder: Path) -> dict:
    """One `rnnlab train` in its own process; its summary.json (or what is known without one)."""
    args = [sys.executable, "-m", "rnnlab", "train", "--quiet", "--out", str(folder), "--seed", str(seed)]
    args += [f"--{k}={v}" for k, v in flags.items()]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    error = ""
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = process.communicate(timeout=timeout)
        status: int | str = process.returncode
        error = stderr.strip().splitlines()[-1] if process.returncode and stderr.strip() else ""
    except subprocess.TimeoutExpired:  # SIGTERM: rnnlab ends the step and writes its summary
        process.terminate()
        process.communicate(timeout=120)
        status = "timeout"
    wall = time.perf_counter() - t0
    summary_path = folder / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    return {"status": status, "wall_s": wall, "summary": summary, "error": error}


def row(experiment: Experiment, model: str, runs: list[dict]) -> dict:
    """One table row: the runs of one model on one experiment."""
    m = experiment.metric
    tests = [r["summary"]["test"][m] for r in runs if r["summary"].get("test", {}).get(m) is not None]
    solved = [r["summary"]["solved"] for r in runs if r["summary"].get("solved")]
    baseline = next((r["summary"]["baseline"].get(m) for r in runs if r["summary"].get("baseline")), None)
    others: dict[str, list[float]] = {}
    for r in runs:
        for name, scores in r["summary"].get("test_baselines", {}).items():
            if m in scores:
                others.setdefault(name, []).append(scores[m])
    return {
        "experiment": experiment.title,
        "model": model,
        "metric": m,
        "test_mean": statistics.fmean(tests) if tests else None,
        "test_sd": statistics.stdev(tests) if len(tests) > 1 else 0.0,
        "seeds": len(runs),
        "solved": len(solved),
        "steps_to_solve": statistics.fmean(s["step"] for s in solved) if solved else None,
        "time_to_solve_s": statistics.fmean(s["time_s"] for s in solved if s["time_s"]) if solved else None,
        "wall_s": statistics.fmean(r["wall_s"] for r in runs),
        "steps": statistics.fmean(r["summary"].get("steps", 0) for r in runs),
        "baseline": baseline,
        "test_baselines": {name: statistics.fmean(v) for name, v in others.items()},
        "goal": experiment.goal,
        "published": experiment.published,
    }


def fmt(x: float | None, digits: int = 4) -> str:
    return "–" if x is None else f"{x:.{digits}g}"


def table(rows: list[dict]) -> str:
    lines = [
        "| experiment | model | test metric (mean ± sd) | baseline | baselines on the test split | solved | "
        "steps to solve | time to solve | wall per run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        test = "–"
        if r["test_mean"] is not None:
            test = f"{r['metric']} {fmt(r['test_mean'])} ± {fmt(r['test_sd'], 2)}"
        others = ", ".join(f"{name} {fmt(v)}" for name, v in r.get("test_baselines", {}).items()) or "–"
        targeted = "eval.target" in recipe_of(next(e for e in EXPERIMENTS if e.key == r["key"]))
        solved = f"{r['solved']}/{r['seeds']}" if targeted else "no target"
        cells = [r["experiment"], r["model"], test, fmt(r["baseline"]), others, solved]
        cells += [fmt(r["steps_to_solve"]), f"{fmt(r['time_to_solve_s'], 3)} s", f"{fmt(r['wall_s'], 3)} s"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(text: str, path: Path) -> None:
    old = path.read_text() if path.is_file() else f"# Results\n\n{START}\n{END}\n"
    if START not in old or END not in old:
        old += f"\n{START}\n{END}\n"
    head, rest = old.split(START, 1)
    tail = rest.split(END, 1)[1]
    path.write_text(f"{head}{START}\n{text}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="", help="comma-separated experiment keys (default: all)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of each recipe")
    parser.add_argument("--contrast-seeds", type=int, default=1, help="seeds of each torch-default contrast")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per run before SIGTERM")
    parser.add_argument("--no-contrast", action="store_true", help="the recipes only")
    parser.add_argument("--out", default=str(ROOT / "RESULTS.md"))
    parser.add_argument(
        "--store",
        default=str(ROOT / "benchmarks" / "results.json"),
        help="every row measured so far (a run replaces the rows of its experiments), behind RESULTS.md",
    )
    parser.add_argument("--runs", default="", help="folder for the run folders (default: a temporary one)")
    parser.add_argument("--list", action="store_true", help="list the experiments and their recipes")
    parser.add_argument("--render", action="store_true", help="only rewrite RESULTS.md from the stored rows")
    args = parser.parse_args()
    if args.render:
        write_results(markdown(json.loads(Path(args.store).read_text())), Path(args.out))
        return
    chosen = [e for e in EXPERIMENTS if not args.only or e.key in args.only.split(",")]
    if args.list:
        for e in chosen:
            print(f"{e.key}: {e.title}; goal {e.goal}\n  recipe: {recipe_of(e)}")
        return
    runs_root = Path(args.runs or tempfile.mkdtemp(prefix="rnnlab-results-"))
    runs_root.mkdir(parents=True, exist_ok=True)
    plans: list[tuple[Experiment, str, dict[str, str], int]] = []
    for e in chosen:
        recipe = recipe_of(e)
        models: dict[str, dict[str, str]] = {"recipe": {}} | (
            {} if args.no_contrast or not e.contrast else contrasts(e, recipe)
        )
        for model, flags in models.items():
            budget = {"steps": str(recipe.get("steps", 1000))}
            for seed in range(args.seeds if model == "recipe" else args.contrast_seeds):
                plans.append((e, model, {**e.task, **e.extra, **budget, **flags}, seed))

    def go(plan: tuple[Experiment, str, dict[str, str], int]) -> tuple[Experiment, str, dict]:
        e, model, flags, seed = plan
        folder = runs_root / f"{e.key}-{model.split(',')[0].replace(' ', '_')}-seed{seed}"
        result = run_one(flags, seed, args.threads, args.timeout, folder)
        s = result["summary"]
        print(
            f"{e.key:14s} {model:26s} seed {seed}: {result['status']}, {s.get('steps')} steps, "
            f"solved {bool(s.get('solved'))}, test {s.get('test', {})}, {result['wall_s']:.0f} s"
            + (f"; {result['error']}" if result["error"] else ""),
            flush=True,
        )
        return e, model, result

    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(go, plans))
    if not any(r["summary"] for _, _, r in results):
        raise SystemExit("no run wrote a summary; RESULTS.md is left as it was")
    command = "python benchmarks/results.py " + " ".join(sys.argv[1:])
    machine = f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"
    setup = (
        f"{time.strftime('%Y-%m-%d')}, {machine}, {args.jobs} run(s) at a time of {args.threads} "
        f"thread(s): `{command.strip()}`"
    )
    rows = []
    for e in chosen:
        for model in dict.fromkeys(m for x, m, _ in results if x is e):
            rows.append(
                {"key": e.key, "measured": setup}
                | row(e, model, [r for x, m, r in results if x is e and m == model])
            )
    (runs_root / "results.json").write_text(json.dumps(rows, indent=1))
    store = Path(args.store)
    kept = json.loads(store.read_text()) if store.is_file() else []
    done = {(r["key"], r["model"]) for r in rows}
    every = [r for r in kept if (r["key"], r["model"]) not in done] + rows
    order = {e.key: i for i, e in enumerate(EXPERIMENTS)}
    every.sort(key=lambda r: order.get(r["key"], len(order)))
    store.write_text(json.dumps(every, indent=1) + "\n")
    print(table(rows))
    write_results(markdown(every), Path(args.out))
    print(f"wrote {args.out} and {store}; run folders in {runs_root}")


def markdown(rows: list[dict]) -> str:
    """The text between RESULTS.md's markers: the table of every row measured so far, how each was
    measured, the goals and the recipes."""
    keys = list(dict.fromkeys(r["key"] for r in rows))
    experiments = [e for e in EXPERIMENTS if e.key in keys]
    setups = "\n".join(
        f"- {title}: {setup}"
        for setup, title in {r["measured"]: r["experiment"] for r in rows if "measured" in r}.items()
    )
    goals = "\n".join(f"- **{e.title}**: goal {e.goal}. Published: {e.published}." for e in experiments)
    recipes = "\n".join(f"- **{e.title}**: `{recipe_of(e)}`" for e in experiments)
    return (
        table(rows)
        + "\n\nMeasured (the last experiment of each command named):\n\n"
        + setups
        + "\n\nGoals and published marks:\n\n"
        + goals
        + "\n\nThe recipes measured (what `rnnlab train --task ...` uses when no flag overrides it):\n\n"
        + recipes
    )


if __name__ == "__main__":
    main()
