"""The float LeNet-5 architectures.

Each takes a batch of raw pixels, shape ``(N, 1, 28, 28)``, as floats in ``[0, 255]``, and
returns 10 scores whose argmax is the class (logits; for the classic model, whose output is the
paper's Euclidean RBF layer, the negated penalties ``-y_i``). The normalisation
``(pixel / 255 - MNIST_MEAN) / MNIST_STD`` is part of the model, and padding is applied to raw
pixels (value 0, the background), so the quantizer can fold the whole input normalisation into
the first convolution exactly.

``forward_trace`` returns every layer's output by the names the quantized artifact uses, so the
fixed-point simulator can be compared with the float model layer by layer. For the RBF layer
that output is the *reduced penalty* ``84 - 2 sum_j w_ij x_j``, which the artifact computes: it
differs from the penalty ``y_i = sum_j (x_j - w_ij)^2`` by ``sum_j x_j^2``, the same for every
class, so its argmin is the same class.
"""

from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

from .rbf_codes import rbf_codes

__all__ = [
    "ARCHITECTURES",
    "C3_CONNECTIONS",
    "MNIST_MEAN",
    "MNIST_STD",
    "RBF_MAP_J",
    "LeNet5Classic",
    "LeNet5ClassicFC",
    "LeNet5Relu",
    "RbfOutput",
    "build_model",
    "map_loss",
    "scaled_tanh",
]

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081

TANH_AMPLITUDE = 1.7159
TANH_SLOPE = 2.0 / 3.0

#: The constant j of the paper's MAP criterion (see map_loss). Wrong classes are pushed up only
#: while their penalty is below about j; when F6 outputs the correct code exactly, every wrong
#: penalty is 4 d >= 84 (d >= 21 the codes' Hamming distance), far above it. The shipped
#: lenet5-classic was trained with j = 10.
RBF_MAP_J = 10.0

# LeCun et al. 1998, Table I: which S2 maps (the set) feed each of the 16 C3 maps.
C3_CONNECTIONS = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


def scaled_tanh(x):
    """LeCun's squashing function ``1.7159 * tanh(2x/3)``."""
    return TANH_AMPLITUDE * torch.tanh(TANH_SLOPE * x)


def _normalize(pixels):
    return (pixels / 255.0 - MNIST_MEAN) / MNIST_STD


class Subsampling(nn.Module):
    """LeNet-5's trainable subsampling: per map, the sum of each 2x2 block times a coefficient,
    plus a bias (2 parameters per map)."""

    def __init__(self, channels):
        super().__init__()
        self.coefficient = nn.Parameter(torch.full((channels,), 0.25))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        block_sum = F.avg_pool2d(x, 2) * 4.0
        return block_sum * self.coefficient.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class PartialConv(nn.Module):
    """C3: a 5x5 convolution from 6 to 16 maps where output map ``j`` only sees the input maps
    ``C3_CONNECTIONS[j]``; only the 60 connected kernels are parameters."""

    def __init__(self, connections=C3_CONNECTIONS, in_channels=6, kernel_size=5):
        super().__init__()
        self.in_channels = in_channels
        self.kernel_size = kernel_size
        pairs = [(out_map, in_map) for out_map, ins in enumerate(connections) for in_map in ins]
        self.register_buffer("pair_out", torch.tensor([p[0] for p in pairs]), persistent=False)
        self.register_buffer("pair_in", torch.tensor([p[1] for p in pairs]), persistent=False)
        fan_in = torch.tensor([len(ins) for ins in connections], dtype=torch.float32)
        bound = (1.0 / (fan_in[self.pair_out] * kernel_size**2)).sqrt()
        weight = (torch.rand(len(pairs), kernel_size, kernel_size) * 2 - 1) * bound.view(-1, 1, 1)
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.zeros(len(connections)))

    def full_weight(self):
        """The equivalent dense ``(16, 6, 5, 5)`` kernel, zero where maps are not connected."""
        k = self.kernel_size
        full = self.weight.new_zeros(self.bias.shape[0], self.in_channels, k, k)
        return full.index_put((self.pair_out, self.pair_in), self.weight)

    def forward(self, x):
        return F.conv2d(x, self.full_weight(), self.bias)


