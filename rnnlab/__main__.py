"""`python -m rnnlab ...`: the command line, as the `rnnlab` console script (and `torchrun -m rnnlab`)."""

import sys

from rnnlab.cli import main

sys.exit(main())
