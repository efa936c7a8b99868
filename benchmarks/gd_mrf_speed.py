"""Seconds per 512 x 512 image: GD-MRF inference (stage-wise, 5 stages of 48 filters
of 7 x 7; the shared-energy and non-local variants too) against BM3D (``bm3d``
package), on the same noisy image, as ratios. The inference path runs in strips
(``MRFEnergy.strips``) with C kernels for im2col, phi and col2im
(``unrolled/kernels/gd_mrf.inc``); the stage-wise model is also timed with those
steps as PyTorch operations (``l2o.native.disabled()``) and through the path
autograd uses (whole-image ``conv2d`` and ``grid_sample``), to show what each gains.

    python benchmarks/gd_mrf_speed.py [--sigma 25] [--device cpu] [--repeats 5]

Target: GD-MRF at least 20x faster than BM3D on CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np
import torch
from _timing import median_seconds

from l2o import native
from unrolled.data.images import load_image
from unrolled.models.gd_mrf import GDMRF
from unrolled.physics.denoising import Denoising


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sigma", type=float, default=25.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    device = torch.device(args.device)
    x = torch.from_numpy(load_image("camera"))[None]  # 512 x 512
    physics = Denoising(args.sigma)
    y = physics.simulate(x, torch.Generator().manual_seed(0)).to(device)
    rows = []
    with torch.no_grad():
        for label, kw, strips, kernels in [
            ("GD-MRF stage-wise (5 x 48 x 7x7)", {}, True, True),
            ("GD-MRF stage-wise, strips in PyTorch operations (no C kernels)", {}, True, False),
            ("GD-MRF stage-wise, autograd's path (no strips)", {}, False, True),
            ("GD-MRF shared energy (8 steps, as shipped)", {"sharing": "shared", "stages": 8}, True, True),
            ("GD-MRF non-local range (4 matches on the input)", {"nonlocal_range": True}, True, True),
            (
                "GD-MRF non-local range (4 matches on the estimate)",
                {"nonlocal_range": True, "match_on": "estimate"},
                True,
                True,
            ),
            (
                "GD-MRF non-local range, collaborative (8 matches on the estimate, as shipped)",
                {"nonlocal_range": True, "match_on": "estimate", "matches": 8, "range_filters": "collaborative"},
                True,
                True,
            ),
        ]:
            model = GDMRF(**kw).to(device).eval()
            for stage in model.stages:
                stage.energy.strips = strips
            with contextlib.nullcontext() if kernels else native.disabled():
                rows.append((label, median_seconds(lambda m=model: m(y, physics), args.repeats, device)))
    try:
        import bm3d

        noisy = y[0].double().cpu().numpy()
        t0 = time.perf_counter()
        bm3d.bm3d(noisy, sigma_psd=args.sigma / 255)
        t_bm3d = time.perf_counter() - t0
    except ImportError:
        t_bm3d = float("nan")
        print("bm3d is not installed (pip install -c constraints.txt -e '.[bm3d]'): no BM3D time\n")
    print(
        f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, 512 x 512, "
        f"sigma {args.sigma:g}\n"
    )
    print("| method | seconds / image | speed-up over BM3D |")
    print("|---|---|---|")
    print(f"| BM3D (bm3d package) | {t_bm3d:.2f} | 1.0 |")
    for label, t in rows:
        print(f"| {label} | {t:.3f} | {t_bm3d / t:.1f}x |" if np.isfinite(t_bm3d) else f"| {label} | {t:.3f} | — |")
    print("\ntarget: GD-MRF (stage-wise) at least 20x faster than BM3D on CPU")


if __name__ == "__main__":
    main()
