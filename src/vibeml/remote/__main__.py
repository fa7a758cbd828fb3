"""``python -m vibeml.remote``: the supervisor on a rented machine (see :mod:`vibeml.remote`)."""

import sys

from vibeml.remote.supervisor import main

if __name__ == "__main__":
    sys.exit(main())
