"""``python -m worker`` runs the ``applyq`` command."""

from worker.cli import main

main()
