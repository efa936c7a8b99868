"""Meta-training: meta-gradient correctness (finite differences, and the same
computation written with `higher`), the tricks, batching, the NaN guard,
checkpoints and kill/resume through the app."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from l2o.learned import DMOptimizer, HyperAdam, make_learned
from l2o.meta import BatchedOptimizee, MetaTrainConfig, MetaTrainer, load_checkpoint, save_checkpoint
from l2o.meta.trainer import unrolled_meta_loss
from l2o.tasks import make_task, seeded_generators

D = torch.float64
ROOT = Path(__file__).resolve().parent.parent


def ours(learned, task, seed, unroll, second_order):
    """The framework's unrolled meta-loss from the instance of ``seed``."""
    opt = BatchedOptimizee(task, [seed])
    x = opt.x0.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(opt.losses(x, opt.sample_batch()).sum(), x, create_graph=second_order)
    if not second_order:
        g, x = g.detach(), x.detach()
    loss, *_ = unrolled_meta_loss(learned, opt, x, learned.init_flat(x.detach()), 0, g, unroll, "mean", second_order)
    return loss


class Quadratic(nn.Module):
    def __init__(self, theta0):
        super().__init__()
        self.theta = nn.Parameter(theta0.clone())

    def forward(self, W, y):
        return ((W @ self.theta - y) ** 2).sum()


def with_higher(learned, task, seed, unroll, second_order):
    """The same computation with an nn.Module optimizee through ``higher``."""
    import higher

    g_init, _ = seeded_generators(seed)
    problem = task.sample_problem(g_init)
    theta0 = task.init_params(g_init)["theta"]
    fmodel = higher.monkeypatch(Quadratic(theta0), copy_initial_weights=True)
    (theta,) = fmodel.parameters()
    (g,) = torch.autograd.grad(fmodel(problem["W"], problem["y"]), theta, create_graph=second_order)
    slots = learned.init_flat(theta.detach()[None])
    terms = []
    for t in range(unroll):
        step, slots = learned.step_flat((g if second_order else g.detach())[None], slots, t, theta[None])
        fmodel.update_params([theta + step[0]])
        (theta,) = fmodel.parameters()
        loss = fmodel(problem["W"], problem["y"])
        (g,) = torch.autograd.grad(loss, theta, create_graph=second_order, retain_graph=True)
        terms.append(loss)
    return torch.stack(terms).mean()


def meta_grad(fn, learned):
    learned.zero_grad()
    fn().backward()
    return torch.cat([p.grad.reshape(-1) for p in learned.parameters()])


@pytest.mark.parametrize(
    "make", [lambda: DMOptimizer(hidden=4, seed=1), lambda: HyperAdam(units=3, seed=2)], ids=["dm", "hyperadam"]
)
def test_meta_gradient_matches_finite_differences_and_higher(make):
    task = make_task("quadratic", dim=4, init_std=0.5, dtype=D)
    learned = make().double()
    seed, T = 7, 4
    # second order: the true derivative of the unrolled loss
    g2 = meta_grad(lambda: ours(learned, task, seed, T, True), learned)
    params = list(learned.parameters())
    flat_idx = [(pi, j) for pi, p in enumerate(params) for j in range(p.numel())]
    picks = torch.randperm(len(flat_idx), generator=torch.Generator().manual_seed(0))[:12].tolist()
    h = 1e-6
    offsets = [0]
    for p in params:
        offsets.append(offsets[-1] + p.numel())

    def at(pi, j, value):
        with torch.no_grad():
            params[pi].view(-1)[j] = value
        return ours(learned, task, seed, T, True).item()

    for k in picks:
        pi, j = flat_idx[k]
        old = params[pi].view(-1)[j].item()
        fd = (at(pi, j, old + h) - at(pi, j, old - h)) / (2 * h)
        at(pi, j, old)
        ad = g2[offsets[pi] + j].item()
        assert ad == pytest.approx(fd, rel=1e-6, abs=1e-9), (pi, j)
    # the same computations with higher, first and second order
    for second_order in (False, True):
        a = meta_grad(lambda so=second_order: ours(learned, task, seed, T, so), learned)
        b = meta_grad(lambda so=second_order: with_higher(learned, task, seed, T, so), learned)
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-12)
    if isinstance(learned, DMOptimizer):
        # first order drops the gradients' dependence on the meta-parameters: a different number
        first = meta_grad(lambda: ours(learned, task, seed, T, False), learned)
        assert (first - g2).abs().max() > 1e-6 * g2.abs().max()


