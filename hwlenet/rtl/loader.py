"""The input loader: streams each image's pixels into a free copy of the banked input buffer."""

from amaranth.hdl import C, Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import WritePort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .fixedpoint import format_shape

__all__ = ["InputLoader", "image_slots_signature", "pixel_layout"]


def pixel_layout(plan):
    """Input beat: one pixel of the first layer's input format, row-major; ``last`` on the
    final pixel of the final image (it ends a partial batch)."""
    return data.StructLayout({"pixel": format_shape(plan.input_format), "last": 1})


def image_slots_signature():
    """The two input-buffer copies, seen from the loader: ``full[i]`` while copy ``i`` holds an
    image not yet released, ``last[i]`` when that image was marked last; the consumer pulses
    ``release`` when it no longer needs the oldest full copy (copies are released in the order
    they were filled)."""
    return wiring.Signature({"full": Out(2), "last": Out(2), "release": In(1)})


class InputLoader(wiring.Component):
    """Writes pixel ``(c, y, x)`` of each image (beats in ``(c, y, x)`` order) into the bank and
    row ``locate(c, y + pad, x + pad, copy)`` of the input buffer
    (:attr:`HardwarePlan.input_buffer`, ``pad`` the first convolution's padding), alternating
    between its two copies. The write port's signals are registered: a pixel accepted in cycle
    ``t`` is on its bank's port in cycle ``t + 1``.

    A pixel is accepted (``ready``) while the copy being filled is not full; the image's last
    pixel marks the copy full in the loader's own flags the next cycle, and ``images`` shows
    those flags registered once more (``LATENCY = 2``), so that the handshake's loop
    (``full`` -> ``ready`` -> ``full``) stays beside the loader while the consumer, which may
    sit across the device, gets a register of its own. No job reads an image sooner than the
    :class:`OperandFeeder`'s address stages after it is visible. Each ``release`` empties the
    oldest full copy in the loader's flags the next cycle, on ``images`` the cycle after.

    Parameters
    ----------
    plan : HardwarePlan
    """

    LATENCY = 2

    def __init__(self, *, plan):
        self.plan = plan
        buffer = plan.input_buffer
        super().__init__({
            "pixels": In(stream.Signature(pixel_layout(plan))),
            "writes": In(WritePort.Signature(addr_width=ceil_log2(buffer.depth),
                                             shape=signed(plan.operand_width))
                     ).array(buffer.banks),
            "images": Out(image_slots_signature()),
        })

    def elaborate(self, platform):
        m = Module()
        plan = self.plan
        buffer = plan.input_buffer
        channels, height, width = plan.image_shape
        pad = plan.conv_jobs[0].layer.padding
        # one channel needs no channel counter (a zero-width signal)
        pixel_c = Signal(range(channels), name="pixel_c") if channels > 1 else C(0, 1)
        pixel_x = Signal(range(width))
        pixel_y = Signal(range(height))
        filling = Signal()
        releasing = Signal()
        full, last = Signal(2), Signal(2)
        m.d.sync += [self.images.full.eq(full), self.images.last.eq(last)]
        accept = self.pixels.valid & self.pixels.ready
        m.d.comb += self.pixels.ready.eq(~full.bit_select(filling, 1))

        # registered, so that the address arithmetic and the banks' block RAMs, spread over
        # the device, are a cycle apart
        pixel_bank, pixel_row = buffer.locate(pixel_c, pixel_y + pad, pixel_x + pad, filling)
        for bank, port in enumerate(self.writes):
            m.d.sync += [port.addr.eq(pixel_row), port.data.eq(self.pixels.payload.pixel),
                         port.en.eq(accept & (pixel_bank == bank))]

        image_done = (accept & (pixel_x == width - 1) & (pixel_y == height - 1)
                      & (pixel_c == channels - 1))
        with m.If(accept):
            m.d.sync += pixel_x.eq(pixel_x + 1)
            with m.If(pixel_x == width - 1):
                m.d.sync += [pixel_x.eq(0), pixel_y.eq(pixel_y + 1)]
                with m.If(pixel_y == height - 1):
                    m.d.sync += pixel_y.eq(0)
                    if channels > 1:
                        m.d.sync += pixel_c.eq(pixel_c + 1)
                    with m.If(pixel_c == channels - 1):
                        m.d.sync += filling.eq(~filling)
                        if channels > 1:
                            m.d.sync += pixel_c.eq(0)
        with m.If(self.images.release):
            m.d.sync += releasing.eq(~releasing)
        for copy in range(2):
            with m.If(image_done & (filling == copy)):
                m.d.sync += [full[copy].eq(1), last[copy].eq(self.pixels.payload.last)]
            with m.If(self.images.release & (releasing == copy)):
                m.d.sync += full[copy].eq(0)
        return m
