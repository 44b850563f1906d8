"""`python -m jsma.cli`: the same as the `jsma` command."""

import sys

from jsma.cli import main

sys.exit(main())
