"""``python -m rnnkit`` runs the command-line interface."""
from rnnkit.cli import main

raise SystemExit(main())