def test_batched_losses_equal_per_instance_losses():
    task = make_task("mnist_mlp", dtype=D)
    seeds = [11, 12, 13]
    opt = BatchedOptimizee(task, seeds)
    batch = opt.sample_batch()
    batched = opt.losses(opt.x0, batch)
    for b, seed in enumerate(seeds):
        g_init, g_data = seeded_generators(seed)
        task.sample_problem(g_init)
        params = task.init_params(g_init)
        one = task.loss(params, task.sample_batch({}, g_data))
        assert batched[b].item() == pytest.approx(one.item(), rel=1e-12)


def test_random_scaling_and_convex_term():
    task = make_task("quadratic", dtype=D)
    plain = BatchedOptimizee(task, [3])
    tricky = BatchedOptimizee(task, [3], random_scaling=3.0, convex_dim=20)
    assert tricky.x0.shape == (1, 10 + 20)
    scale = tricky.scale
    assert scale.min() >= torch.exp(torch.tensor(-3.0)) and scale.max() <= torch.exp(torch.tensor(3.0))
    assert scale.std() > 1.0  # spans orders of magnitude
    torch.testing.assert_close(tricky.x0[:, :10] * scale, plain.x0)
    batch = plain.sample_batch()
    a = tricky.convex_target
    # at the start z = 0: the convex term is mean(clip(a^2, 0, 10))
    expected = plain.losses(plain.x0, batch) + (a**2).clamp(0, 10).mean(1)
    torch.testing.assert_close(tricky.losses(tricky.x0, batch), expected)
    # the convex term's minimiser z = a / c' zeroes it
    x = tricky.x0.clone()
    x[:, 10:] = a / tricky.convex_scale
    torch.testing.assert_close(tricky.losses(x, batch), plain.losses(plain.x0, batch))


def test_meta_training_lowers_the_validation_loss():
    task = make_task("quadratic")
    trainer = MetaTrainer(
        DMOptimizer(hidden=8, seed=0), task, MetaTrainConfig(unroll=10, truncations=2, lr=1e-2, meta_batch=4)
    )
    seeds = list(range(2_000_000, 2_000_008))
    before = trainer.validate(seeds, 20)
    for _ in range(15):
        trainer.run_episode()
    after = trainer.validate(seeds, 20)
    assert after < 0.5 * before
    assert trainer.best["validation_loss"] == after and trainer.best["episode"] == 15


def test_first_order_meta_batch_gradient_equals_the_graph_of_the_mean():
    """First order, meta_batch 3: the loss terms' known-gradient backward (no optimizee
    graph kept) gives the meta-gradient of the same unroll written with the losses'
    mean in the graph."""
    task = make_task("quadratic", dtype=D)
    learned = DMOptimizer(hidden=4, seed=1).to(D)

    def graph_of_the_mean():
        opt = BatchedOptimizee(task, [7, 8, 9], random_scaling=1.0)
        x = opt.x0.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(opt.losses(x, opt.sample_batch()).sum(), x)
        slots, terms = learned.init_flat(x.detach()), []
        for t in range(4):
            step, slots = learned.step_flat(g.detach(), slots, t, x)
            x = x + step
            losses = opt.losses(x, opt.sample_batch())
            (g,) = torch.autograd.grad(losses.sum(), x, retain_graph=True)
            terms.append(losses.mean())
        return torch.stack(terms).mean()

    def ours_first_order():
        opt = BatchedOptimizee(task, [7, 8, 9], random_scaling=1.0)
        x = opt.x0.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(opt.losses(x, opt.sample_batch()).sum(), x)
        return unrolled_meta_loss(learned, opt, x.detach(), learned.init_flat(x.detach()), 0, g.detach(), 4)[0]

    a = torch.autograd.grad(graph_of_the_mean(), list(learned.parameters()))
    b = torch.autograd.grad(ours_first_order(), list(learned.parameters()))
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v, rtol=1e-12, atol=1e-14)


