"""`python -m vibeml` = the `vibeml` command."""

from vibeml.cli.main import run

run()
