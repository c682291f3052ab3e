import gzip
import hashlib
import http.server
import struct
import threading
import urllib.error

import numpy as np
import pytest

from hwlenet import HwlenetError
from hwlenet.data import (FILES, SAMPLE_TEST_IMAGES, SAMPLE_TRAIN_IMAGES, MnistSplit,
                          cache_dir, download_mnist, load_mnist, load_sample, read_idx,
                          resolve_data_dir, resolve_data_source, sample_path, split_validation,
                          write_sample)
from hwlenet.defaults import VALIDATION_IMAGES


def idx_bytes(array, type_code=0x08):
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(">u1" if type_code == 0x08 else ">i4").tobytes()


def write_split(directory, split, count, compress=True, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, count, dtype=np.uint8)
    for stem, array in zip(FILES[split], (images, labels)):
        payload = idx_bytes(array)
        if compress:
            (directory / (stem + ".gz")).write_bytes(gzip.compress(payload, mtime=0))
        else:
            (directory / stem).write_bytes(payload)
    return images, labels


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "raw"])
def test_load_round_trip(tmp_path, compress):
    images, labels = write_split(tmp_path, "test", 7, compress)
    split = load_mnist("test", tmp_path, download=False)
    np.testing.assert_array_equal(split.images, images)
    np.testing.assert_array_equal(split.labels, labels)
    assert len(split.head(3)) == 3


