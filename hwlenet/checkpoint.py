"""Self-describing float checkpoints and the shipped pretrained models.

Shipped: ``lenet5-classic`` (LeNet-5 as published, with the Euclidean RBF output),
``lenet5-classic-fc`` (the same network with a fully connected output layer) and
``lenet5-relu`` (the modern variant).

A checkpoint is a ``torch.save`` file holding a dict: ``format`` (``"hwlenet-checkpoint"``),
``version``, ``arch``, ``state_dict`` and ``meta`` (training metadata: epochs, training-set size,
test accuracy, seed, command). Loading checks every part and never unpickles arbitrary objects.
"""

import io
from importlib import resources
from pathlib import Path

import torch

from .errors import HwlenetError
from .models import ARCHITECTURES, build_model
from .outputs import write_bytes

__all__ = [
    "CHECKPOINT_FORMAT",
    "DEFAULT_MODEL",
    "SHIPPED_MODELS",
    "load_checkpoint",
    "resolve_model",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "hwlenet-checkpoint"
CHECKPOINT_VERSION = 1
SHIPPED_MODELS = {"lenet5-classic": "lenet5-classic.pt",
                  "lenet5-classic-fc": "lenet5-classic-fc.pt", "lenet5-relu": "lenet5-relu.pt"}
DEFAULT_MODEL = "lenet5-classic"


def save_checkpoint(model, path, meta, option=None):
    """Write ``model`` and its training ``meta`` (a dict of plain values) to ``path``, whole or
    not at all (through a temporary file); ``option`` names the path in error messages."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "arch": model.arch,
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "meta": dict(meta),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes(path, buffer.getvalue(), option)


def load_checkpoint(path):
    """Load a checkpoint written by :func:`save_checkpoint`.

    Returns
    -------
    model : torch.nn.Module
        In eval mode.
    meta : dict
        The training metadata.

    Raises
    ------
    HwlenetError
        When the file is missing, corrupt, not an hwlenet checkpoint, of an unknown architecture,
        or its tensors do not fit the architecture or are not finite.
    """
    path = Path(path)
    try:
        payload = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
    except IsADirectoryError:
        raise HwlenetError(f"{path}: is a folder, not a checkpoint") from None
    except OSError as error:
        raise HwlenetError(f"cannot read checkpoint {path}: {error.strerror}") from None
    except Exception as error:  # torch raises many types for damaged files
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise HwlenetError(f"{path}: not a readable checkpoint ({reason[:120]})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise HwlenetError(f"{path}: not an hwlenet checkpoint")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise HwlenetError(
            f"{path}: checkpoint version {payload.get('version')!r} is not supported")
    arch = payload.get("arch")
    if arch not in ARCHITECTURES:
        raise HwlenetError(f"{path}: unknown architecture {arch!r}")
    state = payload.get("state_dict")
    meta = payload.get("meta")
    if not isinstance(state, dict) or not isinstance(meta, dict):
        raise HwlenetError(f"{path}: checkpoint lacks its state dict or metadata")
    model = build_model(arch)
    expected = model.state_dict()
    if set(state) != set(expected):
        missing = sorted(set(expected) - set(state))
        extra = sorted(set(state) - set(expected))
        raise HwlenetError(
            f"{path}: tensors do not fit {arch!r} (missing {missing}, extra {extra})")
    for key, tensor in state.items():
        if not isinstance(tensor, torch.Tensor) or tensor.shape != expected[key].shape:
            raise HwlenetError(f"{path}: tensor {key} has the wrong shape for {arch!r}")
        if not torch.isfinite(tensor).all():
            raise HwlenetError(f"{path}: tensor {key} holds NaN or infinite values")
    model.load_state_dict(state)
    model.eval()
    return model, meta


def shipped_path(name):
    """The file of a shipped model, by name (``lenet5-classic``, ``lenet5-classic-fc`` or
    ``lenet5-relu``)."""
    return Path(str(resources.files("hwlenet") / "pretrained" / SHIPPED_MODELS[name]))


def resolve_model(name_or_path=None):
    """Load a model given a shipped name or a checkpoint path (default: ``lenet5-classic``).

    Returns
    -------
    model, meta, label
        ``label`` is the shipped name or the path as given.
    """
    name_or_path = name_or_path or DEFAULT_MODEL
    if name_or_path in SHIPPED_MODELS:
        path = shipped_path(name_or_path)
        if not path.is_file():
            raise HwlenetError(f"shipped model {name_or_path} is missing from the installation")
    else:
        path = Path(name_or_path)
        if path.is_dir():
            raise HwlenetError(f"{path}: is a folder, not a checkpoint")
        if not path.is_file():
            shipped = ", ".join(SHIPPED_MODELS)
            raise HwlenetError(
                f"no model {name_or_path!r}: not a file nor a shipped model ({shipped})")
    model, meta = load_checkpoint(path)
    return model, meta, str(name_or_path)

