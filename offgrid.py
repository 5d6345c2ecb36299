"""Run OffGrid from a checkout or a zipapp:
`python offgrid.py serve` == `python offgrid.pyz serve`."""

import sys

from offgrid.cli import main

if __name__ == "__main__":
    sys.exit(main())
