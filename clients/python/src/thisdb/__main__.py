"""`python -m thisdb`: the command-line tool."""

from thisdb.cli.main import run

run()
