import numpy as np
import torch

from hwlenet.data import MnistSplit
from hwlenet.models import build_model, map_loss
from hwlenet.rbf_codes import rbf_codes
from hwlenet.train import augment, train_loss, train_model


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


def test_rbf_codes_never_change_in_training():
    """The 840 code values are fixed: training moves every parameter but not the codes, and
    the MAP criterion is what the classic model trains on."""
    torch.manual_seed(3)  # the initial weights train_model starts from with seed 3
    initial = build_model("classic")
    model, meta = train_model("classic", tiny_split(), epochs=1, seed=3, progress=False)
    assert meta["loss"] == "map (j=10)"
    torch.testing.assert_close(model.out.codes, torch.from_numpy(rbf_codes()).float(),
                               rtol=0, atol=0)
    assert not any(buffer.requires_grad for buffer in model.buffers())
    assert all(not torch.equal(value, initial.state_dict()[key])
               for key, value in model.state_dict().items()
               if key.endswith("weight") or key.endswith("coefficient"))
    pixels = torch.from_numpy(tiny_split(4).images).float().unsqueeze(1)
    labels = torch.tensor([1, 2, 3, 4])
    torch.testing.assert_close(train_loss(model, pixels, labels),
                               map_loss(model.penalties(pixels), labels))


def test_augment_keeps_shape_and_moves_pixels():
    generator = torch.Generator().manual_seed(0)
    pixels = torch.from_numpy(tiny_split(8).images).float().unsqueeze(1)
    moved = augment(pixels, generator)
    assert moved.shape == pixels.shape
    assert not torch.allclose(moved, pixels)
    assert moved.min() >= 0 and moved.max() <= 255
