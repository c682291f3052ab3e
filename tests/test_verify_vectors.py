"""Binary vector files: round trips at every width, and clear errors for damaged files."""

import numpy as np
import pytest

from hwlenet import HwlenetError
from hwlenet.verify.vectors import read_vectors, vector_file, word_bytes, write_vectors


@pytest.mark.parametrize("bits", [2, 4, 8, 9, 12, 16, 17, 24, 32, 33, 48, 63])
@pytest.mark.parametrize("signed", [False, True])
def test_round_trip(tmp_path, bits, signed):
    rng = np.random.default_rng(bits * 2 + signed)
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    values = rng.integers(low, high, size=(5, 7), endpoint=True, dtype=np.int64)
    values[0, :2] = low, high
    (tmp_path / "vectors").mkdir()
    entry = vector_file("v", bits, signed, 7)
    write_vectors(tmp_path, entry, values)
    assert (tmp_path / "vectors/v.bin").stat().st_size == 35 * word_bytes(bits)
    np.testing.assert_array_equal(read_vectors(tmp_path, entry, 5), values)
    np.testing.assert_array_equal(read_vectors(tmp_path, entry, 2), values[:2])


def test_words_are_big_endian_as_fread_reads_them(tmp_path):
    (tmp_path / "vectors").mkdir()
    write_vectors(tmp_path, vector_file("v", 12, True, 2), [-1, 0x123])
    assert (tmp_path / "vectors/v.bin").read_bytes() == bytes([0x0F, 0xFF, 0x01, 0x23])


@pytest.mark.parametrize("data,message", [(b"\x00\x01\x02", "not a whole number"),
                                          (b"\x00\x01", "2 images need 4"),
                                          (b"\xff\xff" * 4, "does not fit 12 bits")])
def test_damaged_files(tmp_path, data, message):
    (tmp_path / "vectors").mkdir()
    (tmp_path / "vectors/v.bin").write_bytes(data)
    with pytest.raises(HwlenetError, match=message):
        read_vectors(tmp_path, vector_file("v", 12, False, 2), 2)
    with pytest.raises(HwlenetError, match="cannot read"):
        read_vectors(tmp_path, vector_file("missing", 12, False, 2), 1)
