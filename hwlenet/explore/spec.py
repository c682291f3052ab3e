"""The sweep specification of ``hwlenet explore``: which points to build and how far.

A spec is a YAML or JSON mapping::

    models: [lenet5-relu, lenet5-classic]   # shipped names or checkpoint paths
    bits: [4, 5, 6, 7, 8]                   # uniform widths (weights = activations) ...
    configs: [tuned.json]                   # ... and/or per-layer --config files
    qat: [false, true]                      # without and with quantization-aware training
    qat_epochs: 4                           # (hwlenet qat's fine-tuning, seed 0)
    arrays: [4x4, 8x8, 3x5]                 # needed from stage emit on
    targets: [ecp5-25f, ecp5-45f]           # needed for stage synth
    stages: cosim                           # the last stage per point: simulate, emit,
                                            # cosim or synth (each runs the ones before it)
    simulator: verilator                    # or icarus
    seed: 1                                 # nextpnr's placement seed
    test_images: 10000                      # images the numba simulator scores
    vectors: 20                             # images co-simulated per point
    calibration: 1000                       # training images the quantizer calibrates on

A spec may instead list several ``sweeps``, each a mapping of the fields above except the
last three; fields given at the top level are every sweep's defaults::

    test_images: 10000
    models: [lenet5-relu]
    sweeps:
      - {bits: [3, 4, 5, 6, 7, 8], stages: simulate}
      - {bits: [8], arrays: [4x4, 8x8], stages: cosim}

Paths (checkpoints, configs) are relative to the spec file. A point is one model at one
precision on one array for one target; stages shared by points (a quantization shared by
every array, an export shared by every target) are computed once.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from ..checkpoint import SHIPPED_MODELS
from ..errors import HwlenetError

__all__ = ["STAGES", "ExploreSpec", "SweepPart", "load_spec", "parse_spec"]

#: The stages of a point, in order; a spec's ``stages`` names the last one to run.
STAGES = ("simulate", "emit", "cosim", "synth")
SIMULATORS = ("verilator", "icarus")
#: Fields of the whole spec (the data every sweep shares) and of each sweep, with defaults.
DATA_DEFAULTS = {"test_images": 10000, "vectors": 20, "calibration": 1000}
PART_DEFAULTS = {"simulator": "verilator", "seed": 1, "stages": "simulate", "qat_epochs": 4}
PART_KEYS = ("models", "bits", "configs", "qat", "arrays", "targets", *PART_DEFAULTS)
KEYS = (*PART_KEYS, *DATA_DEFAULTS, "sweeps")


@dataclass(frozen=True)
class SweepPart:
    """One sweep of a spec: see the module docstring for the meaning of each field.

    ``models`` and ``configs`` hold shipped names and resolved paths; ``arrays`` holds
    ``(rows, cols)`` pairs; ``stages`` is the last stage to run.
    """

    models: tuple
    bits: tuple
    configs: tuple
    qat: tuple
    qat_epochs: int
    arrays: tuple
    targets: tuple
    stages: str
    simulator: str
    seed: int

    @property
    def precisions(self):
        """Every precision of the sweep: ``{"bits": b}`` and ``{"config": path}`` entries, each
        with ``"qat_epochs"`` (0 without quantization-aware training)."""
        formats = ([{"bits": bits} for bits in self.bits]
                   + [{"config": str(path)} for path in self.configs])
        return [{**entry, "qat_epochs": self.qat_epochs if qat else 0}
                for entry in formats for qat in self.qat]

    def runs(self, stage):
        """Whether the sweep goes as far as ``stage``."""
        return STAGES.index(self.stages) >= STAGES.index(stage)

    def points(self):
        """Every point as ``(model, precision, array or None, target or None)``."""
        arrays = self.arrays if self.runs("emit") else (None,)
        targets = self.targets if self.runs("synth") else (None,)
        return [(model, precision, array, target)
                for model in self.models for precision in self.precisions
                for array in arrays for target in targets]


@dataclass(frozen=True)
class ExploreSpec:
    """A validated spec: its sweeps (:class:`SweepPart`) and the data they share."""

    parts: tuple
    test_images: int
    vectors: int
    calibration: int

    def points(self):
        """Every point of every sweep as ``(part, model, precision, array, target)``."""
        return [(part, *point) for part in self.parts for point in part.points()]

    @property
    def trains(self):
        """Whether a point fine-tunes with QAT (the sweep then needs the training split)."""
        return any(any(part.qat) for part in self.parts)


def load_spec(path):
    """Read and validate a YAML (``.yaml``/``.yml``) or JSON spec file.

    Raises
    ------
    HwlenetError
        Unreadable file, malformed YAML or JSON, or a spec :func:`parse_spec` refuses.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise HwlenetError(f"cannot read spec {path}: {getattr(error, 'strerror', error)}") \
            from None
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            raise HwlenetError(f"{path}: not valid YAML{where}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise HwlenetError(f"{path}: not valid JSON (line {error.lineno}): "
                               f"{error.msg}") from None
    return parse_spec(data, base=path.parent, where=str(path))


