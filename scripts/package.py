"""Build the SCF deployment package: ``build/package/`` and ``build/smartcover-scf.zip``.

    .venv/bin/python scripts/package.py                   # build, compile for 3.10 if found, zip, verify
    .venv/bin/python scripts/package.py --no-verify       # skip the local run of the built package
    .venv/bin/python scripts/package.py --compile-with /path/to/python3.10

What goes in (the zip's root is what SCF puts in ``/var/user``, the handler is ``index.main_handler``;
``handler/`` is taken from the work tree as it is, so build from a clean checkout for a release):

* the contents of ``handler/``: ``index.py``, ``__main__.py`` (the local CLI; small) and
  ``smartcover/`` (no ``__pycache__``, no tests: there are none under ``handler/``);
* the runtime dependencies of ``requirements.txt`` and everything they need, at the versions
  installed in this virtualenv (the ones the tests ran with), as wheels for SCF's runtime
  (``pip install --target ... --python-version 3.10 --implementation cp --abi cp310
  --platform manylinux2014_x86_64 --only-binary=:all: --no-deps``); two exceptions:

  - ``pycryptodome`` (``Crypto/``, about 16 MB unpacked) is left out: cos-python-sdk-v5 imports it
    only in ``qcloud_cos/crypto.py`` and ``cos_encryption_client.py`` (client-side encryption),
    which ``qcloud_cos/__init__.py`` does not import and this function never uses. The verify
    step below runs the handler from the zip with ``Crypto`` absent.
  - ``crcmod`` publishes no wheel: its pure-Python modules are taken from the sdist
    (``python3/crcmod``); without the C extension crcmod falls back to them by itself, and the
    function never computes a CRC (it compares the ones COS returns).

* dist-info folders stay (they carry the licences); ``bin/`` scripts, ``__pycache__`` and ``*.pyc``
  built for this machine's interpreter are removed;
* bytecode for the runtime: when a Python 3.10 interpreter is found (``--compile-with``, else
  ``python3.10`` on PATH or under pyenv), every module is compiled into ``__pycache__/*.cpython-310.pyc``
  with ``--invalidation-mode checked-hash``: valid whatever mtimes the unzip gives, still
  recompiled if a source is edited in the console. Without it every cold start compiles the SDK
  from source, unless SCF can write ``__pycache__`` next to the code (UNCONFIRMED; assume not).

The zip is deterministic (sorted entries, fixed timestamps). Verification extracts the zip to a
temporary folder and runs ``index.main_handler`` there in an isolated interpreter (``-I -S``:
no site-packages, no ``PYTHON*`` variables; the 3.10 interpreter when found) against a local COS
server: one official sample moved and tagged (must answer 200 with every module loaded from the
zip or the standard library), one request with a wrong token (401, neither ``qcloud_cos`` nor
``requests`` imported).
"""
from __future__ import annotations

import argparse
import glob
import importlib.metadata as metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
PACKAGE = BUILD / "package"
ZIP = BUILD / "smartcover-scf.zip"
HANDLER = ROOT / "handler"

RUNTIME = {"python_version": "3.10", "python_full_version": "3.10.0", "implementation_name": "cpython",
           "platform_python_implementation": "CPython", "sys_platform": "linux", "platform_system": "Linux",
           "os_name": "posix", "platform_machine": "x86_64", "extra": ""}
PIP_TARGET = ["--python-version", "3.10", "--implementation", "cp", "--abi", "cp310",
              "--platform", "manylinux2014_x86_64", "--only-binary=:all:", "--no-deps"]
LEFT_OUT = {"pycryptodome": "only qcloud_cos's client-side encryption imports Crypto"}
FROM_SDIST = {"crcmod": "python3/crcmod"}
ZIP_TIME = (2020, 1, 1, 0, 0, 0)


def _requirement_parser():
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pragma: no cover - pip always vendors it
        from pip._vendor.packaging.requirements import Requirement
    return Requirement


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(requirements: Path) -> dict[str, str]:
    """``{distribution name: installed version}`` for the requirements file and everything it needs
    at SCF's runtime (markers evaluated for CPython 3.10 on Linux x86_64; extras not followed)."""
    Requirement = _requirement_parser()
    todo = []
    for line in requirements.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            todo.append(Requirement(line))
    out: dict[str, str] = {}
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate(RUNTIME):
            continue
        name = _canon(req.name)
        if name in out:
            continue
        version = metadata.version(req.name)
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            raise SystemExit(f"{req.name} {version} installed here does not satisfy {req}: rebuild the virtualenv")
        out[name] = version
        todo.extend(Requirement(r) for r in (metadata.requires(req.name) or ()))
    return dict(sorted(out.items()))


