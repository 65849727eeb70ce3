"""``python -m spcs_models``: the ``spcs-models`` CLI."""

import sys

from spcs_models.cli import main

sys.exit(main())
