"""Lowering a quantized artifact onto the accelerator: jobs, memory layouts, ROM contents and
the analytic cycle model.

The accelerator runs *jobs* on an ``rows x cols`` output-stationary systolic array:

* a **conv job** is one convolution fused with the 2x2 pooling or subsampling layer after it;
  array rows are output maps; array columns hold ``windows`` pooling windows side by side, each
  on ``window_lanes`` adjacent columns (4, 2 or 1). With 4 lanes a tile computes whole 2x2
  windows; with 2 or 1 a window's members come from 2 or 4 consecutive tiles (*phases*) and the
  post-processor keeps each row's partial maximum or sum between them. Columns past
  ``windows * window_lanes`` idle in conv jobs. :func:`plan_hardware` picks the lanes that give
  the fewest conv cycles;
* a **dense job** is one fully connected layer; array rows are outputs and array columns are
  the images of a batch (up to ``cols`` images share every weight fetch).

Every number here is taken from the artifact; nothing is re-derived. See ``docs/architecture.md``.
"""

import math
from dataclasses import dataclass, field

import numpy as np
from amaranth.hdl import C, Cat
from amaranth.utils import ceil_log2

from ..errors import HwlenetError
from .arith import divmod_constant, scaled
from .feeder import OperandFeeder
from .loader import InputLoader
from .postproc import PostProcessor
from .rom import block_ram_piece_depth, piece_count
from .streamer import ResultStreamer
from .systolic import SystolicArray
from .writer import BufferWriter

__all__ = ["ARRAY_LIMIT", "WINDOW_LANES", "ConvJob", "DenseJob", "Job", "HardwarePlan",
           "RomImage", "multiplier_widths", "parse_array", "plan_hardware"]

ARRAY_LIMIT = 64
"""The largest number of array rows, and of array columns."""

WINDOW_LANES = (4, 2, 1)
"""Columns a pooling window may occupy in one conv tile."""


def parse_array(text):
    """``"RxC"`` to ``(rows, cols)``, each from 1 to :data:`ARRAY_LIMIT`."""
    try:
        rows, cols = (int(part) for part in str(text).lower().split("x"))
    except ValueError:
        raise HwlenetError(f"array size must look like 8x8, not {text!r}") from None
    for name, value in (("rows", rows), ("cols", cols)):
        if not 1 <= value <= ARRAY_LIMIT:
            raise HwlenetError(f"array {name} must be from 1 to {ARRAY_LIMIT}, not {value}")
    return rows, cols


@dataclass
class Job:
    """One layer's work on the array: ``layer`` is the convolution or dense layer whose
    weights stream through it, ``out_layer`` the layer whose outputs get stored.

    ``ktable[k]`` says where reduction step ``k`` reads its operands. Conv jobs: for weight
    ``(channel, ky, kx)``, ``(v // lanes, v % lanes, ky % 2)`` with ``v`` the
    :meth:`FeatureBuffer.position` of ``(channel, ky, kx)`` in the job's buffer; the first
    dense job: ``(sub-bank, word)`` of the flattened features; later dense jobs: ``(0, k)``."""

    index: int
    layer: object
    tile_period: int = 0
    row_tiles: int = 0
    ktable: list = field(default_factory=list)

    @property
    def out_layer(self):
        return self.layer

    @property
    def depth(self):
        """Reduction length: weights per output."""
        return int(np.prod(self.layer.weight.shape[1:]))

    @property
    def tiles(self):
        return self.row_tiles


