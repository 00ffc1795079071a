"""``python -m hybridlib.assignments``: see :mod:`hybridlib.assignments.commands`."""

import sys

from hybridlib.assignments.commands import main

sys.exit(main())
