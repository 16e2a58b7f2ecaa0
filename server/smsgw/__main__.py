"""``python -m smsgw``: the ``smsgw`` command."""

from __future__ import annotations

import sys

try:
    from smsgw.cli import main
except KeyboardInterrupt:  # Ctrl-C while the modules load: nothing has started yet
    sys.exit(130)

sys.exit(main())