def find_runtime_python(explicit: str | None) -> str | None:
    """A Python 3.10 interpreter (SCF's runtime) for bytecode and verification, or ``None``."""
    candidates = [explicit] if explicit else [shutil.which("python3.10") or "",
                                             *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python3.10")))]
    for exe in candidates:
        if not exe:
            continue
        try:
            out = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() == "3.10":
            return exe
    if explicit:
        raise SystemExit(f"--compile-with {explicit}: not a working Python 3.10")
    return None


def copy_handler(dest: Path) -> None:
    """``handler/`` (index.py, __main__.py, smartcover/) without caches."""
    for name in ("index.py", "__main__.py"):
        if (HANDLER / name).exists():
            shutil.copy2(HANDLER / name, dest / name)
    shutil.copytree(HANDLER / "smartcover", dest / "smartcover",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "tests", "test_*"))


def install_wheels(dest: Path, pins: dict[str, str]) -> None:
    """``pip install --target`` the wheels for SCF's runtime, without resolving again."""
    specs = [f"{name}=={version}" for name, version in pins.items() if name not in LEFT_OUT and name not in FROM_SDIST]
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
           "--target", str(dest), *PIP_TARGET, *specs]
    print("+ " + " ".join(cmd[2:]))
    subprocess.run(cmd, check=True)


def install_from_sdist(dest: Path, name: str, version: str, inner: str) -> None:
    """Copy the pure-Python package folder ``inner`` (and the licence) out of ``name``'s sdist."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
               "--no-binary=:all:", "-d", tmp, f"{name}=={version}"]
        print("+ " + " ".join(cmd[2:]))
        subprocess.run(cmd, check=True)
        archive = next(Path(tmp).glob("*.tar.gz"))
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(tmp)  # noqa: S202
        top = next(p for p in Path(tmp).iterdir() if p.is_dir())
        shutil.copytree(top / inner, dest / Path(inner).name, ignore=shutil.ignore_patterns("test*", "__pycache__"))
        for lic in ("LICENSE", "LICENSE.txt", "COPYING"):
            if (top / lic).exists():
                (dest / f"{name}-{version}.sdist-info").mkdir(exist_ok=True)
                shutil.copy2(top / lic, dest / f"{name}-{version}.sdist-info" / lic)


def prune(dest: Path) -> None:
    """Remove what never runs on SCF: ``bin/`` scripts, caches built for this machine's Python."""
    shutil.rmtree(dest / "bin", ignore_errors=True)
    for cache in list(dest.rglob("__pycache__")):
        shutil.rmtree(cache)
    for pyc in dest.rglob("*.py[co]"):
        pyc.unlink()


def compile_for(dest: Path, python: str) -> None:
    """Bytecode for the runtime interpreter, validated by source hash (mtime-proof)."""
    cmd = [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "checked-hash", str(dest)]
    print("+ " + " ".join(cmd))
    subprocess.run(cmd, check=True, env=dict(os.environ, PYTHONHASHSEED="0"))  # same bytes on every build


