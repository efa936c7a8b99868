"""Train the shipped unrolled networks and write their weights and cards.

    python scripts/ship_unrolled_weights.py [--only admm_chest_r20,gd_stagewise_s25,...] [--out DIR] [--ship]

Each job runs ``python -m experiments.train_unrolled`` (resuming if interrupted),
then copies ``checkpoints/model.pt`` to ``<file>.pt`` and writes ``<file>.md``
(recipe, epochs, time, final training loss): into the job's run folder
(``--out``/<job>/, default runs/ship_unrolled) unless ``--ship`` is given, which writes them into
``unrolled/weights`` in place of the shipped files, so a trial job does not
replace a shipped file by accident. Test results are in the
README (``experiments.eval_unrolled``). The Deep ADMM-Net data directory comes
from ``$ADMM_NET_DATA`` (default ``../shared/data/deep-admm-net``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from unrolled.data.images import MOTORCYCLE, PHOTOS, PYWT_PHOTOS, TRAIN_IMAGES  # noqa: E402

WEIGHTS = ROOT / "unrolled" / "weights"

ADMM = ["model=admm_net", "data=chest", "train.batch_size=4", "train.lr=1e-3"]
GD_DENOISE = [
    "model=gd_mrf",
    "data=images",
    "physics=denoising",
    "train.loss=mse",
    "train.batch_size=8",
    "train.lr=1e-3",
    "data.train_crops=400",
    "data.crop_size=64",
]


def over(base: list[str], *changes: str) -> list[str]:
    """``base`` overrides with ``changes`` replacing those of the same key (or added)."""
    keys = {c.split("=", 1)[0] for c in changes}
    return [b for b in base if b.split("=", 1)[0] not in keys] + list(changes)


NATURAL_TRAIN = (*TRAIN_IMAGES, *MOTORCYCLE)
PHOTO_TRAIN = (*NATURAL_TRAIN, *PHOTOS)  # plus scikit-learn's and matplotlib's photographs
WIDE_TRAIN = (*PHOTO_TRAIN, *PYWT_PHOTOS)  # plus PyWavelets' aerial photograph and staircase
MNI = ["model=admm_net", "data=mni", "physics.ratio=0.2", "data.train_samples=60", "train.batch_size=4"]


def natural(
    sigma: int,
    model: list[str],
    crops: int,
    lr: str,
    decay: str | None,
    epochs: int,
    init: str,
    images: tuple[str, ...] = NATURAL_TRAIN,
) -> list[str]:
    """GD_DENOISE on crops of ``images`` (default: the 9 training images plus the stereo motorcycle), fresh
    noise every epoch, starting from the shipped file ``init``."""
    return over(
        GD_DENOISE,
        f"physics.sigma={sigma}",
        *model,
        f"data.train_images=[{','.join(images)}]",
        f"data.train_crops={crops}",
        "train.resample=true",
        f"train.lr={lr}",
        *([f"train.lr_decay={decay}"] if decay else []),
        f"train.epochs={epochs}",
        f"init_from=unrolled/weights/{init}.pt",
    )


JOBS: dict[str, tuple[str, list[str]]] = {
    # name: (weights file stem, overrides)
    "admm_chest_r20": ("admm_net_chest_r20", [*ADMM, "physics.ratio=0.2", "train.epochs=30"]),
    "gd_stagewise_s25": ("gd_mrf_images_s25_stagewise", [*GD_DENOISE, "physics.sigma=25", "train.epochs=40"]),
    "gd_shared_s25": (
        "gd_mrf_images_s25_shared",
        [*GD_DENOISE, "physics.sigma=25", "model.sharing=shared", "train.epochs=25"],
    ),
    "gd_chest_r20": (
        "gd_mrf_chest_r20",
        [
            "model=gd_mrf",
            "data=chest",
            "physics.ratio=0.2",
            "model.padding=circular",
            "train.batch_size=4",
            "train.lr=1e-3",
            "train.epochs=10",
        ],
    ),
    "admm_chest_r30": ("admm_net_chest_r30", [*ADMM, "physics.ratio=0.3", "train.epochs=12"]),
    "admm_chest_r40": ("admm_net_chest_r40", [*ADMM, "physics.ratio=0.4", "train.epochs=12"]),
    "admm_chest_r50": ("admm_net_chest_r50", [*ADMM, "physics.ratio=0.5", "train.epochs=12"]),
    "gd_nonlocal_s25": (  # fine-tuned from the local model (range filters start at zero), at a lower rate
        "gd_mrf_images_s25_stagewise_nonlocal",
        over(
            GD_DENOISE,
            "physics.sigma=25",
            "model.nonlocal=true",
            "data.train_crops=120",
            "train.lr=1e-4",
            "train.epochs=6",
            "init_from=unrolled/weights/gd_mrf_images_s25_stagewise.pt",
        ),
    ),
    "gd_stagewise_s15": (
        "gd_mrf_images_s15_stagewise",
        [
            *GD_DENOISE,
            "physics.sigma=15",
            "train.epochs=15",
            "init_from=unrolled/weights/gd_mrf_images_s25_stagewise.pt",
        ],
    ),
    "gd_stagewise_s50": (
        "gd_mrf_images_s50_stagewise",
        [
            *GD_DENOISE,
            "physics.sigma=50",
            "train.epochs=15",
            "init_from=unrolled/weights/gd_mrf_images_s25_stagewise.pt",
        ],
    ),
    # follow-ups: a longer shared-energy unroll, and a fine-tune of the stage-wise model at a lower rate
    "gd_shared_s25_k10": (
        "gd_mrf_images_s25_shared",
        [
            *GD_DENOISE,
            "physics.sigma=25",
            "model.sharing=shared",
            "model.stages=10",
            "train.epochs=12",
            "init_from=unrolled/weights/gd_mrf_images_s25_shared.pt",
        ],
    ),
    "gd_stagewise_s25_ft": (
        "gd_mrf_images_s25_stagewise",
        over(
            GD_DENOISE,
            "physics.sigma=25",
            "data.train_crops=800",
            "train.lr=3e-4",
            "train.epochs=8",
            "init_from=unrolled/weights/gd_mrf_images_s25_stagewise.pt",
        ),
    ),
    # the stage-wise model fine-tuned on more data: 3000 crops of the 9 images plus scikit-image's two natural
    # photographs (the stereo motorcycle), fresh noise every epoch, at a decaying rate
    "gd_stagewise_s25_nat": (
        "gd_mrf_images_s25_stagewise",
        natural(25, [], 3000, "3e-4", "0.93", 20, "gd_mrf_images_s25_stagewise"),
    ),
    "gd_shared_s25_nat": (  # the same for the shared-energy model
        "gd_mrf_images_s25_shared",
        natural(25, ["model.sharing=shared"], 3000, "3e-4", "0.93", 16, "gd_mrf_images_s25_shared"),
    ),
    # the 20% network trained on: 80 more epochs at a decaying rate (run after admm_chest_r20, whose file it
    # starts from and replaces; chest has no validation split, so the recipe is fixed, not selected)
    "admm_chest_r20_ft": (
        "admm_net_chest_r20",
        over(
            ADMM,
            "physics.ratio=0.2",
            "train.lr=5e-4",
            "train.lr_decay=0.97",
            "train.epochs=80",
            "init_from=unrolled/weights/admm_net_chest_r20.pt",
        ),
    ),
    # a wider variant than the paper's: the shipped 20% network with 16 filters of 5x5 per layer (its 8 3x3 filters
    # zero-padded, 8 new channels entering at rho = 0: the same reconstruction at the start; see WIDEN), trained on
    "admm_chest_r20_16x5": (
        "admm_net_chest_r20_16x5",
        over(
            ADMM,
            "physics.ratio=0.2",
            "model.num_filters=16",
            "model.filter_size=5",
            "train.lr=5e-4",
            "train.lr_decay=0.96",
            "train.epochs=45",
            "init_from=unrolled/weights/admm_net_chest_r20.pt",
        ),
    ),
    "admm_mni_r20": ("admm_net_mni_r20", [*MNI, "train.lr=1e-3", "train.epochs=6"]),
    # sigma 15 and 50 fine-tuned the same way from their shipped files, and the non-local variant from the
    # (new) local sigma-25 model, its range filters starting at zero
    **{
        f"gd_stagewise_s{sigma}_nat": (
            f"gd_mrf_images_s{sigma}_stagewise",
            natural(sigma, [], 2000, "3e-4", "0.93", 10, f"gd_mrf_images_s{sigma}_stagewise"),
        )
        for sigma in (15, 50)
    },
    "gd_nonlocal_s25_nat": (
        "gd_mrf_images_s25_stagewise_nonlocal",
        natural(25, ["model.nonlocal=true"], 400, "1e-4", None, 6, "gd_mrf_images_s25_stagewise"),
    ),
    # the sigma-25 models trained on with three more photographs (scikit-learn's china and flower,
    # matplotlib's grace_hopper) beside the motorcycle, at a lower decaying rate
    "gd_stagewise_s25_photo": (
        "gd_mrf_images_s25_stagewise",
        natural(25, [], 3000, "2e-4", "0.92", 18, "gd_mrf_images_s25_stagewise", PHOTO_TRAIN),
    ),
    "gd_shared_s25_photo": (
        "gd_mrf_images_s25_shared",
        natural(25, ["model.sharing=shared"], 3000, "2e-4", "0.92", 18, "gd_mrf_images_s25_shared", PHOTO_TRAIN),
    ),
    **{
        f"gd_stagewise_s{sigma}_photo": (
            f"gd_mrf_images_s{sigma}_stagewise",
            natural(sigma, [], 2000, "2e-4", "0.92", 8, f"gd_mrf_images_s{sigma}_stagewise", PHOTO_TRAIN),
        )
        for sigma in (15, 50)
    },
    # the shared energy unrolled for 8 steps instead of 5, from the file of gd_shared_s25_photo: the three new
    # steps start with step size 0 (no-ops), so training starts from that 5-step model's output
    "gd_shared_s25_k8": (
        "gd_mrf_images_s25_shared",
        natural(
            25,
            ["model.sharing=shared", "model.stages=8", "model.step=0.0"],
            3000,
            "2e-4",
            "0.92",
            12,
            "gd_mrf_images_s25_shared",
            PHOTO_TRAIN,
        ),
    ),
    # the shared energy unrolled for 16 steps, from the 8-step file of gd_shared_s25_k8 (the 8 new steps start
    # with step size 0)
    "gd_shared_s25_k16": (
        "gd_mrf_images_s25_shared",
        natural(
            25,
            ["model.sharing=shared", "model.stages=16", "model.step=0.0"],
            3000,
            "2e-4",
            "0.92",
            8,
            "gd_mrf_images_s25_shared",
            PHOTO_TRAIN,
        ),
    ),
    # the non-local variant from the local gd_stagewise_s25_photo model, matching on the current estimate at
    # every step instead of the noisy input, at a higher rate than gd_nonlocal_s25_nat
    "gd_nonlocal_s25_photo": (
        "gd_mrf_images_s25_stagewise_nonlocal",
        natural(
            25,
            ["model.nonlocal=true", "model.match_on=estimate"],
            400,
            "3e-4",
            None,
            6,
            "gd_mrf_images_s25_stagewise",
            PHOTO_TRAIN,
        ),
    ),
    # the sigma-25 stage-wise model trained on with PyWavelets' two photographs added (16 training images)
    "gd_stagewise_s25_wide": (
        "gd_mrf_images_s25_stagewise",
        natural(25, [], 3000, "1.5e-4", "0.92", 14, "gd_mrf_images_s25_stagewise", WIDE_TRAIN),
    ),
    # the non-local variant with collaborative range filters (each a learned multiple of its local filter on
    # each of 8 matched patches, matched on the current estimate), from the local gd_stagewise_s25_photo model
    "gd_collab_s25_photo": (
        "gd_mrf_images_s25_stagewise_nonlocal",
        natural(
            25,
            ["model.nonlocal=true", "model.match_on=estimate", "model.matches=8", "model.range_filters=collaborative"],
            1000,
            "5e-4",
            "0.9",
            8,
            "gd_mrf_images_s25_stagewise",
            PHOTO_TRAIN,
        ),
    ),
    # the non-local variant with averaged range filters (each clique's response a weighted mean of its local
    # filter's responses over the group of 8 patches matched on the current estimate, the weights summing to
    # 1), from the local gd_stagewise_s25_photo model, with gd_collab_s25_photo's recipe
    "gd_avg_s25_photo": (
        "gd_mrf_images_s25_stagewise_nonlocal",
        natural(
            25,
            ["model.nonlocal=true", "model.match_on=estimate", "model.matches=8", "model.range_filters=averaged"],
            1000,
            "5e-4",
            "0.9",
            8,
            "gd_mrf_images_s25_stagewise",
            PHOTO_TRAIN,
        ),
    ),
    # the shared energy (8 steps) widened to 80 filters of 9x9 (TNRD's largest bank): the file of
    # gd_shared_s25_k8 with its filters zero-padded and 32 new ones at zero penalty (the same output at the start;
    # unrolled.models.gd_mrf.widen, see WIDEN), 1500 crops of the 14 images
    "gd_shared_s25_f80": (
        "gd_mrf_images_s25_shared",
        natural(
            25,
            ["model.sharing=shared", "model.stages=8", "model.num_filters=80", "model.filter_size=9"],
            1500,
            "2e-4",
            "0.92",
            10,
            "gd_mrf_images_s25_shared",
            PHOTO_TRAIN,
        ),
    ),
    # the MNI network trained on: 20 more epochs at a decaying rate (same data and validation slices)
    "admm_mni_r20_ft": (
        "admm_net_mni_r20",
        [
            *MNI,
            "train.lr=5e-4",
            "train.lr_decay=0.93",
            "train.epochs=20",
            "init_from=unrolled/weights/admm_net_mni_r20.pt",
        ],
    ),
}


# follow-up jobs write the same file as another job only if their validation loss is lower
REPLACES = {"gd_shared_s25_k10": "gd_shared_s25", "gd_stagewise_s25_ft": "gd_stagewise_s25"}
# fine-tunes that replace the file only if some epoch beat the start weights on their own validation images
# (best_epoch > 0; for the *_nat jobs those differ from their base's)
IMPROVES_ON_START = {
    "gd_stagewise_s25_nat": "gd_stagewise_s25",
    "gd_shared_s25_nat": "gd_shared_s25",
    "admm_mni_r20_ft": "admm_mni_r20",
    "gd_stagewise_s15_nat": "gd_stagewise_s15",
    "gd_stagewise_s50_nat": "gd_stagewise_s50",
    "gd_nonlocal_s25_nat": "gd_stagewise_s25_nat",
    "gd_stagewise_s25_photo": "gd_stagewise_s25_nat",
    "gd_shared_s25_photo": "gd_shared_s25_nat",
    "gd_shared_s25_k8": "gd_shared_s25_photo",
    "gd_nonlocal_s25_photo": "gd_stagewise_s25_photo",
    "gd_stagewise_s15_photo": "gd_stagewise_s15_nat",
    "gd_stagewise_s50_photo": "gd_stagewise_s50_nat",
    "gd_stagewise_s25_wide": "gd_stagewise_s25_photo",
    "gd_collab_s25_photo": "gd_stagewise_s25_photo",
    "gd_avg_s25_photo": "gd_stagewise_s25_photo",
    "gd_shared_s25_f80": "gd_shared_s25_k8",
    "gd_shared_s25_k16": "gd_shared_s25_k8",
}
# jobs that start from a widened copy of a shipped file: (num_filters, filter_size); the copy is written to the
# job's run directory as init.pt and replaces the job's init_from
WIDEN = {"gd_shared_s25_f80": (80, 9), "admm_chest_r20_16x5": (16, 5)}
# jobs that continue the training of another job's shipped file (named in their cards)
BASES = {
    **REPLACES,
    **IMPROVES_ON_START,
    "admm_chest_r20_ft": "admm_chest_r20",
    "admm_chest_r20_16x5": "admm_chest_r20_ft",
}


def init_from(overrides: list[str]) -> str | None:
    """The ``init_from=`` value of a job's overrides (None without one)."""
    return next((o.split("=", 1)[1] for o in overrides if o.startswith("init_from=")), None)


