"""Reader for the MNIST data set in the standard IDX format.

Files are looked up by their standard names (``t10k-images-idx3-ubyte`` and so
on), gzipped (``name.gz``) or not (``name``).  Headers, dimensions and lengths
are checked; any problem raises :class:`relax.errors.DataError` naming the file.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from relax.errors import DataError

IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049
ROWS = COLS = 28

_PREFIX = {"test": "t10k", "train": "train"}


def _find(directory: Path, name: str) -> Path:
    """Return the path of ``name.gz`` or ``name`` in ``directory``."""
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    raise DataError(f"MNIST file not found: {directory / name}[.gz]")


def _read_bytes(path: Path) -> bytes:
    """Read a file, decompressing it when its name ends in ``.gz``."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"cannot read MNIST file {path}: {exc}") from exc


def _header(path: Path, raw: bytes, magic: int, ndim: int) -> tuple[int, ...]:
    """Check the magic number of an IDX file and return its dimensions."""
    size = 4 * (1 + ndim)
    if len(raw) < size:
        raise DataError(f"MNIST file {path} is too short for its header ({len(raw)} bytes)")
    fields = np.frombuffer(raw[:size], dtype=">u4").astype(np.int64)
    if fields[0] != magic:
        raise DataError(f"MNIST file {path} has bad magic number {fields[0]} (expected {magic})")
    return tuple(int(d) for d in fields[1:])


def _payload(path: Path, raw: bytes, offset: int, count: int) -> np.ndarray:
    """Return the ``count`` uint8 bytes after ``offset``, checking the length."""
    if len(raw) - offset != count:
        raise DataError(
            f"MNIST file {path} has {len(raw) - offset} data bytes, header says {count}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=offset)


def _read_images(path: Path) -> np.ndarray:
    """Read an IDX3 image file as a uint8 array of shape (N, 784)."""
    raw = _read_bytes(path)
    n, rows, cols = _header(path, raw, IMAGE_MAGIC, 3)
    if (rows, cols) != (ROWS, COLS):
        raise DataError(f"MNIST file {path} has images of {rows}x{cols}, expected 28x28")
    return _payload(path, raw, 16, n * rows * cols).reshape(n, rows * cols)


def _read_labels(path: Path) -> np.ndarray:
    """Read an IDX1 label file as a uint8 array of shape (N,)."""
    raw = _read_bytes(path)
    (n,) = _header(path, raw, LABEL_MAGIC, 1)
    labels = _payload(path, raw, 8, n)
    if labels.size and labels.max() > 9:
        raise DataError(f"MNIST file {path} has label {labels.max()} outside 0..9")
    return labels


def load_mnist(
    directory: str | Path, split: str = "test", limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Load an MNIST split from the IDX files in ``directory``.

    Returns ``(images, labels)``: images as float64 of shape (N, 784) scaled to
    [0, 1], labels as int64 of shape (N,).  ``limit`` keeps the first ``limit``
    examples.  Raises :class:`DataError` for a missing or malformed file.
    """
    if split not in _PREFIX:
        raise DataError(f"unknown MNIST split {split!r}; expected 'test' or 'train'")
    if limit is not None and limit < 0:
        raise DataError(f"limit must be non-negative, got {limit}")
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"MNIST directory not found: {directory}")
    prefix = _PREFIX[split]
    image_path = _find(directory, f"{prefix}-images-idx3-ubyte")
    label_path = _find(directory, f"{prefix}-labels-idx1-ubyte")
    images = _read_images(image_path)
    labels = _read_labels(label_path)
    if len(images) != len(labels):
        raise DataError(
            f"MNIST files {image_path} and {label_path} disagree: "
            f"{len(images)} images, {len(labels)} labels"
        )
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images.astype(np.float64) / 255.0, labels.astype(np.int64)
