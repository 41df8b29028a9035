"""Local demo: the three official SmartCover callbacks through ``index.main_handler``.

Starts a COS-compatible server on 127.0.0.1 (localcos), puts the input video and the covers each
official sample names into bucket ``test-123456789``, registers the CI job, and sends the sample
as an SCF HTTP event (Function URL or API Gateway) to ``main_handler`` with
``SMARTCOVER_ACTIONS=move,tag``. Prints the bucket before and after, the tags, the function's
answer and the COS requests it made; then shows a duplicate delivery and a wrong token.
No cloud account is used; nothing leaves the machine.
"""
from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "handler")]

import devkit  # noqa: E402

BUCKET = "test-123456789"
SETTINGS = {
    "SMARTCOVER_ACTIONS": "move,tag",
    "SMARTCOVER_TARGET_KEY": "covers/${InputName}/${Number}.${ext}",
    "SMARTCOVER_TAGS": "pipeline=smartcover",
    "SMARTCOVER_ALLOWED_BUCKETS": BUCKET,
    "SMARTCOVER_LOG_LEVEL": os.environ.get("SMARTCOVER_LOG_LEVEL", "ERROR"),
}


def listing(srv, title: str) -> None:
    print(f"  {title}:")
    for key in srv.keys(BUCKET):
        tags = srv.tags(BUCKET, key)
        shown = ", ".join(f"{k}={v}" for k, v in tags.items()) if tags else "(no tags)"
        print(f"    {key:48} {srv.get(BUCKET, key).size:>5} B  {shown}")


def send(srv, title: str, event: dict) -> dict:
    import index

    srv.clear_requests()
    answer = index.main_handler(event, devkit.context(request_id=title))
    body = json.loads(answer["body"])
    result = f"outcome={body['outcome']}" if "outcome" in body else f"error={body.get('error')}"
    print(f"  answer: HTTP {answer['statusCode']} {result}")
    for job in body.get("jobs", []):
        for c in job.get("covers", []):
            target = f" -> {c['targetKey']}" if "targetKey" in c else ""
            print(f"    cover {c['index']}: {c['sourceKey']}{target}: {c['outcome']}")
    if "message" in body:
        print(f"    {body['message']}")
    ops = Counter(r.op for r in srv.requests)
    print(f"  COS/CI requests: {sum(ops.values())} ({', '.join(f'{op} x{n}' for op, n in sorted(ops.items())) or 'none'}); "
          f"writes: {len(srv.writes())}")
    return answer


def main() -> int:
    srv = devkit.server()
    srv.create_bucket(BUCKET, "ap-chongqing")
    os.environ.update(devkit.env(srv, **SETTINGS))
    print(f"local COS server: {srv.endpoint} (signature-checked, COS error XML)")
    print("function settings:\n  " + "\n  ".join(f"{k}={v}" for k, v in SETTINGS.items() if k != "SMARTCOVER_LOG_LEVEL"))
    shapes = [("function_url", False), ("apigw", False), ("function_url", True)]
    ok = True
    try:
        for n, (name, (shape, b64)) in enumerate(zip(devkit.SAMPLES, shapes, strict=True), 1):
            srv.store.delete(BUCKET, srv.keys(BUCKET))  # each sample starts from a fresh bucket
            devkit.seed(srv, devkit.sample(name))
            kind = {"function_url": "Function URL", "apigw": "API Gateway"}[shape] + (" (Base64 body)" if b64 else "")
            print(f"\n=== {n}/3 {name} as {'an' if kind.startswith('API') else 'a'} {kind} event ===")
            listing(srv, "before")
            answer = send(srv, f"demo-{n}", devkit.http_event(devkit.sample(name), shape, base64_body=b64))
            listing(srv, "after")
            ok &= answer["statusCode"] == 200
        print("\n=== the JSON callback delivered again (CI may repeat a delivery) ===")
        ok &= send(srv, "demo-again", devkit.http_event(devkit.sample("smartcover-workflow.json")))["statusCode"] == 200
        print("\n=== a callback with a wrong token ===")
        bad = devkit.http_event(devkit.sample("smartcover-workflow.json"), token="not-the-token")
        ok &= send(srv, "demo-bad-token", bad)["statusCode"] == 401
    finally:
        srv.stop()
    print("\ndemo " + ("finished: every answer was as expected" if ok else "FAILED: an answer was not as expected"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
