"""MNIST in IDX format: reading, validating, locating and downloading, and the embedded sample.

A data directory holds the four standard files, gzip-compressed (``*.gz``) or raw. Where the
images come from is decided in this order (:func:`resolve_data_source`):

1. the folder the caller names (``--data-dir``);
2. the folder named by ``$HWLENET_DATA``;
3. the per-user cache, ``$XDG_CACHE_HOME/hwlenet/mnist`` (``~/.cache/hwlenet/mnist``), where
   missing files are downloaded and checked against the canonical md5 sums;
4. the sample shipped inside the package: the first 1,000 MNIST test images and 500 training
   images, with labels (used when the cache is empty and cannot be filled, e.g. offline).

Files in a folder the user names are parsed and shape-checked, not rejected for an unknown
checksum; missing files there are downloaded into it. ``$HWLENET_MIRRORS`` (space-separated base
URLs; empty: never download) replaces the download mirrors.
"""

import gzip
import hashlib
import io
import os
import struct
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from .defaults import VALIDATION_IMAGES
from .errors import HwlenetError
from .outputs import write_bytes

__all__ = [
    "DATA_ENV",
    "FILES",
    "MIRRORS",
    "MIRRORS_ENV",
    "SAMPLE_TEST_IMAGES",
    "SAMPLE_TRAIN_IMAGES",
    "DataSource",
    "MnistSplit",
    "cache_dir",
    "download_mnist",
    "load_mnist",
    "load_sample",
    "read_idx",
    "resolve_data_dir",
    "resolve_data_source",
    "split_validation",
    "write_sample",
]

DATA_ENV = "HWLENET_DATA"
MIRRORS_ENV = "HWLENET_MIRRORS"
#: Images of each split in the embedded sample.
SAMPLE_TEST_IMAGES = 1000
SAMPLE_TRAIN_IMAGES = 500
SAMPLE_FILE = "mnist-sample.npz"

_SAMPLE_KEYS = ("test_images", "test_labels", "train_images", "train_labels")

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
    """One split: ``images`` uint8 ``(N, 28, 28)``, ``labels`` uint8 ``(N,)`` in 0..9, and
    ``source``, a one-line description of where they came from (see :class:`DataSource`)."""

    images: np.ndarray
    labels: np.ndarray
    source: str = ""

    def __len__(self):
        return len(self.labels)

    def head(self, count=None):
        """The first ``count`` images (all when ``count`` is None)."""
        if count is None:
            return self
        return MnistSplit(self.images[:count], self.labels[:count], self.source)


@dataclass(frozen=True)
class DataSource:
    """Where the images come from.

    ``kind`` is ``"option"`` (``--data-dir``), ``"environment"`` (``$HWLENET_DATA``),
    ``"cache"`` (the per-user cache) or ``"embedded"`` (the sample in the package, ``directory``
    None); ``note`` says why a later choice was taken, when it was.
    """

    kind: str
    directory: Path = None
    note: str = ""

    def describe(self):
        """One line: ``--data-dir /x``, ``$HWLENET_DATA=/x``, ``cache /x`` or ``embedded ...``."""
        if self.kind == "option":
            text = f"--data-dir {self.directory}"
        elif self.kind == "environment":
            text = f"${DATA_ENV}={self.directory}"
        elif self.kind == "cache":
            text = f"cache {self.directory}"
        else:
            text = "the embedded sample"
        return f"{text} ({self.note})" if self.note else text


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
    """The data directory the user named: ``data_dir`` if given, else ``$HWLENET_DATA``.

    Raises
    ------
    HwlenetError
        When neither names a directory (:func:`resolve_data_source` then falls back on the
        cache and the embedded sample).
    """
    chosen = data_dir if data_dir else os.environ.get(DATA_ENV)
    if not chosen:
        raise HwlenetError(
            f"no data directory: pass --data-dir DIR or set {DATA_ENV} to a folder with the MNIST "
            "IDX files (they are downloaded there when missing)"
        )
    return Path(chosen).expanduser()


