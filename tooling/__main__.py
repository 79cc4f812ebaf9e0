"""``python -m tooling COMMAND``: what ``./course COMMAND`` runs in the course's environment."""

import sys

from tooling.cli import main

sys.exit(main())
