"""Lowering onto any array: sizes, window lanes, column members and the banked buffers."""

import itertools
import math

import pytest

from hwlenet import HwlenetError
from hwlenet.rtl.plan import ARRAY_LIMIT, WINDOW_LANES, parse_array


@pytest.mark.parametrize("text,expected", [("1x1", (1, 1)), ("3X5", (3, 5)), ("4x7", (4, 7)),
                                           (f"{ARRAY_LIMIT}x{ARRAY_LIMIT}",
                                            (ARRAY_LIMIT, ARRAY_LIMIT))])
def test_parse_array_accepts_every_size_in_range(text, expected):
    assert parse_array(text) == expected


@pytest.mark.parametrize("text,message", [("0x4", "rows must be from 1"),
                                          (f"4x{ARRAY_LIMIT + 1}", "cols must be from 1"),
                                          ("8", "must look like 8x8"), ("axb", "look like")])
def test_parse_array_refuses_the_rest(text, message):
    with pytest.raises(HwlenetError, match=message):
        parse_array(text)


def conv_cycles(plan):
    """Issue cycles of the conv jobs, from the layer shapes: row tiles, blocks of ``windows``
    pooling windows (row-major over the whole pooled map) and phases, each for
    ``max(depth, rows, cols + 1)`` cycles."""
    total = 0
    for job in plan.conv_jobs:
        maps, pooled_h, pooled_w = job.pool.out_shape
        depth = math.prod(job.layer.weight.shape[1:])
        tiles = (math.ceil(maps / plan.rows) * math.ceil(pooled_h * pooled_w / plan.windows)
                 * 4 // plan.window_lanes)
        total += tiles * max(depth, plan.rows, plan.cols + 1)
    return total


@pytest.mark.parametrize("rows,cols", [(1, 1), (2, 2), (3, 5), (4, 6), (4, 7), (8, 8),
                                       (12, 12), (3, 8)])
def test_default_window_lanes_give_the_fewest_conv_cycles(plans, rows, cols):
    chosen = plans("lenet5-relu", rows, cols)
    options = {lanes: conv_cycles(plans("lenet5-relu", rows, cols, lanes))
               for lanes in WINDOW_LANES if lanes <= cols}
    best = min(options.values())
    assert conv_cycles(chosen) == best
    assert chosen.window_lanes == max(lanes for lanes, cycles in options.items()
                                      if cycles == best)
    assert sum(job.tiles * job.tile_period for job in chosen.conv_jobs) == best


@pytest.mark.parametrize("rows,cols,lanes", [(2, 2, 4), (8, 8, 3), (4, 1, 2)])
def test_impossible_window_lanes_are_refused(plans, rows, cols, lanes):
    with pytest.raises(HwlenetError, match="window lanes must be one of"):
        plans("lenet5-relu", rows, cols, lanes)


@pytest.mark.parametrize("cols,lanes", [(1, 1), (2, 2), (3, 1), (5, 4), (6, 2), (7, 1), (8, 4)])
def test_every_window_member_has_one_column_and_phase(plans, cols, lanes):
    plan = plans("lenet5-classic", 2, cols, lanes)
    members = {}
    for column, phase in itertools.product(range(cols), range(plan.phases)):
        member = plan.column_member(column, phase)
        if member is not None:
            assert member not in members, (column, phase)
            members[member] = column
    assert sorted(members) == sorted(itertools.product(range(plan.windows), (0, 1), (0, 1)))
    assert len({column for column in members.values()}) == plan.windows * lanes


@pytest.mark.parametrize("cols,lanes", [(1, 1), (3, 1), (5, 4), (6, 2), (8, 4), (7, 1), (12, 4),
                                        (40, 2), (64, 4)])
def test_buffers_place_every_value_once_and_tiles_read_without_conflicts(plans, cols, lanes):
    """Each buffer element has its own (bank, row) inside the buffer; in every step of every
    tile of a conv job the working columns read distinct banks (windows past the map
    included: they are read too); the writes of one post-processor output of the first conv
    job (a block of consecutive windows) go to distinct banks."""
    plan = plans("lenet5-relu", 2, cols, lanes)
    for job, buffer in zip(plan.conv_jobs, (plan.input_buffer, plan.mid_buffer)):
        elements = [(c, y, x, copy) for copy in range(buffer.copies)
                    for c in range(buffer.channels) for y in range(buffer.height)
                    for x in range(buffer.width)]
        places = {buffer.locate(*element) for element in elements}
        assert len(places) == len(elements)
        assert all(0 <= bank < buffer.banks and 0 <= row < buffer.depth for bank, row in places)
        kernel = job.layer.weight.shape[2]
        for block, phase, channel, ky, kx in itertools.product(
                range(job.blocks), range(plan.phases), (0, buffer.channels - 1), range(kernel),
                range(kernel)):
            banks = []
            for column in range(cols):
                member = plan.column_member(column, phase)
                if member is not None:
                    window, dy, dx = member
                    py, px = divmod(block * plan.windows + window, job.pooled_width)
                    banks.append(buffer.locate(channel, 2 * py + dy + ky, 2 * px + dx + kx)[0])
            assert len(set(banks)) == len(banks), (block, phase, ky, kx)
    first, pad = plan.conv_jobs[0], plan.conv_jobs[1].layer.padding
    for block, channel in itertools.product(range(first.blocks), range(first.pool.out_shape[0])):
        windows = [divmod(w, first.pooled_width)
                   for w in range(block * plan.windows,
                                  min((block + 1) * plan.windows, first.pooled_size))]
        banks = [plan.mid_buffer.locate(channel, py + pad, px + pad)[0] for py, px in windows]
        assert len(set(banks)) == len(banks)


@pytest.mark.parametrize("rows,cols", [(1, 1), (3, 5), (4, 6), (8, 8), (16, 16)])
def test_cycle_model_counts_every_mac_once(plans, rows, cols):
    model = plans("lenet5-classic", rows, cols).cycle_model()
    assert 0 < model["utilization"] <= 1
    assert all(0 < layer["utilization"] <= 1 for layer in model["layers"])
    assert sum(layer["cycles_per_image"] for layer in model["layers"]) == \
        pytest.approx(model["cycles_per_image"])
