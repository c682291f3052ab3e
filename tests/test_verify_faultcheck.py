"""Fault campaigns: seeded sampling, static classification and the bench's verdict on single
flipped ROM bits of an exported design."""

import copy
import json

import numpy as np
import pytest

from hwlenet import HwlenetError
from hwlenet.sim import simulate
from hwlenet.verify import cosim as cosim_module
from hwlenet.verify.coverage import flip_proofs, reachable_tables, weight_hits
from hwlenet.verify.emit import emit_verilog
from hwlenet.verify.faultcheck import (STATUSES, plan_faults, plan_register_faults,
                                       run_faultcheck)

VECTORS = 4


@pytest.fixture(scope="module")
def relu_export(tmp_path_factory, qmodels, vector_images):
    """The ReLU model at 8 bits on an 8x8 array with a few test vectors."""
    folder = tmp_path_factory.mktemp("faults-relu")
    emit_verilog(qmodels["lenet5-relu"], folder, 8, 8, vector_images[:VECTORS])
    return folder


@pytest.fixture(scope="module")
def classic_export(tmp_path_factory, qmodels):
    """The classic model exported without vectors (static classification only)."""
    folder = tmp_path_factory.mktemp("faults-classic")
    emit_verilog(qmodels["lenet5-classic"], folder, 8, 8)
    return folder


@pytest.fixture(scope="module")
def gated_export(tmp_path_factory, qmodels):
    """The ReLU model with fc2 units 0 and 1 cut off: no weights, and biases so low that flips
    of their weights can turn them on (unit 1) only through bits 3 to 6, or never (unit 0);
    exported without vectors (static classification only)."""
    qmodel = copy.deepcopy(qmodels["lenet5-relu"])
    fc2 = qmodel.layer("fc2")
    assert fc2.bias_shift == 0 and fc2.requant_shift == 8, "choose other biases"
    assert fc2.input_format.max_int == 255 and fc2.weight_format.width == 8
    fc2.weight[:2] = 0
    fc2.bias[:2] = [fc2.bias_format.min_int, -1000]
    folder = tmp_path_factory.mktemp("faults-gated")
    emit_verilog(qmodel, folder, 8, 8)
    return folder, qmodel


def _memory(folder, name):
    memories = cosim_module.read_export(folder)["memories"]
    index = next(i for i, memory in enumerate(memories) if memory["name"] == name)
    return index, memories[index]


def _register(folder, name):
    registers = cosim_module.read_export(folder)["registers"]
    index = next(i for i, register in enumerate(registers) if register["name"] == name)
    return index, registers[index]


def _weight_site(folder, qmodel, layer_name, output, k, lane_bit):
    """The (memory, address, bit) of bit ``lane_bit`` of weight ``[output, k]``."""
    index, memory = _memory(folder, "weight_rom")
    base = next(s["base"] for s in memory["segments"] if s["layer"] == layer_name)
    depth = int(np.prod(qmodel.layer(layer_name).weight.shape[1:]))
    row_tile, lane = divmod(output, memory["lanes"])
    return index, base + row_tile * depth + k, lane * memory["lane_width"] + lane_bit


