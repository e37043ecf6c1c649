"""One module per ``rnnkit`` subcommand; each exposes ``register(subparsers)``."""