def _list(data, key, where, kind, required=False):
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, kind) and
                                              not isinstance(item, bool) for item in value):
        raise HwlenetError(f"{where}: {key} must be a list of {kind.__name__}, not {value!r}")
    if required and not value:
        raise HwlenetError(f"{where}: {key} must name at least one entry")
    if len(set(map(str, value))) != len(value):
        raise HwlenetError(f"{where}: {key} lists an entry twice")
    return value


def _count(data, key, where, low, default):
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise HwlenetError(f"{where}: {key} must be an integer of at least {low}, not {value!r}")
    return value


def _existing(base, name, where, key):
    path = (Path(base) / name).resolve()
    if not path.is_file():
        raise HwlenetError(f"{where}: {key} entry {name!r}: no such file {path}")
    return path


def _mapping(data, where):
    if not isinstance(data, dict):
        raise HwlenetError(f"{where}: a spec is a mapping of fields, not {type(data).__name__}")


def parse_spec(data, base=".", where="spec"):
    """Validate a spec mapping (as read from YAML or JSON) into an :class:`ExploreSpec`;
    relative paths are taken from ``base``. Raises :class:`HwlenetError` naming the field."""
    _mapping(data, where)
    unknown = sorted(set(map(str, data)) - set(KEYS))
    if unknown:
        raise HwlenetError(f"{where}: unknown field {unknown[0]!r}; fields are "
                           f"{', '.join(KEYS)}")
    shared = {key: value for key, value in data.items() if key in PART_KEYS}
    sweeps = data.get("sweeps")
    if sweeps is None:
        parts = [_parse_part(shared, base, where)]
    elif not isinstance(sweeps, list) or not sweeps:
        raise HwlenetError(f"{where}: sweeps must be a non-empty list of mappings")
    else:
        parts = []
        for index, entry in enumerate(sweeps):
            here = f"{where}: sweeps[{index}]"
            _mapping(entry, here)
            unknown = sorted(set(map(str, entry)) - set(PART_KEYS))
            if unknown:
                raise HwlenetError(f"{here}: unknown field {unknown[0]!r}; a sweep's fields "
                                   f"are {', '.join(PART_KEYS)}")
            parts.append(_parse_part({**shared, **entry}, base, here))
    return ExploreSpec(
        parts=tuple(parts),
        **{key: _count(data, key, where, 1, default) for key, default in DATA_DEFAULTS.items()})


def _parse_part(data, base, where):
    from ..quant.quantize import load_config, validate_bits
    from ..rtl.plan import parse_array
    from ..synth import get_target

    stages = data.get("stages", PART_DEFAULTS["stages"])
    if stages not in STAGES:
        raise HwlenetError(f"{where}: stages must be one of {', '.join(STAGES)}, not {stages!r}")
    models = tuple(name if name in SHIPPED_MODELS else str(_existing(base, name, where, "models"))
                   for name in _list(data, "models", where, str, required=True))
    bits = tuple(_list(data, "bits", where, int))
    for value in bits:
        try:
            validate_bits("bits", value)
        except HwlenetError as error:
            raise HwlenetError(f"{where}: {error}") from None
    configs = tuple(_existing(base, name, where, "configs")
                    for name in _list(data, "configs", where, str))
    for path in configs:
        load_config(path)
    if not bits and not configs:
        raise HwlenetError(f"{where}: name at least one precision in bits or configs")
    arrays = []
    for text in _list(data, "arrays", where, str, required=STAGES.index(stages) >= 1):
        try:
            arrays.append(parse_array(text))
        except HwlenetError as error:
            raise HwlenetError(f"{where}: arrays: {error}") from None
    targets = _list(data, "targets", where, str, required=stages == "synth")
    for name in targets:
        try:
            get_target(name)
        except HwlenetError as error:
            raise HwlenetError(f"{where}: targets: {error}") from None
    qat = data.get("qat", [False])
    qat = [qat] if isinstance(qat, bool) else qat
    if not isinstance(qat, list) or not qat or not all(isinstance(item, bool) for item in qat) \
            or len(set(qat)) != len(qat):
        raise HwlenetError(f"{where}: qat must be true, false or a list of both, not {qat!r}")
    simulator = data.get("simulator", PART_DEFAULTS["simulator"])
    if simulator not in SIMULATORS:
        raise HwlenetError(f"{where}: simulator must be one of {', '.join(SIMULATORS)}, "
                           f"not {simulator!r}")
    return SweepPart(models=models, bits=bits, configs=configs, qat=tuple(qat),
                     qat_epochs=_count(data, "qat_epochs", where, 1, PART_DEFAULTS["qat_epochs"]),
                     arrays=tuple(arrays),
                     targets=tuple(targets), stages=stages, simulator=simulator,
                     seed=_count(data, "seed", where, 0, PART_DEFAULTS["seed"]))
