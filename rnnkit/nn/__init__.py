"""The neural-network engine: pure NumPy layers with hand-derived gradients (no I/O, no printing)."""
