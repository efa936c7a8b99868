"""Classical denoisers, each with one parameter tuned on training images.

- ``tv``: TV denoising by Chambolle's projection algorithm
  (``skimage.restoration.denoise_tv_chambolle``), tuned: ``weight``;
- ``nl_means``: non-local means (``denoise_nl_means``, 7 x 7 patches, 21 x 21
  window, known sigma), tuned: ``h`` as a multiple of sigma;
- ``wavelet``: wavelet shrinkage (``denoise_wavelet``, BayesShrink, soft, db1..db8),
  tuned: the wavelet;
- ``bm3d``: BM3D (``bm3d`` package, the optional extra ``[bm3d]``) with the known
  sigma; slow, so results are cached on disk by image hash and sigma.

Images are (N, H, W) tensors in [0, 1]; sigma is on the 0-255 scale.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from unrolled.metrics import psnr

GRIDS: dict[str, list] = {
    "tv": [0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2, 0.3],
    "nl_means": [0.4, 0.55, 0.7, 0.85, 1.0, 1.2],
    "wavelet": ["db1", "db2", "db4", "db8", "sym4", "coif1"],
    "bm3d": [1.0],
}
DENOISERS = tuple(GRIDS)


def _per_image(fn: Callable[[np.ndarray], np.ndarray], y: Tensor) -> Tensor:
    out = [torch.from_numpy(np.asarray(fn(img.double().numpy()), dtype=np.float64)) for img in y]
    return torch.stack(out).to(y.dtype)


def bm3d_cache_dir() -> Path:
    return Path(os.environ.get("MDL_CACHE_DIR", Path.home() / ".cache" / "model-driven-dl")) / "bm3d"


def denoise(name: str, y: Tensor, sigma: float, param, seconds: list[float] | None = None) -> Tensor:
    """Denoise every image of ``y`` (noisy, (N, H, W)) with method ``name``.

    ``seconds``: for BM3D, a list that receives each image's compute time (for a
    cached result, the time it took when it was computed, or NaN if unknown).
    """
    s = sigma / 255.0
    if name == "tv":
        from skimage.restoration import denoise_tv_chambolle

        return _per_image(lambda im: denoise_tv_chambolle(im, weight=param), y)
    if name == "nl_means":
        from skimage.restoration import denoise_nl_means

        return _per_image(
            lambda im: denoise_nl_means(im, h=param * s, sigma=s, patch_size=7, patch_distance=10, fast_mode=True), y
        )
    if name == "wavelet":
        from skimage.restoration import denoise_wavelet

        return _per_image(
            lambda im: denoise_wavelet(
                im, sigma=s, wavelet=param, mode="soft", method="BayesShrink", rescale_sigma=True
            ),
            y,
        )
    if name == "bm3d":
        try:
            import bm3d
        except ImportError:
            raise ImportError("BM3D needs the optional package: pip install -c constraints.txt -e '.[bm3d]'") from None
        cache = bm3d_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)

        def one(im: np.ndarray) -> np.ndarray:
            key = hashlib.sha1(np.ascontiguousarray(im, dtype=np.float64).tobytes()).hexdigest()
            path = cache / f"{key}_s{sigma:g}_p{param:g}.npy"
            timing = path.with_suffix(".seconds")
            if path.exists():
                if seconds is not None:
                    seconds.append(float(timing.read_text()) if timing.exists() else float("nan"))
                return np.load(path)
            start = time.perf_counter()
            out = np.asarray(bm3d.bm3d(im, sigma_psd=param * s), dtype=np.float64)
            took = time.perf_counter() - start
            if seconds is not None:
                seconds.append(took)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, out)
            os.replace(tmp, path)
            timing.write_text(f"{took:.6f}")
            return out

        return _per_image(one, y)
    raise ValueError(f"unknown denoiser {name!r}; valid choices: {', '.join(DENOISERS)}")


def tune(name: str, x_train: Tensor, y_train: Tensor, sigma: float) -> dict:
    """The parameter of ``GRIDS[name]`` with the best mean PSNR on training images."""
    scores = [float(psnr(denoise(name, y_train, sigma, p), x_train).mean()) for p in GRIDS[name]]
    best = int(np.argmax(scores))
    return {
        "param": GRIDS[name][best],
        "grid": GRIDS[name],
        "train_psnr": scores,
        "tune_images": len(x_train),
        "at_grid_edge": len(scores) > 1 and best in (0, len(scores) - 1),
    }
