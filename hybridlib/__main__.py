"""``python -m hybridlib``: see :mod:`hybridlib.cli`."""

import sys

from hybridlib.cli import main

sys.exit(main())
