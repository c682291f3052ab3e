import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hwlenet import HwlenetError
from hwlenet.checkpoint import resolve_model
from hwlenet.quant.quantize import quantize_model
from hwlenet.rtl.controller import Controller, token_layout
from hwlenet.rtl.feeder import OperandFeeder
from hwlenet.rtl.plan import plan_hardware
from hwlenet.rtl.postproc import PostProcessor, tile_tag_layout
from hwlenet.rtl.systolic import SystolicArray
from hwlenet.rtl.writer import BufferWriter

CALIBRATION = np.random.default_rng(2).integers(0, 256, (16, 28, 28), dtype=np.uint8)


class ControlLoop(wiring.Component):
    """The controller closing its loop through the real operand feeder, systolic array,
    post-processor and buffer writer, connected as the accelerator connects them (the feature
    buffers are left out: operands read as zero; only the timing matters), with the writer's
    ``done`` going back."""

    def __init__(self, plan):
        self.plan = plan
        super().__init__({"token": Out(token_layout(plan)), "full": In(2), "last": In(2),
                          "done": Out(1)})

    def elaborate(self, platform):
        m = Module()
        plan = self.plan
        m.submodules.controller = controller = Controller(plan=plan)
        m.submodules.feeder = feeder = OperandFeeder(plan=plan)
        m.submodules.array = array = SystolicArray(
            rows=plan.rows, cols=plan.cols, weight_width=plan.weight_width,
            operand_width=plan.operand_width, accumulator_width=plan.accumulator_width,
            tag_shape=tile_tag_layout(plan))
        m.submodules.post = post = PostProcessor(plan=plan)
        m.submodules.writer = writer = BufferWriter(plan=plan)
        wiring.connect(m, controller.issue, feeder.issue)
        wiring.connect(m, feeder.edge, array.edge)
        wiring.connect(m, array.drain, post.drain)
        wiring.connect(m, post.output, writer.output)
        m.d.comb += [
            controller.images.full.eq(self.full),
            controller.images.last.eq(self.last),
            controller.done.eq(writer.done),
            self.token.eq(controller.issue.token), self.done.eq(writer.done),
        ]
        return m


def run_batch(plan, images):
    """Simulate one batch of ``images`` images (2 at most; the last one marked last, so the
    batch ends there); per cycle, whether a token was valid, whether it was a flush, its job
    and whether the post-processor reported a job done."""
    dut = ControlLoop(plan)
    jobs_per_batch = len(plan.conv_jobs) * images + len(plan.dense_jobs)
    cycles = []

    async def bench(ctx):
        ctx.set(dut.full, (1 << images) - 1)
        ctx.set(dut.last, 1 << (images - 1))
        done = 0
        async for _, _, token, finished in ctx.tick().sample(dut.token, dut.done):
            flush = token.capture and not token.valid
            # a flush token names its job only in the tag of the tile it captures
            cycles.append((token.valid, flush, token.tag.job if flush else token.job, finished))
            done += finished
            if done == jobs_per_batch:
                break
            assert len(cycles) < 200_000

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return cycles


@pytest.mark.parametrize("name,rows,cols", [("lenet5-relu", 8, 8), ("lenet5-classic", 4, 4),
                                            ("lenet5-relu", 3, 8), ("lenet5-classic", 3, 5),
                                            ("lenet5-relu", 4, 6)])
def test_measured_barrier_is_the_planned_one(name, rows, cols):
    """Idle cycles between a job's flush and the next job's first token, measured with the
    real array and post-processor: ``plan.barrier`` before a job that reads its predecessor's
    results (and never before that job is reported done), none before the next image."""
    qmodel = quantize_model(resolve_model(name)[0], CALIBRATION)
    plan = plan_hardware(qmodel, rows, cols)
    images = 2
    cycles = run_batch(plan, images)
    conv, dense = plan.conv_jobs, plan.dense_jobs
    flushes = [cycle for cycle, (_, flush, _, _) in enumerate(cycles) if flush]
    done = [cycle for cycle, (*_, finished) in enumerate(cycles) if finished]
    expected_jobs = [job.index for _ in range(images) for job in conv] + [j.index for j in dense]
    assert [cycles[cycle][2] for cycle in flushes] == expected_jobs
    assert len(done) == len(flushes)
    for position, flush in enumerate(flushes[:-1]):
        following = next(cycle for cycle in range(flush + 1, len(cycles)) if cycles[cycle][0])
        idle = following - flush - 1
        job, next_job = expected_jobs[position], expected_jobs[position + 1]
        reads_predecessor = next_job != conv[0].index
        assert cycles[following][2] == next_job
        if reads_predecessor:
            assert idle == plan.barrier, (position, job, next_job)
            assert done[position] < following
        else:
            assert idle == 0, (position, job, next_job)
    # the batch's issue slots: every job's tiles and flush, plus the barriers measured above
    issue = sum(plan.job_cycles(job) for job in conv) * images + sum(
        plan.job_cycles(job) for job in dense)
    barriers = (len(conv) - 1) * images + len(dense)
    assert flushes[-1] - flushes[0] + plan.job_cycles(conv[0]) == issue + barriers * plan.barrier


@pytest.fixture(scope="module")
def plan():
    return plan_hardware(quantize_model(resolve_model("lenet5-relu")[0], CALIBRATION), 8, 8)


@pytest.mark.parametrize("images", [0, -1, 1.5, True, "2"])
def test_predicted_cycles_refuses_runs_without_images(plan, images):
    with pytest.raises(HwlenetError, match="at least 1 image"):
        plan.predicted_cycles(images)


def test_predicted_cycles_grow_by_whole_batches(plan):
    first = plan.predicted_cycles(1)
    assert first > 784
    assert plan.predicted_cycles(np.int64(3)) == plan.predicted_cycles(3)
    batch = plan.predicted_cycles(plan.cols + 1) - first
    assert plan.predicted_cycles(2 * plan.cols + 1) - plan.predicted_cycles(plan.cols + 1) \
        == batch
