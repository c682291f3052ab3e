"""Fault campaigns on an exported folder: flip one bit of a ROM, re-run the exported bench and
see whether its test vectors notice.

Every bit of every memory the export lists (``manifest["memories"]``: weights, biases, tables,
coefficients) is a *site* ``(memory, address, bit)``, ``bit`` counting within the whole word
(lane ``i`` of a packed word holds bits ``[i * lane_width, (i + 1) * lane_width)``). The fault
build of the bench flips the bit after the design's initialisers ran. Each site is one of:

unobservable
    The flip provably changes no value the bench compares, for any input: a weight lane of a
    padding output (the post-processor discards its results), a table entry that the
    interval analysis of :func:`hwlenet.verify.coverage.reachable_tables` proves no input
    indexes, or a bit of a dense layer's weight whose change the interval analysis of
    :func:`hwlenet.verify.coverage.flip_proofs` proves the layer's output hides for every
    input (while the corrupted weights cannot overflow the hardware's accumulator). These are
    not simulated.
caught
    The bench reports a mismatch (or a hang) with the flip; the record keeps the first one.
missed
    The bench passes with the flip; the reason says why: a weight that only multiplies zero
    inputs in the vectors, a table entry no vector indexes, or, per changed accumulator, where
    the change vanishes (the ReLU, rounding, saturation, equal table entries, pooling).

Registers are sites too: ``(register, bit, value)`` holds one bit of one register of the
design (``manifest["registers"]``, read from the exported Verilog by
:mod:`hwlenet.verify.registers`) stuck at 0 or 1 for the whole run, the classic stuck-at fault
of a flip-flop. The fault build's bench writes the bit at every falling edge and counts the
*activations*, the falling edges at which the register held the other value. A register fault
is unobservable when no logic reads the register (:func:`hwlenet.verify.registers.
unread_registers`: the last column's weight registers of the array, say), and is not
simulated; otherwise it is caught or missed, and a missed one says whether it was ever
activated.

Every simulated ROM fault is also run by the numba kernels (:mod:`hwlenet.sim.kernels`) on the
same vectors with the corrupted integer in the artifact: this *reference* says whether, and in
which traced layer, the compared values change. It is exact whenever the corrupted weights
cannot overflow the array's accumulator; a disagreement with the bench means a broken fault
injection or design and is counted in the summary.
"""

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..defaults import resolve_jobs
from ..errors import HwlenetError
from ..quant.artifact import accumulator_bound, load_artifact
from ..quant.fixed import FixedFormat
from ..sim import kernels, simulate
from . import cosim
from .emit import write_register_faults
from .vectors import read_vectors

__all__ = ["ROLES", "STATUSES", "plan_faults", "plan_register_faults", "run_faultcheck"]

#: Memory roles, in report order.
ROLES = ("weights", "biases", "table", "coefficients")
#: Fault classes, in report order.
STATUSES = ("caught", "missed", "unobservable")
_SIMULATORS = ("verilator", "icarus")
#: Names the bench gives to mismatches of the result stream (the last layer's values).
_RESULT_NAMES = ("logits", "class")


def _check_count(value, name, low):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise HwlenetError(f"{name} must be an integer of at least {low}, not {value!r}")
    return int(value)


def _check_index(value, what, size):
    if (not isinstance(value, (int, np.integer)) or isinstance(value, bool)
            or not 0 <= value < size):
        raise HwlenetError(f"{what} must be from 0 to {size - 1}, not {value!r}")
    return int(value)


def _draw(sizes, rng, count, option, what):
    """``count`` distinct positions drawn uniformly over the concatenation of ``sizes``, in
    order, as ``(index into sizes, offset within it)``."""
    total = int(sum(sizes))
    if count > total:
        raise HwlenetError(f"{option} must be at most {total} (the {what} of the design), not "
                           f"{count}")
    picks = np.sort(rng.choice(total, size=count, replace=False))
    ends = np.cumsum(sizes)
    indices = np.searchsorted(ends, picks, side="right")
    return [(int(index), int(pick - ends[index] + sizes[index]))
            for index, pick in zip(indices, picks)]


