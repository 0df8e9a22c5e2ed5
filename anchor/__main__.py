"""``python -m anchor`` runs the ``ler-anchor`` command line."""

import sys

from anchor.cli import main

sys.exit(main())