def cache_dir():
    """The per-user download folder: ``$XDG_CACHE_HOME/hwlenet/mnist``, by default
    ``~/.cache/hwlenet/mnist``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path("~/.cache").expanduser()
    return Path(base) / "hwlenet" / "mnist"


def default_mirrors():
    """The download mirrors: ``$HWLENET_MIRRORS`` (space-separated) when set, else
    :data:`MIRRORS`. An empty variable means: never download."""
    value = os.environ.get(MIRRORS_ENV)
    if value is None:
        return MIRRORS
    return tuple(url if url.endswith("/") else url + "/" for url in value.split())


def _has_split(directory, split):
    return all(_find(directory, stem) is not None for stem in FILES[split])


def resolve_data_source(split, data_dir=None, download=True, **download_options):
    """Decide where ``split`` comes from: ``data_dir``, ``$HWLENET_DATA``, the cache, or the
    embedded sample (the module docstring gives the order).

    A folder the user names is used even when files are missing (they are then downloaded into
    it, and a failure is an error). The cache is used when it holds the split or the split can
    be downloaded into it; otherwise the embedded sample is, with a note saying why.

    Returns
    -------
    DataSource
    """
    if split not in FILES:
        raise HwlenetError(f"unknown split {split!r}; use 'train' or 'test'")
    if data_dir:
        return DataSource("option", Path(data_dir).expanduser())
    if os.environ.get(DATA_ENV):
        return DataSource("environment", Path(os.environ[DATA_ENV]).expanduser())
    cache = cache_dir()
    if _has_split(cache, split):
        return DataSource("cache", cache)
    options = dict(download_options)
    options.setdefault("mirrors", default_mirrors())
    if not download or not options["mirrors"]:
        return DataSource("embedded", note=f"{cache} is empty and downloading is off")
    try:
        download_mnist(cache, splits=(split,), **options)
    except HwlenetError:
        return DataSource("embedded", note=f"{cache} is empty and MNIST could not be downloaded")
    return DataSource("cache", cache, note="downloaded")


def _find(directory, stem):
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def download_mnist(directory, splits=("train", "test"), mirrors=None, md5=None, opener=None,
                   timeout=30):
    """Download the MNIST files of ``splits`` into ``directory``, verifying their md5 sums.

    Parameters
    ----------
    directory : path-like
        Where the ``.gz`` files go; created when the first file arrives.
    splits : sequence of str
        ``train`` and/or ``test``.
    mirrors : sequence of str, optional
        Base URLs, tried in order, each ending in ``/``; by default ``$HWLENET_MIRRORS`` or
        :data:`MIRRORS`.
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
    mirrors = default_mirrors() if mirrors is None else mirrors
    for split in splits:
        for stem in FILES[split]:
            name = stem + ".gz"
            target = directory / name
            if target.is_file():
                continue
            failures = []
            if not mirrors:
                failures.append("no mirrors (downloading is off)")
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
                try:
                    directory.mkdir(parents=True, exist_ok=True)
                except OSError as error:
                    raise HwlenetError(f"cannot create {directory}: {error.strerror}") from None
                write_bytes(target, payload)
                break
            else:
                raise HwlenetError(
                    f"could not download {name} into {directory} ({'; '.join(failures)}); put "
                    f"the MNIST IDX files in a folder and pass --data-dir DIR or set "
                    f"{DATA_ENV}=DIR"
                )


def load_mnist(split, data_dir=None, download=True, **download_options):
    """Load one MNIST split, from the source :func:`resolve_data_source` picks.

    Parameters
    ----------
    split : {"train", "test"}
    data_dir : path-like, optional
        The directory; when omitted, ``$HWLENET_DATA``, then the per-user cache, then the
        embedded sample.
    download : bool
        Download missing files (with md5 verification) into the named folder or the cache.
    **download_options
        Passed to :func:`download_mnist` (``mirrors``, ``md5``, ``opener``, ``timeout``).

    Returns
    -------
    MnistSplit
        With ``source`` describing where the images came from.

    Raises
    ------
    HwlenetError
        Naming the file, when a file is missing (and cannot be downloaded), unreadable or not
        MNIST-shaped.
    """
    source = resolve_data_source(split, data_dir, download, **download_options)
    if source.kind == "embedded":
        return load_sample(split, source.describe())
    directory = source.directory
    image_stem, label_stem = FILES[split]
    paths = [_find(directory, image_stem), _find(directory, label_stem)]
    if None in paths:
        if directory.exists() and not directory.is_dir():
            raise HwlenetError(f"{directory}: not a directory")
        if not download:
            raise HwlenetError(f"{directory}: no {image_stem}[.gz] / {label_stem}[.gz]")
        download_mnist(directory, splits=(split,), **download_options)
        paths = [_find(directory, image_stem), _find(directory, label_stem)]
    images = read_idx(paths[0], np.uint8, 3)
    labels = read_idx(paths[1], np.uint8, 1)
    return _checked_split(images, labels, paths[0], paths[1], source.describe())


