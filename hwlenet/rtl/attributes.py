"""Attributes that the exported Verilog carries for synthesis, and what they ask of it."""

__all__ = ["REPLICA", "replica"]

#: Marks a register that deliberately holds the same value as others: one copy beside each of
#: the memories that it addresses, so that no single register drives them all across the die.
#: Yosys would merge equal registers into one; :func:`hwlenet.synth.flow.synthesize` keeps the
#: flip-flops of every signal that carries this attribute. Simulators ignore it.
REPLICA = "hwlenet_replica"


def replica():
    """The ``attrs`` of a :data:`REPLICA` signal (``Signal(..., attrs=replica())``)."""
    return {REPLICA: 1}
