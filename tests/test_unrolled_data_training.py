"""Data loaders (on files the tests write), the MNI dataset, TV, the trainer and the apps."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from unrolled.baselines.tv import grad, grad_adjoint, tv_reconstruction, zero_filling
from unrolled.data.admm_net_data import load_chest, read_admm_net_layers, read_mat_array
from unrolled.data.fastmri import load_fastmri_volume
from unrolled.data.mni import SLABS, MNISlices
from unrolled.data.nifti import load_nifti_slices
from unrolled.metrics import psnr
from unrolled.models import load_model
from unrolled.models.admm_net import ADMMNet
from unrolled.physics.masks import PseudoRadialMask
from unrolled.physics.mri import MRI
from unrolled.training import TrainConfig, UnrolledTrainer

ROOT = Path(__file__).resolve().parent.parent
D = torch.float64


def test_fastmri_loader(tmp_path):
    rng = np.random.default_rng(0)
    k = (rng.standard_normal((3, 40, 24)) + 1j * rng.standard_normal((3, 40, 24))).astype(np.complex64)
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f["kspace"] = k
        f["reconstruction_esc"] = rng.random((3, 16, 16)).astype(np.float32)
    vol = load_fastmri_volume(tmp_path / "v.h5")
    assert vol.kspace.shape == (3, 40, 24) and vol.target.shape == (3, 16, 16)
    img = vol.images()
    assert img.shape == (3, 16, 16)
    full = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    np.testing.assert_allclose(img.numpy(), full[:, 12:28, 4:20], atol=1e-5)
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["kspace"] = k
    with pytest.raises(ValueError, match=r"lacks \['reconstruction_esc'\]"):
        load_fastmri_volume(tmp_path / "bad.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match="not an HDF5 file"):
        load_fastmri_volume(tmp_path / "text.h5")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_fastmri_volume(tmp_path / "none.h5")


def test_nifti_loader(tmp_path):
    import nibabel as nib

    vol = np.zeros((20, 30, 12), dtype=np.float32)
    vol[5:15, 10:20, :] = np.linspace(0, 100, 12)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(tmp_path / "v.nii.gz"))
    slices = load_nifti_slices(tmp_path / "v.nii.gz", size=64, slices="all")
    assert slices.shape == (12, 64, 64) and slices.max() <= 1 and slices[-1].max() > 0.9
    assert slices[0].max() == 0  # the first slice is empty
    (tmp_path / "bad.nii").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="could not be read as NIfTI"):
        load_nifti_slices(tmp_path / "bad.nii")
    nib.save(nib.Nifti1Image(np.zeros((4, 4), np.float32), np.eye(4)), str(tmp_path / "flat.nii"))
    with pytest.raises(ValueError, match="expected a 3-D volume"):
        load_nifti_slices(tmp_path / "flat.nii")


def test_mat_reader_and_missing_data(tmp_path):
    with h5py.File(tmp_path / "a.mat", "w") as f:
        f["im_ori"] = np.arange(6, dtype=np.float64).reshape(2, 3)
    assert read_mat_array(tmp_path / "a.mat", "im_ori").shape == (3, 2)  # MATLAB orientation
    with pytest.raises(ValueError, match=r"has no variable 'mask' \(it has \['im_ori'\]\)"):
        read_mat_array(tmp_path / "a.mat", "mask")
    with pytest.raises(FileNotFoundError, match="is not the Deep ADMM-Net data directory"):
        load_chest(tmp_path)
    # a file that is not HDF5 (a MATLAB v5 file, a truncated download) and a missing one: one clear error each
    (tmp_path / "v5.mat").write_bytes(b"MATLAB 5.0 MAT-file" + bytes(200))
    for read in (lambda p: read_mat_array(p, "im_ori"), read_admm_net_layers):
        with pytest.raises(ValueError, match=r"v5\.mat is not a MATLAB v7\.3 \(HDF5\)"):
            read(tmp_path / "v5.mat")
        with pytest.raises(FileNotFoundError, match="gone.mat does not exist"):
            read(tmp_path / "gone.mat")
    with pytest.raises(ValueError, match="is not a Deep ADMM-Net network file"):
        read_admm_net_layers(tmp_path / "a.mat")


def test_chest_images(admm_net_root):
    train, test = load_chest(admm_net_root, "train"), load_chest(admm_net_root, "test")
    assert train.shape == (80, 256, 256) and test.shape == (20, 256, 256)
    assert 0 <= float(train.min()) and float(train.max()) <= 1


def test_mni_slices_are_seeded_disjoint_and_realistic():
    assert not set(SLABS["train"]) & set(SLABS["val"]) and not set(SLABS["val"]) & set(SLABS["test"])
    assert not set(SLABS["train"]) & set(SLABS["test"])
    ds = MNISlices("test", samples=3)
    a, b = ds[1], MNISlices("test", samples=3)[1]
    assert a.shape == (256, 256) and a.dtype == torch.complex64 and torch.equal(a, b)
    assert not torch.equal(MNISlices("test", samples=3, seed=1)[1], a)
    bare = MNISlices("test", samples=1, augment=False, complex_images=False, noise_std=0.0)[0]
    assert bare.dtype == torch.float32 and float(bare.max()) == pytest.approx(1.0)
    assert 0.95 < float(a.abs().max()) < 1.1
    with pytest.raises(ValueError, match="valid choices: train, val, test"):
        MNISlices("holdout")


def test_mni_recipe_makes_tv_gain_what_it_gains_on_real_scans():
    """The reason for the realism recipe: on the bare template slices tuned TV gains
    far more over zero-filling than on real scans (measured 12.7 dB on 4 test slices at
    20%), on the realistic samples about what it gains on the chest scans (4.6 dB here;
    4.9 dB on chest im-81..100, README)."""
    mask = PseudoRadialMask(0.2)((256, 256))
    gains = {}
    for name, ds, real in [
        ("bare", MNISlices("test", samples=4, augment=False, complex_images=False, noise_std=0.0), True),
        ("realistic", MNISlices("test", samples=4), False),
    ]:
        x = ds.all()
        phys = MRI(mask, fft_norm="ortho", noise_std=ds.noise_std)
        y = phys.simulate(x, torch.Generator().manual_seed(0)) if ds.noise_std > 0 else phys.A(x)
        zf = phys.zero_filled(y)
        zf_psnr = psnr(zf.real if real else zf, x).mean().item()
        tv_psnr = max(
            psnr(tv_reconstruction(y, phys, lam, iterations=100, real_images=real), x).mean().item()
            for lam in (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3)
        )
        gains[name] = tv_psnr - zf_psnr
    assert gains["bare"] > 10 and gains["realistic"] < 7, gains


def test_tv_operators_and_reconstruction():
    g = torch.Generator().manual_seed(0)
    x, v = torch.randn(2, 16, 16, generator=g, dtype=D), torch.randn(2, 2, 16, 16, generator=g, dtype=D)
    assert torch.vdot(grad(x).flatten(), v.flatten()).item() == pytest.approx(
        torch.vdot(x.flatten(), grad_adjoint(v).flatten()).item(), rel=1e-12
    )
    img = torch.zeros(2, 32, 32, dtype=D)
    img[:, 8:24, 8:24] = 1.0  # piecewise constant: TV is the right prior
    phys = MRI(PseudoRadialMask(0.25)((32, 32)).double(), fft_norm="ortho")
    y = phys.A(img.to(torch.complex128))
    zf = zero_filling(y, phys)
    rec = tv_reconstruction(y, phys, 1e-3, isotropic=True, iterations=300)
    assert psnr(rec, img).min() > psnr(zf, img).max() + 10
    aniso = tv_reconstruction(y, phys, 1e-3, isotropic=False, iterations=300)
    assert psnr(aniso, img).min() > psnr(zf, img).max() + 10 and not torch.allclose(aniso, rec)
    # one lambda per image equals separate calls
    both = tv_reconstruction(y, phys, torch.tensor([1e-3, 3e-3]), iterations=50)
    second = tv_reconstruction(y[1:], phys, 3e-3, iterations=50)
    torch.testing.assert_close(both[1:], second)
    with pytest.raises(ValueError, match="lam must be > 0"):
        tv_reconstruction(y, phys, 0.0)


def tiny_problem(n=6, size=24):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, size, size, generator=g, dtype=D) * 0.2
    x[:, 6:18, 6:18] += 0.7
    phys = MRI(PseudoRadialMask(0.3)((size, size)).double(), fft_norm="ortho")
    return x, phys


def test_checkpointed_gradients_equal_end_to_end():
    x, phys = tiny_problem()
    y = phys.A(x.to(torch.complex128))
    grads = []
    for ck in (False, True):
        net = ADMMNet(stages=3).double()
        net(y, phys, checkpoint=ck).sub(x).pow(2).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("mode,optimizer", [("end_to_end", "adam"), ("greedy", "adam"), ("end_to_end", "lbfgs")])
def test_trainer_lowers_the_loss(mode, optimizer):
    x, phys = tiny_problem()
    net = ADMMNet(stages=3).double()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    cfg = TrainConfig(
        epochs=4 if mode != "greedy" else 2,
        batch_size=2,
        optimizer=optimizer,
        mode=mode,
        lr=3e-3,
        lbfgs_iterations=5,
        lbfgs_chunk=3,
    )
    trainer = UnrolledTrainer(net, phys, x[:4], x[4:], cfg)
    first = trainer.evaluate(trainer.y_train, trainer.x_train)["loss"]
    history = trainer.fit()
    assert len(history) == (4 if mode != "greedy" else 2 * 3)
    last = trainer.evaluate(trainer.y_train, trainer.x_train)["loss"]
    assert last < 0.97 * first
    changed = [k for k, v in net.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("stages.2") for k in changed) and any(k.startswith("final") for k in changed)
    assert trainer.state.best["state_dict"] is not None


@pytest.mark.parametrize("mask", ["cartesian", "variable_density"])
def test_trainer_with_mse_shared_weights_and_other_masks(mask):
    """The other choices of the training recipe: the MSE loss, one set of stage weights
    for all stages, and the Cartesian and variable-density masks, each lowering the
    training loss of a 3-stage ADMM-Net."""
    from unrolled.physics.masks import RandomCartesianMask, VariableDensityRandomMask

    x, _ = tiny_problem()
    draw = {"cartesian": RandomCartesianMask(0.4), "variable_density": VariableDensityRandomMask(0.3)}[mask]
    phys = MRI(draw((24, 24), generator=torch.Generator().manual_seed(0)).double(), fft_norm="ortho")
    net = ADMMNet(stages=3, shared_weights=True).double()
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in ADMMNet(stages=1).parameters())
    trainer = UnrolledTrainer(net, phys, x[:4], x[4:], TrainConfig(epochs=4, batch_size=2, lr=3e-3, loss="mse"))
    first = trainer.evaluate(trainer.y_train, trainer.x_train)["loss"]
    trainer.fit()
    assert trainer.evaluate(trainer.y_train, trainer.x_train)["loss"] < 0.97 * first


def test_trainer_resume_equals_uninterrupted():
    x, phys = tiny_problem()
    cfg = TrainConfig(epochs=4, batch_size=2, lr=3e-3)
    straight = UnrolledTrainer(ADMMNet(stages=2).double(), phys, x[:4], None, cfg)
    straight.fit()
    first = UnrolledTrainer(ADMMNet(stages=2).double(), phys, x[:4], None, cfg)
    first.step()
    first.step()
    state = first.state_dict()
    second = UnrolledTrainer(ADMMNet(stages=2).double(), phys, x[:4], None, cfg)
    second.load_state_dict(state)
    second.fit()
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, second.model.state_dict()[k]), k
    with pytest.raises(ValueError, match="training settings differ"):
        UnrolledTrainer(ADMMNet(stages=2).double(), phys, x[:4], None, TrainConfig(epochs=5)).load_state_dict(state)
    with pytest.raises(ValueError, match="valid choices: end_to_end, checkpoint, greedy"):
        TrainConfig(mode="layerwise")
    with pytest.raises(ValueError, match="greedy training needs stage-wise parameters"):
        UnrolledTrainer(ADMMNet(stages=2, shared_weights=True).double(), phys, x[:4], None, TrainConfig(mode="greedy"))


def run_app(module, *args):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=900)


def app_metrics(module, run_dir, *args) -> dict:
    """Run an app into ``run_dir``, require success, and return its ``metrics.json``."""
    proc = run_app(module, *args, f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr
    return json.loads((run_dir / "metrics.json").read_text())


def test_train_and_eval_apps_on_embedded_data(tmp_path):
    small = [
        "model.stages=2",
        "data=mni",
        "data.train_samples=3",
        "data.val_samples=2",
        "data.test_samples=2",
        "progress=false",
    ]
    m = app_metrics(
        "experiments.train_unrolled",
        tmp_path / "train",
        *small,
        "train.epochs=2",
        "train.batch_size=2",
    )
    assert m["epochs"] == 2 and m["data"] == "mni" and m["val_images"] == 2
    resolved = OmegaConf.load(tmp_path / "train" / "config.yaml")
    assert resolved.model.stages == 2 and resolved.train.epochs == 2 and resolved.data.name == "mni"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "train" / "tensorboard"))
    events.Reload()
    tags = events.Tags()
    assert {"train/loss", "val/loss", "val/nrmse", "example/psnr"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2]
    assert tags["images"] == ["reconstruction | ground truth | zero-filling"]  # at the last epoch
    weights = tmp_path / "train" / "checkpoints" / "model.pt"
    r = app_metrics(
        "experiments.eval_unrolled",
        tmp_path / "eval",
        *small,
        f"checkpoint={weights}",
        "ratios=[0.2,0.4]",
        "tv.tune_images=2",
        "tv.iterations=10",
        "tv.lambdas=[1e-4,1e-3]",
        "examples=2",
    )
    for method in ("zero_filling", "tv", "init", "trained"):
        for ratio in ("0.2", "0.4"):
            res = r["results"][method][ratio]
            assert {"psnr", "nrmse", "ssim", "seconds_per_image"} <= res.keys()
    assert r["results"]["zero_filling"]["0.4"]["psnr"] > r["results"]["zero_filling"]["0.2"]["psnr"]
    tv = r["notes"]["tv"]["0.2"]  # tuned on (2 of) the training images: the best of the grid there
    assert tv["tune_images"] == 2 and tv["grid"] == [1e-4, 1e-3]
    assert tv["lambda"] == tv["grid"][int(np.argmax(tv["train_psnr"]))]
    # the paper's layout: methods in rows, ratios in columns
    table = (tmp_path / "eval" / "results.md").read_text()
    assert "| method | 20% PSNR (dB) | 40% PSNR (dB) | 20% NRMSE | 40% NRMSE |" in table
    for row in ("Zero-filling", "TV", "Init-Net", "ADMM-Net"):
        assert f"| {row} |" in table
    # examples: per image a row of reconstructions and a row of their error maps, one column each + ground truth
    from PIL import Image

    width, height = Image.open(tmp_path / "eval" / "examples.png").size
    assert (width, height) == (round(2.2 * 5 * 110), round(2.2 * 2 * 2 * 110))
    # killed after its first checkpoint and run again with resume=true, a run ends with the weights of the
    # uninterrupted run above
    cmd = [sys.executable, "-m", "experiments.train_unrolled", *small, "train.epochs=2", "train.batch_size=2"]
    with open(tmp_path / "killed.log", "w") as log:
        killed = subprocess.Popen([*cmd, f"hydra.run.dir={tmp_path / 'killed'}"], cwd=ROOT, stderr=log)
        last = tmp_path / "killed" / "checkpoints" / "last.pt"  # written to a temporary file and renamed
        deadline = time.monotonic() + 600
        while not last.exists() and killed.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        killed.kill()
        killed.wait()
    assert last.exists(), (tmp_path / "killed.log").read_text()
    saved = len(torch.load(last, weights_only=True)["history"])  # 1, unless the kill came after epoch 2
    proc = run_app(
        "experiments.train_unrolled",
        *small,
        "train.epochs=2",
        "train.batch_size=2",
        "resume=true",
        f"hydra.run.dir={tmp_path / 'killed'}",
    )
    assert proc.returncode == 0, proc.stderr
    done = re.search(r"resumed from \S+ \((\d) epochs done\)", proc.stderr + proc.stdout)
    assert done is not None and int(done[1]) == saved
    assert json.loads((tmp_path / "killed" / "metrics.json").read_text())["epochs"] == 2
    a, b = (load_model(tmp_path / d / "checkpoints" / "model.pt")[0].state_dict() for d in ("train", "killed"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # resume continues the training run
    proc = run_app(
        "experiments.train_unrolled",
        *small,
        "train.epochs=3",
        "train.batch_size=2",
        "resume=true",
        f"hydra.run.dir={tmp_path / 'train'}",
    )
    assert proc.returncode != 0 and "training settings differ" in proc.stderr  # epochs changed: refused


@pytest.mark.parametrize(
    "override,message",
    [
        ("model=unet", "unknown model 'unet'; valid choices: admm_net"),
        ("data=cifar", "unknown data 'cifar'; valid choices:"),
        ("physics.ratio=1.5", "physics.ratio must be in (0, 1]"),
        ("physics.mask=spiral", "unknown mask 'spiral'; valid choices: auto, admm_net_file, pseudo_radial"),
        ("train.mode=layerwise", "valid choices: end_to_end, checkpoint, greedy"),
    ],
)
def test_train_app_errors(tmp_path, override, message):
    proc = run_app(
        "experiments.train_unrolled", "data=mni", "data.train_samples=2", override, f"hydra.run.dir={tmp_path}"
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_init_from_weights_that_do_not_fit_gives_one_clear_error(tmp_path):
    shipped = ROOT / "unrolled" / "weights" / "admm_net_chest_r20.pt"
    proc = run_app(
        "experiments.train_unrolled",
        "data=mni",
        "data.train_samples=2",
        "model.num_filters=4",
        f"init_from={shipped}",
        f"hydra.run.dir={tmp_path}",
    )
    assert proc.returncode == 2 and "does not fit this model" in proc.stderr and "Traceback" not in proc.stderr


def test_chest_without_data_gives_one_clear_error(tmp_path):
    proc = run_app(
        "experiments.eval_unrolled", "data=chest", f"data.root={tmp_path / 'nowhere'}", f"hydra.run.dir={tmp_path}"
    )
    assert proc.returncode == 2 and "is not the Deep ADMM-Net data directory" in proc.stderr


def test_command_line_contract_on_the_chest_data(admm_net_root, tmp_path):
    """The issue's commands on the real data: ``eval_unrolled model=admm_net data=chest
    data.root=PATH ratios=[0.2,...]`` evaluates the shipped network of each ratio by
    default (the README's chest table, 20% to 50%, on im-81..100), and ``train_unrolled
    ... data=chest physics.ratio=0.2`` trains on im-01..80 with the authors' 20% mask
    (here one stage for one epoch)."""
    chest = ["model=admm_net", "data=chest", f"data.root={admm_net_root}", "progress=false"]
    r = app_metrics(
        "experiments.eval_unrolled",
        tmp_path / "eval",
        *chest,
        "ratios=[0.2,0.3,0.4,0.5]",
        "methods=[zero_filling,trained]",
    )
    trained = r["notes"]["trained"]["0.2"]
    assert trained["origin"] == "shipped" and Path(trained["weights"]).name == "admm_net_chest_r20.pt"
    assert r["test_images"] == 20
    # the README's chest table: one shipped network per ratio
    readme = {"0.2": (28.77, 35.43), "0.3": (31.74, 39.03), "0.4": (34.32, 42.06), "0.5": (36.90, 45.41)}
    for ratio, (zf_psnr, net_psnr) in readme.items():
        assert Path(r["notes"]["trained"][ratio]["weights"]).name == f"admm_net_chest_r{round(float(ratio) * 100)}.pt"
        assert abs(r["results"]["zero_filling"][ratio]["psnr"] - zf_psnr) < 0.02, ratio
        assert abs(r["results"]["trained"][ratio]["psnr"] - net_psnr) < 0.02, ratio
    m = app_metrics(
        "experiments.train_unrolled",
        tmp_path / "train",
        *chest,
        "physics.ratio=0.2",
        "model.stages=1",
        "train.epochs=1",
    )
    assert m["train_images"] == 80 and m["ratio"] == 0.2 and abs(m["sampling_ratio"] - 0.2019) < 1e-3
    assert m["epochs"] == 1 and m["final_train_loss"] < 1


def test_shipped_mni_network_gives_the_readme_table(tmp_path):
    """``eval_unrolled model=admm_net`` on the embedded MNI test slab (18 slices, 20%
    pseudo-radial mask) with the shipped ``admm_net_mni_r20``: the README's zero-filling
    and ADMM-Net rows."""
    r = app_metrics(
        "experiments.eval_unrolled",
        tmp_path,
        "model=admm_net",
        "methods=[zero_filling,trained]",
        "progress=false",
    )
    assert r["data"] == "mni" and r["test_images"] == 18
    assert Path(r["notes"]["trained"]["0.2"]["weights"]).name == "admm_net_mni_r20.pt"
    zf, net = r["results"]["zero_filling"]["0.2"], r["results"]["trained"]["0.2"]
    assert abs(zf["psnr"] - 31.47) < 0.02 and abs(zf["nrmse"] - 0.0974) < 5e-4
    assert abs(net["psnr"] - 37.23) < 0.02 and abs(net["nrmse"] - 0.0500) < 5e-4


def test_greedy_training_of_gd_mrf_resumes_at_the_stage_boundary():
    """A model whose state holds per-image block-matching indices trains greedily,
    and a checkpoint taken when a stage ends resumes at the next stage."""
    from unrolled.models.gd_mrf import GDMRF
    from unrolled.physics.denoising import Denoising

    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 16, 16, generator=g)
    phys = Denoising(25)
    cfg = TrainConfig(epochs=2, batch_size=3, mode="greedy", lr=1e-3)

    def make():
        torch.manual_seed(0)
        return GDMRF(stages=2, num_filters=4, filter_size=3)

    straight = UnrolledTrainer(make(), phys, x[:4], x[4:], cfg)
    straight.fit()
    first = UnrolledTrainer(make(), phys, x[:4], x[4:], cfg)
    first.step()
    first.step()  # stage 0 done
    state = first.state_dict()
    assert (state["stage"], state["epoch"]) == (1, 0)
    second = UnrolledTrainer(make(), phys, x[:4], x[4:], cfg)
    second.load_state_dict(state)
    second.fit()
    assert [(h["stage"], h["epoch"]) for h in second.state.history] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, second.model.state_dict()[k]), k


def test_equispaced_mask_stays_in_bounds():
    from unrolled.physics.masks import EquispacedCartesianMask

    for W in (96, 255, 256):
        for ratio in (0.15, 0.25, 0.4, 0.6):
            for seed in range(6):
                m = EquispacedCartesianMask(ratio, 0.04)((8, W), torch.Generator().manual_seed(seed))
                assert m.shape == (8, W) and 0 < m.mean() <= 1


def test_fine_tuning_keeps_the_start_when_no_epoch_beats_it():
    x, phys = tiny_problem()
    net = ADMMNet(stages=2).double()
    start = {k: v.clone() for k, v in net.state_dict().items()}
    trainer = UnrolledTrainer(net, phys, x[:4], x[4:], TrainConfig(epochs=2, batch_size=2, lr=1.0))
    loss0 = trainer.validate_start()
    trainer.fit()
    assert all(h["val_loss"] > loss0 for h in trainer.state.history)  # lr 1.0 wrecks the Init-Net
    assert trainer.state.best["epoch"] == 0 and trainer.state.best["val_loss"] == loss0
    assert all(torch.equal(trainer.state.best["state_dict"][k], v) for k, v in start.items())
    assert trainer.state.start_val_loss == loss0
    resumed = UnrolledTrainer(
        ADMMNet(stages=2).double(), phys, x[:4], x[4:], TrainConfig(epochs=2, batch_size=2, lr=1.0)
    )
    resumed.load_state_dict(trainer.state_dict())
    assert resumed.state.start_val_loss == loss0  # kept in checkpoints, for the weights' card


def test_resampled_noise_is_fresh_each_epoch_seeded_and_resumes():
    """``train.resample``: new measurement noise every epoch, drawn from the seed and
    the epoch (a resumed run trains on the same draws); a checkpoint written before
    the setting existed resumes as if it were off."""
    from unrolled.models.gd_mrf import GDMRF
    from unrolled.physics.denoising import Denoising

    x = torch.rand(4, 16, 16, generator=torch.Generator().manual_seed(0), dtype=D)
    phys = Denoising(sigma=25)

    def trainer(resample):
        torch.manual_seed(0)
        net = GDMRF(stages=1, num_filters=4, filter_size=3, centers=15).double()
        return UnrolledTrainer(net, phys, x, None, TrainConfig(epochs=3, batch_size=2, lr=1e-3, resample=resample))

    fixed, fresh = trainer(False), trainer(True)
    y0 = fresh.y_train.clone()
    assert torch.equal(y0, fixed.y_train)
    fixed.step(), fresh.step()
    assert torch.equal(fixed.y_train, y0)
    y1 = fresh.y_train.clone()
    noise0, noise1 = y0 - x, y1 - x
    assert not torch.allclose(noise0, noise1)
    assert abs(float(noise1.std()) * 255 - 25) < 2.5  # a fresh draw at the same sigma
    straight = trainer(True)
    straight.fit()
    state = fresh.state_dict()
    resumed = trainer(True)
    resumed.load_state_dict(state)
    resumed.fit()
    for k, v in straight.model.state_dict().items():  # GD-MRF's float64 sums vary in the last bit
        assert torch.allclose(v, resumed.model.state_dict()[k], rtol=0, atol=1e-12), k
    old = fixed.state_dict()
    del old["train_config"]["resample"]
    trainer(False).load_state_dict(old)
    with pytest.raises(ValueError, match="resample"):
        trainer(True).load_state_dict(old)


def test_training_crops_of_chosen_images():
    from unrolled.data.images import TEST_IMAGES, load_image, test_tile_names, test_tiles, training_crops

    left = load_image("motorcycle_left")
    assert left.shape == (500, 741) and 0 <= left.min() and left.max() <= 1
    assert not np.array_equal(left, load_image("motorcycle_right"))
    shapes = {"china": (427, 640), "flower": (427, 640), "grace_hopper": (600, 512), "aero": (512, 512)}
    shapes["ascent"] = (512, 512)
    for name, shape in shapes.items():  # scikit-learn's, matplotlib's and PyWavelets' photographs, gray in [0, 1]
        img = load_image(name)
        assert img.shape == shape and img.dtype == np.float32
        assert 0 <= img.min() and img.max() <= 1 and img.std() > 0.1
    crops = training_crops(6, 32, seed=1, images=("motorcycle_left", "brick"))
    assert crops.shape == (6, 32, 32)
    assert torch.equal(crops, training_crops(6, 32, seed=1, images=("motorcycle_left", "brick")))
    assert not torch.equal(crops, training_crops(6, 32, seed=1))
    with pytest.raises(ValueError, match="test images cannot be training images: camera"):
        training_crops(2, 32, images=("brick", "camera"))
    with pytest.raises(ValueError, match="unknown training images lena"):
        training_crops(2, 32, images=("lena",))
    assert "camera" in TEST_IMAGES
    names = test_tile_names()  # one name per test tile, in test_tiles' order
    assert len(names) == len(test_tiles()) == 12 and names[:4] == ["camera"] * 4 and names[-1] == "coins"


def test_eval_picks_the_shipped_file_of_the_nearest_ratio_and_skips_variants(tmp_path, monkeypatch):
    """Without checkpoint=, a ratio with no file of its own takes the nearest ratio's
    plain file (``..._r20.pt``), never a variant such as ``..._r20_16x5.pt``."""

    import unrolled.models as models
    from experiments import eval_unrolled

    for name in ("admm_net_chest_r20.pt", "admm_net_chest_r20_16x5.pt", "admm_net_chest_r50.pt", "gd_mrf_chest_r30.pt"):
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setattr(models, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(eval_unrolled, "WEIGHTS_DIR", tmp_path)
    cfg = OmegaConf.create({"checkpoint": None, "model": {"name": "admm_net"}, "data": {"name": "chest"}})
    assert eval_unrolled.trained_weights(cfg, 0.2) == (tmp_path / "admm_net_chest_r20.pt", "shipped")
    assert eval_unrolled.trained_weights(cfg, 0.3) == (
        tmp_path / "admm_net_chest_r20.pt",
        "shipped, trained at ratio 0.2",
    )
    assert eval_unrolled.trained_weights(cfg, 0.4)[0] == tmp_path / "admm_net_chest_r50.pt"
    cfg.data.name = "mni"
    with pytest.raises(Exception, match="no shipped weights admm_net_mni_r20.pt"):
        eval_unrolled.trained_weights(cfg, 0.2)