class RbfOutput(nn.Module):
    """LeNet-5's output: ten Euclidean radial basis function units with fixed +-1 codes.

    Unit ``i`` computes the penalty ``y_i = sum_j (x_j - w_ij)^2`` of F6's outputs ``x`` against
    code ``w_i`` (:func:`hwlenet.rbf_codes.rbf_codes`, digit ``i``'s 7x12 bitmap); the class is
    ``argmin_i y_i``. The codes are a buffer, not a parameter: never trained, and not stored in
    checkpoints (they are part of the architecture).
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("codes", torch.from_numpy(rbf_codes()).float(), persistent=False)

    @property
    def out_features(self):
        return self.codes.shape[0]

    def penalties(self, x):
        """The exact penalties ``y``, shape ``(N, 10)``, of F6 outputs ``x`` ``(N, 84)``."""
        return (x.unsqueeze(1) - self.codes).square().sum(-1)

    def forward(self, x):
        """The reduced penalties ``84 - 2 x . w_i`` = ``y_i - sum_j x_j^2`` (same argmin)."""
        return self.codes.shape[1] - 2 * x @ self.codes.T


def map_loss(penalties, labels, j=RBF_MAP_J):
    """The paper's maximum a posteriori criterion, averaged over the batch.

    ``E = mean_p( y_Dp + log(exp(-j) + sum_i exp(-y_i)) )`` with ``y`` the exact penalties
    ``(N, 10)`` and ``D_p`` the labels; the second term pushes the wrong classes' penalties up
    (until they exceed about ``j``), computed stably with ``logsumexp``.
    """
    correct = penalties.gather(1, labels.view(-1, 1)).squeeze(1)
    rubbish = penalties.new_full((penalties.shape[0], 1), float(j))
    competition = torch.logsumexp(-torch.cat([rubbish, penalties], 1), 1)
    return (correct + competition).mean()


class LeNet5Classic(nn.Module):
    """LeNet-5 as in LeCun et al. 1998: 60,000 trainable parameters and the Euclidean RBF output.

    32x32 input (28x28 padded by 2); C1 6@5x5; S2 trainable subsampling; C3 16@5x5 partially
    connected; S4 subsampling; C5 120@5x5; F6 84; output: ten RBF units (:class:`RbfOutput`,
    840 fixed code values). The scaled tanh follows C1, S2, C3, S4, C5 and F6. ``forward``
    returns the negated exact penalties ``-y`` (argmax = class); :meth:`penalties` the penalties,
    trained with :func:`map_loss`.
    """

    arch = "classic"
    output_rule = "argmin"
    trace_names = ("c1", "s2", "c3", "s4", "c5", "f6", "out")

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 5)
        self.s2 = Subsampling(6)
        self.c3 = PartialConv()
        self.s4 = Subsampling(16)
        self.c5 = nn.Conv2d(16, 120, 5)
        self.f6 = nn.Linear(120, 84)
        self.out = self._output_layer()

    def _output_layer(self):
        return RbfOutput()

    def forward_trace(self, pixels, pre_activations=None):
        """Every layer's output (after its activation), keyed by layer name, in order.

        When ``pre_activations`` is a dict, it receives each tanh layer's input by layer name.
        """
        pre = {} if pre_activations is None else pre_activations
        trace = OrderedDict()

        def squash(name, a):
            pre[name] = a
            return scaled_tanh(a)

        x = _normalize(F.pad(pixels, (2, 2, 2, 2)))
        x = trace["c1"] = squash("c1", self.c1(x))
        x = trace["s2"] = squash("s2", self.s2(x))
        x = trace["c3"] = squash("c3", self.c3(x))
        x = trace["s4"] = squash("s4", self.s4(x))
        x = trace["c5"] = squash("c5", self.c5(x)).flatten(1)
        x = trace["f6"] = squash("f6", self.f6(x))
        trace["out"] = self.out(x)
        return trace

    def penalties(self, pixels):
        """The exact RBF penalties ``y`` ``(N, 10)``; the class is their argmin."""
        return self.out.penalties(self.forward_trace(pixels)["f6"])

    def forward(self, pixels):
        return -self.penalties(pixels)


class LeNet5ClassicFC(LeNet5Classic):
    """The classic model with a fully connected 84-10 output layer instead of the RBF units
    (60,850 trainable parameters); ``forward`` returns its logits."""

    arch = "classic-fc"
    output_rule = "argmax"

    def _output_layer(self):
        return nn.Linear(84, 10)

    def forward(self, pixels):
        return self.forward_trace(pixels)["out"]


class LeNet5Relu(nn.Module):
    """The modern LeNet-5: ReLU, 2x2 max-pooling, fully connected C3 and a 120-84-10 classifier.

    C1 6@5x5 (28x28 padded by 2), pool, C3 16@5x5, pool, FC 400-120, FC 120-84, FC 84-10.
    """

    arch = "relu"
    output_rule = "argmax"
    trace_names = ("c1", "p1", "c3", "p2", "fc1", "fc2", "out")

    def __init__(self, *, maps=(6, 16), hidden=(120, 84), classes=10):
        """``maps``: C1's and C3's output maps; ``hidden``: the widths of FC1 and FC2;
        ``classes``: the outputs (the defaults are LeNet-5's; other sizes make variants)."""
        super().__init__()
        sizes = {"maps": maps, "hidden": hidden}
        for name, pair in sizes.items():
            if (not isinstance(pair, tuple) or len(pair) != 2
                    or any(not isinstance(n, int) or n < 1 for n in pair)):
                raise ValueError(f"{name} must be two positive integers, not {pair!r}")
        if not isinstance(classes, int) or classes < 2:
            raise ValueError(f"classes must be an integer of at least 2, not {classes!r}")
        self.c1 = nn.Conv2d(1, maps[0], 5)
        self.c3 = nn.Conv2d(maps[0], maps[1], 5)
        self.fc1 = nn.Linear(maps[1] * 25, hidden[0])
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.out = nn.Linear(hidden[1], classes)

    def forward_trace(self, pixels, pre_activations=None):
        """Every layer's output (after its activation), keyed by layer name, in order.

        ``pre_activations`` is accepted for symmetry with the classic model; ReLU layers have
        no table, so it stays empty.
        """
        trace = OrderedDict()
        x = _normalize(F.pad(pixels, (2, 2, 2, 2)))
        x = trace["c1"] = F.relu(self.c1(x))
        x = trace["p1"] = F.max_pool2d(x, 2)
        x = trace["c3"] = F.relu(self.c3(x))
        x = trace["p2"] = F.max_pool2d(x, 2).flatten(1)
        x = trace["fc1"] = F.relu(self.fc1(x))
        x = trace["fc2"] = F.relu(self.fc2(x))
        trace["out"] = self.out(x)
        return trace

    def forward(self, pixels):
        return self.forward_trace(pixels)["out"]


ARCHITECTURES = {"classic": LeNet5Classic, "classic-fc": LeNet5ClassicFC, "relu": LeNet5Relu}


def build_model(arch):
    """A freshly initialised float model of architecture ``arch`` (``classic``, ``classic-fc``
    or ``relu``)."""
    from .errors import HwlenetError

    try:
        return ARCHITECTURES[arch]()
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise HwlenetError(f"unknown architecture {arch!r}; known: {known}") from None
