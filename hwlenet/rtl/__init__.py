"""Amaranth RTL of the LeNet-5 accelerator, its lowering plan, Verilog export and co-simulation."""
