"""PSNR per test tile of BM3D and the shipped sigma-25 GD-MRF models, with the eval
app's noise draw (seed 0) and BM3D's cached results (computed if missing; slow):

    python scripts/gd_mrf_per_tile.py [--sigma 25]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from unrolled.baselines.denoisers import GRIDS, denoise  # noqa: E402
from unrolled.data.images import test_tile_names, test_tiles  # noqa: E402
from unrolled.metrics import psnr  # noqa: E402
from unrolled.models import load_model  # noqa: E402
from unrolled.physics.denoising import Denoising  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sigma", type=int, default=25)
    args = ap.parse_args()
    x = test_tiles()
    physics = Denoising(float(args.sigma))
    y = physics.simulate(x, torch.Generator().manual_seed(0))  # as experiments.eval_unrolled
    names = test_tile_names()
    (bm3d_param,) = GRIDS["bm3d"]  # the eval app's tuning grid has one point: the true sigma
    columns = {"BM3D": psnr(denoise("bm3d", y, float(args.sigma), bm3d_param), x)}
    stems = [f"gd_mrf_images_s{args.sigma}_stagewise"] + (["gd_mrf_images_s25_shared"] if args.sigma == 25 else [])
    for stem in stems:
        model, _ = load_model(ROOT / "unrolled" / "weights" / f"{stem}.pt")
        with torch.no_grad():
            columns[stem.removeprefix("gd_mrf_images_")] = psnr(model.eval()(y, physics), x)
    print("| tile | " + " | ".join(columns) + " | stage-wise - BM3D |")
    print("|---|" + "---|" * (len(columns) + 1))
    sw = columns[stems[0].removeprefix("gd_mrf_images_")]
    for i, name in enumerate(names):
        cells = " | ".join(f"{c[i]:.2f}" for c in columns.values())
        print(f"| {name} | {cells} | {sw[i] - columns['BM3D'][i]:+.2f} |")
    cells = " | ".join(f"{c.mean():.2f}" for c in columns.values())
    print(f"| mean | {cells} | {(sw - columns['BM3D']).mean():+.2f} |")


if __name__ == "__main__":
    main()
