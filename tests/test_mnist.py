"""Tests of the MNIST reader and of the shipped default network and images."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from relax.data import default_images, default_network_path
from relax.errors import DataError
from relax.io.mnist import load_mnist


def _write_idx(path, magic, dims, payload, compress=False):
    """Write an IDX file (optionally gzipped) with the given header and bytes."""
    raw = struct.pack(f">{1 + len(dims)}I", magic, *dims) + bytes(payload)
    if compress:
        with gzip.open(path, "wb") as handle:
            handle.write(raw)
    else:
        path.write_bytes(raw)


def _write_split(directory, n=3, compress=False, image_magic=2051, truncate=0):
    """Write a tiny valid (or deliberately broken) test split."""
    suffix = ".gz" if compress else ""
    pixels = np.arange(n * 784, dtype=np.uint64) % 256
    pixels = pixels.astype(np.uint8).tobytes()
    _write_idx(directory / f"t10k-images-idx3-ubyte{suffix}", image_magic, (n, 28, 28),
               pixels[: len(pixels) - truncate], compress)
    _write_idx(directory / f"t10k-labels-idx1-ubyte{suffix}", 2049, (n,),
               bytes(range(n)), compress)


def test_shared_test_split(shared_data):
    images, labels = load_mnist(shared_data / "mnist", "test")
    assert images.shape == (10000, 784) and images.dtype == np.float64
    assert labels.shape == (10000,) and labels.dtype == np.int64
    assert set(np.unique(labels)) == set(range(10))
    assert images.min() == 0.0 and images.max() == 1.0
    assert labels[0] == 7


def test_limit(shared_data):
    images, labels = load_mnist(shared_data / "mnist", limit=5)
    assert images.shape == (5, 784) and labels.tolist() == [7, 2, 1, 0, 4]


@pytest.mark.parametrize("compress", [False, True])
def test_plain_and_gzipped_files(tmp_path, compress):
    _write_split(tmp_path, compress=compress)
    images, labels = load_mnist(tmp_path)
    assert images.shape == (3, 784) and labels.tolist() == [0, 1, 2]
    assert images[0, 255] == 1.0


def test_truncated_file_raises(tmp_path):
    _write_split(tmp_path, truncate=10)
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte"):
        load_mnist(tmp_path)


def test_truncated_gzip_raises(tmp_path):
    _write_split(tmp_path, compress=True)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)


def test_bad_magic_raises(tmp_path):
    _write_split(tmp_path, image_magic=2049)
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.*magic"):
        load_mnist(tmp_path)


def test_missing_directory_raises(tmp_path):
    with pytest.raises(DataError, match="nowhere"):
        load_mnist(tmp_path / "nowhere")


def test_missing_file_raises(tmp_path):
    _write_split(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)


def test_bad_split_raises(tmp_path):
    with pytest.raises(DataError):
        load_mnist(tmp_path, "validation")


def test_default_images_come_from_shared_set(shared_data):
    images, labels = default_images()
    ref_images, ref_labels = load_mnist(shared_data / "mnist", limit=10)
    assert images.dtype == np.float64 and images.shape == (10, 784)
    assert np.array_equal(images, ref_images)
    assert np.array_equal(labels, ref_labels)


def test_default_network_classifies_default_images():
    ort = pytest.importorskip("onnxruntime")
    path = default_network_path()
    assert path.is_file() and path.stat().st_size < 1_000_000
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    images, labels = default_images()
    predictions = [
        int(np.argmax(session.run(None, {name: image.reshape(1, 784).astype(np.float32)})[0]))
        for image in images
    ]
    assert sum(p == y for p, y in zip(predictions, labels)) >= 9


def test_default_network_has_only_linear_and_relu_nodes():
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(default_network_path()))
    assert {node.op_type for node in model.graph.node} <= {"Gemm", "MatMul", "Add", "Relu", "Flatten"}
