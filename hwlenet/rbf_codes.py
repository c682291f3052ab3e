"""The fixed codes of the classic model's Euclidean RBF output layer.

LeNet-5 (LeCun et al. 1998) ends in ten radial basis function units: unit ``i`` outputs the
squared distance ``y_i = sum_j (x_j - w_ij)^2`` between F6's 84 outputs ``x`` and a fixed vector
``w_i`` in {-1, +1}^84, a stylized picture of digit ``i`` on a 7x12 bitmap; the class is the
smallest penalty. The paper's bitmaps are not reproduced here: :data:`DIGIT_BITMAPS` holds ten
bitmaps drawn for this project with two-pixel strokes so that every pair of codes differs in at
least :data:`MIN_HAMMING_DISTANCE` of the 84 positions (``#`` is +1, ``.`` is -1; each code is
its bitmap read row by row, top to bottom).
"""

import itertools

import numpy as np

__all__ = [
    "CODE_COLUMNS",
    "CODE_LENGTH",
    "CODE_ROWS",
    "DIGIT_BITMAPS",
    "MIN_HAMMING_DISTANCE",
    "hamming_distances",
    "rbf_codes",
]

CODE_ROWS = 12
CODE_COLUMNS = 7
CODE_LENGTH = CODE_ROWS * CODE_COLUMNS

# The ten bitmaps side by side, digits 0 to 9 from left to right.
_BITMAP_SHEET = """
.#####. ...##.. .#####. ####### ....##. ####### ....##. ####### ..###.. .#####.
##...## ..###.. ##...## ####### ...###. ##..... ...##.. ####### .##.##. ##...##
##...## .####.. .....## ....##. ...###. ##..... ..##... .....## .##.##. ##...##
##..### ...##.. .....## ...##.. ..####. ##..... .##.... ....##. .##.##. ##...##
##..### ...##.. ....##. ..##... ..#.##. ######. ##..... ....##. ..###.. ##...##
##.##.# ...##.. ...##.. .####.. .##.##. .....## ######. ...##.. .##.##. .######
#.##.## ...##.. ..##... ....##. .#..##. .....## ##...## ...##.. ##...## .....##
###..## ...##.. .##.... .....## ##..##. .....## ##...## ..##... ##...## .....##
###..## ...##.. ##..... .....## ####### .....## ##...## ..##... ##...## .....##
##...## ...##.. ##..... .....## ####### .....## ##...## .##.... ##...## .....##
##...## ...##.. ##..... ##..##. ....##. ##...## ##...## .##.... .##.##. ....##.
.#####. .###### ####### .####.. ....##. .#####. .#####. .##.... ..###.. .####..
"""

DIGIT_BITMAPS = tuple(
    tuple(line.split()[digit] for line in _BITMAP_SHEET.strip().splitlines())
    for digit in range(10)
)

# The smallest number of positions in which two codes differ; tests recompute it.
MIN_HAMMING_DISTANCE = 21


def rbf_codes():
    """The ten codes as a new ``int8`` array ``(10, 84)`` of -1 and +1 (row ``i``: digit ``i``).

    Returns
    -------
    numpy.ndarray
        ``codes[i, r * 7 + c]`` is +1 where bitmap ``i`` has ``#`` at row ``r``, column ``c``.
    """
    codes = np.array(
        [[1 if pixel == "#" else -1 for row in bitmap for pixel in row]
         for bitmap in DIGIT_BITMAPS], dtype=np.int8)
    if codes.shape != (10, CODE_LENGTH):  # a malformed sheet is a programming error
        raise AssertionError(f"the RBF bitmaps have shape {codes.shape}, not (10, 84)")
    return codes


def hamming_distances(codes):
    """The Hamming distance of every pair of rows of ``codes``, as ``{(a, b): distance}`` with
    ``a < b``."""
    codes = np.asarray(codes)
    return {(a, b): int((codes[a] != codes[b]).sum())
            for a, b in itertools.combinations(range(len(codes)), 2)}
