"""The exported testbench's checks, run on Amaranth's own Python simulator."""

from pathlib import Path

import numpy as np
from amaranth.sim import Simulator

from ..quant.artifact import load_artifact
from .accelerator import LeNetAccelerator
from .plan import plan_hardware

__all__ = ["read_hex", "run_amaranth_bench"]


def read_hex(path, bits, signed):
    """Integers from a ``$readmemh`` file of ``bits``-bit words."""
    values = np.array([int(line, 16) for line in Path(path).read_text().split()], dtype=np.int64)
    if signed:
        values = np.where(values >= 1 << (bits - 1), values - (1 << bits), values)
    return values


def run_amaranth_bench(directory, manifest, images, stall_seed=None):
    """Feed ``images`` exported vectors to the design in Amaranth's simulator and compare every
    traced value, logit and class; returns the same report as the HDL testbenches.

    With ``stall_seed``, the pixel source pauses and the result sink withholds ``ready`` at
    random (seeded) cycles, to exercise both streams' back-pressure.
    """
    directory = Path(directory)
    qmodel = load_artifact(directory / "model.npz")
    plan = plan_hardware(qmodel, manifest["array"]["rows"], manifest["array"]["cols"])
    dut = LeNetAccelerator(plan=plan)
    widths = manifest["widths"]
    vectors = directory / "vectors"
    pixels = read_hex(vectors / "pixels.hex", 8, False)[: images * 784]
    logits = read_hex(vectors / "logits.hex", widths["logit"], True).reshape(-1, 10)
    labels = read_hex(vectors / "labels.hex", 4, False)
    expected = {layer["index"]: (layer["name"], read_hex(vectors / f"{layer['name']}.hex",
                                                         widths["value"], True)
                                 .reshape(-1, layer["size"]))
                for layer in manifest["traced_layers"]}
    timeout = (images + plan.cols) * (4 * manifest["analytic"]["cycles_per_image"] + 4000)
    report = {"images": 0, "mismatches": 0, "cycles": 0, "first_mismatch": None}

    def mismatch(image, layer, element, want, got):
        if report["first_mismatch"] is None:
            report["first_mismatch"] = {"image": int(image), "layer": layer,
                                        "element": int(element), "expected": int(want),
                                        "actual": int(got)}
        report["mismatches"] += 1

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
        cycle, first_cycle, received = 0, None, 0
        async for _, _, started, valid, ready, payload, trace in ctx.tick().sample(
                dut.pixels.valid & dut.pixels.ready, dut.results.valid, dut.results.ready,
                dut.results.payload, dut.trace):
            cycle += 1
            if stalling:
                ctx.set(dut.results.ready, int(rng.random() < 0.5))
            if started and first_cycle is None:
                first_cycle = cycle
            for lane in range(plan.cols):
                if trace.valid[lane] and trace.image[lane] < images:
                    name, table = expected[trace.layer]
                    want = table[trace.image[lane], trace.index[lane]]
                    if trace.value[lane] != want:
                        mismatch(trace.image[lane], name, trace.index[lane], want,
                                 trace.value[lane])
            if valid and ready:
                for i in range(10):
                    if payload.logits[i] != logits[received, i]:
                        mismatch(received, "logits", i, logits[received, i], payload.logits[i])
                if payload.label != labels[received]:
                    mismatch(received, "class", 0, labels[received], payload.label)
                received += 1
                if received == images:
                    report["cycles"] = cycle - first_cycle + 1
                    break
            if cycle > timeout:
                report["mismatches"] += 1
                report["timeout"] = True
                break
        report["images"] = received

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(feed, background=True)
    simulator.add_testbench(check)
    simulator.run()
    return report
