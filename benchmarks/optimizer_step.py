"""Time per update: the functional Adam of l2o against torch.optim.Adam (foreach).

    python benchmarks/optimizer_step.py [--repeats 200] [--device cpu]

Both sides do the whole step: ours ``update`` + ``apply_updates``, torch's
``step()``. Ours runs in its two modes: ``pure`` (the default: new tensors every
step, nothing modified in place, differentiable) and ``inplace`` (``adam(...,
inplace=True)`` with ``apply_updates(..., inplace=True)``: buffers reused as torch
does). Prints a Markdown table with the ratios ours / torch; the goal is at most 1.5.
"""

from __future__ import annotations

import argparse

import torch
from _timing import median_seconds

from l2o.optimizers import adam, apply_updates

SIZES = {
    # the MNIST MLP 784-20-10 (15,910 parameters in 4 tensors)
    "16k (MLP 784-20-10)": [(20, 784), (20,), (10, 20), (10,)],
    # 1,001,000 parameters in 2 tensors
    "1M (1000x1000 + 1000)": [(1000, 1000), (1000,)],
}


def bench(shapes, repeats: int, device: str) -> tuple[float, float, float, int]:
    g = torch.Generator().manual_seed(0)
    params = {f"p{i}": torch.randn(s, generator=g).to(device) for i, s in enumerate(shapes)}
    grads = {k: torch.randn(v.shape, generator=g).to(device) for k, v in params.items()}

    def stepper(inplace: bool):
        opt = adam(1e-3, inplace=inplace)
        box = {"params": {k: v.clone() for k, v in params.items()}}
        box["state"] = opt.init(box["params"])

        def step():
            updates, box["state"] = opt.update(grads, box["state"], box["params"])
            box["params"] = apply_updates(box["params"], updates, inplace=inplace)

        return step

    tparams = [torch.nn.Parameter(p.clone()) for p in params.values()]
    for p, gr in zip(tparams, grads.values()):
        p.grad = gr.clone()
    topt = torch.optim.Adam(tparams, lr=1e-3, foreach=True)

    with torch.no_grad():
        t_pure = median_seconds(stepper(False), repeats, device, warmup=10)
        t_inplace = median_seconds(stepper(True), repeats, device, warmup=10)
        t_torch = median_seconds(topt.step, repeats, device, warmup=10)
    return t_pure, t_inplace, t_torch, sum(p.numel() for p in params.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    print(
        f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, "
        f"median of {args.repeats} steps\n"
    )
    print(
        "| parameters | count | l2o adam pure (µs) | l2o adam inplace (µs) | torch.optim.Adam foreach (µs) "
        "| ratio pure/torch | ratio inplace/torch |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, shapes in SIZES.items():
        pure, inplace, ref, n = bench(shapes, args.repeats, args.device)
        print(
            f"| {name} | {n:,} | {pure * 1e6:.1f} | {inplace * 1e6:.1f} | {ref * 1e6:.1f} "
            f"| {pure / ref:.2f} | {inplace / ref:.2f} |"
        )
    print("\ngoal: ratio <= 1.5")


if __name__ == "__main__":
    main()