def widened_start(overrides: list[str], out: Path, num_filters: int, filter_size: int) -> Path:
    """``out/init.pt``: the job's init_from file widened (written once)."""
    import importlib

    from unrolled.models import load_model, model_name, save_model

    path = out / "init.pt"
    if not path.exists():
        source = ROOT / init_from(overrides)
        model, extra = load_model(source)
        out.mkdir(parents=True, exist_ok=True)
        widen = importlib.import_module(f"unrolled.models.{model_name(model)}").widen  # each model's module has one
        save_model(path, widen(model, num_filters, filter_size), widened_from=str(source.relative_to(ROOT)), **extra)
        print(f"wrote {path}: {source.name} widened to {num_filters} filters of {filter_size}x{filter_size}")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(JOBS))
    ap.add_argument("--out", default="runs/ship_unrolled")
    ap.add_argument(
        "--ship",
        action="store_true",
        help="write the weights and cards into unrolled/weights (default: into each job's run folder)",
    )
    args = ap.parse_args()
    WEIGHTS.mkdir(parents=True, exist_ok=True)
    for job in args.only.split(","):
        if job not in JOBS:
            raise SystemExit(f"unknown job {job!r}; valid: {', '.join(JOBS)}")
        stem, overrides = JOBS[job]
        out = ROOT / args.out / job
        if job in WIDEN:
            start_file = widened_start(overrides, out, *WIDEN[job])
            start_file = start_file.relative_to(ROOT) if start_file.is_relative_to(ROOT) else start_file
            overrides = over(overrides, f"init_from={start_file}")
        cmd = [sys.executable, "-m", "experiments.train_unrolled", *overrides, "progress=false", f"hydra.run.dir={out}"]
        if (out / "checkpoints" / "last.pt").exists():
            cmd.append("resume=true")
        if not (out / "metrics.json").exists():
            print("$", " ".join(cmd[1:]), flush=True)
            t0 = time.time()
            subprocess.run(cmd, cwd=ROOT, check=True)
            print(f"{job}: {(time.time() - t0) / 60:.0f} min", flush=True)
        m = json.loads((out / "metrics.json").read_text())
        if job in REPLACES:
            old = json.loads((ROOT / args.out / REPLACES[job] / "metrics.json").read_text())
            if not m["best_val_loss"] < old["best_val_loss"]:
                print(
                    f"{job}: validation loss {m['best_val_loss']:.6f} is not below {REPLACES[job]}'s "
                    f"{old['best_val_loss']:.6f}; {stem}.pt kept",
                    flush=True,
                )
                continue
            print(
                f"{job}: validation loss {m['best_val_loss']:.6f} < {old['best_val_loss']:.6f}: replaces {stem}.pt",
                flush=True,
            )
        if job in IMPROVES_ON_START:
            if not m.get("best_epoch"):
                print(f"{job}: no epoch beat the start weights on validation; {stem}.pt kept", flush=True)
                continue
            print(f"{job}: epoch {m['best_epoch']} beat the start weights on validation: replaces {stem}.pt")
        dest = WEIGHTS if args.ship else out
        shutil.copyfile(out / "checkpoints" / "model.pt", dest / f"{stem}.pt")
        setting = {k: m[k] for k in ("physics", "ratio", "sigma", "mask", "sampling_ratio") if k in m}
        n_threads = m.get("threads")  # older runs did not record it: they ran on one thread (OMP_NUM_THREADS=1)
        threads = "one CPU thread" if n_threads in (None, 1) else f"{n_threads} CPU threads"
        init = init_from(JOBS[job][1])  # the shipped file the job starts from (before any widening)
        start = ""
        if init:
            base = f" by `--only {BASES[job]}`" if job in BASES else ""
            start = f"\n- started from `{init}` as made{base} (that card is in the file's git history)"
            if job in WIDEN:
                n, size = WIDEN[job]
                start += (
                    f", widened to {n} filters of {size}x{size} (`unrolled.models.{m['model']}.widen`: the same "
                    f"output; written to the run directory as `init.pt`)"
                )
            start += "."
        if m.get("start_val_loss") is not None and m.get("best_epoch") is not None:
            start += (
                f"\n- validation loss: {m['start_val_loss']:.6g} at the start, {m['best_val_loss']:.6g} "
                f"at the kept epoch {m['best_epoch']}."
            )
        card = f"""# {stem}

File: `{stem}.pt` (`unrolled.models.load_model`). Made by:
`python scripts/ship_unrolled_weights.py --only {job} --ship`, i.e.

    python -m experiments.train_unrolled {" ".join(overrides)}

- data: {m["data"]} ({m["train_images"]} training images{
            ", " + str(m["val_images"]) + " for validation" if m["val_images"] else ""
        }); setting: {setting};
- training: {m["train_config"]["optimizer"]} (learning rate {m["train_config"]["lr"]}), loss
  {m["train_config"]["loss"]}, batch {m["train_config"]["batch_size"]}, mode {m["train_config"]["mode"]},
  {m["epochs"]} epochs, {m["seconds_per_epoch"]:.0f} s per epoch on {threads} ({m["seconds"] / 60:.0f} min);
- final training loss {m["final_train_loss"]:.5f}; weights kept: {m["selection"]}.{start}

Test results (PSNR, SSIM, NRMSE on held-out images): see the README.
"""
        (dest / f"{stem}.md").write_text(card)
        verb = "shipped" if args.ship else "wrote (not shipped; --ship to ship)"
        print(f"{verb} {dest / stem}.pt", flush=True)


if __name__ == "__main__":
    main()
