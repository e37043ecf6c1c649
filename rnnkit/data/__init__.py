"""Arrays in, arrays out: text, series and sequence data pipelines."""
