"""Building data, physics and models of the unrolled apps from their configs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from experiments.app import ConfigError, config_errors, require, torch_device, torch_dtype
from unrolled.models import MODELS, make_model
from unrolled.models.base import UnrolledModel
from unrolled.physics.masks import MASKS, load_admm_net_mask
from unrolled.physics.mri import MRI

DATASETS = ("chest", "mni", "fastmri", "nifti", "images")
PHYSICS = ("mri", "denoising")


@dataclass
class Splits:
    train: Tensor
    val: Tensor | None
    test: Tensor
    name: str
    real_images: bool


def _cast(x: Tensor, real_images: bool, dtype: torch.dtype) -> Tensor:
    """Real images as ``dtype`` (magnitudes if given complex), complex ones at the matching precision."""
    if real_images:
        return (x.abs() if x.is_complex() else x).to(dtype)
    return x.to(torch.complex128 if dtype == torch.float64 else torch.complex64)


def split_files(files: list[Path], test_files: int, what: str) -> tuple[list[Path], list[Path]]:
    """The last ``test_files`` files for testing, the others for training."""
    require(
        isinstance(test_files, int) and 1 <= test_files < len(files),
        f"data.test_files must be in 1..{len(files) - 1} ({len(files)} {what} found), got {test_files!r}",
    )
    return files[:-test_files], files[-test_files:]


def load_data(cfg: DictConfig, need: tuple[str, ...] = ("train", "val", "test")) -> Splits:
    d = cfg.data
    require(d.name in DATASETS, f"unknown data {d.name!r}; valid choices: {', '.join(DATASETS)}")
    dtype = torch_dtype(cfg.dtype)
    real = bool(d.real_images)
    with config_errors(f"data {d.name}"):
        if d.name == "chest":
            from unrolled.data.admm_net_data import load_chest

            train = load_chest(d.root, "train") if "train" in need else None
            test = load_chest(d.root, "test") if "test" in need else None
            val = None
        elif d.name == "mni":
            from unrolled.data.mni import MNISlices

            kw = dict(
                complex_images=d.complex_images,
                seed=d.seed,
                texture=d.texture,
                texture_sigma=d.texture_sigma,
                noise_std=d.noise_std,
            )
            train = MNISlices("train", d.train_samples, **kw).all() if "train" in need else None
            val = MNISlices("val", d.val_samples, **kw).all() if "val" in need else None
            test = MNISlices("test", d.test_samples, **kw).all() if "test" in need else None
        elif d.name == "images":
            from unrolled.data.images import test_tiles, training_crops

            names = tuple(d.train_images) if d.get("train_images") else None
            train = training_crops(d.train_crops, d.crop_size, seed=d.seed, images=names) if "train" in need else None
            val = training_crops(d.val_crops, d.crop_size, seed=d.seed + 1, images=names) if "val" in need else None
            test = test_tiles() if "test" in need else None
        elif d.name == "fastmri":
            from unrolled.data.fastmri import fastmri_files, load_fastmri_volume

            train_files, test_files = split_files(fastmri_files(d.root), d.test_files, "volumes")

            def images(paths):
                out = []
                for p in paths:
                    img = load_fastmri_volume(p).images()
                    if d.slices == "middle":
                        s = img.shape[0] // 2
                        img = img[max(0, s - 4) : s + 4]
                    out.append(img / img.abs().amax(dim=(-2, -1), keepdim=True).clamp(min=1e-12))
                return torch.cat(out)

            train, test, val = images(train_files), images(test_files), None
        else:
            from unrolled.data.nifti import load_nifti_slices

            root = Path(d.root)
            files = sorted(list(root.glob("*.nii")) + list(root.glob("*.nii.gz"))) if root.is_dir() else []
            if not files:
                raise FileNotFoundError(f"no *.nii or *.nii.gz files in {root}")
            train_files, test_files = split_files(files, d.test_files, "volumes")
            train = torch.cat([load_nifti_slices(p, slices=d.slices) for p in train_files])
            test = torch.cat([load_nifti_slices(p, slices=d.slices) for p in test_files])
            val = None

    device = torch_device(cfg.device)

    def cast(x):
        return None if x is None else _cast(x, real, dtype).to(device)

    return Splits(cast(train), cast(val), cast(test), d.name, real)


def check_physics(cfg: DictConfig, ratio: float | None = None) -> tuple[str, float]:
    """The mask rule and the ratio (MRI), checked cheaply, before any data is loaded."""
    p = cfg.physics
    require(p.name in PHYSICS, f"unknown physics {p.name!r}; valid choices: {', '.join(PHYSICS)}")
    if p.name == "denoising":
        require(p.sigma >= 0, f"physics.sigma must be >= 0, got {p.sigma}")
        return "none", 1.0
    ratio = float(p.ratio if ratio is None else ratio)
    require(0 < ratio <= 1, f"physics.ratio must be in (0, 1], got {ratio}")
    kind = p.mask
    if kind == "auto":
        kind = "admm_net_file" if cfg.data.name == "chest" else "pseudo_radial"
    valid = ["auto", "admm_net_file", *MASKS]
    require(kind in valid, f"unknown mask {kind!r}; valid choices: {', '.join(valid)}")
    return kind, ratio


def build_physics(cfg: DictConfig, ratio: float | None = None, shape: tuple[int, int] | None = None):
    p = cfg.physics
    kind, ratio = check_physics(cfg, ratio)
    if p.name == "denoising":
        from unrolled.physics.denoising import Denoising

        return Denoising(p.sigma)
    shape = shape or (p.size, p.size)
    with config_errors("physics"):
        if kind == "admm_net_file":
            mask = load_admm_net_mask(cfg.data.root, ratio)
        else:
            if "cartesian" in kind:
                rule = MASKS[kind](ratio, center_fraction=p.center_fraction)
            else:
                rule = MASKS[kind](ratio)
            mask = rule(shape, torch.Generator().manual_seed(p.mask_seed))
        if tuple(mask.shape) != tuple(shape):
            raise ValueError(f"mask of shape {tuple(mask.shape)} does not match the images' shape {tuple(shape)}")
        dtype = torch_dtype(cfg.dtype)
        return MRI(mask.to(dtype), fft_norm=p.fft_norm, noise_std=p.noise_std).to(torch_device(cfg.device))


def model_kwargs(cfg: DictConfig) -> dict:
    kw = OmegaConf.to_container(cfg.model, resolve=True)
    kw.pop("name")
    if "nonlocal" in kw:  # a Python keyword: the constructor argument is nonlocal_range
        kw["nonlocal_range"] = kw.pop("nonlocal")
    return kw


def build_model(cfg: DictConfig) -> UnrolledModel:
    name = cfg.model.name
    require(name in MODELS, f"unknown model {name!r}; valid choices: {', '.join(MODELS)}")
    with config_errors(f"model {name}"):
        model = make_model(name, **model_kwargs(cfg))
    return model.to(device=torch_device(cfg.device), dtype=torch_dtype(cfg.dtype))


def check_image_shape(x: Tensor, physics) -> None:
    if physics.shape is not None and tuple(x.shape[-2:]) != physics.shape:
        raise ConfigError(
            f"images of shape {tuple(x.shape[-2:])} do not match physics.size {physics.shape}; "
            f"set physics.size={x.shape[-1]}"
        )
