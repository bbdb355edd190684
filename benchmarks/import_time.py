"""What `import rnnlab` costs beyond `import torch`: wall time of fresh interpreters, in the same run.

    .venv/bin/python benchmarks/import_time.py --rounds 15
    PYTHONPATH=/tmp/old .venv/bin/python benchmarks/import_time.py     # another checkout of rnnlab

Each round starts one `python -c "import torch"` and one `python -c "import rnnlab"` (interleaved, so drifts
in machine load hit both alike) and times each from start to exit. Prints the medians as a Markdown table,
and which of matplotlib, tensorboard and rich `import rnnlab` loaded. Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

HEAVY = ("matplotlib", "tensorboard", "torch.utils.tensorboard", "rich")


def wall(code: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=os.environ.copy())
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="interpreters started per variant")
    args = parser.parse_args()
    variants = {"import torch": "import torch", "import rnnlab": "import rnnlab"}
    times: dict[str, list[float]] = {name: [] for name in variants}
    wall("import rnnlab")  # warm the file cache once, untimed
    for _ in range(args.rounds):
        for name, code in variants.items():
            times[name].append(wall(code))
    base = statistics.median(times["import torch"])
    print(f"| command | median s ({args.rounds} rounds) | ratio to import torch |")
    print("|---|---:|---:|")
    for name, ts in times.items():
        print(f'| `python -c "{name}"` | {statistics.median(ts):.2f} | {statistics.median(ts) / base:.2f} |')
    probe = f"import sys, rnnlab; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    print(f"\nloaded by import rnnlab: {loaded.stdout.strip() or 'none of ' + ', '.join(HEAVY)}")


if __name__ == "__main__":
    main()
