"""Custom ops: each has a pure-PyTorch reference path and, where it pays, a CUDA kernel."""