@dataclass
class ConvJob(Job):
    """A convolution fused with its 2x2 pooling layer ``pool``: tiles walk row tiles, blocks of
    ``windows`` consecutive pooling windows in row-major order of the pooled map (``blocks`` of
    them; a block may wrap from one pooled row into the next) and, innermost, the ``phases``
    that complete a window. ``stride`` is the row stride of the feature buffer it reads (see
    :class:`FeatureBuffer`); a wrap adds ``wrap_rows = (stride - 2 * pooled width) / lanes``
    bank rows."""

    pool: object = None
    blocks: int = 0
    phases: int = 1
    wrap_rows: int = 0

    kind = "conv"

    @property
    def out_layer(self):
        return self.pool

    @property
    def pooled_width(self):
        return int(self.pool.out_shape[2])

    @property
    def pooled_size(self):
        """Pooling windows per map."""
        return int(self.pool.out_shape[1] * self.pool.out_shape[2])

    @property
    def tiles(self):
        return self.row_tiles * self.blocks * self.phases


@dataclass
class DenseJob(Job):
    """A fully connected layer over a batch of images."""

    kind = "dense"


@dataclass
class FeatureBuffer:
    """A banked on-chip buffer holding one conv job's input image(s).

    Value ``(channel, y, x)`` of copy ``copy`` has the linear position
    ``v = (channel * height / 2 + y // 2) * stride + x`` and sits in bank
    ``(y % 2) * lanes + v % lanes`` (of ``2 * lanes``), at row ``v // lanes (+ copy *
    copy_words)``. The stride is at least the width and congruent to twice the reading job's
    pooled width modulo ``lanes``, so consecutive pooling windows in row-major order read
    distinct banks even where they wrap into the next pooled row.
    """

    channels: int
    height: int
    width: int
    lanes: int
    stride: int
    copies: int = 1

    @property
    def banks(self):
        return 2 * self.lanes

    @property
    def pairs(self):
        """Row pairs per channel."""
        return self.height // 2

    def position(self, channel, y, x):
        """The linear position ``v`` (integers only)."""
        return (channel * self.pairs + y // 2) * self.stride + x

    def locate(self, channel, y, x, copy=0):
        """``(bank, row)`` of ``(channel, y, x)`` of copy ``copy``: integers or Amaranth values
        alike (the loader and the writer address through it), ``place(pair(channel, y), y & 1,
        x, copy)``; a pipeline can register the row pair between the two."""
        return self.place(self.pair(channel, y), y & 1, x, copy)

    def pair(self, channel, y):
        """The row pair ``channel * height / 2 + y // 2`` of row ``y`` of ``channel``."""
        return scaled(channel, self.pairs) + (y >> 1)

    def place(self, pair, parity, x, copy=0):
        """``(bank, row)`` of column ``x`` of row pair ``pair``'s row ``parity`` (0 or 1) of
        copy ``copy``. For values, ``v // lanes`` is a slice when ``lanes`` is a power of two;
        else the row and remainder of the row pair's start come from constant tables and only
        ``remainder + x`` is divided, by comparisons."""
        if isinstance(pair, int) and isinstance(x, int):
            row, lane = divmod(pair * self.stride + x, self.lanes)
        elif self.lanes & (self.lanes - 1) == 0:
            row, lane = divmod_constant(scaled(pair, self.stride) + x, self.lanes,
                                        self.channels * self.pairs * self.stride)
        else:
            starts = [divmod(index * self.stride, self.lanes)
                      for index in range(self.channels * self.pairs)]
            row_width = max(ceil_log2(self.depth + 1), 1)
            lane_width = max(ceil_log2(self.lanes), 1)
            start_row = Cat(*(C(r, row_width) for r, _ in starts)).word_select(pair, row_width)
            start_lane = Cat(*(C(r, lane_width) for _, r in starts)).word_select(pair,
                                                                                 lane_width)
            carry, lane = divmod_constant(start_lane + x, self.lanes, self.lanes + self.width)
            row = start_row + carry
        if self.copies > 1:
            row = row + scaled(copy, self.copy_words)
        return scaled(parity, self.lanes) + lane, row

    @property
    def copy_words(self):
        return -(-self.channels * self.pairs * self.stride // self.lanes)

    @property
    def depth(self):
        return self.copies * self.copy_words


@dataclass
class RomImage:
    """The contents of one ROM of the design and which artifact layer each address range holds.

    ``words[a]`` is the integer at address ``a`` (a list of ``lanes`` integers when the word
    packs several lanes, lane ``i`` in bits ``[i * lane_width, (i + 1) * lane_width)``).
    ``segments`` lists ``{"layer", "base", "length"}``: addresses ``base .. base + length - 1``
    hold that layer's values in the order the artifact stores them (weights: row tile, then
    reduction index ``k``, lane ``i`` the output ``row_tile * rows + i``; biases,
    coefficients: per channel; tables: per index from ``pre_format.min_int``).
    ``path`` is the memory's hierarchical name below the top-level Verilog module; with
    ``piece_depth`` (a :class:`~hwlenet.rtl.rom.BankedRom`), the block's, whose memory
    ``piece_{p}`` holds addresses ``p * piece_depth`` onwards (:meth:`locate`).
    """

    name: str
    path: str
    role: str
    lane_width: int
    lanes: int
    words: list
    segments: list
    piece_depth: int = 0

    @property
    def depth(self):
        return len(self.words)

    @property
    def memory_paths(self):
        """The hierarchical name of each memory holding the words, in address order."""
        if not self.piece_depth:
            return [self.path]
        return [f"{self.path}.piece_{p}" for p in range(piece_count(self.depth,
                                                                     self.piece_depth))]

    def locate(self, address):
        """``(memory path, address in that memory)`` of word ``address``."""
        if not self.piece_depth:
            return self.path, address
        piece, local = divmod(address, self.piece_depth)
        return self.memory_paths[piece], local

    @property
    def width(self):
        return self.lane_width * self.lanes

    def base(self, layer_name):
        """The first address of ``layer_name``'s segment."""
        return next(s["base"] for s in self.segments if s["layer"] == layer_name)

    def describe(self):
        """JSON-ready description without the contents."""
        return {"name": self.name, "path": self.path, "role": self.role,
                "lane_width": self.lane_width, "lanes": self.lanes, "depth": self.depth,
                "width": self.width, "segments": self.segments,
                "piece_depth": self.piece_depth, "memory_paths": self.memory_paths}


def _magnitude_width(values):
    """Bits of a signed container for every integer in ``values``."""
    return max([abs(int(v)).bit_length() + 1 for v in values] + [2])


def _rom(name, path, role, lane_width, lanes, layers_and_words):
    words, segments = [], []
    for layer_name, values in layers_and_words:
        segments.append({"layer": layer_name, "base": len(words), "length": len(values)})
        words.extend(values)
    return RomImage(name, path, role, lane_width, lanes, words, segments)


@dataclass
class HardwarePlan:
    """Everything the RTL generator and the cycle model need, from one artifact."""

    qmodel: object
    rows: int
    cols: int
    jobs: list
    input_buffer: FeatureBuffer
    mid_buffer: FeatureBuffer
    fc_input_depth: int
    weight_width: int
    operand_width: int
    accumulator_width: int
    bias_width: int
    logit_format: object
    window_lanes: int = 4

    @property
    def windows(self):
        """Pooling windows a conv tile computes side by side: ``cols // window_lanes``, but no
        more than the first pooled map's width (a block's outputs then span at most two
        pooled rows, so they are written to distinct banks)."""
        return _windows(self.cols, self.window_lanes, self.conv_jobs[0].pooled_width)

    @property
    def phases(self):
        """Consecutive tiles that complete a pooling window."""
        return 4 // self.window_lanes

    def column_member(self, column, phase):
        """Which window of its block and which member a conv tile of phase ``phase`` computes
        on array column ``column``: ``(window, dy, dx)``, the member being ``phase *
        window_lanes + column % window_lanes = 2 * dy + dx``; None for an idle column. Window
        ``g`` of block ``b`` is pooled output ``divmod(b * windows + g, pooled width)``."""
        window, lane = divmod(column, self.window_lanes)
        if window >= self.windows:
            return None
        dy, dx = divmod(phase * self.window_lanes + lane, 2)
        return window, dy, dx

    @property
    def output_rule(self):
        """How the class is read from the last layer: the artifact's ``argmax`` or ``argmin``."""
        return self.qmodel.output_rule

    @property
    def conv_jobs(self):
        return [job for job in self.jobs if job.kind == "conv"]

    @property
    def dense_jobs(self):
        return [job for job in self.jobs if job.kind == "dense"]

    @property
    def batch(self):
        return self.cols

    @property
    def fc_subbanks(self):
        """Sub-banks per image slot of the flattened features (the last pooling layer's
        outputs): window ``w`` (row-major) of a map is in sub-bank ``w % fc_subbanks``."""
        return self.windows

    def fc_address(self, channel, block):
        """The word of a slot's flattened-feature sub-banks holding block ``block`` of map
        ``channel`` of the last pooling layer (window ``block * fc_subbanks + sub-bank``):
        integers or Amaranth values alike (the k-table of the first dense job and the writer
        both address through it)."""
        return scaled(channel, self.conv_jobs[-1].blocks) + block

    @property
    def input_format(self):
        """The format of the pixels (the first layer's input)."""
        return self.qmodel.layers[0].input_format

    @property
    def image_shape(self):
        """``(channels, height, width)`` of an input image."""
        return tuple(int(n) for n in self.conv_jobs[0].layer.in_shape)

    @property
    def image_pixels(self):
        """Pixels per image, one per input beat."""
        return int(np.prod(self.image_shape))

    @property
    def classes(self):
        """Logits per image: the last dense layer's outputs."""
        return int(self.dense_jobs[-1].layer.out_shape[0])

    @property
    def pipeline_latency(self):
        """Cycles from the controller issuing a tile's capture to the post-processor writing
        the tile's last row: the blocks' own latencies (feeder, array drain, post-processor)."""
        return (OperandFeeder.LATENCY + SystolicArray.drain_latency(self.rows, self.cols)
                + PostProcessor.LATENCY)

    @property
    def barrier(self):
        """Idle cycles between a job's flush and the first issue of a job that reads its
        results: operands reach the array, the last row drains, the post-processor and the
        buffer writer write it."""
        return self.pipeline_latency + BufferWriter.LATENCY

    def job_cycles(self, job):
        """Issue cycles of one job: every tile for ``tile_period`` cycles, plus one flush."""
        return job.tiles * job.tile_period + 1

    def predicted_cycles(self, images):
        """Exact cycles of a run of ``images`` images, from the first pixel accepted to the last
        result delivered, with pixels and results never stalled.

        The first image streams in (:attr:`image_pixels` cycles, plus
        :attr:`InputLoader.LATENCY` to see it loaded);
        then each batch runs its jobs back to back with :attr:`barrier` idle cycles before
        every job that reads the previous job's results; the last results drain through the
        array, the post-processor, the writer and the result streamer and leave one per cycle.

        Raises
        ------
        HwlenetError
            When ``images`` is not a whole number of at least 1 (a run without images has no
            first pixel and no last result).
        """
        if isinstance(images, bool) or not isinstance(images, (int, np.integer)) or images < 1:
            raise HwlenetError(f"cycles are predicted for a run of at least 1 image, not "
                               f"{images!r}")
        conv, dense = self.conv_jobs, self.dense_jobs
        total = self.image_pixels + InputLoader.LATENCY
        remaining = images
        while remaining > 0:
            batch = min(self.batch, remaining)
            remaining -= batch
            per_image = sum(self.job_cycles(job) for job in conv) + self.barrier * (len(conv) - 1)
            total += batch * per_image
            total += sum(self.job_cycles(job) + self.barrier for job in dense)
        return (total + self.pipeline_latency + BufferWriter.LATENCY + ResultStreamer.LATENCY
                + batch)

    def cycle_model(self):
        """Analytic cycles per image in steady state, per job and in total (dict)."""
        conv = self.conv_jobs
        dense = self.dense_jobs
        per_job = {}
        for position, job in enumerate(conv):
            waits = self.barrier if position + 1 < len(conv) else 0
            per_job[job.layer.name] = self.job_cycles(job) + waits
        per_job[conv[-1].layer.name] += self.barrier / self.batch
        for job in dense:
            waits = self.barrier if job is not dense[-1] else 0
            per_job[job.layer.name] = (self.job_cycles(job) + waits) / self.batch
        macs = {name: 0 for name in per_job}
        useful = dict(macs)
        for job in self.jobs:
            layer = job.layer
            macs[layer.name] = layer.macs()
            useful[layer.name] = int(np.count_nonzero(layer.weight)) * (
                layer.out_shape[1] * layer.out_shape[2] if job.kind == "conv" else 1)
        total = sum(per_job.values())
        pes = self.rows * self.cols
        return {
            "array": f"{self.rows}x{self.cols}",
            "cycles_per_image": total,
            "layers": [
                {"name": name, "cycles_per_image": cycles, "macs": macs[name],
                 "nonzero_macs": useful[name],
                 "utilization": macs[name] / (pes * cycles),
                 "nonzero_utilization": useful[name] / (pes * cycles)}
                for name, cycles in per_job.items()
            ],
            "macs_per_image": sum(macs.values()),
            "nonzero_macs_per_image": sum(useful.values()),
            "utilization": sum(macs.values()) / (pes * total),
            "nonzero_utilization": sum(useful.values()) / (pes * total),
        }

    @property
    def value_width(self):
        """Signed width that holds every value the post-processor produces (every layer's
        output and every table index)."""
        formats = []
        for layer in self.qmodel.layers:
            formats.append(layer.output_format)
            if layer.pre_format is not None:
                formats.append(layer.pre_format)
        return max(fmt.signed_width for fmt in formats)

    def weight_rom(self):
        """:class:`RomImage` of the weights: one word of ``rows`` weights per (row tile, k);
        lanes past a layer's last output hold zero. It is a :class:`~hwlenet.rtl.rom.BankedRom`
        in pieces of :func:`~hwlenet.rtl.rom.block_ram_piece_depth` words."""
        layers_and_words = []
        for job in self.jobs:
            matrix = job.layer.weight.reshape(job.layer.weight.shape[0], -1)
            padded = np.zeros((job.row_tiles * self.rows, job.depth), np.int64)
            padded[: matrix.shape[0]] = matrix
            tiles = padded.reshape(job.row_tiles, self.rows, job.depth).transpose(0, 2, 1)
            layers_and_words.append((job.layer.name, tiles.reshape(-1, self.rows).tolist()))
        image = _rom("weight_rom", "feeder.weight_rom", "weights", self.weight_width, self.rows,
                     layers_and_words)
        image.piece_depth = block_ram_piece_depth(image.width, image.depth)
        return image

    def bias_rom(self):
        """:class:`RomImage` of every computing layer's biases, aligned to its accumulator."""
        return _rom("bias_rom", "post.bias_rom", "biases", self.bias_width, 1,
                    [(job.layer.name, [int(b) for b in job.layer.aligned_bias()])
                     for job in self.jobs])

    @property
    def subsample_jobs(self):
        """The conv jobs whose pooling layer is LeNet's trainable subsampling."""
        return [job for job in self.conv_jobs if job.pool.kind == "subsample"]

    def table_rom(self):
        """:class:`RomImage` of the tanh tables of the array's layers (None without any)."""
        tables = [(job.layer.name, [int(v) for v in job.layer.lut]) for job in self.jobs
                  if job.layer.activation == "tanh"]
        return _rom("lut_rom", "post.lut_rom", "table", self.value_width, 1, tables) \
            if tables else None

    def coefficient_rom(self):
        """:class:`RomImage` of the subsampling coefficients (None without subsampling)."""
        pools = [job.pool for job in self.subsample_jobs]
        if not pools:
            return None
        return _rom("coef_rom", "post.coef_rom", "coefficients",
                    max(pool.weight_format.width for pool in pools), 1,
                    [(pool.name, [int(v) for v in pool.weight]) for pool in pools])

    def pool_bias_rom(self):
        """:class:`RomImage` of the subsampling biases, aligned (None without subsampling)."""
        pools = [job.pool for job in self.subsample_jobs]
        if not pools:
            return None
        values = [(pool.name, [int(v) for v in pool.aligned_bias()]) for pool in pools]
        return _rom("bias2_rom", "post.bias2_rom", "biases",
                    _magnitude_width(v for _, vs in values for v in vs), 1, values)

    def pool_table_rom(self):
        """:class:`RomImage` of the subsampling layers' tanh tables (None without any)."""
        tables = [(job.pool.name, [int(v) for v in job.pool.lut]) for job in self.subsample_jobs
                  if job.pool.activation == "tanh"]
        return _rom("pool_lut_rom", "post.pool_lut_rom", "table", self.value_width, 1,
                    tables) if tables else None

    def roms(self):
        """Every ROM holding artifact numbers (weights, biases, tables, coefficients)."""
        images = [self.weight_rom(), self.bias_rom(), self.table_rom(), self.coefficient_rom(),
                  self.pool_bias_rom(), self.pool_table_rom()]
        return [image for image in images if image is not None]


def _check_topology(layers):
    conv, dense, index = [], [], 0
    while index < len(layers) and layers[index].kind == "conv":
        if index + 1 >= len(layers) or layers[index + 1].kind not in ("maxpool", "subsample"):
            raise HwlenetError(f"layer {layers[index].name}: the accelerator needs a 2x2 "
                               "pooling or subsampling layer after every convolution")
        conv.append((layers[index], layers[index + 1]))
        index += 2
    dense = layers[index:]
    if not conv or not dense or any(layer.kind != "dense" for layer in dense):
        raise HwlenetError("the accelerator runs conv+pool pairs followed by dense layers")
    for layer, pool in conv:
        _, out_h, out_w = layer.out_shape
        if out_h % 2 or out_w % 2 or layer.weight.shape[2] != layer.weight.shape[3]:
            raise HwlenetError(f"layer {layer.name}: needs square kernels and even outputs")
    if len(conv) != 2:
        raise HwlenetError("the accelerator expects exactly two conv+pool stages (LeNet-5)")
    return conv, dense


def _windows(cols, window_lanes, first_pooled_width):
    return min(cols // window_lanes, first_pooled_width)


def _conv_jobs(conv_pairs, rows, cols, window_lanes):
    """The conv jobs and their input buffers for ``window_lanes`` columns per window."""
    windows = _windows(cols, window_lanes, int(conv_pairs[0][1].out_shape[2]))
    lanes = 2 * windows
    jobs, buffers = [], []
    for position, (layer, pool) in enumerate(conv_pairs):
        channels, kernel = layer.weight.shape[1], layer.weight.shape[2]
        maps, out_h, out_w = layer.out_shape
        job = ConvJob(position, layer, pool=pool)
        job.row_tiles = math.ceil(maps / rows)
        job.blocks = math.ceil(job.pooled_size / windows)
        job.phases = 4 // window_lanes
        job.tile_period = max(job.depth, rows, cols + 1)
        height, width = out_h + kernel - 1, out_w + kernel - 1
        stride = width + (out_w - width) % lanes
        buffer = FeatureBuffer(channels, height + height % 2, width, lanes, stride,
                               copies=2 if position == 0 else 1)
        job.wrap_rows = (stride - out_w) // lanes
        job.ktable = [(*divmod(buffer.position(c, ky, kx), lanes), ky % 2)
                      for c in range(channels) for ky in range(kernel) for kx in range(kernel)]
        jobs.append(job)
        buffers.append(buffer)
    return jobs, buffers


def _multiplier_widths(conv_pairs, dense_layers):
    computing = [pair[0] for pair in conv_pairs] + list(dense_layers)
    operand_widths = [lay.input_format.signed_width for lay in computing]
    operand_widths += [pool.output_format.signed_width for _, pool in conv_pairs]
    return max(lay.weight_format.width for lay in computing), max(operand_widths)


def multiplier_widths(qmodel):
    """``(weight_width, operand_width)`` of the processing elements' multiplier, sized from the
    widest formats in use: the widest weight of the layers the array computes (convolutions
    and dense layers) and the widest signed operand (every such layer's input and every
    pooled output that feeds the array). :func:`plan_hardware` sizes the array by this rule.

    Raises
    ------
    HwlenetError
        When the network is not two conv+pool stages followed by dense layers.
    """
    return _multiplier_widths(*_check_topology(qmodel.layers))


def plan_hardware(qmodel, rows=8, cols=8, window_lanes=None):
    """Lower ``qmodel`` onto a ``rows x cols`` array.

    Parameters
    ----------
    qmodel : QuantizedModel
    rows, cols : int
        Array size, each from 1 to :data:`ARRAY_LIMIT`.
    window_lanes : {4, 2, 1}, optional
        Columns per pooling window in a conv tile (at most ``cols``); by default the one with
        the fewest conv cycles per image (the most lanes on a tie).

    Raises
    ------
    HwlenetError
        When the network is not two conv+pool stages followed by dense layers, or the array
        size or window lanes are not supported.
    """
    parse_array(f"{rows}x{cols}")
    conv_pairs, dense_layers = _check_topology(qmodel.layers)
    candidates = [lanes for lanes in WINDOW_LANES if lanes <= cols]
    if window_lanes is None:
        def conv_cycles(lanes):
            jobs, _ = _conv_jobs(conv_pairs, rows, cols, lanes)
            return sum(job.tiles * job.tile_period for job in jobs)
        window_lanes = min(candidates, key=lambda lanes: (conv_cycles(lanes), -lanes))
    elif window_lanes not in candidates:
        raise HwlenetError(f"window lanes must be one of {candidates} on a {rows}x{cols} "
                           f"array, not {window_lanes!r}")
    jobs, buffers = _conv_jobs(conv_pairs, rows, cols, window_lanes)
    for layer in dense_layers:
        job = DenseJob(len(jobs), layer)
        job.row_tiles = math.ceil(layer.out_shape[0] / rows)
        job.tile_period = max(job.depth, rows, cols + 1)
        job.ktable = [(0, k) for k in range(job.depth)]
        jobs.append(job)
    computing = [pair[0] for pair in conv_pairs] + list(dense_layers)
    weight_width, operand_width = _multiplier_widths(conv_pairs, dense_layers)
    bias_width = _magnitude_width(b for lay in computing for b in lay.aligned_bias())
    pool_c, pool_h, pool_w = conv_pairs[-1][1].out_shape
    plan = HardwarePlan(
        qmodel=qmodel, rows=rows, cols=cols, jobs=jobs,
        input_buffer=buffers[0], mid_buffer=buffers[1],
        fc_input_depth=pool_c * jobs[len(conv_pairs) - 1].blocks,
        weight_width=weight_width,
        operand_width=operand_width,
        accumulator_width=max(lay.accumulator_width for lay in computing),
        bias_width=bias_width,
        logit_format=dense_layers[-1].output_format,
        window_lanes=window_lanes,
    )
    subbanks = plan.fc_subbanks
    plan.dense_jobs[0].ktable = [(w % subbanks, plan.fc_address(c, w // subbanks))
                                 for c in range(pool_c) for w in range(pool_h * pool_w)]
    return plan
