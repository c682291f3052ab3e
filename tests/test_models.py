import numpy as np
import pytest
import torch

from hwlenet import HwlenetError
from hwlenet.models import C3_CONNECTIONS, build_model

# LeCun et al. 1998, Table I: rows are S2 maps, columns are C3 maps.
PAPER_TABLE = """
X...XXX..XXXX.XX
XX...XXX..XXXX.X
XXX...XXX..X.XXX
.XXX..XXXX..X.XX
..XXX..XXXX.XX.X
...XXX..XXXX.XXX
"""

CLASSIC_COUNTS = {"c1": 156, "s2": 12, "c3": 1516, "s4": 32, "c5": 48120, "f6": 10164, "out": 850}
RELU_COUNTS = {"c1": 156, "c3": 2416, "fc1": 48120, "fc2": 10164, "out": 850}


def parameter_counts(model):
    return {name: sum(p.numel() for p in child.parameters())
            for name, child in model.named_children()}


def test_connection_table_matches_paper():
    rows = PAPER_TABLE.split()
    for out_map, inputs in enumerate(C3_CONNECTIONS):
        assert inputs == tuple(i for i in range(6) if rows[i][out_map] == "X")
    assert sum(map(len, C3_CONNECTIONS)) == 60


@pytest.mark.parametrize("arch,counts,total", [("classic", CLASSIC_COUNTS, 60850),
                                               ("relu", RELU_COUNTS, 61706)])
def test_parameter_counts(arch, counts, total):
    model = build_model(arch)
    assert parameter_counts(model) == counts
    assert sum(p.numel() for p in model.parameters()) == total


def test_partial_connections_are_zero():
    torch.manual_seed(0)
    weight = build_model("classic").c3.full_weight().detach()
    connected = np.array([[i in ins for i in range(6)] for ins in C3_CONNECTIONS])
    assert (weight.abs().sum((2, 3)) > 0).numpy().tolist() == connected.tolist()


@pytest.mark.parametrize("arch", ["classic", "relu"])
def test_shapes_and_trace(arch):
    model = build_model(arch)
    pixels = torch.rand(3, 1, 28, 28) * 255
    trace = model.forward_trace(pixels)
    assert list(trace) == list(model.trace_names)
    assert trace["out"].shape == (3, 10)
    torch.testing.assert_close(model(pixels), trace["out"])


def test_unknown_architecture():
    with pytest.raises(HwlenetError, match="unknown architecture 'vgg'"):
        build_model("vgg")
