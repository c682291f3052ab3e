"""Presenting a synthesis run: the progress line while the tools run, the table afterwards."""

import sys
import time

__all__ = ["ProgressLine", "format_report"]

_SPINNER = "|/-\\"
#: Table order of the resources (a report read back from sorted JSON has them alphabetical).
_ORDER = ("luts", "flip_flops", "dsps", "block_ram", "spram", "io")


class ProgressLine:
    """A ``progress`` callable for :func:`hwlenet.synth.synthesize` that shows what the tools are
    doing on a stream (standard error by default).

    On a terminal, one line is redrawn in place: a spinner, the tool, its phase and the seconds
    it has been running. Elsewhere (a log file, CI), a line is written when the tool or its
    coarse phase changes (the part before ``:``, e.g. ``synth_ecp5`` or ``routing``) and at
    least every ``interval`` seconds, so a long routing run still shows signs of life.

    Parameters
    ----------
    stream : file, optional
    interval : float
        Seconds between lines on a non-terminal stream when the phase does not change.
    """

    def __init__(self, stream=None, interval=30.0):
        if not interval > 0:
            raise ValueError(f"interval must be a positive number, not {interval!r}")
        self.stream = sys.stderr if stream is None else stream
        self.interval = interval
        self.redraw = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_coarse = None
        self._last_time = None
        self._ticks = 0
        self._width = 0

    def __call__(self, tool, phase, seconds):
        text = f"{tool}: {phase}"
        if self.redraw:
            self._ticks += 1
            line = f"{_SPINNER[self._ticks % len(_SPINNER)]} {text} ({seconds:.0f} s)"
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
            self.stream.flush()
            return
        coarse = (tool, phase.split(":")[0])
        now = time.monotonic()
        if coarse != self._last_coarse or now - self._last_time >= self.interval:
            self.stream.write(f"{text} ({seconds:.0f} s)\n")
            self.stream.flush()
            self._last_coarse, self._last_time = coarse, now

    def close(self):
        """End the redrawn line (call once the run is over, whether or not it succeeded)."""
        if self.redraw and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


def _number(value, digits=0):
    return "-" if value is None else f"{value:,.{digits}f}"


def format_report(report, top_cells=12):
    """The lines ``hwlenet synth`` prints for a :func:`hwlenet.synth.synthesize` report: the
    resource table (used, available, %), then Fmax, cycles per image, images/s and whether it
    fits; for ``generic`` the flip-flops, memories and the most frequent cell types."""
    design = report["design"]
    array = design["array"]
    where = (f"{report['device']} {report['package']}"
             + (f" speed {report['speed_grade']}" if report["speed_grade"] else "")
             if report["device"] else "Yosys generic cells")
    lines = [f"{report['target']}: {where}; {design.get('arch') or 'design'} on a "
             f"{array.get('rows')}x{array.get('cols')} array, trace "
             f"{'kept' if report['trace'] else 'removed'}, {report['wrapper']['pins']} pins"
             + (f", reset on a global buffer ({reset})"
                if (reset := report["wrapper"].get("reset", "pin")) != "pin" else "")]
    if report["resources"]:
        entries = sorted(report["resources"].items(),
                         key=lambda item: (_ORDER.index(item[0]) if item[0] in _ORDER
                                           else len(_ORDER), item[0]))
        width = max(len(entry["label"]) for _, entry in entries)
        lines.append(f"  {'resource':{width}}  {'used':>8}  {'available':>9}  {'%':>6}")
        for _, entry in entries:
            share = "-" if entry["utilization"] is None else f"{entry['utilization']:.1%}"
            lines.append(f"  {entry['label']:{width}}  {entry['used']:>8}  "
                         f"{entry['available']:>9}  {share:>6}")
    else:
        lines.append(f"  flip-flops {report['flip_flops']}, memories {report['memories']} "
                     f"({report['memory_bits']:,} bits)")
        ranked = sorted(report["cells"].items(), key=lambda item: (-item[1], item[0]))
        lines.append("  cells: " + ", ".join(f"{name} {count}" for name, count in
                                             ranked[:top_cells])
                     + (f", {len(ranked) - top_cells} more types" if len(ranked) > top_cells
                        else ""))
    if report["fmax_mhz"] is not None:
        verdict = "met" if report["meets_frequency"] else "not met"
        lines.append(f"  Fmax {report['fmax_mhz']:.2f} MHz (constraint "
                     f"{report['frequency_mhz']:g} MHz {verdict})")
    elif report["resources"]:
        lines.append("  Fmax: no register-to-register path on the clock")
    path = report.get("critical_path")
    if path:
        shown = ", ".join(map(str, path["design_lines"][:8]))
        more = len(path["design_lines"]) - 8
        lines.append(f"  critical path {path['delay_ns']:.1f} ns (logic {path['logic_ns']:.1f}, "
                     f"routing {path['routing_ns']:.1f}): {path['from']} -> {path['to']}"
                     + (f"; hwlenet_top.v lines {shown}" if shown else "")
                     + (f" and {more} more" if more > 0 else ""))
    absorbed = report.get("dsp_registers")
    if absorbed and absorbed["multipliers"]:
        lines.append(f"  DSP registers: operands of {absorbed['registered_inputs']} and products "
                     f"of {absorbed['registered_outputs']} of {absorbed['multipliers']} "
                     f"multipliers registered in the DSP blocks")
    absorbed = report.get("bram_registers")
    if absorbed and absorbed["block_rams"]:
        lines.append(f"  block RAM registers: the words of {absorbed['registered_outputs']} of "
                     f"{absorbed['block_rams']} block RAMs registered in the blocks")
    lines.append(f"  cycles/image {report['cycles_per_image']:.1f} ({report['cycles_source']})")
    if report["images_per_second"] is not None:
        lines.append(f"  images/s {_number(report['images_per_second'])}")
    if report["fits"] is not None:
        lines.append(f"  fits {report['target']}: {'yes' if report['fits'] else 'no'}")
    return lines