@pytest.fixture(scope="module")
def directed(relu_export, qmodels, vector_images):
    """A campaign over hand-picked sites, counting the bench runs."""
    qmodel = qmodels["lenet5-relu"]
    images = vector_images[:VECTORS]
    trace = simulate(qmodel, images, trace=True).trace
    # an fc1 output that is positive and unsaturated for image 0, and its largest input there:
    # flipping the weight's sign bit moves the output by 128 * x >> 8 output steps
    fc1 = trace["fc1"][0]
    unit = int(np.flatnonzero((fc1 > 0) & (fc1 < 200))[0])
    inputs = trace["p2"][0].ravel()
    strongest = int(inputs.argmax())
    # the logit that the largest fc2 output of image 0 feeds
    feeding = int(trace["fc2"][0].argmax())
    unused = np.argwhere(~weight_hits(qmodel, images)["fc1"])
    assert len(unused), "every fc1 weight is exercised: choose other vectors"
    # an fc1 unit whose accumulator stays far below zero, and an input it meets: flipping the
    # weight's lowest bit moves the accumulator by at most 255, so the ReLU hides it
    fc1_layer = qmodel.layer("fc1")
    x = trace["p2"].reshape(len(images), -1).astype(np.int64)
    acc = x @ fc1_layer.weight.T.astype(np.int64) + fc1_layer.aligned_bias()
    dead = int(np.flatnonzero(acc.max(axis=0) < -300)[0])
    met = int(np.flatnonzero(x.any(axis=0))[0])
    sites = {
        "fc1 sign": _weight_site(relu_export, qmodel, "fc1", unit, strongest, 7),
        "out sign": _weight_site(relu_export, qmodel, "out", 3, feeding, 7),
        "padding": _weight_site(relu_export, qmodel, "out", 15, 5, 7),
        "unused": _weight_site(relu_export, qmodel, "fc1", *(int(v) for v in unused[0]), 7),
        "bias": (_memory(relu_export, "bias_rom")[0], 0, 10),
        "relu": _weight_site(relu_export, qmodel, "fc1", dead, met, 0),
    }
    # the sign bit of the accumulator of the PE that computes C1's channel 0, stuck at 0 (every
    # negative sum becomes large and positive) and at 1 (every positive one negative)
    acc, register = _register(relu_export, "array.pe_0_0.acc")
    register_sites = [(acc, register["width"] - 1, 0), (acc, register["width"] - 1, 1)]
    runs = []
    run_bench = cosim_module.run_bench

    def counting(*args, **kwargs):
        runs.append(args[5] if len(args) > 5 else kwargs.get("plusargs", ()))
        return run_bench(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cosim_module, "run_bench", counting)
        report = run_faultcheck(relu_export, jobs=2, sites=list(sites.values()),
                                register_sites=register_sites)
    return dict(zip(sites, report["faults"])), report, runs, (unit, strongest)


def test_known_observable_faults_are_caught_in_their_layer(directed):
    records, _, _, (unit, strongest) = directed
    fc1 = records["fc1 sign"]
    assert fc1["status"] == "caught" and fc1["layer"] == "fc1" and fc1["role"] == "weights"
    assert fc1["element"] == [unit, strongest] and fc1["original"] != fc1["flipped"]
    assert abs(fc1["original"] - fc1["flipped"]) == 128
    assert fc1["first_mismatch"]["layer"] == "fc1" and fc1["first_mismatch"]["kind"] == "value"
    out = records["out sign"]
    assert out["status"] == "caught" and out["first_mismatch"]["layer"] == "out"
    for record in (fc1, out):
        assert record["reference"] == {"changes": True, "layer": record["layer"],
                                       "vectors": record["reference"]["vectors"], "agrees": True}


def test_padding_lane_is_unobservable_without_running(directed):
    records, _, runs, _ = directed
    padding = records["padding"]
    assert padding["status"] == "unobservable" and "padding lane" in padding["reason"]
    assert padding["element"] is None and padding["first_mismatch"] is None
    flipped = f"+fault_address={padding['address']}"
    assert not any(flipped in plusargs for plusargs in runs)
    # one clean run, then one per simulated site and one per register fault
    assert len(runs) == 1 + sum(r["status"] != "unobservable" for r in records.values()) + 2
    assert runs[0] == ()


def test_weight_on_zero_inputs_is_missed_with_its_reason(directed):
    records, _, _, _ = directed
    unused = records["unused"]
    assert unused["status"] == "missed" and unused["first_mismatch"] is None
    assert "only ever multiplies zero inputs" in unused["reason"]
    assert unused["reference"]["changes"] is False and unused["reference"]["agrees"] is True


def test_change_hidden_by_the_relu_is_missed_with_its_reason(directed):
    relu = directed[0]["relu"]
    assert relu["status"] == "missed" and relu["reference"]["agrees"] is True
    assert "every change vanishes: the ReLU" in relu["reason"]
    assert abs(relu["original"] - relu["flipped"]) == 1


