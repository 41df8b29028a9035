"""``--local-cos``: the command line's client of the repository's local COS server.

The deployed code never imports the repository's local tools (``devkit``, ``localcos``): this
module starts ``python -m devkit.localrun`` as a child process (run from the repository
checkout, with the same interpreter) and talks to it over loopback HTTP, as the function talks to
COS. See ``devkit/localrun.py`` for the protocol. Development only; the function never imports
this module.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

ROOT = Path(__file__).resolve().parents[3]
"""The repository checkout ``handler/`` sits in (``devkit/`` and ``localcos/`` beside it)."""
START_TIMEOUT_S = 60.0


class LocalCosUnavailable(RuntimeError):
    """``--local-cos`` cannot start: not run from a repository checkout, or the child failed."""


class LocalCos:
    """A running local COS server (a ``devkit.localrun`` child process).

    Attributes: ``endpoint`` (its COS/CI/SSM endpoint, ``http://127.0.0.1:P``), ``env`` (the
    environment given plus what the function needs to use it), ``token`` (the local callback
    token), ``samples`` (the official sample files it is seeded with), ``bucket``, ``region``.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        if not (ROOT / "devkit" / "localrun.py").is_file() or not (ROOT / "localcos").is_dir():
            raise LocalCosUnavailable(f"this needs the repository checkout (devkit/ and localcos/ beside "
                                      f"handler/); not found under {ROOT}")
        child_env = dict(os.environ)
        child_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), child_env.get("PYTHONPATH", "")) if p)
        self._proc = subprocess.Popen([sys.executable, "-m", "devkit.localrun"], cwd=ROOT, env=child_env,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        try:
            self._proc.stdin.write(json.dumps(dict(env)) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
            info = json.loads(line)
        except (OSError, ValueError) as exc:
            self.stop()
            raise LocalCosUnavailable(f"the local COS server did not start: {exc}") from exc
        self.endpoint: str = info["endpoint"]
        self.env: dict[str, str] = info["env"]
        self.token: str = info["token"]
        self.samples: list[str] = info["samples"]
        self.bucket: str = info["bucket"]
        self.region: str = info["region"]
        self._control: str = info["control"]

    def _post(self, path: str, body: bytes) -> dict[str, object]:
        request = urllib.request.Request(self._control + path, data=body, method="POST")
        with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 - loopback, our own child
            answer: dict[str, object] = json.loads(resp.read())
            return answer

    def seed(self, body: bytes) -> bool:
        """Put the buckets, input video and covers a callback names into the server and register
        its CI jobs; False when the body cannot be seeded (it is then sent as it is)."""
        return bool(self._post("/seed", body).get("seeded"))

    def note_body(self, data: bytes) -> bool:
        """Tell the server a client POSTed ``data``: when it is an official sample, the server
        registers that sample's CI job first (the samples share one JobId). True if it was one."""
        return bool(self._post("/sample", data).get("known"))

    def sample(self, name: str) -> bytes:
        """The bytes of the official sample ``name`` (one of :attr:`samples`, a file under
        ``tests/events/``), after making the server know that sample's CI job (:meth:`note_body`).

        Raises:
            ValueError: ``name`` is not one of the samples the server is seeded with.
        """
        if name not in self.samples:
            raise ValueError(f"not an official sample: {name!r} (one of {', '.join(self.samples)})")
        data = (ROOT / "tests" / "events" / name).read_bytes()
        self.note_body(data)
        return data

    def stop(self) -> None:
        """Stop the child (close its stdin; kill it if it has not exited within 10 s)."""
        try:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        finally:
            if self._proc.stdout is not None:
                self._proc.stdout.close()


def start_local_cos(env: Mapping[str, str]) -> LocalCos:
    """Start the local COS server for ``env``.

    Raises:
        LocalCosUnavailable: not a repository checkout, or the server did not start.
    """
    return LocalCos(env)
