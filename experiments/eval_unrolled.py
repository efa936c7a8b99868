"""Evaluate reconstructions on a test set at several sampling ratios.

    python -m experiments.eval_unrolled model=admm_net data=chest data.root=PATH ratios=[0.2,0.3] hydra.run.dir=DIR
    python -m experiments.eval_unrolled model=admm_net                      # embedded MNI data
    python -m experiments.eval_unrolled model=admm_net checkpoint=PATH      # other weights

Methods: ``zero_filling``; ``tv`` (isotropic or anisotropic TV, lambda picked on
training images by PSNR, never on test images); ``init`` (the untrained network:
for ADMM-Net, ADMM with the l1 penalty, the authors' "Init-Net"); ``trained``
(``checkpoint``, or the shipped network of this model and data for each ratio,
or the nearest ratio's, which ``metrics.json`` then says).

Writes ``metrics.json`` (``results[method][ratio]`` with ``psnr``, ``nrmse``,
``ssim``, ``nmse``, ``seconds_per_image``), ``results.md`` (the layout of the
paper's table: methods in rows, ratios in columns) and ``examples.png`` (a grid of
reconstructions with error maps).
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from experiments.app import config_errors, hydra_app, require, run_dir
from experiments.reporting import markdown_table, write_json
from experiments.unrolled_setup import build_model, build_physics, check_image_shape, check_physics, load_data
from unrolled.baselines.tv import tv_reconstruction, zero_filling
from unrolled.metrics import PEAKS, reconstruction_metrics
from unrolled.models import WEIGHTS_DIR, load_model, ratio_tag, shipped_path

METHODS = ("zero_filling", "tv", "init", "trained")
DENOISING_METHODS = ("noisy", "tv", "nl_means", "wavelet", "bm3d", "init", "trained")
LABELS = {
    "zero_filling": "Zero-filling",
    "tv": "TV",
    "init": "Init-Net",
    "trained": "trained",
    "noisy": "noisy",
    "nl_means": "NL-means",
    "wavelet": "wavelet",
    "bm3d": "BM3D",
}


def label(cfg: DictConfig, method: str) -> str:
    if method == "init" and cfg.model.name != "admm_net":
        return "untrained"
    if method == "trained":
        return {"admm_net": "ADMM-Net", "gd_mrf": "GD-MRF"}.get(cfg.model.name, "trained")
    return LABELS[method]


def run_method(fn, y: torch.Tensor, chunk: int = 8) -> tuple[torch.Tensor, float]:
    """Outputs in chunks, and seconds per image."""
    outs = []
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(y), chunk):
            outs.append(fn(y[i : i + chunk]))
    return torch.cat(outs), (time.perf_counter() - start) / len(y)


def summarize(out: torch.Tensor, x: torch.Tensor, peak: str, seconds: float) -> dict[str, float]:
    m = reconstruction_metrics(out, x, peak)
    res = {k: float(v.mean()) for k, v in m.items()}
    res.update({f"{k}_std": float(v.std()) for k, v in m.items() if len(v) > 1})
    res["seconds_per_image"] = seconds
    return res


def tune_tv(cfg: DictConfig, physics, x_train: torch.Tensor, real: bool) -> dict[str, Any]:
    x = x_train[: cfg.tv.tune_images]
    y = physics.simulate(x, torch.Generator().manual_seed(123))
    scores = []
    for lam in cfg.tv.lambdas:
        out = tv_reconstruction(y, physics, lam, cfg.tv.isotropic, cfg.tv.iterations, real_images=real)
        scores.append(float(reconstruction_metrics(out, x, cfg.peak)["psnr"].mean()))
    best = int(np.argmax(scores))
    return {
        "lambda": float(cfg.tv.lambdas[best]),
        "grid": list(cfg.tv.lambdas),
        "train_psnr": scores,
        "tune_images": len(x),
        "at_grid_edge": best in (0, len(scores) - 1),
    }


def denoising_tag(cfg: DictConfig) -> str:
    m = cfg.model
    variant = ""
    if m.name == "gd_mrf":
        variant = f"_{m.sharing}" + ("_nonlocal" if m.get("nonlocal") else "")
    return f"s{cfg.physics.sigma:g}{variant}"


def trained_weights(cfg: DictConfig, ratio: float | None) -> tuple[Path, str]:
    """The weights of ``trained``: ``checkpoint`` (a path, or a mapping ratio -> path),
    else the shipped file for this model, data and setting (MRI: else the nearest
    ratio's, which the returned origin says)."""
    ck = cfg.checkpoint
    if ck is not None and not isinstance(ck, (str, Path)):
        ck = OmegaConf.to_container(ck)
        key = next((k for k in ck if ratio is not None and math.isclose(float(k), ratio)), None)
        require(key is not None, f"checkpoint has no entry for ratio {ratio}; it has {list(ck)}")
        return Path(ck[key]), "checkpoint"
    if ck is not None:
        return Path(ck), "checkpoint"
    tag = ratio_tag(ratio) if ratio is not None else denoising_tag(cfg)
    path = shipped_path(cfg.model.name, cfg.data.name, tag)
    if path.exists():
        return path, "shipped"
    # one ratio tag and nothing after it (``..._r20_16x5.pt`` is a variant, chosen only by checkpoint=)
    plain = re.compile(rf"{re.escape(cfg.model.name)}_{re.escape(cfg.data.name)}_r(\d+)\.pt")
    shipped = {int(m[1]) / 100: p for p in WEIGHTS_DIR.glob("*.pt") if (m := plain.fullmatch(p.name))}
    have = ", ".join(sorted(p.name for p in WEIGHTS_DIR.glob("*.pt"))) or "none"
    require(ratio is not None and bool(shipped), f"no shipped weights {path.name} (have: {have}); pass checkpoint=PATH")
    trained_at = min(shipped, key=lambda r: abs(r - ratio))
    return shipped[trained_at], f"shipped, trained at ratio {trained_at}"


def load_trained(cfg: DictConfig, ratio: float | None, data, device, dtype, notes: dict, key: str | None):
    path, origin = trained_weights(cfg, ratio)
    with config_errors("checkpoint"):
        model, extra = load_model(path, real_images=data.real_images)
    info = {"weights": str(path), "origin": origin, **{k: v for k, v in extra.items() if k != "history"}}
    if key is None:  # denoising: one setting
        notes["trained"] = info
    else:  # MRI: one entry per ratio
        notes.setdefault("trained", {})[key] = info
    return model.to(device=device, dtype=dtype).eval()


def save_examples(path: Path, panels: dict[str, torch.Tensor], x: torch.Tensor, title: str, peak: str = "one") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(panels)
    n = x.shape[0]
    fig, axes = plt.subplots(2 * n, len(names) + 1, figsize=(2.2 * (len(names) + 1), 2.2 * 2 * n), dpi=110)
    axes = np.atleast_2d(axes)
    for i in range(n):
        ref = x[i].abs().cpu()
        axes[2 * i, 0].imshow(ref, cmap="gray", vmin=0, vmax=1)
        axes[2 * i, 0].set_title("ground truth", fontsize=8)
        axes[2 * i + 1, 0].axis("off")
        for j, name in enumerate(names):
            img = panels[name][i].abs().cpu()
            p = float(reconstruction_metrics(panels[name][i : i + 1], x[i : i + 1], peak)["psnr"][0])
            axes[2 * i, j + 1].imshow(img, cmap="gray", vmin=0, vmax=1)
            axes[2 * i, j + 1].set_title(f"{name}\n{p:.2f} dB", fontsize=8)
            axes[2 * i + 1, j + 1].imshow((img - ref).abs(), cmap="inferno", vmin=0, vmax=0.15)
            axes[2 * i + 1, j + 1].set_title("|error| (0-0.15)", fontsize=7)
        for ax in axes[2 * i : 2 * i + 2].ravel():
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    require(
        cfg.physics.name in ("mri", "denoising"), f"unknown physics {cfg.physics.name!r}; valid choices: mri, denoising"
    )
    return evaluate_denoising(cfg) if cfg.physics.name == "denoising" else evaluate_mri(cfg)


def method_list(cfg: DictConfig, valid: tuple[str, ...], default: tuple[str, ...]) -> list[str]:
    methods = list(default) if cfg.methods == "auto" else list(cfg.methods)
    bad = [m for m in methods if m not in valid]
    require(not bad, f"unknown method(s) {bad}; valid choices: {', '.join(valid)}")
    return methods


def evaluate_denoising(cfg: DictConfig) -> dict[str, Any]:
    """Denoising at ``physics.sigma``: ``results[method]`` with psnr, ssim, nrmse,
    seconds_per_image; classical denoisers tuned on training images."""
    from unrolled.baselines.denoisers import GRIDS, denoise, tune

    methods = method_list(cfg, DENOISING_METHODS, ("noisy", "tv", "nl_means", "wavelet", "bm3d", "trained"))
    require(cfg.peak in PEAKS, f"unknown peak {cfg.peak!r}; valid choices: {', '.join(PEAKS)}")
    check_physics(cfg)
    if "init" in methods or "trained" in methods:
        build_model(cfg)
    needs_train = any(m in GRIDS for m in methods)
    data = load_data(cfg, need=("train", "test") if needs_train else ("test",))
    physics = build_physics(cfg)
    x = data.test
    y = physics.simulate(x, torch.Generator().manual_seed(0))
    out_dir = run_dir()
    OmegaConf.save(cfg, out_dir / "config.yaml", resolve=True)
    sigma = float(cfg.physics.sigma)
    tune_x = data.train[: cfg.tv.tune_images] if needs_train else None
    tune_y = physics.simulate(tune_x, torch.Generator().manual_seed(123)) if needs_train else None
    results, notes, examples = {}, {}, {}
    bar = tqdm(total=len(methods), desc=f"denoise sigma {sigma:g}", disable=not cfg.progress)
    for method in methods:
        bar.set_postfix_str(method)
        if method == "noisy":
            out, sec = y, 0.0
        elif method in GRIDS:
            tuned = tune(method, tune_x, tune_y, sigma)
            notes[method] = tuned
            computed: list[float] = []
            out, sec = run_method(lambda yy, m=method, p=tuned["param"], t=computed: denoise(m, yy, sigma, p, t), y)
            if method == "bm3d":  # cached results: report the time they took to compute
                sec = float(np.mean(computed))
        elif method == "init":
            model = build_model(cfg).eval()
            out, sec = run_method(lambda yy, m=model: m(yy, physics), y)
        else:
            model = load_trained(cfg, None, data, y.device, x.dtype, notes, None)
            out, sec = run_method(lambda yy, m=model: m(yy, physics), y)
            if cfg.model.name == "gd_mrf":
                from unrolled.models.gd_mrf import plot_filters_and_penalties

                plot_filters_and_penalties(model, out_dir / "filters.png")
        results[method] = summarize(out, x, cfg.peak, sec)
        examples[label(cfg, method)] = out[: cfg.examples]
        bar.update(1)
    bar.close()
    metrics = {
        "model": cfg.model.name,
        "data": data.name,
        "test_images": len(x),
        "sigma": sigma,
        "peak": cfg.peak,
        "results": results,
        "notes": notes,
    }
    write_json(out_dir / "metrics.json", metrics)
    rows = [[label(cfg, m), results[m]["psnr"], results[m]["ssim"], results[m]["seconds_per_image"]] for m in methods]
    table = markdown_table(["method", "PSNR (dB)", "SSIM", "s/image"], rows)
    title = f"{cfg.model.name} on {data.name} test tiles ({len(x)}), Gaussian noise sigma {sigma:g}"
    (out_dir / "results.md").write_text(f"# {title}\n\n{table}")
    save_examples(out_dir / "examples.png", examples, x[: cfg.examples], title, cfg.peak)
    print("\n" + table)
    print(f"Run directory: {out_dir}\n  metrics: {out_dir / 'metrics.json'}   examples: {out_dir / 'examples.png'}")
    return metrics


def evaluate_mri(cfg: DictConfig) -> dict[str, Any]:
    methods = method_list(cfg, METHODS, METHODS)
    require(cfg.peak in PEAKS, f"unknown peak {cfg.peak!r}; valid choices: {', '.join(PEAKS)}")
    ratios = [float(r) for r in cfg.ratios]
    require(len(ratios) > 0 and all(0 < r <= 1 for r in ratios), f"ratios must be in (0, 1], got {ratios}")
    for r in ratios:
        check_physics(cfg, r)
    if "init" in methods or "trained" in methods:
        build_model(cfg)  # a bad model setting fails before any data is loaded
    data = load_data(cfg, need=("train", "test") if "tv" in methods else ("test",))
    x = data.test
    out_dir = run_dir()
    OmegaConf.save(cfg, out_dir / "config.yaml", resolve=True)
    results: dict[str, dict[str, Any]] = {m: {} for m in methods}
    notes: dict[str, Any] = {}
    examples = {}
    bar = tqdm(total=len(ratios) * len(methods), desc=f"evaluate on {data.name}", disable=not cfg.progress)
    for ratio in ratios:
        physics = build_physics(cfg, ratio, shape=tuple(x.shape[-2:]))
        check_image_shape(x, physics)
        y = physics.simulate(x, torch.Generator().manual_seed(0))
        key = f"{ratio:g}"
        for method in methods:
            bar.set_postfix_str(f"{method} @ {key}")
            if method == "zero_filling":
                out, sec = run_method(lambda yy, p=physics: zero_filling(yy, p, data.real_images), y)
            elif method == "tv":
                tuned = tune_tv(cfg, physics, data.train, data.real_images)
                notes.setdefault("tv", {})[key] = tuned
                out, sec = run_method(
                    lambda yy, p=physics, lam=tuned["lambda"]: tv_reconstruction(
                        yy, p, lam, cfg.tv.isotropic, cfg.tv.iterations, real_images=data.real_images
                    ),
                    y,
                )
            elif method == "init":
                model = build_model(cfg).eval()
                out, sec = run_method(lambda yy, m=model, p=physics: m(yy, p), y)
            else:
                model = load_trained(cfg, ratio, data, y.device, x.real.dtype, notes, key)
                out, sec = run_method(lambda yy, m=model, p=physics: m(yy, p), y)
            results[method][key] = summarize(out, x, cfg.peak, sec)
            if ratio == ratios[0]:
                examples[label(cfg, method)] = out[: cfg.examples]
            bar.update(1)
    bar.close()
    metrics = {
        "model": cfg.model.name,
        "data": data.name,
        "test_images": len(x),
        "ratios": ratios,
        "peak": cfg.peak,
        "results": results,
        "notes": notes,
    }
    write_json(out_dir / "metrics.json", metrics)
    headers = (
        ["method"] + [f"{float(r) * 100:g}% PSNR (dB)" for r in ratios] + [f"{float(r) * 100:g}% NRMSE" for r in ratios]
    )
    rows = [
        [label(cfg, m)]
        + [results[m][f"{r:g}"]["psnr"] for r in ratios]
        + [results[m][f"{r:g}"]["nrmse"] for r in ratios]
        for m in methods
    ]
    table = markdown_table(headers, rows)
    ssim_rows = [
        [label(cfg, m)]
        + [results[m][f"{r:g}"]["ssim"] for r in ratios]
        + [results[m][f"{r:g}"]["seconds_per_image"] for r in ratios]
        for m in methods
    ]
    table2 = markdown_table(
        ["method"] + [f"{float(r) * 100:g}% SSIM" for r in ratios] + [f"{float(r) * 100:g}% s/image" for r in ratios],
        ssim_rows,
    )
    title = f"{cfg.model.name} on {data.name} test images ({len(x)}), PSNR peak {cfg.peak}"
    (out_dir / "results.md").write_text(f"# {title}\n\n{table}\n{table2}")
    save_examples(
        out_dir / "examples.png", examples, x[: cfg.examples], f"{title}, sampling ratio {ratios[0]:g}", cfg.peak
    )
    print("\n" + table + "\n" + table2)
    print(f"Run directory: {out_dir}\n  metrics: {out_dir / 'metrics.json'}   examples: {out_dir / 'examples.png'}")
    return metrics


@hydra_app("eval_unrolled")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
