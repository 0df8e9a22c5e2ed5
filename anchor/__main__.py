"""``python -m anchor`` runs the ``ler-anchor`` command line."""

import sys

from anchor.cli.main import main

sys.exit(main())
