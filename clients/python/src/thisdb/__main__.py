"""`python -m thisdb`: the command-line tool."""

from thisdb.cli import run

run()
