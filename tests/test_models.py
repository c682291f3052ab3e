import numpy as np
import pytest
import torch

from hwlenet import HwlenetError
from hwlenet.models import C3_CONNECTIONS, RBF_MAP_J, build_model, map_loss
from hwlenet.rbf_codes import (CODE_COLUMNS, CODE_ROWS, DIGIT_BITMAPS, MIN_HAMMING_DISTANCE,
                               hamming_distances, rbf_codes)

# LeCun et al. 1998, Table I: rows are S2 maps, columns are C3 maps.
PAPER_TABLE = """
X...XXX..XXXX.XX
XX...XXX..XXXX.X
XXX...XXX..X.XXX
.XXX..XXXX..X.XX
..XXX..XXXX.XX.X
...XXX..XXXX.XXX
"""

CLASSIC_COUNTS = {"c1": 156, "s2": 12, "c3": 1516, "s4": 32, "c5": 48120, "f6": 10164, "out": 0}
CLASSIC_FC_COUNTS = {**CLASSIC_COUNTS, "out": 850}
RELU_COUNTS = {"c1": 156, "c3": 2416, "fc1": 48120, "fc2": 10164, "out": 850}


def parameter_counts(model):
    return {name: sum(p.numel() for p in child.parameters())
            for name, child in model.named_children()}


def test_connection_table_matches_paper():
    rows = PAPER_TABLE.split()
    for out_map, inputs in enumerate(C3_CONNECTIONS):
        assert inputs == tuple(i for i in range(6) if rows[i][out_map] == "X")
    assert sum(map(len, C3_CONNECTIONS)) == 60


@pytest.mark.parametrize("arch,counts,total,fixed", [
    ("classic", CLASSIC_COUNTS, 60000, 840), ("classic-fc", CLASSIC_FC_COUNTS, 60850, 0),
    ("relu", RELU_COUNTS, 61706, 0)])
def test_parameter_counts(arch, counts, total, fixed):
    """The published LeNet-5 has 60,000 trainable parameters and 840 fixed RBF code values
    (buffers that are not in the checkpoint)."""
    model = build_model(arch)
    assert parameter_counts(model) == counts
    assert sum(p.numel() for p in model.parameters()) == total
    fixed_buffers = [buffer for name, buffer in model.named_buffers() if name.endswith("codes")]
    assert sum(buffer.numel() for buffer in fixed_buffers) == fixed
    assert not any(key.endswith("codes") for key in model.state_dict())


def test_rbf_codes_are_the_shipped_digit_bitmaps():
    codes = rbf_codes()
    assert codes.shape == (10, CODE_ROWS * CODE_COLUMNS) == (10, 84)
    assert set(np.unique(codes)) == {-1, 1}
    assert all(len(bitmap) == CODE_ROWS and all(len(row) == CODE_COLUMNS for row in bitmap)
               for bitmap in DIGIT_BITMAPS)
    for digit, bitmap in enumerate(DIGIT_BITMAPS):
        assert codes[digit].tolist() == [1 if pixel == "#" else -1
                                         for row in bitmap for pixel in row]
    distances = hamming_distances(codes)
    assert len(distances) == 45
    assert min(distances.values()) == MIN_HAMMING_DISTANCE >= 20
    torch.testing.assert_close(build_model("classic").out.codes,
                               torch.from_numpy(codes).float(), rtol=0, atol=0)


def test_rbf_penalties_and_class():
    """Penalties are squared Euclidean distances to the codes; the trace holds the reduced
    penalty (the same minus sum x^2, so the same argmin); forward is -penalty."""
    torch.manual_seed(3)
    model = build_model("classic").eval()
    codes = torch.from_numpy(rbf_codes()).double()
    pixels = torch.rand(5, 1, 28, 28) * 255
    with torch.no_grad():
        trace = model.forward_trace(pixels)
        penalties = model.penalties(pixels)
        f6 = trace["f6"].double()
        want = torch.cdist(f6, codes) ** 2
        torch.testing.assert_close(penalties.double(), want, rtol=1e-5, atol=1e-4)
        reduced = trace["out"].double()
        torch.testing.assert_close(reduced + f6.square().sum(1, keepdim=True), want,
                                   rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(model(pixels), -penalties)
    assert (model(pixels).argmax(1) == penalties.argmin(1)).all()
    assert (model(pixels).argmax(1) == trace["out"].argmin(1)).all()
    # F6 outputs equal to a code give that code a zero penalty
    with torch.no_grad():
        exact = model.out.penalties(codes[[7, 2]].float())
    assert exact[:, [7, 2]].diagonal().abs().max() == 0
    assert exact.argmin(1).tolist() == [7, 2]


@pytest.mark.parametrize("seed", [0, 1])
def test_map_loss_is_the_papers_criterion(seed):
    generator = torch.Generator().manual_seed(seed)
    penalties = torch.rand(6, 10, generator=generator, dtype=torch.float64) * 30
    labels = torch.randint(0, 10, (6,), generator=generator)
    want = np.mean([float(penalties[p, labels[p]]) + np.log(
        np.exp(-RBF_MAP_J) + np.exp(-penalties[p].numpy()).sum()) for p in range(6)])
    assert abs(float(map_loss(penalties, labels)) - want) < 1e-9
    # large penalties do not overflow; the wrong classes' gradient pushes them up
    huge = penalties.clone().requires_grad_(True)
    loss = map_loss(huge * 100, labels)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(huge.grad).all()
    wrong = torch.ones_like(penalties, dtype=torch.bool)
    wrong[torch.arange(6), labels] = False
    assert (huge.grad[wrong] <= 0).all() and (huge.grad[~wrong] >= 0).all()


def test_partial_connections_are_zero():
    torch.manual_seed(0)
    weight = build_model("classic").c3.full_weight().detach()
    connected = np.array([[i in ins for i in range(6)] for ins in C3_CONNECTIONS])
    assert (weight.abs().sum((2, 3)) > 0).numpy().tolist() == connected.tolist()


@pytest.mark.parametrize("arch", ["classic", "classic-fc", "relu"])
def test_shapes_and_trace(arch):
    model = build_model(arch)
    pixels = torch.rand(3, 1, 28, 28) * 255
    trace = model.forward_trace(pixels)
    assert list(trace) == list(model.trace_names)
    assert trace["out"].shape == (3, 10)
    if model.output_rule == "argmax":
        torch.testing.assert_close(model(pixels), trace["out"])
    else:
        assert model.output_rule == "argmin" and arch == "classic"


def test_unknown_architecture():
    with pytest.raises(HwlenetError, match="unknown architecture 'vgg'"):
        build_model("vgg")
