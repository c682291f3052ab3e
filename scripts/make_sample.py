#!/usr/bin/env python3
"""Regenerate the MNIST sample shipped inside the package (``hwlenet/sample/mnist-sample.npz``).

    python scripts/make_sample.py --data-dir DIR --out hwlenet/sample/mnist-sample.npz

Takes the first ``--test`` images of DIR's test split and the first ``--train`` images of its
training split, with their labels, and writes them as a compressed ``.npz``. The output depends
only on those images: the same folder gives the same bytes. ``--out`` has no default, so that
the script never writes into the source tree unless asked to.
"""

import argparse
import sys

from hwlenet.data import SAMPLE_TEST_IMAGES, SAMPLE_TRAIN_IMAGES, load_mnist, write_sample
from hwlenet.errors import HwlenetError


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder with the MNIST IDX files")
    parser.add_argument("--out", required=True, help="the .npz to write")
    parser.add_argument("--test", type=int, default=SAMPLE_TEST_IMAGES)
    parser.add_argument("--train", type=int, default=SAMPLE_TRAIN_IMAGES)
    args = parser.parse_args()
    try:
        test = load_mnist("test", args.data_dir, download=False)
        train = load_mnist("train", args.data_dir, download=False)
        if len(test) < args.test or len(train) < args.train:
            raise HwlenetError(f"{args.data_dir} holds {len(test)} test and {len(train)} "
                               f"training images; the sample needs {args.test} and {args.train}")
        size = write_sample(args.out, test.head(args.test), train.head(args.train))
    except HwlenetError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {args.test} test and {args.train} training images, {size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
