"""``python -m worker`` runs the ``applyq`` command."""

from worker.cli.app import main

raise SystemExit(main())
