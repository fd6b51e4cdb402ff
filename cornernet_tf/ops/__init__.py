"""Tensor operations CornerNet adds to a standard CNN."""
