"""The controller: sequences every image, batch, job, tile and step of the accelerator."""

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .arith import divmod_constant, scaled
from .loader import image_slots_signature
from .postproc import tile_tag_layout

__all__ = ["Controller", "issue_signature", "token_layout"]


def token_layout(plan):
    """One issue slot: the flags for the array, the operand coordinates for the feeder (conv
    jobs: ``base``, the feature-buffer row of the block's first window, whose position is a
    multiple of the buffer's lanes, and ``window_col``, that window's pooled column) and the
    tag of the tile being captured."""
    tag = tile_tag_layout(plan)
    return data.StructLayout({
        "valid": 1, "clear": 1, "capture": 1,
        "job": tag["job"].shape,
        "row_tile": tag["row_tile"].shape,
        "base": unsigned(ceil_log2(max(plan.input_buffer.depth, plan.mid_buffer.depth) + 1)),
        "window_col": tag["window_col"].shape,
        "phase": tag["phase"].shape,
        "k": unsigned(ceil_log2(max(job.tile_period for job in plan.jobs) + 1)),
        "copy": 1,
        "tag": tag,
    })


def issue_signature(plan):
    """The controller's output, seen from the controller: one ``token`` per cycle."""
    return wiring.Signature({"token": Out(token_layout(plan))})


