"""``python -m smsgw_simulators.smsc``: run the SMSC simulator."""

from __future__ import annotations

import sys

from smsgw_simulators.smsc.cli import main

sys.exit(main())