def test_truncated_file_is_named(tmp_path):
    write_split(tmp_path, "test", 5, compress=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(HwlenetError, match="t10k-images-idx3-ubyte: truncated"):
        load_mnist("test", tmp_path, download=False)


def test_wrong_magic(tmp_path):
    write_split(tmp_path, "test", 5, compress=False)
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(b"\x01\x02" + path.read_bytes()[2:])
    with pytest.raises(HwlenetError, match="bad magic"):
        load_mnist("test", tmp_path, download=False)


def test_wrong_dtype_and_dimensions(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(idx_bytes(np.zeros((3, 4), np.int32), type_code=0x0C))
    with pytest.raises(HwlenetError, match="element type"):
        read_idx(path, np.uint8)
    path.write_bytes(idx_bytes(np.zeros((3, 4), np.uint8)))
    with pytest.raises(HwlenetError, match="2 dimensions where 3"):
        read_idx(path, np.uint8, 3)


def test_corrupt_gzip(tmp_path):
    write_split(tmp_path, "test", 5)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(HwlenetError, match="corrupt gzip"):
        load_mnist("test", tmp_path, download=False)


def test_mismatched_lengths(tmp_path):
    write_split(tmp_path, "test", 5)
    labels = np.zeros(4, np.uint8)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    with pytest.raises(HwlenetError, match="5 images but .* 4 labels"):
        load_mnist("test", tmp_path, download=False)


def test_data_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("HWLENET_DATA", raising=False)
    with pytest.raises(HwlenetError, match="--data-dir"):
        resolve_data_dir(None)
    monkeypatch.setenv("HWLENET_DATA", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path


@pytest.fixture()
def mirror(tmp_path):
    """A local HTTP server holding a small MNIST-format test split, and its md5 sums."""
    served = tmp_path / "served"
    served.mkdir()
    images, labels = write_split(served, "test", 6)
    sums = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in served.iterdir()}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/", sums, images, labels
    server.shutdown()
    server.server_close()


def test_download_from_local_mirror(tmp_path, mirror):
    url, sums, images, labels = mirror
    target = tmp_path / "fetched"
    split = load_mnist("test", target, mirrors=["http://127.0.0.1:1/", url], md5=sums)
    np.testing.assert_array_equal(split.images, images)
    np.testing.assert_array_equal(split.labels, labels)
    assert sorted(p.name for p in target.iterdir()) == sorted(sums)


def test_download_rejects_bad_checksum(tmp_path, mirror):
    url, sums, _, _ = mirror
    wrong = {name: "0" * 32 for name in sums}
    with pytest.raises(HwlenetError, match="md5"):
        download_mnist(tmp_path / "x", splits=("test",), mirrors=[url], md5=wrong)
    assert not list((tmp_path / "x").glob("*.gz"))


def test_no_network_says_how_to_point_at_a_folder(tmp_path):
    def offline(url, timeout):
        raise urllib.error.URLError("network is unreachable")

    with pytest.raises(HwlenetError, match="pass --data-dir DIR"):
        load_mnist("train", tmp_path, opener=offline)


def test_real_mnist(test_split, train_split):
    assert test_split.images.shape == (10000, 28, 28)
    assert train_split.images.shape == (10000, 28, 28)
    assert set(np.unique(test_split.labels)) == set(range(10))


@pytest.fixture()
def no_user_data(tmp_path, monkeypatch):
    """A user with no data folder, an empty cache in ``tmp_path`` and downloading off."""
    monkeypatch.delenv("HWLENET_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HWLENET_MIRRORS", "")
    return tmp_path / "cache" / "hwlenet" / "mnist"


def test_resolution_order(tmp_path, monkeypatch, no_user_data):
    """--data-dir, then $HWLENET_DATA, then the cache, then the embedded sample."""
    assert resolve_data_source("test").kind == "embedded"
    cache = no_user_data
    cache.mkdir(parents=True)
    write_split(cache, "test", 4)
    assert cache_dir() == cache
    assert resolve_data_source("test").kind == "cache"
    assert resolve_data_source("train").kind == "embedded"  # the cache lacks the train split
    assert len(load_mnist("test")) == 4
    environment = tmp_path / "env"
    environment.mkdir()
    write_split(environment, "test", 5)
    monkeypatch.setenv("HWLENET_DATA", str(environment))
    assert len(load_mnist("test")) == 5
    option = tmp_path / "option"
    option.mkdir()
    write_split(option, "test", 6)
    split = load_mnist("test", option)
    assert len(split) == 6 and split.source == f"--data-dir {option}"
    assert load_mnist("test").source == f"$HWLENET_DATA={environment}"


def test_embedded_sample(no_user_data):
    test, train = load_mnist("test"), load_mnist("train")
    assert test.images.shape == (SAMPLE_TEST_IMAGES, 28, 28) and test.images.dtype == np.uint8
    assert train.images.shape == (SAMPLE_TRAIN_IMAGES, 28, 28)
    assert set(np.unique(test.labels)) == set(range(10))
    assert test.source.startswith("the embedded sample")
    assert sample_path().stat().st_size < 400_000


def test_sample_is_mnist_and_regenerates_byte_for_byte(tmp_path, test_split, train_split):
    """The sample is the first 1000 test and 500 training images of the data folder, and the
    regeneration script's writer gives the shipped bytes again."""
    np.testing.assert_array_equal(load_sample("test").images, test_split.images[:1000])
    np.testing.assert_array_equal(load_sample("test").labels, test_split.labels[:1000])
    np.testing.assert_array_equal(load_sample("train").images, train_split.images[:500])
    write_sample(tmp_path / "s.npz", test_split.head(SAMPLE_TEST_IMAGES),
                 train_split.head(SAMPLE_TRAIN_IMAGES))
    assert (tmp_path / "s.npz").read_bytes() == sample_path().read_bytes()


def test_damaged_sample_is_an_error(tmp_path):
    path = tmp_path / "s.npz"
    path.write_bytes(b"PK\x03\x04 damaged")
    with pytest.raises(HwlenetError, match="s.npz: damaged MNIST sample"):
        load_sample("test", path=path)


def test_cache_is_filled_from_a_mirror(tmp_path, monkeypatch, no_user_data, mirror):
    url, sums, images, labels = mirror
    monkeypatch.setenv("HWLENET_MIRRORS", url)
    split = load_mnist("test", md5=sums)
    np.testing.assert_array_equal(split.images, images)
    assert split.source == f"cache {no_user_data} (downloaded)"
    assert sorted(p.name for p in no_user_data.iterdir()) == sorted(sums)
    assert load_mnist("test").source == f"cache {no_user_data}"  # no second download


def test_cache_falls_back_on_the_sample_when_the_download_fails(monkeypatch, no_user_data,
                                                                mirror):
    """A mirror serving files of the wrong checksum: nothing is kept, the sample is used."""
    url, sums, _, _ = mirror
    monkeypatch.setenv("HWLENET_MIRRORS", url)
    split = load_mnist("test")  # the canonical md5 sums, which the served files do not have
    assert len(split) == SAMPLE_TEST_IMAGES
    assert "could not be downloaded" in split.source
    assert not no_user_data.exists() or not list(no_user_data.iterdir())


def test_offline_opener_falls_back_on_the_sample(no_user_data):
    def offline(url, timeout):
        raise urllib.error.URLError("network is unreachable")

    split = load_mnist("train", opener=offline, mirrors=["http://mirror.invalid/"])
    assert len(split) == SAMPLE_TRAIN_IMAGES and split.source.startswith("the embedded sample")


def test_named_folder_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(HwlenetError, match="not a directory"):
        load_mnist("test", tmp_path / "f", download=False)


def _numbered(count, seed=0):
    """``count`` distinct seeded random images with random labels."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
    images[:, 0, :2] = np.stack([np.arange(count) // 256, np.arange(count) % 256], axis=1)
    return MnistSplit(images, rng.integers(0, 10, count).astype(np.uint8), "fixture")


def test_validation_split_is_held_out_and_seeded():
    train = _numbered(300)
    search, validation = split_validation(train, 100, seed=4, augmented_copies=2)
    again = split_validation(train, 100, seed=4, augmented_copies=2)[1]
    assert len(search) == 200 and len(validation) == 300
    np.testing.assert_array_equal(validation.images, again.images)
    held = {image.tobytes() for image in validation.images[:100]}
    assert not held & {image.tobytes() for image in search.images}
    assert len(held | {image.tobytes() for image in search.images}) == 300
    assert not np.array_equal(validation.images[:100], validation.images[100:200])
    np.testing.assert_array_equal(validation.labels[:100], validation.labels[200:])
    other = split_validation(train, 100, seed=5)[1]
    assert not np.array_equal(other.images, validation.images[:100])


@pytest.mark.parametrize("size, held", [(300, 60), (5, 1), (20000, VALIDATION_IMAGES)])
def test_default_validation_is_at_most_a_fifth(size, held):
    search, validation = split_validation(_numbered(size))
    assert (len(search), len(validation)) == (size - held, held)


@pytest.mark.parametrize("count", [0, 300, True])
def test_bad_validation_size(count):
    with pytest.raises(HwlenetError, match="validation split must hold"):
        split_validation(_numbered(300), count)
