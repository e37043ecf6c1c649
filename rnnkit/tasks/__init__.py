"""The applications: text, forecast, memory. Plain functions and small classes; no argparse, no plotting."""
