"""``python -m handler <command>``: the local command line (see ``smartcover/cli/commands.py``).

Run from the repository root (or with it on ``PYTHONPATH``).

The function's code lives in ``handler/`` with ``smartcover`` as a top-level package (that is how
SCF loads it: ``index.main_handler`` at the package root), so ``handler/`` is put on ``sys.path``.
Nothing here imports the repository's local tools: ``--local-cos`` starts them as a child process
(``smartcover/cli/local.py``).
"""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from smartcover.cli.commands import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
