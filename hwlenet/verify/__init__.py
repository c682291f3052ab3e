"""The exported verification folder: Verilog, testbench, vectors, and the runners that check it."""