def test_summary_counts_and_json(directed):
    records, report, _, _ = directed
    summary = report["summary"]
    assert summary["total"] == len(records) == sum(summary[s] for s in STATUSES)
    assert summary["observable"] == summary["caught"] + summary["missed"]
    assert summary["caught_fraction_of_observable"] == summary["caught"] / summary["observable"]
    assert summary["reference_disagreements"] == 0
    assert report["by_role"]["weights"]["total"] == 5
    assert report["by_role"]["biases"]["total"] == 1
    assert report["vectors"] == VECTORS and report["seed"] is None
    assert json.loads(json.dumps(report)) == report


def test_stuck_accumulator_sign_is_caught_in_the_first_layer(directed):
    _, report, runs, _ = directed
    faults = report["register_faults"]
    assert [fault["stuck_at"] for fault in faults] == [0, 1]
    for fault in faults:
        assert fault["register"] == "array.pe_0_0.acc" and fault["block"] == "array"
        assert fault["status"] == "caught" and fault["reason"] is None
        assert fault["first_mismatch"]["layer"] == "p1" and fault["activations"] > 0
        assert f"+fault_register={fault['register_index']}" in runs[-1] + runs[-2]
    assert report["register_summary"] == {"total": 2, "caught": 2, "missed": 0,
                                          "unobservable": 0, "missed_activated": 0}
    assert report["by_block"]["array"]["caught"] == 2
    registers = cosim_module.read_export(report["directory"])["registers"]
    assert report["register_bits"] == sum(register["width"] for register in registers)


def test_campaign_is_deterministic_for_a_seed(relu_export):
    first = run_faultcheck(relu_export, faults=3, seed=11, jobs=2, register_faults=3)
    again = run_faultcheck(relu_export, faults=3, seed=11, jobs=1, register_faults=3)
    assert first["faults"] == again["faults"]
    assert first["register_faults"] == again["register_faults"]
    assert first["summary"] == again["summary"] and first["summary"]["total"] == 3
    assert first["summary"]["reference_disagreements"] == 0
    assert first["register_summary"]["total"] == 3
    for fault in first["register_faults"]:
        assert fault["status"] in ("caught", "missed") and fault["activations"] is not None
    # only the campaign's registers are driven by the fault build
    text = (relu_export / "register_faults.vh").read_text()
    names = {fault["register"] for fault in first["register_faults"]}
    assert text.count("always @(negedge clk)") == len(names)
    assert all(f"// {name}\n" in text for name in names)


@pytest.mark.parametrize("seed", [0, 5])
def test_register_sampling_is_seeded_distinct_and_in_range(relu_export, seed):
    records = plan_register_faults(relu_export, faults=200, seed=seed)
    sites = [(r["register_index"], r["bit"], r["stuck_at"]) for r in records]
    assert sites == [(r["register_index"], r["bit"], r["stuck_at"])
                     for r in plan_register_faults(relu_export, faults=200, seed=seed)]
    assert len({site[:2] for site in sites}) == 200 and sites == sorted(sites)
    assert {site[2] for site in sites} == {0, 1}
    other = plan_register_faults(relu_export, faults=200, seed=seed + 1)
    assert sites != [(r["register_index"], r["bit"], r["stuck_at"]) for r in other]
    registers = cosim_module.read_export(relu_export)["registers"]
    for index, bit, _ in sites:
        assert 0 <= bit < registers[index]["width"]
    assert plan_register_faults(relu_export, faults=0) == []
    total = sum(register["width"] for register in registers)
    with pytest.raises(HwlenetError, match="at most"):
        plan_register_faults(relu_export, faults=total + 1)


def test_unread_registers_are_the_arrays_dead_ends(relu_export):
    """The last column's weight registers and the last row's operand registers feed no
    neighbour: their faults are unobservable and never simulated."""
    registers = cosim_module.read_export(relu_export)["registers"]
    unread = sorted(register["name"] for register in registers if register["unread"])
    expected = sorted([f"array.pe_{r}_7.w" for r in range(8)]
                      + [f"array.pe_7_{c}.x" for c in range(8)])
    assert unread == expected
    index, register = _register(relu_export, "array.pe_3_7.w")
    record, = plan_register_faults(relu_export, sites=[(index, 2, 1)])
    assert record["status"] == "unobservable" and "no logic reads" in record["reason"]
    live, = plan_register_faults(relu_export, sites=[(_register(relu_export,
                                                                "array.pe_3_6.w")[0], 2, 1)])
    assert live["status"] is None


