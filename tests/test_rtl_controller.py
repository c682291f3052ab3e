from collections import Counter

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwlenet.checkpoint import resolve_model
from hwlenet.quant.quantize import quantize_model
from hwlenet.rtl.controller import Controller
from hwlenet.rtl.plan import plan_hardware

CALIBRATION = np.random.default_rng(2).integers(0, 256, (16, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize("rows,cols", [(8, 8), (4, 4), (3, 8)])
def test_controller_issues_every_step_once_with_modelled_timing(rows, cols):
    """One full batch of ``cols`` images, with ``done`` arriving when the real pipeline
    would report the last write of each job."""
    qmodel = quantize_model(resolve_model("lenet5-relu")[0], CALIBRATION)
    plan = plan_hardware(qmodel, rows, cols)
    images = cols
    dut = Controller(plan=plan)
    drain = plan.barrier - 1  # flush token -> post-processor ``done`` (seen one cycle later)
    issued, flush_cycles = Counter(), []
    state = {"cycle": 0}

    async def bench(ctx):
        ctx.set(dut.images_loaded, images)
        ctx.set(dut.last_flags, 0)
        pending_done = []
        while len(flush_cycles) < len(plan.jobs) + len(plan.conv_jobs) * (images - 1):
            cycle = state["cycle"]
            ctx.set(dut.done, int(cycle in pending_done))
            token = ctx.get(dut.token)
            if token.valid:
                issued[(token.job, token.row_tile, token.block_row, token.block_col,
                        token.k)] += 1
            if token.capture and not token.valid and token.clear:
                flush_cycles.append(cycle)
                pending_done.append(cycle + drain)
            await ctx.tick()
            state["cycle"] += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    for job in plan.jobs:
        runs = images if job.kind == "conv" else 1
        keys = [key for key in issued if key[0] == job.index]
        assert len(keys) == job.tiles * job.depth
        assert all(issued[key] == runs for key in keys)
    # the first token comes one cycle after reset; then every job's tokens and flush, and a
    # barrier before each job that reads its predecessor's results, nothing else
    per_image = sum(plan.job_cycles(job) for job in plan.conv_jobs) + plan.barrier
    batch = images * per_image + sum(plan.job_cycles(job) + plan.barrier
                                     for job in plan.dense_jobs)
    assert flush_cycles[-1] == batch
