"""Defaults shared by the text task and ``rnnkit text`` (no imports: the command line reads them for --help)."""

DEFAULT_TEMPERATURE = 0.8
"""Sampling temperature of ``generate``, ``rnnkit text generate`` and the samples printed while training."""

SPELLING_TEMPERATURES = (0.5, 0.8, 1.0)
"""Temperatures of the spelling report (``spelling``, ``rnnkit text evaluate RUN --spelling``)."""