def test_cosine_meta_learning_rate_schedule():
    cfg = MetaTrainConfig(unroll=3, truncations=1, lr=1e-2, lr_schedule="cosine", lr_min=1e-4, lr_episodes=4)
    assert cfg.lr_at(0) == 1e-2 and cfg.lr_at(4) == cfg.lr_at(9) == pytest.approx(1e-4)
    assert cfg.lr_at(2) == pytest.approx((1e-2 + 1e-4) / 2)
    trainer = MetaTrainer(DMOptimizer(hidden=3), make_task("quadratic"), cfg)
    for episode in range(3):
        trainer.run_episode()
        assert trainer.meta_opt.param_groups[0]["lr"] == pytest.approx(cfg.lr_at(episode))
    # a constant schedule ignores lr_episodes, so a run can be resumed with more episodes
    assert MetaTrainConfig(lr_episodes=7).lr_episodes == 0 and MetaTrainConfig().lr_at(50) == 1e-3
    with pytest.raises(ValueError, match="unknown lr_schedule 'step'; valid choices: constant, cosine"):
        MetaTrainConfig(lr_schedule="step")
    with pytest.raises(ValueError, match="lr_episodes"):
        MetaTrainConfig(lr_schedule="cosine")
    with pytest.raises(ValueError, match=r"lr_min must be in \[0, lr=0.001\]"):
        MetaTrainConfig(lr_schedule="cosine", lr_episodes=3, lr_min=0.1)


def test_nan_guard_skips_and_restores():
    task = make_task("quadratic")
    trainer = MetaTrainer(DMOptimizer(seed=0), task, MetaTrainConfig(unroll=5, truncations=3, lr=1e-2))
    trainer.run_episode()
    good = {k: v.clone() for k, v in trainer.learned.state_dict().items()}
    good_adam_steps = trainer.meta_opt.state_dict()["state"][0]["step"].item()
    original = task.loss
    task.loss = lambda params, batch: original(params, batch) * float("nan")
    entry = trainer.run_episode()
    task.loss = original
    assert entry.skipped == 1 and entry.meta_losses == [] and trainer.skipped_total == 1
    for k, v in trainer.learned.state_dict().items():
        assert torch.equal(v, good[k])
    assert trainer.meta_opt.state_dict()["state"][0]["step"].item() == good_adam_steps
    assert torch.isfinite(torch.tensor(trainer.run_episode().meta_losses)).all()  # and training goes on


def test_checkpoint_errors(tmp_path):
    task = make_task("quadratic")
    trainer = MetaTrainer(DMOptimizer(hidden=3), task, MetaTrainConfig(unroll=3, truncations=1))
    path = save_checkpoint(tmp_path / "c.pt", trainer.state_dict())
    assert load_checkpoint(path)["episode"] == 0
    (tmp_path / "half.pt").write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="truncated, corrupt or not a torch file"):
        load_checkpoint(tmp_path / "half.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a 'l2o.meta_train_checkpoint/1' file"):
        load_checkpoint(tmp_path / "foreign.pt")
    other = MetaTrainer(DMOptimizer(hidden=3), task, MetaTrainConfig(unroll=4, truncations=1))
    with pytest.raises(ValueError, match="settings differ from the checkpoint's.*'unroll': \\(3, 4\\)"):
        other.load_state_dict(load_checkpoint(path))
    wrong = MetaTrainer(make_learned("rnnprop", hidden=3), task, MetaTrainConfig(unroll=3, truncations=1))
    with pytest.raises(ValueError, match="holds a 'dm' optimizer"):
        wrong.load_state_dict(load_checkpoint(path))