@pytest.mark.parametrize("site", [(10 ** 6, 0, 0), (0, 64, 0), (0, 0, 2), (0, 0)])
def test_bad_register_sites_are_rejected(relu_export, site):
    with pytest.raises(HwlenetError):
        plan_register_faults(relu_export, sites=[site])


def test_missed_register_faults_say_whether_they_were_activated(relu_export, monkeypatch):
    passing = {"images": VECTORS, "mismatches": 0, "cycles": 1, "hang": None,
               "first_mismatch": None}
    activations = {"+fault_register_bit=0": 0, "+fault_register_bit=1": 7}

    def run_bench(directory, simulator, first, count, variant="plain", plusargs=()):
        found = [activations[arg] for arg in plusargs if arg in activations]
        return {**passing, "fault_activations": found[0] if found else None}

    monkeypatch.setattr(cosim_module, "build_bench", lambda *args, **kwargs: None)
    monkeypatch.setattr(cosim_module, "run_bench", run_bench)
    acc, _ = _register(relu_export, "array.pe_0_0.acc")
    report = run_faultcheck(relu_export, faults=1, register_sites=[(acc, 0, 1), (acc, 1, 0)])
    never, masked = report["register_faults"]
    assert never["status"] == masked["status"] == "missed"
    assert never["reason"].startswith("never activated: the bit held 1 at every cycle")
    assert masked["reason"].startswith("activated on 7 cycles, but no compared value changed")
    assert report["register_summary"] == {"total": 2, "caught": 0, "missed": 2,
                                          "unobservable": 0, "missed_activated": 1}


@pytest.mark.parametrize("seed", [0, 5])
def test_sampling_is_seeded_distinct_and_in_range(relu_export, seed):
    records = plan_faults(relu_export, faults=200, seed=seed)
    sites = [(r["memory_index"], r["address"], r["bit"]) for r in records]
    assert sites == [(r["memory_index"], r["address"], r["bit"])
                     for r in plan_faults(relu_export, faults=200, seed=seed)]
    assert len(set(sites)) == 200 and sites == sorted(sites)
    other = plan_faults(relu_export, faults=200, seed=seed + 1)
    assert sites != [(r["memory_index"], r["address"], r["bit"]) for r in other]
    memories = cosim_module.read_export(relu_export)["memories"]
    for memory, address, bit in sites:
        assert 0 <= address < memories[memory]["depth"] and 0 <= bit < memories[memory]["width"]
    assert all(r["status"] in (None, "unobservable") for r in records)


def test_fault_count_is_checked(relu_export):
    memories = cosim_module.read_export(relu_export)["memories"]
    total = sum(m["depth"] * m["width"] for m in memories)
    with pytest.raises(HwlenetError, match="at most"):
        plan_faults(relu_export, faults=total + 1)
    with pytest.raises(HwlenetError, match="faults"):
        plan_faults(relu_export, faults=0)


@pytest.mark.parametrize("layer", ["c1", "s2", "s4"])
def test_unreachable_table_entries_are_unobservable(classic_export, qmodels, layer):
    qmodel = qmodels["lenet5-classic"]
    table = reachable_tables(qmodel)[layer]
    name = "pool_lut_rom" if qmodel.layer(layer).kind == "subsample" else "lut_rom"
    index, memory = _memory(classic_export, name)
    base = next(s["base"] for s in memory["segments"] if s["layer"] == layer)
    low = qmodel.layer(layer).pre_format.min_int
    reachable = table["low"]
    sites = [(index, base + reachable - low, 3)]
    if table["unreachable"]:
        unreachable = table["unreachable"][0]["high"]
        sites.append((index, base + unreachable - low, 3))
    records = plan_faults(classic_export, sites=sites)
    assert records[0]["status"] is None and records[0]["element"] == [reachable - low]
    assert records[0]["original"] == int(qmodel.layer(layer).lut[reachable - low])
    assert records[0]["flipped"] == records[0]["original"] ^ 8
    for record in records[1:]:
        assert record["status"] == "unobservable" and "never indexed" in record["reason"]


