import numpy as np
import torch

from hwlenet.data import MnistSplit
from hwlenet.train import augment, train_model


def tiny_split(count=96, seed=0):
    rng = np.random.default_rng(seed)
    return MnistSplit(rng.integers(0, 256, (count, 28, 28), dtype=np.uint8),
                      rng.integers(0, 10, count, dtype=np.uint8))


def test_training_is_reproducible_for_a_seed():
    first, _ = train_model("classic", tiny_split(), epochs=1, seed=5, progress=False)
    second, meta = train_model("classic", tiny_split(), epochs=1, seed=5, progress=False)
    other, _ = train_model("classic", tiny_split(), epochs=1, seed=6, progress=False)
    for key, value in first.state_dict().items():
        torch.testing.assert_close(second.state_dict()[key], value, rtol=0, atol=0)
    assert not torch.equal(other.state_dict()["c1.weight"], first.state_dict()["c1.weight"])
    assert meta["train_images"] == 96 and meta["epochs"] == 1


def test_augment_keeps_shape_and_moves_pixels():
    generator = torch.Generator().manual_seed(0)
    pixels = torch.from_numpy(tiny_split(8).images).float().unsqueeze(1)
    moved = augment(pixels, generator)
    assert moved.shape == pixels.shape
    assert not torch.allclose(moved, pixels)
    assert moved.min() >= 0 and moved.max() <= 255