APP_ARGS = [
    "optimizer=dm",
    "task=quadratic",
    "optimizer.params.hidden=4",
    "meta.unroll=5",
    "meta.truncations=2",
    "validation.every=3",
    "validation.seeds=2",
    "validation.steps=10",
    "checkpoint_every=1",
    "progress=false",
]


def run_meta_train(out, *extra, wait=True):
    cmd = [sys.executable, "-m", "experiments.meta_train", *APP_ARGS, *extra, f"hydra.run.dir={out}"]
    if not wait:
        return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_app_kill_and_resume_gives_the_uninterrupted_weights(tmp_path):
    episodes = 40
    straight = tmp_path / "straight"
    run_meta_train(straight, f"episodes={episodes}")
    m = json.loads((straight / "metrics.json").read_text())
    assert m["optimizer"] == "dm" and m["task"] == "quadratic" and m["episodes"] == episodes
    assert m["meta_iterations"] == 2 * episodes and m["seconds_per_meta_iteration"] > 0
    assert m["best_validation_loss"] > 0 and (straight / "meta_training.png").exists()
    assert list((straight / "tensorboard").glob("events.out.tfevents.*"))

    interrupted = tmp_path / "interrupted"
    proc = run_meta_train(interrupted, f"episodes={episodes}", wait=False)
    last = interrupted / "checkpoints" / "last.pt"
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            if load_checkpoint(last)["episode"] >= 5:
                break
        except (FileNotFoundError, ValueError):
            pass
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(last)["episode"]
    assert 5 <= killed_at < episodes, "the run finished before it could be killed"
    run_meta_train(interrupted, f"episodes={episodes}", "resume=true")
    a = load_checkpoint(straight / "checkpoints" / "last.pt")["learned"]["state_dict"]
    b = load_checkpoint(last)["learned"]["state_dict"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the best weights can be evaluated by name of file
    ev = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.evaluate",
            "task=quadratic",
            "optimizers=[dm,adam]",
            f"checkpoint.dm={straight / 'checkpoints' / 'best.pt'}",
            "steps=10",
            "seeds=2",
            "progress=false",
            f"hydra.run.dir={tmp_path / 'ev'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ev.returncode == 0, ev.stderr
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["results"]["dm"]["runs"] == 2


def test_app_init_from_starts_from_given_weights(tmp_path):
    """``init_from`` loads the meta-parameters (its first validation is theirs) and
    refuses another optimizer's file."""
    first = tmp_path / "first"
    run_meta_train(first, "episodes=3")
    best = json.loads((first / "metrics.json").read_text())["best_validation_loss"]
    tuned = tmp_path / "tuned"
    run_meta_train(tuned, "episodes=3", f"init_from={first / 'checkpoints' / 'best.pt'}")
    validation = json.loads(load_checkpoint(tuned / "checkpoints" / "last.pt")["validation"])
    assert validation[0]["episode"] == 0 and validation[0]["loss"] == pytest.approx(best, rel=1e-6)
    assert json.loads((tuned / "metrics.json").read_text())["best_validation_loss"] <= best * (1 + 1e-6)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.meta_train",
            *[a for a in APP_ARGS if not a.startswith("optimizer")],
            "optimizer=rnnprop",
            f"init_from={first / 'checkpoints' / 'best.pt'}",
            f"hydra.run.dir={tmp_path / 'wrong'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2 and "holds a dm optimizer, not rnnprop" in proc.stderr


def test_app_errors(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.meta_train", *APP_ARGS, "resume=true", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2 and "resume=true but there is no checkpoint" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.meta_train", "optimizer=lstm", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2 and "valid choices: dm, hyperadam, rnnprop" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.meta_train", *APP_ARGS, "meta.meta_loss=max", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2 and "valid choices: sum, mean, last" in proc.stderr
