"""Meta-train the shipped learned optimizers and write their weights and cards.

    python scripts/ship_l2o_weights.py [--episodes 500] [--only dm,rnnprop,hyperadam] [--out runs/ship_l2o] [--ship]

For each optimizer: ``python -m experiments.meta_train`` on the MNIST MLP
(784-20-10, sigmoid, batch 128, 100-step horizon = 5 truncations of 20) with the
recipe of its paper's code (``configs/optimizer/<name>.yaml``) except the
meta-learning rate, 1e-3 for all three (the papers train 100x more episodes at
1e-4); then the best-validation weights are copied to ``<name>_mnist_mlp.pt`` and
a card ``<name>_mnist_mlp.md`` records the recipe, meta-iterations, time and
validation loss, beside Adam's on the same validation seeds. Both go to the run
folder (``--out``/<name>) unless ``--ship`` is given, which writes them into
``l2o/weights`` in place of the shipped files: a trial recipe does not replace the
shipped weights by accident. Runs resume if interrupted (``resume=true``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "l2o" / "weights"


def run(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def adam_validation(steps: int, seeds: int) -> dict:
    """Tuned Adam on the validation seeds, for the card."""
    import math

    from l2o.evaluation import evaluate_optimizer, half_decade_grid, tune_learning_rate
    from l2o.meta.trainer import VALIDATION_SEED_BASE
    from l2o.optimizers import adam
    from l2o.tasks import make_task

    task = make_task("mnist_mlp")
    tuned = tune_learning_rate(task, adam, steps, list(range(1_000_000, 1_000_003)), half_decade_grid(1e-4, 1.0))
    seeds_list = list(range(VALIDATION_SEED_BASE, VALIDATION_SEED_BASE + seeds))
    s = evaluate_optimizer(task, lambda: adam(tuned.learning_rate), steps, seeds_list).to_dict()
    return {
        "learning_rate": tuned.learning_rate,
        "validation_loss": s["final_loss_mean"] if not math.isnan(s["final_loss_mean"]) else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=500)
    ap.add_argument("--only", default="dm,rnnprop,hyperadam")
    ap.add_argument("--out", default="runs/ship_l2o")
    ap.add_argument("--meta-lr", type=float, default=1e-3)
    ap.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"])
    ap.add_argument("--lr-min", type=float, default=0.0)
    ap.add_argument("--meta-batch", type=int, default=1)
    ap.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another meta_train override, e.g. meta.random_scaling=0 (repeatable)",
    )
    ap.add_argument(
        "--ship",
        action="store_true",
        help="write the weights and card into l2o/weights (default: into the run folder only)",
    )
    args = ap.parse_args()
    val_seeds, val_every = 16, 10
    adam_ref = adam_validation(100, val_seeds)
    for name in args.only.split(","):
        out = ROOT / args.out / name
        cmd = [
            sys.executable,
            "-m",
            "experiments.meta_train",
            f"optimizer={name}",
            "task=mnist_mlp",
            f"episodes={args.episodes}",
            f"meta.lr={args.meta_lr}",
            f"meta.lr_schedule={args.lr_schedule}",
            f"meta.lr_min={args.lr_min}",
            f"meta.meta_batch={args.meta_batch}",
            f"validation.seeds={val_seeds}",
            f"validation.every={val_every}",
            "progress=false",
            f"hydra.run.dir={out}",
            *args.override,
        ]
        if (out / "checkpoints" / "last.pt").exists():
            cmd.append("resume=true")
        run(cmd)
        metrics = json.loads((out / "metrics.json").read_text())
        dest_dir = WEIGHTS if args.ship else out
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / f"{name}_mnist_mlp.pt"
        shutil.copyfile(out / "checkpoints" / "best.pt", dest)
        cfg = (out / "config.yaml").read_text()
        lr_note = (
            f" decayed by a cosine to {args.lr_min} over the {metrics['episodes']} episodes"
            if args.lr_schedule == "cosine"
            else ""
        )
        flags = [f"--episodes {metrics['episodes']}", f"--meta-lr {args.meta_lr}"]
        if args.lr_schedule == "cosine":
            flags.append(f"--lr-schedule cosine --lr-min {args.lr_min}")
        if args.meta_batch != 1:
            flags.append(f"--meta-batch {args.meta_batch}")
        flags += [f"--override {o}" for o in args.override]
        made_by = " ".join(["python scripts/ship_l2o_weights.py", *flags, f"--only {name}", "--ship"])
        card = f"""# {name} meta-trained on the MNIST MLP

File: `{dest.name}` (meta-parameters, `l2o.learned.load_learned` / `load_pretrained("{name}")`).
Made by: `{made_by}`
({metrics["seconds_total"] / 60:.0f} min of meta-training on one CPU thread; every episode's optimizees are
drawn from seeds fixed by the episode number, so the same command gives the same weights).

## Recipe
- optimizee: MLP 784-20-10, sigmoid, batch 128, MNIST 5,000-image subset (4,000 for training),
  initial parameters N(0, 0.1^2);
- horizon 100 steps = {metrics["meta_config"]["truncations"]} truncations of {metrics["meta_config"]["unroll"]}
  steps, {metrics["meta_config"]["meta_batch"]} optimizee(s) per episode; meta-loss
  `{metrics["meta_config"]["meta_loss"]}` of the losses of each truncation; first-order meta-gradients;
- tricks: random scaling r = {metrics["meta_config"]["random_scaling"]}, convex term of dimension
  {metrics["meta_config"]["convex_dim"]} (0: off);
- meta-optimizer Adam, learning rate {metrics["meta_config"]["lr"]}{lr_note}, gradient norm clipped at
  {metrics["meta_config"]["grad_clip"]}; {metrics["episodes"]} episodes = {metrics["meta_iterations"]}
  meta-iterations, {metrics["seconds_per_meta_iteration"]:.3f} s per meta-iteration (1 CPU thread);
- kept: the weights with the lowest validation loss (mean final training loss after 100 steps on
  {val_seeds} validation seeds, every {val_every} episodes), episode {metrics["best_episode"]}.

## Results (validation seeds, final training loss after 100 steps, mean)
| optimizer | loss |
|---|---|
| {name} (these weights) | {metrics["best_validation_loss"]:.4f} |
| Adam, learning rate tuned on other seeds ({adam_ref["learning_rate"]:.3g}) | {adam_ref["validation_loss"]:.4f} |

The evaluation against tuned Adam on four activations (the HyperAdam paper's Table 1) is in the README.

## Resolved meta-training config
```yaml
{cfg}```
"""
        (dest_dir / f"{name}_mnist_mlp.md").write_text(card)
        verb = "shipped" if args.ship else "wrote (not shipped; --ship to ship)"
        print(
            f"{verb} {dest} (best validation loss {metrics['best_validation_loss']:.4f}; Adam "
            f"{adam_ref['validation_loss']:.4f})",
            flush=True,
        )


if __name__ == "__main__":
    main()
