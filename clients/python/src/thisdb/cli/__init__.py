"""The `thisdb` command-line tool (see main.py), installed with the extra `cli`.

`pip install thisdb` brings the SDK alone (httpx); the tool's own packages come with
`pip install 'thisdb[cli]'`. The `thisdb` script is installed either way: without them it says
so in one line instead of failing with a traceback.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import NoReturn

# The modules of the packages of the extra `cli` (pyproject.toml).
CLI_MODULES = ("click", "rich", "prompt_toolkit", "tomli_w")
MISSING_PACKAGES = 2  # the exit status of the tool without its packages: a usage error's


def run() -> NoReturn:
    """The `thisdb` script and `python -m thisdb`."""
    # Found, not imported: the shell's prompt_toolkit is imported only by `thisdb shell`.
    missing = [name for name in CLI_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        print(
            f"error: the command-line tool needs {', '.join(missing)}: pip install 'thisdb[cli]'",
            file=sys.stderr,
        )
        sys.exit(MISSING_PACKAGES)
    from thisdb.cli.main import main

    sys.exit(main())