def _checked_split(images, labels, image_path, label_path, source):
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise HwlenetError(f"{image_path}: images are {images.shape[1:]}, not 28x28")
    if labels.ndim != 1 or len(images) != len(labels):
        raise HwlenetError(
            f"{image_path} holds {len(images)} images but {label_path} holds {len(labels)} labels"
        )
    if labels.size and labels.max() > 9:
        raise HwlenetError(f"{label_path}: label {int(labels.max())} is not a digit")
    return MnistSplit(images=images, labels=labels, source=source)


def sample_path():
    """The embedded sample's file inside the installed package."""
    return Path(str(resources.files("hwlenet") / "sample" / SAMPLE_FILE))


def load_sample(split, source="embedded sample", path=None):
    """One split of the embedded sample (or of the sample file ``path``).

    Raises
    ------
    HwlenetError
        When the file is missing from the installation or damaged.
    """
    if split not in FILES:
        raise HwlenetError(f"unknown split {split!r}; use 'train' or 'test'")
    path = sample_path() if path is None else Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            images = archive[f"{split}_images"]
            labels = archive[f"{split}_labels"]
    except FileNotFoundError:
        raise HwlenetError(f"the embedded MNIST sample {path} is missing from the "
                           "installation; pass --data-dir DIR") from None
    except Exception as error:  # numpy/zipfile raise many types for damaged files
        raise HwlenetError(f"{path}: damaged MNIST sample ({type(error).__name__})") from None
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise HwlenetError(f"{path}: the sample's images and labels must be uint8")
    return _checked_split(images, labels, path, path, source)


def write_sample(path, test, train):
    """Write a sample file of the ``test`` and ``train`` splits (:class:`MnistSplit`); the
    same images give the same bytes. Returns the file's size in bytes."""
    arrays = {"test_images": test.images, "test_labels": test.labels,
              "train_images": train.images, "train_labels": train.labels}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for key in _SAMPLE_KEYS:
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[key], np.uint8),
                                      allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, member.getvalue(), compresslevel=9)
    payload = buffer.getvalue()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, payload)
    return len(payload)


def split_validation(train, count=None, seed=0, augmented_copies=0):
    """``(search, validation)``: a seeded random ``count`` images of ``train`` held out (by
    default :data:`hwlenet.defaults.VALIDATION_IMAGES`, at most a fifth of ``train``); with
    ``augmented_copies``, the validation split also holds that many seeded augmentations of
    each held-out image (:func:`hwlenet.train.augment`, rounded to integer pixels), which the
    float model has never seen either.

    Raises
    ------
    HwlenetError
        When ``count`` is not between 1 and ``len(train) - 1`` or ``augmented_copies`` is
        negative.
    """
    if count is None:
        count = max(1, min(VALIDATION_IMAGES, len(train) // 5))
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count < len(train):
        raise HwlenetError(f"the validation split must hold 1 to {len(train) - 1} of the "
                           f"{len(train)} training images, not {count!r}")
    if not isinstance(augmented_copies, int) or augmented_copies < 0:
        raise HwlenetError(f"augmented copies must be a non-negative integer, not "
                           f"{augmented_copies!r}")
    order = np.random.default_rng(seed).permutation(len(train))
    held, rest = np.sort(order[:count]), np.sort(order[count:])
    images, labels = [train.images[held]], [train.labels[held]]
    if augmented_copies:
        import torch

        from .train import augment

        generator = torch.Generator().manual_seed(seed)
        pixels = torch.from_numpy(train.images[held]).float().unsqueeze(1)
        for _ in range(augmented_copies):
            moved = torch.floor(augment(pixels, generator) + 0.5).clamp(0, 255)
            images.append(moved.squeeze(1).to(torch.uint8).numpy())
            labels.append(train.labels[held])
    return (MnistSplit(train.images[rest], train.labels[rest], train.source),
            MnistSplit(np.concatenate(images), np.concatenate(labels), train.source))
