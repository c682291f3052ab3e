"""The exported test vectors: binary files the testbenches read with ``$fread``.

Every vector file holds, image after image, ``per_image`` words of ``bits`` bits, each stored
big-endian in ``ceil(bits / 8)`` bytes (``$fread``'s layout for a memory of that width), two's
complement masked to ``bits``. The manifest lists every file with its ``bits``, ``signed`` and
``per_image``; writers and readers here are the only code that knows the layout.
"""

from pathlib import Path

import numpy as np

from ..errors import HwlenetError

__all__ = ["read_vectors", "vector_file", "word_bytes", "write_vectors"]


def word_bytes(bits):
    """Bytes per word of ``bits`` bits in a vector file."""
    return -(-bits // 8)


def vector_file(name, bits, signed, per_image):
    """The manifest entry of vector file ``vectors/{name}.bin``."""
    return {"name": name, "path": f"vectors/{name}.bin", "bits": int(bits),
            "signed": bool(signed), "per_image": int(per_image), "bytes": word_bytes(bits)}


def write_vectors(directory, entry, values):
    """Write ``values`` (integers, image-major) as the vector file ``entry`` describes."""
    words = np.asarray(values, dtype=np.int64).ravel().astype(np.uint64)
    words &= np.uint64((1 << entry["bits"]) - 1)
    wide = words.astype(">u8").view(np.uint8).reshape(-1, 8)
    data = wide[:, 8 - entry["bytes"]:]
    path = Path(directory) / entry["path"]
    try:
        path.write_bytes(np.ascontiguousarray(data).tobytes())
    except OSError as error:
        raise HwlenetError(f"cannot write {path}: {error.strerror}") from None


def read_vectors(directory, entry, images):
    """The first ``images`` images' words of vector file ``entry``: int64 ``(images,
    per_image)``, sign-extended when the entry is signed.

    Raises
    ------
    HwlenetError
        When the file is missing, its length is not a whole number of words, it holds fewer
        than ``images`` images, or a word does not fit ``bits``.
    """
    path = Path(directory) / entry["path"]
    size, bits = entry["bytes"], entry["bits"]
    wanted = images * entry["per_image"]
    try:
        raw = np.fromfile(path, np.uint8)
    except OSError as error:
        raise HwlenetError(f"cannot read {path}: {error.strerror}") from None
    if raw.size % size:
        raise HwlenetError(f"{path}: {raw.size} bytes is not a whole number of "
                           f"{size}-byte words")
    if raw.size < wanted * size:
        raise HwlenetError(f"{path}: {raw.size // size} words, {images} images need {wanted}")
    padded = np.zeros((wanted, 8), np.uint8)
    padded[:, 8 - size:] = raw[: wanted * size].reshape(wanted, size)
    values = padded.view(">u8").ravel().astype(np.uint64)
    if values.size and int(values.max()) >= 1 << bits:
        raise HwlenetError(f"{path}: a word does not fit {bits} bits")
    if entry["signed"]:
        # shift the sign bit to bit 63, then back: an arithmetic shift sign-extends it
        spare = np.uint64(64 - bits)
        values = (values << spare).view(np.int64) >> np.int64(64 - bits)
    return values.astype(np.int64).reshape(images, entry["per_image"])