def _signed(value, bits):
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


class _Export:
    """An exported folder: its manifest, artifact, vectors and the meaning of every ROM bit."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.manifest = cosim.read_export(self.directory)
        if not self.manifest["trace"]:
            raise HwlenetError(f"{self.directory} was exported with --no-trace: faultcheck "
                               "names the first diverging layer, so it needs the trace port; "
                               "export again without --no-trace")
        self.qmodel = load_artifact(self.directory / "model.npz")
        self.memories = self.manifest["memories"]
        self.registers = self.manifest["registers"]
        self.traced = [layer["name"] for layer in self.manifest["traced_layers"]]
        self.sizes = [memory["depth"] * memory["width"] for memory in self.memories]
        self._reachable = None
        self._proofs = None
        self._images = None
        for memory in self.memories:
            self._check_memory(memory)

    def _check_memory(self, memory):
        where = f"{self.directory / 'manifest.json'}: memory {memory['name']}"
        if memory["role"] not in ROLES:
            raise HwlenetError(f"{where} has unknown role {memory['role']!r}")
        if memory["width"] != memory["lane_width"] * memory["lanes"] or sum(
                segment["length"] for segment in memory["segments"]) != memory["depth"]:
            raise HwlenetError(f"{where}: its width, lanes and segments disagree")
        for segment in memory["segments"]:
            values = self._contents(memory, segment)
            limit = 1 << (memory["lane_width"] - 1)
            if values.size and (values.min() < -limit or values.max() >= limit):
                raise HwlenetError(f"{where}: {segment['layer']}'s values do not fit its "
                                   f"{memory['lane_width']}-bit lanes; re-export the folder")

    def _contents(self, memory, segment):
        """The artifact integers a segment holds (weights: one row per output, unpadded)."""
        try:
            layer = self.qmodel.layer(segment["layer"])
        except HwlenetError:
            raise HwlenetError(f"memory {memory['name']} holds layer {segment['layer']!r}, which "
                               "model.npz does not have; re-export the folder") from None
        role = memory["role"]
        if role == "weights":
            matrix = layer.weight.reshape(layer.weight.shape[0], -1)
            tiles = -(-matrix.shape[0] // memory["lanes"])
            expected, values = tiles * matrix.shape[1], matrix
        elif role == "biases":
            values = layer.aligned_bias().ravel()
            expected = values.size
        elif role == "coefficients":
            values = layer.weight.ravel()
            expected = values.size
        else:
            values = layer.lut.ravel() if layer.lut is not None else np.zeros(0, np.int64)
            expected = values.size if layer.lut is not None else -1
        if segment["length"] != expected:
            raise HwlenetError(f"memory {memory['name']}: segment {segment['layer']} holds "
                               f"{segment['length']} words, model.npz needs {expected}; "
                               "re-export the folder")
        return np.asarray(values, dtype=np.int64)

    @property
    def total_bits(self):
        return sum(self.sizes)

    @property
    def vectors(self):
        return self.manifest["vectors"]

    def images(self):
        """The exported test vectors as uint8 images ``(N, 28, 28)``."""
        if self._images is None:
            count = self.vectors
            files = {entry["name"]: entry for entry in self.manifest["vector_files"]}
            pixels = read_vectors(self.directory, files["pixels"], count)
            self._images = pixels.astype(np.uint8).reshape(count, 28, 28)
        return self._images

    @property
    def register_bits(self):
        return sum(register["width"] for register in self.registers)

    def sample_registers(self, faults, seed):
        """``faults`` distinct register bits, uniform over all register bits, each stuck at a
        random value: ``(register, bit, value)`` in register order. The draw is independent
        of the ROM draw of the same seed."""
        rng = np.random.default_rng([seed, 1])
        bits = _draw([register["width"] for register in self.registers], rng, faults,
                     "--register-faults", "register bits")
        values = rng.integers(0, 2, size=faults).tolist()
        return [(index, bit, value) for (index, bit), value in zip(bits, values)]

    def describe_register(self, index, bit, value):
        """The record of one register fault, classified statically (``status``
        ``"unobservable"`` for an unread register, else None: to be simulated)."""
        index = _check_index(index, "register index", len(self.registers))
        register = self.registers[index]
        bit = _check_index(bit, f"bit of register {register['name']}", register["width"])
        if value not in (0, 1) or isinstance(value, bool):
            raise HwlenetError(f"a stuck-at value must be 0 or 1, not {value!r}")
        record = {"register": register["name"], "register_index": int(index),
                  "block": register["block"], "width": register["width"], "bit": int(bit),
                  "stuck_at": int(value), "status": None, "reason": None,
                  "first_mismatch": None, "activations": None}
        if register["unread"]:
            record.update(status="unobservable", reason=(
                "no logic reads the register: its value reaches no output of its module"))
        return record

    def reachable(self):
        if self._reachable is None:
            from .coverage import reachable_tables

            self._reachable = reachable_tables(self.qmodel)
        return self._reachable

    def proofs(self):
        if self._proofs is None:
            from .coverage import flip_proofs

            self._proofs = flip_proofs(self.qmodel)
        return self._proofs

    def sample(self, faults, seed):
        """``faults`` distinct sites, uniform over all ROM bits, in (memory, address, bit)
        order."""
        return [(index, *divmod(offset, self.memories[index]["width"]))
                for index, offset in _draw(self.sizes, np.random.default_rng(seed), faults,
                                           "--faults", "ROM bits")]

    def describe(self, index, address, bit):
        """The record of one site, classified statically (``status`` None: to be simulated)."""
        index = _check_index(index, "memory index", len(self.memories))
        memory = self.memories[index]
        address = _check_index(address, f"address of {memory['name']}", memory["depth"])
        bit = _check_index(bit, f"bit of {memory['name']}", memory["width"])
        segment = next(s for s in memory["segments"]
                       if s["base"] <= address < s["base"] + s["length"])
        layer = self.qmodel.layer(segment["layer"])
        lane, lane_bit = divmod(bit, memory["lane_width"])
        offset = address - segment["base"]
        record = {"memory": memory["name"], "memory_index": index, "role": memory["role"],
                  "layer": layer.name, "layer_kind": "rbf" if layer.is_rbf else layer.kind,
                  "address": address, "bit": bit, "lane": lane,
                  "element": [offset], "original": None, "flipped": None, "status": None,
                  "reason": None, "first_mismatch": None, "reference": None}
        role = memory["role"]
        if role == "weights":
            depth = int(np.prod(layer.weight.shape[1:]))
            row_tile, k = divmod(offset, depth)
            output = row_tile * memory["lanes"] + lane
            if output >= layer.weight.shape[0]:
                record.update(element=None, original=0, status="unobservable", reason=(
                    f"padding lane: lane {lane} of row tile {row_tile} would be output "
                    f"{output} of {layer.name}, which has {layer.weight.shape[0]} outputs; "
                    "the post-processor discards that lane"))
            else:
                position = np.unravel_index(k, layer.weight.shape[1:])
                record["element"] = [output, *(int(p) for p in position)]
                record["original"] = int(layer.weight[tuple(record["element"])])
        elif role == "biases":
            record["original"] = int(layer.aligned_bias().ravel()[offset])
        elif role == "coefficients":
            record["original"] = int(layer.weight.ravel()[offset])
        else:
            record["original"] = int(layer.lut[offset])
            reason = self._unreachable(layer, offset + layer.pre_format.min_int)
            if reason is not None:
                record.update(status="unobservable", reason=reason)
        width = memory["lane_width"]
        record["flipped"] = _signed((record["original"] & ((1 << width) - 1)) ^ (1 << lane_bit),
                                    width)
        if role == "weights" and record["status"] is None and layer.kind == "dense":
            reason = self._invisible(layer, record, lane_bit)
            if reason is not None:
                record.update(status="unobservable", reason=reason)
        return record

    def _invisible(self, layer, record, bit):
        """Why flipping bit ``bit`` of the record's weight can never change ``layer``'s output,
        or None when the interval analysis does not prove it (or the corrupted weights might
        overflow the hardware's accumulator, which the proof does not model)."""
        proof = self.proofs().get(layer.name)
        if proof is None or bit >= proof.deltas.shape[-1]:
            return None
        unit, item = record["element"]
        if record["flipped"] - record["original"] != proof.deltas[unit, item, bit]:
            return None
        if not proof.invisible[unit, item, bit]:
            return None
        weight = layer.weight.astype(np.int64)
        weight[unit, item] = record["flipped"]
        limit = 1 << (self.manifest["widths"]["accumulator"] - 1)
        if accumulator_bound(dataclasses.replace(layer, weight=weight)) >= limit:
            return None
        return proof.reason(unit, item, bit)

    def _unreachable(self, layer, index):
        """Why no input indexes ``index`` of ``layer``'s table, or None when it may."""
        table = self.reachable().get(layer.name)
        if table is None:
            return None
        runs = table.get("reachable_runs", [[table["low"], table["high"]]])
        if any(low <= index <= high for low, high in runs):
            return None
        proof = next((run["reason"] for run in table.get("unreachable", [])
                      if run["low"] <= index <= run["high"]),
                     f"reachable indices are {runs}")
        return f"table index {index} of {layer.name} is never indexed by any input: {proof}"


class _Reference:
    """The numba kernels on the exported vectors, with one artifact integer corrupted."""

    def __init__(self, export):
        self.export = export
        qmodel = export.qmodel
        images = export.images()
        result = simulate(qmodel, images, trace=True)
        self.golden = result.trace
        manifest = export.manifest
        files = {entry["name"]: entry for entry in manifest["vector_files"]}
        exported = read_vectors(export.directory, files["logits"], len(images)).ravel()
        if not np.array_equal(exported, result.logits.ravel()):
            raise HwlenetError(f"{export.directory}: the exported vectors are not what model.npz "
                               "computes; re-export the folder")
        self.inputs = [images.reshape(-1, *qmodel.layers[0].in_shape)]
        self.inputs += [self.golden[layer.name] for layer in qmodel.layers[:-1]]
        self.accumulator_limit = 1 << (manifest["widths"]["accumulator"] - 1)

    def _corrupted(self, record):
        """The record's layer with the corrupted integer, or None when the kernels cannot
        model the hardware exactly (a sum that may overflow the hardware's accumulator)."""
        layer = self.export.qmodel.layer(record["layer"])
        element, flipped = tuple(record["element"]), record["flipped"]
        role = record["role"]
        if role == "table":
            lut = layer.lut.astype(np.int64)
            lut[element] = flipped
            return dataclasses.replace(layer, lut=lut)
        if role == "biases":
            # the post-processor adds a bias lane to the accumulator in one bit more than the
            # wider of the two; the array's biases are never wider than its accumulator
            lanes = self.export.memories[record["memory_index"]]["lane_width"]
            if layer.kind != "subsample" and lanes >= self.accumulator_limit.bit_length():
                return None
            aligned = layer.aligned_bias().copy()
            aligned[element] = flipped
            return dataclasses.replace(layer, bias=aligned,
                                       bias_format=FixedFormat(63, layer.acc_frac, True))
        weight = layer.weight.astype(np.int64)
        weight[element] = flipped
        corrupted = dataclasses.replace(layer, weight=weight, accumulator_width=63)
        if role == "weights" and accumulator_bound(corrupted) >= self.accumulator_limit:
            return None
        return corrupted

    def changes(self, record):
        """``(n_vectors, n_traced)`` bools: which traced values change, or None if inexact."""
        qmodel = self.export.qmodel
        corrupted = self._corrupted(record)
        if corrupted is None:
            return None
        start = next(i for i, layer in enumerate(qmodel.layers) if layer.name == record["layer"])
        x = self.inputs[start]
        changed = {}
        for layer in [corrupted, *qmodel.layers[start + 1:]]:
            x = kernels.run_layer(layer, x)
            changed[layer.name] = (x != self.golden[layer.name]).reshape(len(x), -1).any(axis=1)
        count = len(self.inputs[0])
        return np.stack([changed.get(name, np.zeros(count, bool))
                         for name in self.export.traced], axis=1)

    def summary(self, record, changes):
        if changes is None:
            return None
        images, layers = np.nonzero(changes)
        first = self.export.traced[int(layers.min())] if images.size else None
        return {"changes": bool(images.size), "layer": first,
                "vectors": int(changes.any(axis=1).sum()), "agrees": None}

    @staticmethod
    def _stages(layer, x):
        """Per output element of ``layer``: the accumulator (bias included), after the ReLU,
        requantized with rounding only (``rounded``), requantized (``index``: the table index
        for tanh) and the output."""
        exact = dataclasses.replace(layer, activation="none", lut=None, accumulator_width=63,
                                    output_format=FixedFormat(63, layer.acc_frac, True))
        stages = {"acc": kernels.run_layer(exact, x).astype(np.int64)}
        stages["relu"] = np.maximum(stages["acc"], 0) if layer.activation == "relu" \
            else stages["acc"]
        fmt = layer.requant_format()
        rounding = dataclasses.replace(fmt, width=63, overflow="saturate")
        stages["rounded"] = kernels.requantize_array(stages["relu"], layer.acc_frac, rounding)
        stages["index"] = kernels.requantize_array(stages["relu"], layer.acc_frac, fmt)
        stages["output"] = stages["index"] if layer.lut is None \
            else layer.lut.astype(np.int64)[stages["index"] - fmt.min_int]
        return stages

    def explain(self, record):
        """Why the record's corrupted integer changes no compared value of any vector (the
        reference found none): where each changed intermediate value vanishes."""
        qmodel = self.export.qmodel
        position = next(i for i, layer in enumerate(qmodel.layers)
                        if layer.name == record["layer"])
        layer, x = qmodel.layers[position], self.inputs[position]
        count = len(x)
        golden, faulty = self._stages(layer, x), self._stages(self._corrupted(record), x)
        pool = qmodel.layers[position + 1] if layer.kind == "conv" else None
        pooling = None if pool is None else (
            f"the 2x2 maximum of {pool.name}" if pool.kind == "maxpool"
            else f"the rounding and saturation of {pool.name}")
        if record["role"] == "table":
            index = record["element"][0] + layer.pre_format.min_int
            used = golden["index"] == index
            if not used.any():
                return f"no vector indexes table index {index} of {layer.name}"
            return (f"{int(used.sum())} outputs of {layer.name} in "
                    f"{int(used.reshape(count, -1).any(axis=1).sum())} vectors read the entry, "
                    f"and {pooling} absorbs every change")
        changed = golden["acc"] != faulty["acc"]
        if not changed.any():
            inputs = "zero 2x2 sums" if record["role"] == "coefficients" else "zero inputs"
            return f"it only ever multiplies {inputs} in the {count} vectors"
        fmt = layer.requant_format()
        overflow = "saturation" if fmt.overflow == "saturate" else "wrapping"
        words = {"relu": "the ReLU (negative before and after)",
                 "rounded": f"rounding into {fmt}",
                 "index": f"{overflow} at the bounds of {fmt}",
                 "output": "equal entries of the tanh table",
                 "pool": pooling}
        absorbed, remaining = {}, changed
        for stage in ("relu", "rounded", "index", "output"):
            same = remaining & (golden[stage] == faulty[stage])
            absorbed[stage] = int(same.sum())
            remaining = remaining & ~same
        absorbed["pool"] = int(remaining.sum())
        parts = [f"{words[stage]} ({number})" for stage, number in absorbed.items() if number]
        return (f"it changes {int(changed.sum())} accumulators of {layer.name} in "
                f"{int(changed.reshape(count, -1).any(axis=1).sum())} of {count} vectors, "
                f"and every change vanishes: {', '.join(parts)}")


def _agreement(export, record, changes):
    """Whether the bench and the reference agree on the record (None: no exact reference)."""
    if changes is None:
        return None
    if record["status"] == "missed":
        return not changes.any()
    mismatch = record["first_mismatch"]
    if mismatch.get("kind") == "hang":
        return None
    layer = mismatch["layer"]
    if layer in _RESULT_NAMES:
        layer = export.traced[-1]
    if layer not in export.traced or not 0 <= mismatch["image"] < len(changes):
        return False
    return bool(changes[mismatch["image"], export.traced.index(layer)])


def _missed_reason(reference, record):
    summary = record["reference"]
    if summary is None:
        return ("not explained: the corrupted value may overflow the hardware's accumulator, "
                "which the reference simulator does not model")
    if summary["changes"]:
        return (f"the reference simulator changes {summary['layer']} in {summary['vectors']} "
                "vectors, but the bench saw no mismatch: check the fault injection")
    return reference.explain(record)


def _classify(export, faults, seed, sites):
    if sites is None:
        faults = _check_count(faults, "faults", 1)
        seed = _check_count(seed, "seed", 0)
        sites = export.sample(faults, seed)
    else:
        sites = [tuple(site) for site in sites]
        if not sites or any(len(site) != 3 for site in sites):
            raise HwlenetError("sites must be a non-empty list of (memory, address, bit)")
    return [export.describe(*site) for site in sites]


def plan_faults(directory, faults=50, seed=0, sites=None):
    """The sites a campaign would flip, with the unobservable ones already classified.

    Parameters
    ----------
    directory : path-like
        A folder written by :func:`hwlenet.verify.emit.emit_verilog`.
    faults : int
        Distinct sites drawn uniformly over all ROM bits.
    seed : int
        Seed of the :func:`numpy.random.default_rng` draw; the same seed gives the same sites.
    sites : list of (int, int, int), optional
        Explicit ``(memory index, address, bit)`` sites instead of a random draw.

    Returns
    -------
    list of dict
        One record per site, as in :func:`run_faultcheck`; ``status`` is ``"unobservable"``
        or None (to be simulated).
    """
    return _classify(_Export(directory), faults, seed, sites)


def _classify_registers(export, faults, seed, sites):
    if sites is None:
        faults = _check_count(faults, "register faults", 0)
        seed = _check_count(seed, "seed", 0)
        sites = export.sample_registers(faults, seed) if faults else []
    else:
        sites = [tuple(site) for site in sites]
        if any(len(site) != 3 for site in sites):
            raise HwlenetError("register sites must be a list of (register, bit, value)")
    return [export.describe_register(*site) for site in sites]


def plan_register_faults(directory, faults=20, seed=0, sites=None):
    """The register faults a campaign would inject: ``faults`` distinct register bits drawn
    uniformly over every register bit of the design, each stuck at a random 0 or 1 (seeded by
    ``seed``), or the explicit ``(register index, bit, value)`` ``sites``; one record each, as
    in :func:`run_faultcheck`."""
    return _classify_registers(_Export(directory), faults, seed, sites)


def _run_one(export, simulator, record):
    if "register" in record:
        plusargs = (f"+fault_register={record['register_index']}",
                    f"+fault_register_bit={record['bit']}",
                    f"+fault_stuck_at={record['stuck_at']}", "+stop_at_first")
        name = f"register {record['register']} bit {record['bit']} stuck at {record['stuck_at']}"
    else:
        plusargs = (f"+fault_memory={record['memory_index']}",
                    f"+fault_address={record['address']}", f"+fault_bit={record['bit']}",
                    "+stop_at_first")
        name = f"fault {record['memory']}[{record['address']}] bit {record['bit']}"
    try:
        return cosim.run_bench(export.directory, simulator, 0, export.vectors, "faults",
                               plusargs)
    except HwlenetError as error:
        raise HwlenetError(f"{name}: {error}") from None


def _register_reason(record, vectors):
    if not record["activations"]:
        return (f"never activated: the bit held {record['stuck_at']} at every cycle of the "
                f"{vectors} vectors")
    return (f"activated on {record['activations']} cycles, but no compared value changed: the "
            "register was not read at those cycles, or the change vanished downstream")


def _first_mismatch(verdict):
    if verdict["first_mismatch"] is not None:
        return verdict["first_mismatch"]
    if verdict["hang"] is not None:
        hang = verdict["hang"]
        return {"image": hang["image"], "layer": hang["last_layer"], "kind": "hang",
                "cycle": hang["cycle"]}
    if verdict["mismatches"]:
        return {"kind": "unknown"}
    return None


def _tally(records, key):
    groups = {}
    for record in records:
        counts = groups.setdefault(record[key], {"total": 0, **{s: 0 for s in STATUSES}})
        counts["total"] += 1
        counts[record["status"]] += 1
    return groups


def run_faultcheck(directory, faults=50, seed=0, jobs=None, simulator="verilator", progress=False,
                   sites=None, register_faults=20, register_sites=None):
    """Flip random single bits of an exported design's ROMs, hold random register bits stuck,
    and check that its bench notices.

    Parameters
    ----------
    directory : path-like
        A folder written by :func:`hwlenet.verify.emit.emit_verilog` with test vectors.
    faults : int
        Distinct ``(memory, address, bit)`` sites drawn uniformly over all ROM bits.
    seed : int
        Seed of the draw: the same seed always flips the same sites.
    jobs : int, optional
        Bench processes run in parallel; one per CPU that this process may run on by default.
    simulator : {"verilator", "icarus"}
    progress : bool
        Show a progress bar over the simulated faults.
    sites : list of (int, int, int), optional
        Explicit ``(memory index, address, bit)`` sites instead of a random draw (``faults``
        and ``seed`` are then ignored).
    register_faults : int
        Distinct register bits, drawn uniformly over every register bit of the design (0: none),
        each held stuck at a random value for the whole run.
    register_sites : list of (int, int, int), optional
        Explicit ``(register index, bit, stuck-at value)`` faults instead of a random draw.

    Returns
    -------
    dict
        JSON-ready: ``directory``, ``simulator``, ``vectors``, ``seed``, ``rom_bits``, ``faults``
        (one record per site: ``memory`` (name), ``memory_index`` (the bench's ``+fault_memory``),
        ``role``, ``layer``, ``layer_kind`` (the artifact's kind, or ``rbf`` for the RBF output,
        whose weights are its codes, ``-2 c``), ``address``, ``bit`` (within the word), ``lane``,
        ``element`` (index into the artifact tensor: weights ``[m, k]`` or ``[m, c, ky, kx]``,
        biases and coefficients ``[m]``, tables ``[entry]`` for table index ``entry +
        pre_format.min_int``; None for a padding lane), ``original`` and ``flipped`` (the lane's
        signed integer before and after), ``status`` (caught, missed or unobservable), ``reason``
        (why unobservable or missed), ``first_mismatch`` (image, layer, element, expected, actual,
        kind, cycle) and ``reference`` (``changes``, first changed traced ``layer``, changed
        ``vectors``, whether it ``agrees`` with the bench; None when not simulated or not exact)),
        ``summary`` (``total``, ``caught``, ``missed``, ``unobservable``, ``observable``,
        ``caught_fraction_of_observable``, ``reference_disagreements``), ``by_role`` and
        ``by_layer`` (counts per status); ``register_bits``, ``register_faults`` (one record per
        fault: ``register`` (dotted path), ``register_index`` (the bench's ``+fault_register``),
        ``block``, ``width``, ``bit``, ``stuck_at``, ``status`` (caught, missed, or
        unobservable: an unread register), ``reason`` (why unobservable or missed),
        ``first_mismatch`` and ``activations`` (falling edges at which the register held the
        other value, over the bench's run; None when not simulated)), ``register_summary``
        (``total``, ``caught``, ``missed``, ``unobservable``, ``missed_activated``) and
        ``by_block``;
        ``build_seconds`` and ``seconds``.

    Raises
    ------
    HwlenetError
        When the folder has no vectors, the simulator is unknown or missing, a count is out of
        range, or the bench fails without any fault.
    """
    start = time.perf_counter()
    if simulator not in _SIMULATORS:
        raise HwlenetError(f"a fault campaign runs on {' or '.join(_SIMULATORS)}, not "
                           f"{simulator!r}")
    jobs = resolve_jobs(jobs)
    export = _Export(directory)
    if export.vectors == 0:
        raise HwlenetError(f"{export.directory} holds no test vectors: re-run hwlenet "
                           "emit-verilog with --vectors N --data-dir DIR")
    records = _classify(export, faults, seed, sites)
    register_records = _classify_registers(export, register_faults, seed, register_sites)
    register_pending = [record for record in register_records if record["status"] is None]
    write_register_faults(export.directory, [
        (index, export.registers[index])
        for index in sorted({record["register_index"] for record in register_pending})])
    cosim.build_bench(export.directory, simulator, "faults")
    built = time.perf_counter()
    clean = cosim.run_bench(export.directory, simulator, 0, export.vectors, "faults")
    if clean["mismatches"] or clean["hang"] or clean["images"] != export.vectors:
        where = clean["first_mismatch"] or clean["hang"] or {}
        raise HwlenetError(f"the campaign needs a passing bench, but {export.directory} fails "
                           f"without any fault ({clean['mismatches']} mismatches, first "
                           f"{where}); run hwlenet cosim on it")
    pending = [record for record in records if record["status"] is None]
    reference = _Reference(export) if pending else None
    changes = {id(record): reference.changes(record) for record in pending}
    with ThreadPoolExecutor(jobs) as pool:
        futures = {pool.submit(_run_one, export, simulator, record): record
                   for record in pending + register_pending}
        try:
            for future in tqdm(as_completed(futures), total=len(futures), desc="faults",
                               unit="fault", disable=not progress):
                record, verdict = futures[future], future.result()
                record["first_mismatch"] = _first_mismatch(verdict)
                record["status"] = "missed" if record["first_mismatch"] is None else "caught"
                if "register" in record:
                    record["activations"] = verdict["fault_activations"]
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
    for record in register_records:
        if record["status"] == "missed":
            record["reason"] = _register_reason(record, export.vectors)
    for record in pending:
        record["reference"] = reference.summary(record, changes[id(record)])
        if record["reference"] is not None:
            record["reference"]["agrees"] = _agreement(export, record, changes[id(record)])
        if record["status"] == "missed":
            record["reason"] = _missed_reason(reference, record)
    counts = {status: sum(r["status"] == status for r in records) for status in STATUSES}
    observable = counts["caught"] + counts["missed"]
    by_role = _tally(records, "role")
    return {
        "directory": str(export.directory),
        "simulator": simulator,
        "vectors": export.vectors,
        "seed": None if sites is not None else seed,
        "rom_bits": export.total_bits,
        "faults": records,
        "summary": {
            "total": len(records), **counts, "observable": observable,
            "caught_fraction_of_observable": counts["caught"] / observable if observable
            else None,
            "reference_disagreements": sum(
                r["reference"] is not None and r["reference"]["agrees"] is False
                for r in records),
        },
        "by_role": {role: by_role[role] for role in ROLES if role in by_role},
        "by_layer": _tally(records, "layer"),
        "register_bits": export.register_bits,
        "register_faults": register_records,
        "register_summary": {
            "total": len(register_records),
            **{status: sum(r["status"] == status for r in register_records)
               for status in STATUSES},
            "missed_activated": sum(r["status"] == "missed" and bool(r["activations"])
                                    for r in register_records),
        },
        "by_block": _tally(register_records, "block"),
        "build_seconds": built - start,
        "seconds": time.perf_counter() - start,
    }
