"""rnnkit: recurrent neural networks from first principles, on NumPy with hand-derived gradients."""
__version__ = "0.1.0"
