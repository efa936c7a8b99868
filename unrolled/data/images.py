"""Grayscale natural images shipped inside scikit-image (offline), split once into
training and test images; test images are never used in training or tuning.

- train: brick, cell, clock, grass, gravel, immunohistochemistry, moon, retina,
  rocket (colour images converted to gray; the near-blank ``page``, ``text`` and
  ``hubble_deep_field`` are left out: they reward over-smoothing);
- test: camera, astronaut, coffee, chelsea, coins, cut into non-overlapping
  256 x 256 tiles (12 tiles).

``EXTRA_TRAIN_IMAGES`` are other natural photographs that installed wheels ship
and a training recipe may add (``data.train_images``): the two views of
scikit-image's stereo pair (a motorcycle, 500 x 741), scikit-learn's two sample
photographs (``china``, ``flower``, 427 x 640), matplotlib's ``grace_hopper``
(600 x 512) and PyWavelets' ``aero`` (an aerial photograph) and ``ascent`` (a
staircase), 512 x 512 each (its ``camera`` is scikit-image's test image and is not
offered). Test images can never be chosen for training.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

TRAIN_IMAGES = ("brick", "cell", "clock", "grass", "gravel", "immunohistochemistry", "moon", "retina", "rocket")
TEST_IMAGES = ("camera", "astronaut", "coffee", "chelsea", "coins")
MOTORCYCLE = ("motorcycle_left", "motorcycle_right")
PHOTOS = ("china", "flower", "grace_hopper")  # scikit-learn's and matplotlib's sample photographs
PYWT_PHOTOS = ("aero", "ascent")  # PyWavelets' sample photographs (pywt.data)
EXTRA_TRAIN_IMAGES = MOTORCYCLE + PHOTOS + PYWT_PHOTOS


@functools.lru_cache(maxsize=32)
def load_image(name: str) -> np.ndarray:
    """A sample image (see the module docstring) as float32 grayscale in [0, 1]."""
    import skimage.data
    from skimage.color import rgb2gray

    known = TRAIN_IMAGES + EXTRA_TRAIN_IMAGES + TEST_IMAGES
    if name not in known:
        raise ValueError(f"unknown image {name!r}; valid: {', '.join(known)}")
    if name.startswith("motorcycle_"):
        img = np.asarray(skimage.data.stereo_motorcycle()[0 if name.endswith("left") else 1])
    elif name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        img = np.asarray(load_sample_image(f"{name}.jpg"))
    elif name == "grace_hopper":
        import matplotlib.cbook
        from PIL import Image

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
            img = np.asarray(Image.open(f).convert("RGB"))
    elif name in PYWT_PHOTOS:
        import pywt.data

        img = np.asarray(getattr(pywt.data, name)())
    else:
        img = np.asarray(getattr(skimage.data, name)())
    if img.ndim == 3:
        img = rgb2gray(img[..., :3])
    img = img.astype(np.float32)
    if img.max() > 1.0:
        img = img / 255.0
    return img


def _tiles(size: int):
    """(test image name, tile) for each non-overlapping ``size`` x ``size`` tile, image
    by image, row-major from the top-left corner."""
    for name in TEST_IMAGES:
        img = load_image(name)
        H, W = img.shape
        for i in range(H // size):
            for j in range(W // size):
                yield name, img[i * size : (i + 1) * size, j * size : (j + 1) * size]


def test_tiles(size: int = 256) -> Tensor:
    """Non-overlapping ``size`` x ``size`` tiles of the test images, row-major from the
    top-left corner: (N, size, size). Every test image is at least 300 px a side."""
    return torch.stack([torch.from_numpy(tile.copy()) for _, tile in _tiles(size)])


def test_tile_names(size: int = 256) -> list[str]:
    """The test image each of ``test_tiles(size)`` comes from, in the same order."""
    return [name for name, _ in _tiles(size)]


def training_crops(count: int, size: int = 64, seed: int = 0, images: tuple[str, ...] | None = None) -> Tensor:
    """``count`` random ``size`` x ``size`` crops of the training images (``images``,
    default ``TRAIN_IMAGES``; uniform over images, then over positions), with random
    flips and 90-degree rotations; crops with a standard deviation below 0.02 (blank
    background) are drawn again."""
    names = TRAIN_IMAGES if images is None else tuple(images)
    if not names:
        raise ValueError("no training images given")
    if overlap := [n for n in names if n in TEST_IMAGES]:
        raise ValueError(f"test images cannot be training images: {', '.join(overlap)}")
    unknown = [n for n in names if n not in TRAIN_IMAGES + EXTRA_TRAIN_IMAGES]
    if unknown:
        raise ValueError(
            f"unknown training images {', '.join(unknown)}; valid: {', '.join(TRAIN_IMAGES + EXTRA_TRAIN_IMAGES)}"
        )
    g = torch.Generator().manual_seed(seed)
    images = [load_image(n) for n in names]
    out = torch.empty(count, size, size)
    for c in range(count):
        img = images[int(torch.randint(len(images), (1,), generator=g))]
        H, W = img.shape
        i = int(torch.randint(H - size + 1, (1,), generator=g))
        j = int(torch.randint(W - size + 1, (1,), generator=g))
        crop = torch.from_numpy(img[i : i + size, j : j + size].copy())
        while float(crop.std()) < 0.02:
            img = images[int(torch.randint(len(images), (1,), generator=g))]
            H, W = img.shape
            i = int(torch.randint(H - size + 1, (1,), generator=g))
            j = int(torch.randint(W - size + 1, (1,), generator=g))
            crop = torch.from_numpy(img[i : i + size, j : j + size].copy())
        k = int(torch.randint(4, (1,), generator=g))
        crop = torch.rot90(crop, k)
        if int(torch.randint(2, (1,), generator=g)):
            crop = crop.flip(-1)
        out[c] = crop
    return out
