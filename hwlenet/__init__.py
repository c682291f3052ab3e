"""hwlenet: a float LeNet-5, quantized to fixed point, simulated bit-accurately, lowered to RTL.

The package is usable without the command line::

    import hwlenet

    test = hwlenet.load_mnist("test").head(20)
    qmodel = hwlenet.quantize("lenet5-relu", bits=8)
    result = hwlenet.simulate(qmodel, test.images)
    hwlenet.emit_verilog(qmodel, "rtl", images=test.images[:2])
    report = hwlenet.cosim("rtl", simulator="verilator")

Names are imported on first use, so ``import hwlenet`` stays fast.
"""

from .errors import EXIT_INPUT_ERROR, EXIT_MISMATCH, HwlenetError

__version__ = "0.1.0"

#: Exported name -> (module, attribute), imported on first access.
_LAZY = {
    "load_mnist": ("hwlenet.data", "load_mnist"),
    "load_model": ("hwlenet.api", "load_model"),
    "quantize": ("hwlenet.api", "quantize"),
    "simulate": ("hwlenet.api", "simulate"),
    "emit_verilog": ("hwlenet.api", "emit_verilog"),
    "cosim": ("hwlenet.api", "cosim"),
    "load_artifact": ("hwlenet.quant.artifact", "load_artifact"),
    "save_artifact": ("hwlenet.quant.artifact", "save_artifact"),
    "QuantizedModel": ("hwlenet.quant.artifact", "QuantizedModel"),
}

__all__ = ["EXIT_INPUT_ERROR", "EXIT_MISMATCH", "HwlenetError", "__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        from importlib import import_module

        module, attribute = _LAZY[name]
        value = getattr(import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hwlenet' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
