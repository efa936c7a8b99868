import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from l2o.optimizers import cosine_decay, inverse_sqrt, linear_decay, make_schedule, step_decay


def torch_lrs(make_sched, n=60, lr=0.5):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = make_sched(opt)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_step_cosine_linear_match_torch_schedulers():
    n = 60
    ours = [step_decay(0.5, 7, 0.3)(t) for t in range(n)]
    assert ours == pytest.approx(torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, 7, 0.3), n), rel=1e-12)
    ours = [cosine_decay(0.5, 40, 0.01)(t) for t in range(n)]
    ref = torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 40, eta_min=0.01), n)
    assert ours[:41] == pytest.approx(ref[:41], rel=1e-9)
    assert ours[41:] == pytest.approx([0.01] * (n - 41))  # held at the end, not restarted
    ours = [linear_decay(0.5, 0.05, 30)(t) for t in range(n)]
    ref = torch_lrs(lambda o: torch.optim.lr_scheduler.LinearLR(o, 1.0, 0.1, 30), n)
    assert ours == pytest.approx(ref, rel=1e-9)


def test_inverse_sqrt():
    assert [inverse_sqrt(1.0)(t) for t in range(4)] == pytest.approx([1, 1 / math.sqrt(2), 1 / math.sqrt(3), 0.5])
    s = inverse_sqrt(1.0, warmup_steps=4)
    assert [s(t) for t in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert s(15) == pytest.approx(math.sqrt(4 / 16))


@given(st.floats(1e-5, 10), st.integers(1, 500), st.integers(0, 50), st.integers(0, 2000))
def test_cosine_is_bounded_and_non_increasing_after_warmup(lr, decay, warmup, t):
    s = cosine_decay(lr, decay, 0.0, warmup)
    assert 0 <= s(t) <= lr * (1 + 1e-12)
    if t >= warmup:
        assert s(t + 1) <= s(t) + 1e-15


def test_make_schedule_errors():
    with pytest.raises(ValueError, match="valid choices: constant, cosine, inverse_sqrt, linear, step"):
        make_schedule(0.1, {"name": "exp"})
    with pytest.raises(ValueError, match="bad arguments for schedule 'step'"):
        make_schedule(0.1, {"name": "step", "steps": 3})