def test_classic_padding_lanes_and_elements(classic_export, qmodels):
    qmodel = qmodels["lenet5-classic"]
    index, memory = _memory(classic_export, "weight_rom")
    # c1 has 6 maps on 8 rows: lanes 6 and 7 of its words are padding
    records = plan_faults(classic_export, sites=[(index, 7, 6 * 8), (index, 7, 5 * 8 + 7),
                                                 (index, 24, 0)])
    assert records[0]["status"] == "unobservable" and records[0]["lane"] == 6
    assert records[1]["status"] is None and records[1]["element"] == [5, 0, 1, 2]
    original = int(qmodel.layer("c1").weight[5, 0, 1, 2])
    assert records[1]["original"] == original
    assert records[1]["flipped"] == (original & 0x7f) - (0 if original < 0 else 128)
    assert records[2]["element"] == [0, 0, 4, 4]


def test_flips_that_no_input_can_show_are_unobservable(gated_export):
    """Unit 1 of fc2 is ``-1000 + (w' - w) * x`` with ``x <= 255``: a flip of bit 0, 1 or 2
    adds at most ``4 * 255 = 1020``, which rounds to 0 (shift 8), and the sign bit only
    subtracts; bits 3 to 6 can show. Unit 0 never shows; unit 2 is the model's own."""
    folder, qmodel = gated_export
    # an input (fc1 output) that the interval analysis lets reach 255
    item = int(np.flatnonzero(flip_proofs(qmodel)["fc2"].input_high == 255)[0])
    bits = range(8)
    sites = [_weight_site(folder, qmodel, "fc2", unit, item, bit)
             for unit in (0, 1, 2) for bit in bits]
    records = plan_faults(folder, sites=sites)
    status = {(r["element"][0], r["bit"] % 8): r["status"] for r in records}
    for bit in bits:
        assert status[0, bit] == "unobservable"
        assert status[1, bit] == ("unobservable" if bit in (0, 1, 2, 7) else None)
        assert status[2, bit] is None
    record = next(r for r in records if r["element"] == [1, item] and r["bit"] % 8 == 2)
    assert record["original"] == 0 and record["flipped"] == 4
    assert "can never change fc2's output 1" in record["reason"]
    assert f"input {item} is in [0, 255]" in record["reason"]
    assert "the output is always 0" in record["reason"]


@pytest.mark.parametrize("site", [(99, 0, 0), (0, 10 ** 6, 0), (0, 0, 64), (0, 0)])
def test_bad_sites_are_rejected(classic_export, site):
    with pytest.raises(HwlenetError):
        plan_faults(classic_export, sites=[site])


def test_campaign_needs_vectors_a_simulator_and_a_passing_bench(classic_export, relu_export,
                                                                monkeypatch):
    with pytest.raises(HwlenetError, match="no test vectors"):
        run_faultcheck(classic_export, faults=1)
    with pytest.raises(HwlenetError, match="verilator or icarus"):
        run_faultcheck(relu_export, faults=1, simulator="amaranth")
    with pytest.raises(HwlenetError, match="jobs"):
        run_faultcheck(relu_export, faults=1, jobs=0)
    failing = {"images": VECTORS, "mismatches": 1, "cycles": 0, "hang": None,
               "first_mismatch": {"image": 0, "layer": "c1", "element": 0, "expected": 1,
                                  "actual": 2, "kind": "value", "cycle": 9}}
    monkeypatch.setattr(cosim_module, "run_bench", lambda *args, **kwargs: failing)
    with pytest.raises(HwlenetError, match="needs a passing bench"):
        run_faultcheck(relu_export, faults=1, seed=11, register_faults=3)