def make_zip(src: Path, out: Path) -> None:
    """Deterministic zip of ``src``'s contents (sorted, fixed timestamps, 0644/0755)."""
    out.unlink(missing_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path in sorted(p for p in src.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(src).as_posix(), ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o100755 if os.access(path, os.X_OK) else 0o100644) << 16
            zf.writestr(info, path.read_bytes(), compresslevel=9)


def sizes(out: Path) -> list[tuple[str, int, int]]:
    """(top-level entry, zipped bytes, unpacked bytes), largest zipped first."""
    parts: dict[str, list[int]] = {}
    with zipfile.ZipFile(out) as zf:
        for info in zf.infolist():
            part = parts.setdefault(info.filename.split("/", 1)[0], [0, 0])
            part[0] += info.compress_size
            part[1] += info.file_size
    return sorted(((k, v[0], v[1]) for k, v in parts.items()), key=lambda row: -row[1])


VERIFY = r"""
import json, os, sys
root = sys.argv[1]
sys.path.insert(0, root)
import index
bad = index.main_handler(json.loads(sys.argv[2]), json.loads(sys.argv[4]))
early = sorted(m for m in ("qcloud_cos", "requests", "urllib3", "Crypto") if m in sys.modules)
good = index.main_handler(json.loads(sys.argv[3]), json.loads(sys.argv[4]))
stdlib = os.path.dirname(os.__file__)
inside = (os.path.realpath(root), os.path.realpath(stdlib))
outside = sorted({name for name, mod in list(sys.modules.items())
                  if getattr(mod, "__file__", None) and not os.path.realpath(mod.__file__).startswith(inside)})
print("VERIFY " + json.dumps({"python": sys.version.split()[0], "refused": bad["statusCode"], "importedBeforeAuth": early,
                              "status": good["statusCode"], "body": json.loads(good["body"]), "outside": outside,
                              "crypto": "Crypto" in sys.modules}))
"""


def verify(out: Path, python: str) -> dict:
    """Run the zip's handler in an isolated interpreter against a local COS server (see module doc)."""
    sys.path[:0] = [str(ROOT), str(HANDLER)]
    import devkit

    sample = devkit.sample("smartcover-job-api.xml")
    srv = devkit.server()
    try:
        devkit.seed(srv, sample)
        env = devkit.env(srv, SMARTCOVER_ACTIONS="move,tag", SMARTCOVER_TARGET_KEY="covers/${InputName}/${Number}.${ext}",
                         SMARTCOVER_ALLOWED_BUCKETS="test-123456789", SMARTCOVER_LOG_LEVEL="WARNING")
        env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
        with tempfile.TemporaryDirectory(prefix="scf-user-") as tmp:
            with zipfile.ZipFile(out) as zf:
                zf.extractall(tmp)
            args = [python, "-I", "-S", "-c", VERIFY, tmp, json.dumps(devkit.http_event(sample, token="wrong-token-0000000000")),
                    json.dumps(devkit.http_event(sample)), json.dumps(devkit.context())]
            run = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, cwd=tmp)
        lines = [ln for ln in run.stdout.splitlines() if ln.startswith("VERIFY ")]
        if run.returncode != 0 or not lines:
            raise SystemExit(f"verify: the packaged handler failed (exit {run.returncode}):\n"
                             f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
        result = json.loads(lines[-1][7:])
        covers = [c["outcome"] for j in result["body"].get("jobs", []) for c in j.get("covers", [])]
        problems = []
        if result["refused"] != 401 or result["importedBeforeAuth"]:
            problems.append(f"wrong token: {result['refused']}, imported before auth: {result['importedBeforeAuth']}")
        if result["status"] != 200 or covers != ["moved"] * 5 or srv.keys("test-123456789", "output/"):
            problems.append(f"sample: {result['status']} {covers}")
        if result["outside"]:
            problems.append(f"modules loaded from outside the package: {result['outside']}")
        if problems:
            raise SystemExit("verify: " + "; ".join(problems))
        return result
    finally:
        srv.stop()


def main(argv: list[str] | None = None) -> int:
    """Build, zip and (by default) verify; print the size and the largest parts."""
    p = argparse.ArgumentParser(description="Build build/package and build/smartcover-scf.zip for SCF (Python 3.10).")
    p.add_argument("--compile-with", metavar="PYTHON", help="Python 3.10 interpreter for bytecode and verification")
    p.add_argument("--no-compile", action="store_true", help="ship sources only (every cold start compiles them)")
    p.add_argument("--no-verify", action="store_true", help="do not run the built package")
    args = p.parse_args(argv)

    runtime = None if args.no_compile and not args.compile_with else find_runtime_python(args.compile_with)
    pins = closure(ROOT / "requirements.txt")
    print("dependencies: " + ", ".join(f"{k}=={v}" for k, v in pins.items()))
    for name, why in LEFT_OUT.items():
        print(f"left out: {name} ({why})")

    shutil.rmtree(PACKAGE, ignore_errors=True)
    PACKAGE.mkdir(parents=True)
    copy_handler(PACKAGE)
    install_wheels(PACKAGE, pins)
    for name, inner in FROM_SDIST.items():
        if name in pins:
            install_from_sdist(PACKAGE, name, pins[name], inner)
    prune(PACKAGE)
    if runtime and not args.no_compile:
        compile_for(PACKAGE, runtime)
    else:
        print("no bytecode: no Python 3.10 found (or --no-compile); the runtime compiles at each cold start")
    make_zip(PACKAGE, ZIP)

    print(f"\n{ZIP.relative_to(ROOT)}: {ZIP.stat().st_size:,} bytes ({ZIP.stat().st_size / 1e6:.2f} MB); "
          f"unpacked {sum(f.stat().st_size for f in PACKAGE.rglob('*') if f.is_file()) / 1e6:.2f} MB")
    print("| entry | zipped kB | unpacked kB |\n|---|---|---|")
    for name, zipped, raw in sizes(ZIP)[:12]:
        print(f"| {name} | {zipped / 1000:.0f} | {raw / 1000:.0f} |")

    if not args.no_verify:
        result = verify(ZIP, runtime or sys.executable)
        print(f"\nverified with Python {result['python']} (-I -S, only the unzipped package on sys.path): "
              f"wrong token -> {result['refused']} with no SDK imported; official sample -> {result['status']}, "
              f"{result['body'].get('cosRequests')} COS requests, Crypto imported: {result['crypto']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
