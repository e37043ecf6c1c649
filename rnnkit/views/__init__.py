"""HTML pages that show what a trained network does (the only place in rnnkit that writes pages).

``rnnkit.views.text.write_view(lm, text, path)``: a self-contained page for a character model (``rnnkit text view``).
"""
from rnnkit.views.text import write_view

__all__ = ["write_view"]
