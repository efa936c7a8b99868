"""Seconds per meta-iteration of DMoptimizer meta-training, this framework against a
straightforward reference, in the same run.

    python benchmarks/meta_train_speed.py [--repeats 5] [--device cpu]

A meta-iteration: a 20-step unroll of the MNIST MLP 784-20-10 (sigmoid, batch
128) trained by a coordinatewise 2-layer LSTM (20 units), first-order
meta-gradient of the mean loss, one Adam step on the meta-parameters.

- ``l2o``: ``l2o.meta.unrolled_meta_loss`` with ``DMOptimizer`` (flat parameter
  vector, functional optimizee; on the CPU its LSTM cells run the fused C kernels
  of ``l2o/kernels/lstm.inc``), also with those cells as PyTorch operations
  (``l2o.native.disabled()``) and with the learned step compiled;
- ``reference``: an ``nn.LSTM``-based optimizer applied to an ``nn.Module``
  optimizee through ``higher.innerloop_ctx`` (the common way such code is
  written), identical arithmetic.

The four are timed round by round (one call of each per round), and each ratio
is the median over rounds, so that a drift in the machine's speed affects all
alike. Also: the learned optimizers' per-step cost (no autograd) against one Adam step,
at 16k and 1M parameters; and, with ``--device cuda``, seconds per 100-step
episode. Prints Markdown tables with ratios.
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F
from _timing import interleaved_seconds, median_seconds
from torch import nn

from l2o import native
from l2o.learned import make_learned
from l2o.learned.dm import preprocess_gradient
from l2o.meta import BatchedOptimizee, MetaTrainConfig, MetaTrainer, unrolled_meta_loss
from l2o.optimizers import adam, apply_updates
from l2o.tasks import make_task, seeded_generators


def l2o_meta_iteration(task, device, unroll=20, compile=False):
    learned = make_learned("dm").to(device)
    meta_opt = torch.optim.Adam(learned.parameters(), lr=1e-3)
    optimizee = BatchedOptimizee(task, [100_000_000])
    step_fn = torch.compile(learned.step_flat) if compile else None

    def run():
        x = optimizee.x0.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(optimizee.losses(x, optimizee.sample_batch()).sum(), x)
        x = x.detach()
        meta_loss, *_ = unrolled_meta_loss(learned, optimizee, x, learned.init_flat(x), 0, g, unroll, step_fn=step_fn)
        meta_opt.zero_grad()
        meta_loss.backward()
        meta_opt.step()

    return run


class ReferenceLSTMOptimizer(nn.Module):
    """Coordinatewise 2-layer ``nn.LSTM`` over the preprocessed gradient (N coordinates
    as the LSTM batch), Linear(20, 1), output x 0.1."""

    def __init__(self, hidden=20):
        super().__init__()
        self.lstm = nn.LSTM(2, hidden, num_layers=2)
        self.out = nn.Linear(hidden, 1)

    def forward(self, g, state):
        out, state = self.lstm(preprocess_gradient(g)[None], state)
        return 0.1 * self.out(out[0]).squeeze(-1), state


def reference_meta_iteration(task, device, unroll=20):
    import higher

    mlp = nn.Sequential(nn.Linear(784, 20), nn.Sigmoid(), nn.Linear(20, 10)).to(device)
    learned = ReferenceLSTMOptimizer().to(device)
    meta_opt = torch.optim.Adam(learned.parameters(), lr=1e-3)
    inner = torch.optim.SGD(mlp.parameters(), lr=1.0)
    g_init, g_data = seeded_generators(100_000_000)
    problem = task.sample_problem(g_init)

    def run():
        meta_loss, state = 0.0, None
        with higher.innerloop_ctx(mlp, inner, copy_initial_weights=True) as (fmodel, _):
            for _ in range(unroll):
                batch = task.sample_batch(problem, g_data)
                loss = F.cross_entropy(fmodel(batch["x"]), batch["y"])
                params = list(fmodel.parameters())
                grads = torch.autograd.grad(loss, params, retain_graph=True)
                g = torch.cat([gr.reshape(-1) for gr in grads]).detach()
                step, state = learned(g, state)
                new, i = [], 0
                for p in params:
                    new.append(p + step[i : i + p.numel()].view_as(p))
                    i += p.numel()
                fmodel.update_params(new)
                meta_loss = meta_loss + loss
        meta_opt.zero_grad()
        (meta_loss / unroll).backward()
        meta_opt.step()

    return run


def episode_seconds(task, device, steps=100):
    trainer = MetaTrainer(make_learned("dm").to(device), task, MetaTrainConfig(unroll=20, truncations=steps // 20))
    return median_seconds(trainer.run_episode, 3, device)


def step_cost(device, repeats):
    rows = []
    sizes = {
        "16k (MLP 784-20-10)": [(20, 784), (20,), (10, 20), (10,)],
        "1M (1000x1000 + 1000)": [(1000, 1000), (1000,)],
    }
    for label, shapes in sizes.items():
        g = torch.Generator().manual_seed(0)
        params = {f"p{i}": torch.randn(s, generator=g).to(device) for i, s in enumerate(shapes)}
        grads = {k: torch.randn(v.shape, generator=g).to(device) for k, v in params.items()}
        opt = adam(1e-3)
        box = {"s": opt.init(params)}

        def adam_step(opt=opt, box=box, grads=grads, params=params):
            u, box["s"] = opt.update(grads, box["s"], params)
            apply_updates(params, u)

        with torch.no_grad():
            t_adam = median_seconds(adam_step, repeats, device, warmup=3)
            row = [label, t_adam]
            for name in ("dm", "rnnprop", "hyperadam"):
                learned = make_learned(name).to(device).eval()
                st = {"s": learned.init(params)}

                def learned_step(learned=learned, st=st, grads=grads, params=params):
                    u, st["s"] = learned.update(grads, st["s"], params)
                    apply_updates(params, u)

                row.append(median_seconds(learned_step, repeats, device, warmup=3))
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-step-cost", action="store_true")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    task = make_task("mnist_mlp", device=device)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, {args.repeats} rounds\n")
    ours = l2o_meta_iteration(task, device)
    compiled = l2o_meta_iteration(task, device, compile=True)
    reference = reference_meta_iteration(task, device)

    def without_kernels():
        with native.disabled():
            ours()

    times = interleaved_seconds(
        {"ours": ours, "plain": without_kernels, "compiled": compiled, "reference": reference},
        args.repeats,
        device,
        warmup=2,
    )
    print(
        "| DMoptimizer meta-iteration (20-step unroll, MNIST MLP 784-20-10, batch 128) | seconds (median) "
        "| speed-up vs reference (median of rounds) |"
    )
    print("|---|---|---|")
    labels = {
        "ours": "l2o (LSTM cells with the fused CPU kernels, `l2o/kernels/lstm.inc`)",
        "plain": "l2o, LSTM cells as PyTorch operations (`l2o.native.disabled()`)",
        "compiled": "l2o, `compile=True` (torch.compile of the learned step)",
        "reference": "reference (nn.LSTM + higher.innerloop_ctx)",
    }
    for name, label in labels.items():
        ratio = statistics.median(r / t for r, t in zip(times["reference"], times[name]))
        print(f"| {label} | {statistics.median(times[name]):.3f} | {ratio:.2f}x |")
    print("\ntarget: speed-up >= 3x on CPU")
    if device.type == "cuda":
        print(
            f"\nseconds per 100-step episode (5 meta-iterations): {episode_seconds(task, device):.3f} (target <= 0.1)"
        )
    if not args.skip_step_cost:
        print(
            "\n| parameters | Adam step (µs) | DM step (µs) | RNNprop step (µs) | HyperAdam step (µs) "
            "| DM / Adam | RNNprop / Adam | HyperAdam / Adam |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for label, ta, td, tr, th in step_cost(device, max(args.repeats, 10)):
            print(
                f"| {label} | {ta * 1e6:.0f} | {td * 1e6:.0f} | {tr * 1e6:.0f} | {th * 1e6:.0f} "
                f"| {td / ta:.1f} | {tr / ta:.1f} | {th / ta:.1f} |"
            )


if __name__ == "__main__":
    main()
