"""The HyperAdam paper's Table 1, re-run: final training loss after 100 steps on the
MNIST MLP (784-20-10) with sigmoid, ReLU, ELU and tanh, mean over 100 seeds, for
tuned Adam and the shipped DMoptimizer, RNNprop and HyperAdam.

    python scripts/l2o_table1.py [--seeds 100] [--out runs/table1] [--activations sigmoid,relu]

Runs ``experiments.evaluate`` once per activation and prints a Markdown table with
the paper's numbers beside ours.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACTIVATIONS = ("sigmoid", "relu", "elu", "tanh")
OPTIMIZERS = ("adam", "dm", "rnnprop", "hyperadam")
PAPER = {  # Wang, Sun, Xu (AAAI 2019), Table 1
    "adam": (0.35, 0.32, 0.31, 0.34),
    "dm": (0.38, 1.42, 2.02, 0.83),
    "rnnprop": (0.34, 0.31, 0.31, 0.33),
    "hyperadam": (0.33, 0.29, 0.28, 0.36),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--out", default="runs/table1")
    ap.add_argument(
        "--activations",
        default=",".join(ACTIVATIONS),
        help="run only these (comma-separated; e.g. two processes on two cores); the table needs all four",
    )
    args = ap.parse_args()
    todo = args.activations.split(",")
    bad = [a for a in todo if a not in ACTIVATIONS]
    if bad:
        raise SystemExit(f"unknown activation(s) {bad}; valid: {', '.join(ACTIVATIONS)}")
    for act in todo:
        out = ROOT / args.out / act
        if not (out / "metrics.json").exists():
            cmd = [
                sys.executable,
                "-m",
                "experiments.evaluate",
                "task=mnist_mlp",
                f"task.activation={act}",
                f"optimizers=[{','.join(OPTIMIZERS)}]",
                "steps=100",
                f"seeds={args.seeds}",
                "tune=true",
                "progress=false",
                f"hydra.run.dir={out}",
            ]
            print("$ python", " ".join(cmd[1:]), flush=True)
            subprocess.run(cmd, cwd=ROOT, check=True)
    missing = [a for a in ACTIVATIONS if not (ROOT / args.out / a / "metrics.json").exists()]
    if missing:
        print(f"done: {todo}; still to run for the table: {missing}")
        return
    results = {a: json.loads((ROOT / args.out / a / "metrics.json").read_text())["results"] for a in ACTIVATIONS}
    names = {"adam": "Adam (tuned)", "dm": "DMoptimizer", "rnnprop": "RNNprop", "hyperadam": "HyperAdam"}
    lines = [
        "| optimizer | " + " | ".join(f"{a} (ours / paper)" for a in ACTIVATIONS) + " |",
        "|---" * (len(ACTIVATIONS) + 1) + "|",
    ]
    for opt in OPTIMIZERS:
        cells = []
        for i, act in enumerate(ACTIVATIONS):
            r = results[act][opt]
            div = f", {len(r['diverged'])} diverged" if r["diverged"] else ""
            cells.append(f"{r['final_loss_mean']:.3f} ± {r['final_loss_std']:.3f}{div} / {PAPER[opt][i]:.2f}")
        lines.append(f"| {names[opt]} | " + " | ".join(cells) + " |")
    adam_lr = {act: results[act]["adam"]["learning_rate"] for act in ACTIVATIONS}
    table = "\n".join(lines)
    text = f"{table}\n\nAdam's tuned learning rates: {adam_lr}; {args.seeds} seeds per cell.\n"
    (ROOT / args.out / "table1.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
