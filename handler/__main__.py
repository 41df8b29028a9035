"""``python -m handler <command>``: the local command line (see ``smartcover/cli.py``).

Run from the repository root. The function's code lives in ``handler/`` with ``smartcover`` as a
top-level package (that is how SCF loads it: ``index.main_handler`` at the package root), so
``handler/`` is put on ``sys.path``; the repository root too, for the local tools (``localcos``,
``devkit``) that ``--local-cos`` uses.
"""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
for _path in (os.path.dirname(_HERE), _HERE):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from smartcover.cli.commands import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
