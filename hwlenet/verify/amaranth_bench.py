"""The exported testbench's checks, run on Amaranth's own Python simulator."""

import contextlib
from pathlib import Path

import numpy as np
from amaranth.sim import Simulator

from ..errors import HwlenetError
from ..rtl.accelerator import buffer_names
from .vectors import read_vectors

__all__ = ["Scoreboard", "run_amaranth_bench"]


class Scoreboard:
    """Checks every written value of every stored layer, and that each expected value of an
    image is written exactly once before that image's result arrives.

    ``expected`` maps a layer's artifact index to ``(name, values)`` with ``values`` of shape
    ``(images, size)``. Mismatches are reported as dicts with ``image``, ``layer``,
    ``element``, ``expected``, ``actual`` and ``kind`` (value, missing, duplicate, range,
    image-range, layer, and collision: a feature buffer, named as the layer, read at an address
    in the cycle it is written).
    """

    def __init__(self, expected, window):
        self.expected = expected
        self.window = window
        self.seen = {index: np.zeros((window, values.shape[1]), bool)
                     for index, (_, values) in expected.items()}
        self.mismatches = 0
        self.first = None
        self.last_layer = "none"

    def mismatch(self, image, layer, element, want, got, kind, cycle):
        if self.first is None:
            self.first = {"image": int(image), "layer": layer, "element": int(element),
                          "expected": int(want), "actual": int(got), "kind": kind,
                          "cycle": int(cycle)}
        self.mismatches += 1

    def write(self, layer, image, element, value, received, images, cycle):
        """One traced write of ``value`` to ``element`` of ``layer`` for ``image``."""
        if not received <= image < min(received + self.window, images):
            self.mismatch(image, "any-layer", element, 0, value, "image-range", cycle)
            return
        if layer not in self.expected:
            self.mismatch(image, "unknown-layer", element, 0, value, "layer", cycle)
            return
        name, values = self.expected[layer]
        self.last_layer = name
        if element >= values.shape[1]:
            self.mismatch(image, name, element, 0, value, "range", cycle)
            return
        seen = self.seen[layer][image % self.window]
        want = values[image, element]
        if seen[element]:
            self.mismatch(image, name, element, want, value, "duplicate", cycle)
        elif value != want:
            self.mismatch(image, name, element, want, value, "value", cycle)
        seen[element] = True

    def close(self, image, cycle):
        """``image``'s result arrived: every element of every layer must have been written."""
        for layer, (name, values) in self.expected.items():
            seen = self.seen[layer][image % self.window]
            if not seen.all():
                element = int(np.argmin(seen))
                self.mismatch(image, name, element, values[image, element], 0, "missing", cycle)
            seen[:] = False


def run_amaranth_bench(directory, manifest, images, *, design, plan, stall_seed=None,
                       wave=None, stop_at_first=False, on_image=None):
    """Feed ``images`` exported vectors to ``design`` in Amaranth's simulator and check them
    as the HDL testbench does (values, scoreboard, per-result watchdog); returns the same
    report. ``manifest`` is one :func:`~hwlenet.verify.cosim.read_export` checked; a vector
    file it lacks or a damaged one raises :class:`~hwlenet.errors.HwlenetError`.

    With ``stall_seed``, the pixel source pauses and the result sink withholds ``ready`` at
    random (seeded) cycles, to exercise both streams' back-pressure. With ``wave``, a VCD of
    the run is written to that path. With ``stop_at_first``, the run ends at the first
    mismatch. ``on_image``, when given, is called after each checked image.
    """
    directory = Path(directory)
    dut = design
    buffers = buffer_names(plan)
    bench = manifest["bench"]
    classes = bench["classes"]
    files = {entry["name"]: entry for entry in manifest["vector_files"]}
    needed = ["pixels", "logits", "labels", *(layer["name"] for layer in manifest["traced_layers"])]
    missing = [name for name in needed if name not in files]
    if missing:
        raise HwlenetError(f"{directory / 'manifest.json'} lists no vector file for "
                           f"{', '.join(missing)}; re-create the folder with hwlenet emit-verilog")
    pixels = read_vectors(directory, files["pixels"], images).ravel()
    logits = read_vectors(directory, files["logits"], images)
    labels = read_vectors(directory, files["labels"], images).ravel()
    expected = {layer["index"]: (layer["name"], read_vectors(directory, files[layer["name"]],
                                                             images))
                for layer in manifest["traced_layers"]}
    scoreboard = Scoreboard(expected, bench["window"])
    report = {"images": 0, "mismatches": 0, "cycles": 0, "first_mismatch": None, "hang": None}
    rng = np.random.default_rng(stall_seed)
    stalling = stall_seed is not None

    async def feed(ctx):
        for index, pixel in enumerate(pixels):
            while stalling and rng.random() < 0.3:
                ctx.set(dut.pixels.valid, 0)
                await ctx.tick()
            last = int(index == len(pixels) - 1)
            ctx.set(dut.pixels.payload, {"pixel": int(pixel), "last": last})
            ctx.set(dut.pixels.valid, 1)
            await ctx.tick().until(dut.pixels.ready)
        ctx.set(dut.pixels.valid, 0)

    async def check(ctx):
        ctx.set(dut.results.ready, 1)
        cycle, first_cycle, received, last_progress = 0, None, 0, 0
        traced = (dut.trace,) if manifest["trace"] else ()
        async for _, _, started, valid, ready, payload, *trace in ctx.tick().sample(
                dut.pixels.valid & dut.pixels.ready, dut.results.valid, dut.results.ready,
                dut.results.payload, *traced):
            cycle += 1
            if stalling:
                ctx.set(dut.results.ready, int(rng.random() < 0.5))
            if started and first_cycle is None:
                first_cycle = last_progress = cycle
            for beat in trace:
                for lane in range(plan.cols):
                    if beat.valid[lane]:
                        scoreboard.write(beat.layer, beat.image[lane], beat.index[lane],
                                         beat.value[lane], received, images, cycle)
                for bit, buffer in enumerate(buffers):
                    if beat.collision >> bit & 1:
                        scoreboard.mismatch(received, buffer, 0, 0, 0, "collision", cycle)
            if valid and ready:
                for i in range(classes):
                    if payload.logits[i] != logits[received, i]:
                        scoreboard.mismatch(received, "logits", i, logits[received, i],
                                            payload.logits[i], "value", cycle)
                if payload.label != labels[received]:
                    scoreboard.mismatch(received, "class", 0, labels[received], payload.label,
                                        "value", cycle)
                scoreboard.close(received, cycle)
                received += 1
                last_progress = cycle
                if on_image is not None:
                    on_image()
                if received == images:
                    report["cycles"] = cycle - first_cycle + 1
                    break
            if first_cycle is not None and cycle - last_progress > bench["watchdog"]:
                report["hang"] = {"image": received, "last_layer": scoreboard.last_layer,
                                  "cycle": cycle}
                scoreboard.mismatch(received, "hang", 0, 0, 0, "hang", cycle)
                report["cycles"] = cycle - first_cycle + 1
                break
            if stop_at_first and scoreboard.mismatches:
                report["cycles"] = cycle - first_cycle + 1
                break
        report["images"] = received

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(feed, background=True)
    simulator.add_testbench(check)
    recording = simulator.write_vcd(str(wave)) if wave else contextlib.nullcontext()
    with recording:
        simulator.run()
    report["mismatches"] = scoreboard.mismatches
    report["first_mismatch"] = scoreboard.first
    return report
