"""The HTTP layer under the SDK (smartcover.cloud.transport.LeanSession) and the shared worker threads
(smartcover.cloud.pool.Pool), against a real LocalCOS: what is sent, what is not followed or kept, how
failures surface, and that pools stay bounded, ordered and deadlock-free on shared threads.
No timings are asserted."""
from __future__ import annotations

import contextvars
import threading

import pytest
import requests
from qcloud_cos import CosConfig, CosS3Client

import devkit
from localcos.faults import Fault
from smartcover.cloud.cos import Cos, CosFault, _session
from smartcover.cloud.pool import THREAD_PREFIX, Pool
from smartcover.cloud.transport import LeanSession
from smartcover.core.config import Config
from smartcover.core.deadline import Deadline
from smartcover.core.model import ObjectRef

BUCKET, REGION = "test-123456789", "ap-chongqing"


def make_cos(srv, **env):
    env = devkit.env(srv, SMARTCOVER_COS_RETRIES="0", **env)
    return Cos(Config.from_env(env), env, Deadline(30.0))


def sdk_client(srv, session):
    conf = CosConfig(Region=REGION, SecretId=devkit.SECRET_ID, SecretKey=devkit.SECRET_KEY, Token=devkit.SESSION_TOKEN,
                     IP="127.0.0.1", Port=srv.port, Scheme="http", Timeout=None)
    return CosS3Client(conf, retry=0, session=session)


@pytest.fixture()
def bucket(cos):
    cos.create_bucket(BUCKET, REGION)
    cos.put(BUCKET, "a b/c+d.jpg", b"x" * 10, content_type="image/jpeg")
    return cos


def test_same_request_as_requests_session(bucket):
    """The SDK through LeanSession and through a plain requests.Session: localcos accepts both
    signatures and sees the same method, path, query and headers (Authorization aside)."""
    seen = []
    for session in (requests.Session(), LeanSession(num_pools=4, maxsize=4)):
        session.trust_env = False
        client = sdk_client(bucket, session)
        bucket.clear_requests()
        client.get_object_tagging(Bucket=BUCKET, Key="a b/c+d.jpg")
        client.put_object(Bucket=BUCKET, Key="put/k.txt", Body=b"hello")
        client.head_object(Bucket=BUCKET, Key="a b/c+d.jpg")
        seen.append([(r.method, r.op, r.key, r.query, r.status,
                      {k: v for k, v in r.headers.items() if k not in ("authorization", "user-agent")})
                     for r in bucket.requests])
    assert seen[0] == seen[1]
    assert [s[4] for s in seen[1]] == [200, 200, 200]


def test_copy_without_body_sends_content_length_zero(bucket):
    """PUT Object - Copy has no body: Content-Length 0 is sent (and signed), as requests does."""
    c = make_cos(bucket)
    c.copy(ObjectRef(BUCKET, REGION, "a b/c+d.jpg"), ObjectRef(BUCKET, REGION, "t/1.jpg"), (("k", "v"),), True)
    copy = [r for r in bucket.requests if r.op == "PutObjectCopy"]
    assert copy and copy[0].headers.get("content-length") == "0" and copy[0].status == 200


def test_redirect_is_answered_not_followed(bucket):
    """A 3xx goes back to the caller as it came: the signed request is not sent elsewhere."""
    bucket.inject(Fault(op="HeadObject", status=301, code="PermanentRedirect",
                        headers=(("Location", "http://127.0.0.1:9/elsewhere"),)))
    with pytest.raises(CosFault) as info:
        make_cos(bucket).head(ObjectRef(BUCKET, REGION, "a b/c+d.jpg"))
    assert info.value.status == 301 and not info.value.retryable
    assert [r.op for r in bucket.requests] == ["HeadObject"]


def test_reset_is_a_retryable_network_fault(bucket):
    bucket.inject(Fault(op="HeadObject", reset=True))
    with pytest.raises(CosFault) as info:
        make_cos(bucket).head(ObjectRef(BUCKET, REGION, "a b/c+d.jpg"))
    assert info.value.retryable and info.value.status == 0 and "network error" in info.value.detail
    assert "127.0.0.1" not in str(info.value)


def test_refused_connection_is_a_retryable_network_fault(cos):
    env = devkit.env(cos, SMARTCOVER_COS_RETRIES="0")
    cos.stop()
    with pytest.raises(CosFault) as info:
        Cos(Config.from_env(env), env, Deadline(30.0)).head(ObjectRef(BUCKET, REGION, "k"))
    assert info.value.retryable and "connection error" in info.value.detail


def test_no_cookie_is_stored_or_sent(bucket):
    bucket.inject(Fault(headers=(("Set-Cookie", "s=secret; Path=/"),), times=None))
    c = make_cos(bucket)
    for _ in range(3):
        c.head(ObjectRef(BUCKET, REGION, "a b/c+d.jpg"))
    assert len(_session(2 * 10 + 10).cookies) == 0
    assert len(bucket.requests) == 3 and not [r for r in bucket.requests if "cookie" in r.headers]


def test_other_calls_fall_back_to_requests(bucket):
    """A call LeanSession does not shorten (here: json=) still works, through requests."""
    session = LeanSession(num_pools=2, maxsize=2)
    resp = session.post(f"{bucket.endpoint}/", json={"a": 1}, headers={"Host": f"{BUCKET}.cos.{REGION}.myqcloud.com"})
    assert resp.status_code == 403  # unsigned: localcos refuses it, after requests sent it
    assert bucket.requests[-1].status == 403


# -- shared worker threads ------------------------------------------------------------------------
VAR = contextvars.ContextVar("VAR", default="unset")


def test_pool_runs_in_the_callers_context_on_shared_threads():
    VAR.set("invocation-1")
    with Pool(max_workers=3) as pool:
        first = [pool.submit(lambda: (VAR.get(), threading.current_thread().name)) for _ in range(6)]
    VAR.set("invocation-2")
    with Pool(max_workers=3) as pool:
        second = [pool.submit(lambda: (VAR.get(), threading.current_thread().name)) for _ in range(6)]
    assert {f.result()[0] for f in first} == {"invocation-1"} and {f.result()[0] for f in second} == {"invocation-2"}
    names = {f.result()[1] for f in first + second}
    assert all(n.startswith(THREAD_PREFIX) for n in names)


@pytest.mark.parametrize("limit", [1, 2, 5])
def test_pool_bounded_ordered_and_deadlock_free(limit):
    """Each task waits for the one submitted before it (as execute's covers wait for their gate):
    it finishes with any limit; never more than ``limit`` run at once; tasks start in order."""
    lock = threading.Lock()
    running, peak, started = [0], [0], []

    def task(i, before):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            started.append(i)
        try:
            if before is not None:
                before.result()
            return i
        finally:
            with lock:
                running[0] -= 1

    with Pool(max_workers=limit) as pool:
        futures = []
        for i in range(40):
            futures.append(pool.submit(task, i, futures[-1] if futures else None))
    assert [f.result() for f in futures] == list(range(40))
    assert peak[0] <= limit and started == sorted(started)


def test_pool_exceptions_and_shutdown():
    pool = Pool(max_workers=2)
    future = pool.submit(lambda: 1 / 0)
    pool.shutdown()
    with pytest.raises(ZeroDivisionError):
        future.result()
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)
