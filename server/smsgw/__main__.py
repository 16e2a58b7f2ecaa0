import sys

from smsgw.cli import main

sys.exit(main())
