"""Benchmark tasks, one module per benchmark."""