def test_cli_prints_the_campaign_and_writes_json(relu_export, tmp_path):
    from click.testing import CliRunner

    from hwlenet.cli import main

    # seed 11 and 3 register faults: the registers of the deterministic campaign's build
    result = CliRunner().invoke(main, ["faultcheck", str(relu_export), "--faults", "3",
                                       "--register-faults", "3", "--seed", "11",
                                       "--json", str(tmp_path / "f.json")])
    report = json.loads((tmp_path / "f.json").read_text())
    assert result.exit_code == (1 if report["summary"]["missed"] else 0), result.output
    summary = report["summary"]
    assert f"{summary['caught']} caught, {summary['missed']} missed" in result.output
    assert len(report["faults"]) == 3 and len(report["register_faults"]) == 3
    registers = report["register_summary"]
    assert (f"registers: 3 stuck-at faults over {report['register_bits']} register bits: "
            f"{registers['caught']} caught") in result.output


def test_rbf_code_flips_name_the_rbf_layer(classic_export, qmodels):
    """A flip in the RBF layer's weights (its codes, stored as -2 c in the weight ROM's lanes)
    names the layer ``out`` of kind ``rbf``, and no flip of them is statically hidden: the
    penalties have no activation, rounding or saturation to absorb a change."""
    qmodel = qmodels["lenet5-classic"]
    out = qmodel.layer("out")
    assert out.is_rbf
    _, memory = _memory(classic_export, "weight_rom")
    width = memory["lane_width"]
    picks = [(0, 0, width - 1), (7, 83, 1), (9, 40, 0), (3, 12, 2)]
    records = plan_faults(classic_export, sites=[_weight_site(classic_export, qmodel, "out", *pick)
                                                 for pick in picks])
    for record, (unit, k, bit) in zip(records, picks):
        assert record["layer"] == "out" and record["layer_kind"] == "rbf"
        assert record["role"] == "weights" and record["element"] == [unit, k]
        assert record["original"] == -2 * int(out.codes[unit, k])
        flipped = (record["original"] ^ (1 << bit)) & ((1 << width) - 1)
        assert record["flipped"] == flipped - (flipped >> (width - 1) << width)
        assert record["status"] is None
    c1 = plan_faults(classic_export, sites=[_weight_site(classic_export, qmodel, "c1", 0, 0, 7)])
    assert c1[0]["layer_kind"] == "conv"


@pytest.fixture(scope="module")
def classic_vectors_export(tmp_path_factory, qmodels, vector_images):
    """The classic model (RBF output) on a 4x4 array with two test vectors."""
    folder = tmp_path_factory.mktemp("faults-classic-rbf")
    emit_verilog(qmodels["lenet5-classic"], folder, 4, 4, vector_images[:2])
    return folder


def test_rbf_code_flips_are_caught_in_the_rbf_layer(classic_vectors_export, qmodels,
                                                    vector_images):
    """Flipping a code's sign bit (-1 <-> +1 becomes -2 <-> 126 or 2 <-> -126 in the lane) or a
    low bit changes the penalties of every vector whose F6 input is non-zero: the bench
    catches it in ``out``, the RBF layer, and the numba replay agrees."""
    qmodel = qmodels["lenet5-classic"]
    _, memory = _memory(classic_vectors_export, "weight_rom")
    f6 = simulate(qmodel, vector_images[:2], trace=True).trace["f6"]
    k = int(np.flatnonzero((f6 != 0).all(axis=0))[0])
    sites = [_weight_site(classic_vectors_export, qmodel, "out", 6, k, memory["lane_width"] - 1),
             _weight_site(classic_vectors_export, qmodel, "out", 1, k, 1)]
    report = run_faultcheck(classic_vectors_export, jobs=2, sites=sites)
    assert report["summary"]["caught"] == 2 and report["summary"]["reference_disagreements"] == 0
    for record in report["faults"]:
        assert record["layer"] == "out" and record["layer_kind"] == "rbf"
        assert record["first_mismatch"]["layer"] in ("out", "logits", "class")
        assert record["reference"]["layer"] == "out" and record["reference"]["agrees"] is True
    assert report["by_layer"]["out"]["caught"] == 2
