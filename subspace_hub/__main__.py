"""``python -m subspace_hub`` runs the CLI."""

import sys

from subspace_hub.cli import main

sys.exit(main())
