"""The `thisdb` command-line tool (see main.py)."""
