#!/usr/bin/env python3
"""Print the summary of a `make demo` run from the JSON files in its folder.

    python scripts/summary.py DEMO_DIR
"""

import json
import sys
from pathlib import Path


def main():
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "demo")
    evaluate = json.loads((folder / "evaluate.json").read_text())
    simulate = json.loads((folder / "simulate.json").read_text())
    cosim = json.loads((folder / "cosim.json").read_text())
    manifest = json.loads((folder / "rtl" / "manifest.json").read_text())
    model = manifest["analytic"]
    print("\n== hwlenet demo: lenet5-classic, W8A8 ==")
    print(f"float accuracy       {evaluate['accuracy']:.2%} on {evaluate['images']} test images")
    print(f"fixed-point accuracy {simulate['fixed_accuracy']:.2%} "
          f"(agreement with float {simulate['agreement']:.2%})")
    output = ("Euclidean RBF penalties, class = argmin" if simulate.get("output_rule") == "argmin"
              else "logits, class = argmax")
    print(f"output layer         {output}")
    print(f"RTL ({model['array']} systolic array) on {cosim['simulator']}: {cosim['images']} "
          f"images, {cosim['mismatches']} mismatches -> "
          f"{'bit-exact' if cosim['bit_exact'] else 'MISMATCH'}")
    exact = "exactly as modelled" if cosim["cycles"] == cosim["predicted_cycles"] else \
        f"model {cosim['predicted_cycles']}"
    print(f"cycles               {cosim['cycles']} for this run ({exact}); "
          f"{model['cycles_per_image']:.0f} per image in steady state")
    print(f"PE utilization       {model['utilization']:.1%} of {model['array']} MAC slots "
          f"({model['nonzero_utilization']:.1%} counting non-zero weights only)")
    coverage = manifest["coverage"]
    tables = [row["table"] for row in coverage["layers"] if row["table"]]
    if tables:
        hit = sum(table["hit"] for table in tables)
        reachable = sum(table["reachable"] for table in tables)
        print(f"table coverage       {hit}/{reachable} reachable tanh-table entries "
              f"({hit / reachable:.2%}) by {coverage['images']} vectors "
              f"({manifest['directed_vectors']} directed)")
    return 0 if cosim["bit_exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
