#!/usr/bin/env python3
"""A Markdown table of ``hwlenet synth`` results, for the README.

    python scripts/synth.py DIR/synth/ecp5-45f/report.json OTHER/synth/ecp5-25f/report.json ...

Each row: model, array, target, LUTs, flip-flops, DSPs, block RAM (used/available), Fmax,
cycles per image and images/s, read from the ``report.json`` files that ``hwlenet synth DIR
--target T`` writes (or its ``--json`` output). Run the synthesis itself with ``hwlenet synth``.
"""

import argparse
import json
import sys
from pathlib import Path

COLUMNS = ("luts", "flip_flops", "dsps", "block_ram")
HEADER = ("model", "array", "target", "LUTs", "flip-flops", "DSPs", "block RAM", "Fmax (MHz)",
          "cycles/image", "images/s", "fits")


def row(report):
    design = report["design"]
    array = f"{design['array']['rows']}x{design['array']['cols']}"
    resources = report["resources"]
    cells = [f"{resources[key]['used']:,} / {resources[key]['available']:,}"
             if key in resources else "-" for key in COLUMNS]
    fmax = "-" if report["fmax_mhz"] is None else f"{report['fmax_mhz']:.1f}"
    rate = "-" if report["images_per_second"] is None else f"{report['images_per_second']:,.0f}"
    fits = "-" if report["fits"] is None else ("yes" if report["fits"] else "no")
    return (design.get("arch") or "?", array, report["target"], *cells, fmax,
            f"{report['cycles_per_image']:.1f}", rate, fits)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", help="report.json files of hwlenet synth")
    args = parser.parse_args()
    rows = []
    for path in args.reports:
        try:
            rows.append(row(json.loads(Path(path).read_text())))
        except (OSError, ValueError, KeyError, TypeError) as error:
            print(f"error: {path} is not an hwlenet synth report ({error})", file=sys.stderr)
            return 1
    for line in (HEADER, ("---",) * len(HEADER), *rows):
        print("| " + " | ".join(line) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
