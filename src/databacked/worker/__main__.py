"""``python -m databacked.worker``: see :mod:`databacked.worker`."""

import sys

from databacked.worker import main

sys.exit(main())