class Controller(wiring.Component):
    """Issues one token per cycle (combinationally from its state, ``LATENCY = 0``).

    Per batch of up to ``cols`` images: for each image, the conv jobs in order (the first waits
    until the image is loaded, and releases the image's input buffer once issued); then the
    dense jobs, with the batch as array columns. A job walks its tiles (row tile, block of
    windows, phase), each for ``tile_period`` cycles of which the first ``depth``
    multiply-accumulate, and ends with one flush token that captures
    the last tile. A job that reads what the previous job wrote first waits until the
    post-processor reports that job done (``done``). A batch ends after ``cols`` images or
    after an image marked last. The final job also waits for the result streamer to be idle.

    For timing, the tile position (step, phase, block, row tile) is put back to the first tile
    in every cycle that is not issuing, whatever comes next, and the tile-end decisions read
    registered comparisons (valid from a tile's second cycle on, as ``tile_period >= 2``): the
    position registers' enables depend only on the state and those registers.

    Parameters
    ----------
    plan : HardwarePlan
    """

    LATENCY = 0

    def __init__(self, *, plan):
        self.plan = plan
        super().__init__({
            "issue": Out(issue_signature(plan)),
            "images": In(image_slots_signature()),
            "done": In(1),
            "streamer_busy": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        plan = self.plan
        jobs, conv, dense = plan.jobs, plan.conv_jobs, plan.dense_jobs
        tag_shape = tile_tag_layout(plan)
        token = self.issue.token

        job = Signal.like(token.job)
        row_tile = Signal.like(token.row_tile)
        block, window_row, window_col = (Signal(tag_shape[name].shape, name=name)
                                         for name in ("block", "window_row", "window_col"))
        base = Signal.like(token.base, name="base")
        phase = Signal.like(token.phase, name="phase")
        step = Signal.like(token.k)
        image = Signal(32)
        batch_base = Signal(32)
        slot = Signal(range(plan.cols + 1))
        last_image = Signal()
        pending = Signal()
        pending_tag = Signal(tag_shape)
        outstanding = Signal(4)
        flush = Signal()

        m.d.sync += outstanding.eq(outstanding + flush - self.done)

        # The job's constants and the next block's position are registers: the constants are
        # loaded with the job, and the next block is computed from the current one in the
        # cycle after it changes (a tile lasts ``tile_period >= 2`` cycles), so that neither a
        # job multiplexer nor the window arithmetic lies on the tile-end paths.
        def constants(item):
            return {"depth": item.depth, "last_step": item.tile_period - 1,
                    "last_row_tile": item.row_tiles - 1,
                    "last_block": getattr(item, "blocks", 1) - 1,
                    "last_phase": getattr(item, "phases", 1) - 1}

        limits = {name: Signal(range(max(max(constants(item)[name] for item in jobs), 1) + 1),
                               name=name, init=constants(jobs[0])[name])
                  for name in constants(jobs[0])}
        next_window_col = Signal.like(window_col)
        wraps = Signal(range(plan.windows // min(j.pooled_width for j in conv) + 2))
        base_step = Signal.like(base)
        with m.Switch(job):
            for item in conv:
                with m.Case(item.index):
                    # the next block's first window: ``windows`` further on, row-major
                    carried, column = divmod_constant(
                        window_col + plan.windows, item.pooled_width,
                        item.pooled_width + plan.windows)
                    m.d.sync += [wraps.eq(carried), next_window_col.eq(column),
                                 base_step.eq(1 + scaled(carried, item.wrap_rows))]

        def set_job(index):
            """Make job ``index`` (an integer) current, with its constants."""
            m.d.sync += job.eq(index)
            m.d.sync += [limits[name].eq(value) for name, value in
                         constants(jobs[index]).items()]

        is_dense = Signal()
        m.d.comb += is_dense.eq(job >= conv[-1].index + 1)
        last_phase = phase == limits["last_phase"]
        last_block = block == limits["last_block"]
        last_rtile = row_tile == limits["last_row_tile"]
        last_tile = last_phase & last_block & last_rtile
        current_tag = Signal(tag_shape)
        m.d.comb += [
            current_tag.job.eq(job), current_tag.row_tile.eq(row_tile),
            current_tag.block.eq(block), current_tag.window_row.eq(window_row),
            current_tag.window_col.eq(window_col), current_tag.phase.eq(phase),
            current_tag.image.eq(image), current_tag.slot.eq(slot),
            current_tag.count.eq(slot + 1),
            current_tag.last.eq(last_tile),
        ]
        with m.If(is_dense):
            m.d.comb += [current_tag.image.eq(batch_base), current_tag.count.eq(slot)]

        def first_block():
            m.d.sync += [block.eq(0), window_row.eq(0), window_col.eq(0), base.eq(0),
                         phase.eq(0)]

        # ``step == last_step`` and the last phase, block and row tile, registered
        at_last_step, at_last_phase, at_last_block, at_last_rtile = (
            Signal(name=name) for name in ("at_last_step", "at_last_phase", "at_last_block",
                                           "at_last_rtile"))
        m.d.sync += [at_last_phase.eq(last_phase), at_last_block.eq(last_block),
                     at_last_rtile.eq(last_rtile), at_last_step.eq(0)]
        at_last_tile = at_last_phase & at_last_block & at_last_rtile

        def start_image(next_image):
            """Go to the first conv job of ``next_image`` now if it is loaded."""
            with m.If(self.images.full.bit_select(next_image[0], 1)):
                m.d.sync += last_image.eq(self.images.last.bit_select(next_image[0], 1))
                set_job(conv[0].index)
                m.next = "RUN"
            with m.Else():
                m.next = "WAIT_IMAGE"

        with m.FSM(init="WAIT_IMAGE") as fsm:
            with m.State("WAIT_IMAGE"):
                start_image(image)
            with m.State("RUN"):
                m.d.comb += [
                    token.valid.eq(step < limits["depth"]), token.clear.eq(step == 0),
                    token.capture.eq((step == 0) & pending), token.tag.eq(pending_tag),
                    token.job.eq(job), token.row_tile.eq(row_tile),
                    token.base.eq(base), token.window_col.eq(window_col),
                    token.phase.eq(phase), token.k.eq(step), token.copy.eq(image[0]),
                ]
                with m.If(step == 0):
                    m.d.sync += [pending.eq(1), pending_tag.eq(current_tag)]
                m.d.sync += step.eq(step + 1)
                m.d.sync += at_last_step.eq(step + 1 == limits["last_step"])
                with m.If(at_last_step):
                    m.d.sync += [step.eq(0), at_last_step.eq(0)]
                    with m.If(at_last_tile):
                        m.next = "FLUSH"
                    with m.Elif(~at_last_phase):
                        m.d.sync += phase.eq(phase + 1)
                    with m.Elif(~at_last_block):
                        m.d.sync += [phase.eq(0), block.eq(block + 1),
                                     window_col.eq(next_window_col),
                                     window_row.eq(window_row + wraps),
                                     base.eq(base + base_step)]
                    with m.Else():
                        first_block()
                        m.d.sync += row_tile.eq(row_tile + 1)
            with m.State("FLUSH"):
                m.d.comb += [token.capture.eq(1), token.clear.eq(1), token.tag.eq(pending_tag),
                             flush.eq(1)]
                m.d.sync += pending.eq(0)
                with m.Switch(job):
                    for item in jobs:
                        with m.Case(item.index):
                            if item is conv[-1]:
                                batch_full = (slot == plan.cols - 1) | last_image
                                m.d.sync += slot.eq(slot + 1)
                                with m.If(batch_full):
                                    set_job(dense[0].index)
                                    m.next = "BARRIER"
                                with m.Else():
                                    m.d.sync += image.eq(image + 1)
                                    start_image(image + 1)
                            elif item is dense[-1]:
                                m.d.sync += [slot.eq(0), image.eq(image + 1),
                                             batch_base.eq(image + 1)]
                                start_image(image + 1)
                            else:
                                if item is conv[0]:
                                    m.d.comb += self.images.release.eq(1)
                                set_job(item.index + 1)
                                m.next = "BARRIER"
            with m.State("BARRIER"):
                blocked = (job == dense[-1].index) & self.streamer_busy
                with m.If((outstanding == 0) & ~blocked):
                    m.next = "RUN"
        with m.If(~fsm.ongoing("RUN")):
            first_block()
            m.d.sync += [row_tile.eq(0), step.eq(0)]
        return m
