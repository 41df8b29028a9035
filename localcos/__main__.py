"""CLI: `python -m localcos --port 9000 [--bucket NAME:REGION ...] [--job BUCKET:FILE.xml ...] [--quirk MODE ...]`.

Serves on 127.0.0.1 until Ctrl-C and prints the endpoint and the credentials to use.
"""
from __future__ import annotations

import argparse
import logging
import threading

from .quirks import QUIRKS
from .server import LocalCOS


def _pair(text: str) -> tuple[str, str]:
    left, sep, right = text.partition(":")
    if not sep or not left or not right:
        raise argparse.ArgumentTypeError(f"expected A:B, got {text!r}")
    return left, right


def main(argv=None) -> None:
    """Parse arguments, start the server and block until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m localcos",
                                     description="Serve a COS-compatible test server on 127.0.0.1 until Ctrl-C.")
    parser.add_argument("--port", type=int, default=9000, help="TCP port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--bucket", type=_pair, action="append", default=[], metavar="NAME:REGION",
                        help="pre-create a bucket, e.g. test-123456789:ap-chongqing (repeatable)")
    parser.add_argument("--job", type=_pair, action="append", default=[], metavar="BUCKET:FILE",
                        help="register the CI job(s) in an XML file for a bucket (repeatable)")
    parser.add_argument("--secret", type=lambda t: t.partition("="), action="append", default=[],
                        metavar="NAME=VALUE", help="define an SSM secret (version v1) (repeatable)")
    parser.add_argument("--secret-id", default="AKIDLOCALTEST")
    parser.add_argument("--secret-key", default="local-secret-key")
    parser.add_argument("--token", default=None, help="require this security token")
    parser.add_argument("--quirk", action="append", default=[], choices=sorted(QUIRKS), metavar="MODE",
                        help="answer as the platform may where its docs are silent (repeatable): " + ", ".join(sorted(QUIRKS)))
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    srv = LocalCOS(credentials={args.secret_id: args.secret_key},
                   tokens={args.secret_id: args.token} if args.token else None, port=args.port, quirks=args.quirk)
    for name, region in args.bucket:
        srv.create_bucket(name, region)
    for name, _, value in args.secret:
        srv.set_secret(name, value)
    for bucket, path in args.job:
        with open(path, encoding="utf-8") as fh:
            srv.add_job(bucket, fh.read())
    with srv:
        print(f"localcos serving on {srv.endpoint}", flush=True)
        print(f"  SecretId={args.secret_id} SecretKey={args.secret_key} Token={args.token or '(none)'}")
        for name, region in args.bucket:
            print(f"  bucket {name} ({region}): CosConfig(Region={region!r}, IP='127.0.0.1', "
                  f"Port={srv.port}, Scheme='http')")
        print("Ctrl-C to stop.", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping")


if __name__ == "__main__":
    main()
