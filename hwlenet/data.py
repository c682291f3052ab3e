"""MNIST in IDX format: reading, validating, locating and downloading.

A data directory holds the four standard files, gzip-compressed (``*.gz``) or raw. It is named
by the caller (``--data-dir``) or by the ``HWLENET_DATA`` environment variable. Files the user
provides are parsed and shape-checked; files this module downloads are also checked against the
canonical md5 sums.
"""

import gzip
import hashlib
import os
import shutil
import struct
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import HwlenetError

__all__ = [
    "DATA_ENV",
    "FILES",
    "MIRRORS",
    "MnistSplit",
    "download_mnist",
    "load_mnist",
    "read_idx",
    "resolve_data_dir",
]

DATA_ENV = "HWLENET_DATA"

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

# split -> (images file, labels file); md5 sums are of the canonical .gz files.
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class MnistSplit:
    """One split: ``images`` uint8 ``(N, 28, 28)``, ``labels`` uint8 ``(N,)`` in 0..9."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self):
        return len(self.labels)

    def head(self, count=None):
        """The first ``count`` images (all when ``count`` is None)."""
        return self if count is None else MnistSplit(self.images[:count], self.labels[:count])


def _open_bytes(path):
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise HwlenetError(f"cannot read {path}: {error.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as error:
            raise HwlenetError(f"{path}: corrupt gzip data ({error})") from None
    return raw


def read_idx(path, expect_dtype=np.uint8, expect_ndim=None):
    """Read an IDX file (gzip-compressed or raw) into a numpy array.

    Parameters
    ----------
    path : path-like
        The file.
    expect_dtype : numpy dtype, optional
        The element type the file must declare.
    expect_ndim : int, optional
        The number of dimensions the file must declare.

    Raises
    ------
    HwlenetError
        Naming the file, when the magic number, element type, dimensions or length are wrong.
    """
    data = _open_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise HwlenetError(f"{path}: not an IDX file (bad magic number)")
    type_code, ndim = data[2], data[3]
    if type_code not in _IDX_DTYPES:
        raise HwlenetError(f"{path}: unknown IDX element type 0x{type_code:02x}")
    dtype = np.dtype(_IDX_DTYPES[type_code])
    if expect_dtype is not None and dtype != np.dtype(expect_dtype):
        raise HwlenetError(f"{path}: element type {dtype} where {np.dtype(expect_dtype)} expected")
    if expect_ndim is not None and ndim != expect_ndim:
        raise HwlenetError(f"{path}: {ndim} dimensions where {expect_ndim} expected")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise HwlenetError(f"{path}: truncated header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header
    if actual != expected:
        state = "truncated" if actual < expected else "has trailing bytes"
        raise HwlenetError(
            f"{path}: {state}: header says {shape} ({expected} bytes), file holds {actual}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def resolve_data_dir(data_dir=None):
    """The data directory: ``data_dir`` if given, else ``$HWLENET_DATA``.

    Raises
    ------
    HwlenetError
        When neither names a directory.
    """
    chosen = data_dir if data_dir else os.environ.get(DATA_ENV)
    if not chosen:
        raise HwlenetError(
            f"no data directory: pass --data-dir DIR or set {DATA_ENV} to a folder with the MNIST "
            "IDX files (they are downloaded there when missing)"
        )
    return Path(chosen).expanduser()


def _find(directory, stem):
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def download_mnist(directory, splits=("train", "test"), mirrors=MIRRORS, md5=None, opener=None,
                   timeout=30):
    """Download the MNIST files of ``splits`` into ``directory``, verifying their md5 sums.

    Parameters
    ----------
    directory : path-like
        Where the ``.gz`` files go; created when missing.
    splits : sequence of str
        ``train`` and/or ``test``.
    mirrors : sequence of str
        Base URLs, tried in order, each ending in ``/``.
    md5 : dict, optional
        File name to md5 hex digest; the canonical sums by default.
    opener : callable, optional
        ``opener(url, timeout=...)`` returning a readable response; ``urllib.request.urlopen`` by
        default.

    Raises
    ------
    HwlenetError
        When no mirror delivers a file with the right checksum, saying how to use a local folder.
    """
    directory = Path(directory)
    md5 = MD5 if md5 is None else md5
    opener = urllib.request.urlopen if opener is None else opener
    directory.mkdir(parents=True, exist_ok=True)
    for split in splits:
        for stem in FILES[split]:
            name = stem + ".gz"
            target = directory / name
            if target.is_file():
                continue
            failures = []
            for mirror in mirrors:
                try:
                    with opener(mirror + name, timeout=timeout) as response:
                        payload = response.read()
                except (urllib.error.URLError, OSError, ValueError) as error:
                    failures.append(f"{mirror}: {getattr(error, 'reason', error)}")
                    continue
                digest = hashlib.md5(payload).hexdigest()
                if digest != md5[name]:
                    failures.append(f"{mirror}: md5 {digest} != {md5[name]}")
                    continue
                with tempfile.NamedTemporaryFile(dir=directory, delete=False) as handle:
                    handle.write(payload)
                shutil.move(handle.name, target)
                break
            else:
                raise HwlenetError(
                    f"could not download {name} ({'; '.join(failures)}); put the MNIST IDX files "
                    f"in a folder and pass --data-dir DIR or set {DATA_ENV}=DIR"
                )


def load_mnist(split, data_dir=None, download=True, **download_options):
    """Load one MNIST split from the data directory.

    Parameters
    ----------
    split : {"train", "test"}
    data_dir : path-like, optional
        The directory; ``$HWLENET_DATA`` when omitted.
    download : bool
        Download missing files into the directory (with md5 verification).

    Returns
    -------
    MnistSplit
    """
    if split not in FILES:
        raise HwlenetError(f"unknown split {split!r}; use 'train' or 'test'")
    directory = resolve_data_dir(data_dir)
    image_stem, label_stem = FILES[split]
    paths = [_find(directory, image_stem), _find(directory, label_stem)]
    if None in paths:
        if not download:
            raise HwlenetError(f"{directory}: no {image_stem}[.gz] / {label_stem}[.gz]")
        download_mnist(directory, splits=(split,), **download_options)
        paths = [_find(directory, image_stem), _find(directory, label_stem)]
    images = read_idx(paths[0], np.uint8, 3)
    labels = read_idx(paths[1], np.uint8, 1)
    if images.shape[1:] != (28, 28):
        raise HwlenetError(f"{paths[0]}: images are {images.shape[1:]}, not 28x28")
    if len(images) != len(labels):
        raise HwlenetError(
            f"{paths[0]} holds {len(images)} images but {paths[1]} holds {len(labels)} labels"
        )
    if labels.size and labels.max() > 9:
        raise HwlenetError(f"{paths[1]}: label {int(labels.max())} is not a digit")
    return MnistSplit(images=images, labels=labels)
