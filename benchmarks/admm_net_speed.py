"""Seconds per 256 x 256 image: 15-stage ADMM-Net inference (batch 1 and 16) and TV
reconstruction (ADMM, 100 iterations), in the same run.

    python benchmarks/admm_net_speed.py [--device cpu|cuda] [--repeats 3] [--filters 8x3,16x5]

On the CPU, ADMM-Net inference runs the fused stage kernels (``l2o.native``,
``unrolled/kernels/admm_net.inc``); the same network through its PyTorch
layers (``native.disabled()``, the path autograd and GPUs take) is timed beside it.

Target on 2 CPU cores: 40 ms or less per image for ADMM-Net (the paper reports
about 0.8 s for its 8 filters of 3x3); on a GPU, the time per image at batch 16.
Each network is timed untrained: the arithmetic does not depend on the weights.
Every timed call (each network through its kernels and its layers, and TV) runs
once per round, round after round, so that all see the same machine: times are
medians over rounds, ratios the median of the rounds' ratios.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from _timing import interleaved_seconds

from l2o import native
from unrolled.baselines.tv import tv_reconstruction
from unrolled.models.admm_net import _KERNELS, ADMMNet
from unrolled.physics.masks import PseudoRadialMask
from unrolled.physics.mri import MRI


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--filters",
        default="8x3,16x5",
        help="comma-separated LxS: L filters of SxS per layer (8x3: the paper's network; 16x5: the shipped "
        "wider 20%% variant)",
    )
    args = ap.parse_args()
    device = torch.device(args.device)
    physics = MRI(PseudoRadialMask(0.2)((256, 256)), fft_norm="backward").to(device)
    shapes = [tuple(int(v) for v in f.split("x")) for f in args.filters.split(",")]
    nets = {shape: ADMMNet(stages=15, num_filters=shape[0], filter_size=shape[1]).to(device).eval() for shape in shapes}
    g = torch.Generator().manual_seed(0)
    rows = []

    def layers(net, y):
        with native.disabled():
            return net(y, physics)

    with torch.no_grad():
        for batch in (1, 16):
            y = physics.A(torch.rand(batch, 256, 256, generator=g).to(device))
            # one call of each per round, so that all see the same machine (its speed drifts); ratios
            # are the median of the rounds' ratios
            fns = {"tv": lambda y=y: tv_reconstruction(y, physics, 1e-3, iterations=100)}
            for shape, net in nets.items():
                fns[shape] = lambda y=y, net=net: net(y, physics)
                fns[("layers", shape)] = lambda y=y, net=net: layers(net, y)
            times = interleaved_seconds(fns, args.repeats, device)

            def ratio(a, b, times=times):
                return statistics.median(x / y for x, y in zip(times[a], times[b]))

            for shape in nets:
                t_net, t_layers, t_tv = (statistics.median(times[k]) / batch for k in (shape, ("layers", shape), "tv"))
                rows.append((batch, shape, t_net, t_layers, t_tv, ratio(("layers", shape), shape), ratio("tv", shape)))
    kernels = device.type == "cpu" and native.load_library(_KERNELS) is not None
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, CPU kernels: {kernels}\n")
    print(
        "| batch | filters | ADMM-Net, 15 stages (ms/image) | same, PyTorch layers (ms/image) | layers / kernels "
        "| TV, 100 ADMM iterations (ms/image) | TV / ADMM-Net |"
    )
    print("|---|---|---|---|---|---|---|")
    for batch, (n, size), t_net, t_layers, t_tv, layers_ratio, tv_ratio in rows:
        print(
            f"| {batch} | {n} of {size}x{size} | {t_net * 1e3:.1f} | {t_layers * 1e3:.1f} | {layers_ratio:.2f} "
            f"| {t_tv * 1e3:.1f} | {tv_ratio:.1f} |"
        )
    print("\ntarget: ADMM-Net <= 40 ms per image on 2 CPU cores (the paper: about 800 ms)")


if __name__ == "__main__":
    main()
