"""Tests of localcos driven by the real cos-python-sdk-v5 (and tencentcloud SSM) clients, on 127.0.0.1."""
from __future__ import annotations

import base64
import hashlib
import http.client
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from qcloud_cos import CosConfig, CosS3Client
from qcloud_cos.cos_auth import CosS3Auth
from qcloud_cos.cos_exception import CosClientError, CosServiceError

from localcos import COSError, Fault, LocalCOS, crc64ecma

AK, SK, TOKEN = "AKIDLOCALTEST", "local-secret-key", "local-token"
BUCKET, REGION = "test-123456789", "ap-chongqing"
OTHER_BUCKET, OTHER_REGION = "other-123456789", "ap-guangzhou"
HOST = f"{BUCKET}.cos.{REGION}.myqcloud.com"
ODD_KEYS = ["a b.jpg", "a+b.jpg", "100%.jpg", "x#y.jpg", "what?.jpg", "封面/图片 1.jpg", "mix +%#?中 .png"]


@pytest.fixture
def srv():
    with LocalCOS(credentials={AK: SK}, tokens={AK: TOKEN}) as server:
        server.create_bucket(BUCKET, REGION)
        server.create_bucket(OTHER_BUCKET, OTHER_REGION)
        yield server


def make_client(server, region=REGION, ak=AK, sk=SK, token=TOKEN):
    conf = CosConfig(Region=region, SecretId=ak, SecretKey=sk, Token=token, IP="127.0.0.1",
                     Port=server.port, Scheme="http")
    return CosS3Client(conf, retry=0)


@pytest.fixture
def cos(srv):
    return make_client(srv)


def service_error(call, *args, **kwargs) -> CosServiceError:
    with pytest.raises(CosServiceError) as info:
        call(*args, **kwargs)
    return info.value


def src(key, bucket=BUCKET, region=REGION):
    return {"Bucket": bucket, "Key": key, "Region": region}


def signed_raw(server, method, path, params=None, headers=None, data=b"", expire=600, sk=SK):
    """Send a hand-made request signed like the SDK does (for cases the SDK cannot produce)."""
    conf = CosConfig(Region=REGION, SecretId=AK, SecretKey=sk, Token=TOKEN)
    hdrs = {"Host": HOST, "x-cos-security-token": TOKEN, **(headers or {})}
    return requests.request(method, f"{server.endpoint}{path}", params=params, data=data, headers=hdrs,
                            auth=CosS3Auth(conf, path.lstrip("/") or None, params=params or {}, expire=expire))


def job_xml(job_id, created, state="Success", tag="SmartCover", queue="q1"):
    return (f"<JobsDetail><Code>Success</Code><CreationTime>{created}</CreationTime><JobId>{job_id}</JobId>"
            f"<Message/><QueueId>{queue}</QueueId><State>{state}</State><Tag>{tag}</Tag>"
            f"<Operation><Output><Bucket>{BUCKET}</Bucket><Object>out/${{Number}}.jpg</Object></Output>"
            f"</Operation></JobsDetail>")


# ---- object basics ---------------------------------------------------------------------------------

def test_put_get_head_delete(srv, cos):
    body = b"\xff\xd8 cover bytes"
    put = cos.put_object(Bucket=BUCKET, Key="output/smartcover-0.jpg", Body=body, ContentType="image/jpeg",
                         Metadata={"x-cos-meta-origin": "ci"})
    md5 = hashlib.md5(body).hexdigest()
    assert put["ETag"] == f'"{md5}"' and put["x-cos-hash-crc64ecma"] == crc64ecma(body)
    got = cos.get_object(Bucket=BUCKET, Key="output/smartcover-0.jpg")
    assert got["Body"].get_raw_stream().read() == body
    head = cos.head_object(Bucket=BUCKET, Key="output/smartcover-0.jpg")
    assert head["Content-Type"] == "image/jpeg" and head["Content-Length"] == str(len(body))
    assert head["x-cos-meta-origin"] == "ci" and head["ETag"] == f'"{md5}"'
    assert head["Last-Modified"].endswith(" GMT") and "x-cos-tagging-count" not in head
    stored = srv.get(BUCKET, "output/smartcover-0.jpg")
    assert stored.body == body and stored.size == len(body) and stored.metadata == {"x-cos-meta-origin": "ci"}
    cos.delete_object(Bucket=BUCKET, Key="output/smartcover-0.jpg")
    assert srv.get(BUCKET, "output/smartcover-0.jpg") is None
    assert service_error(cos.head_object, Bucket=BUCKET, Key="output/smartcover-0.jpg").get_status_code() == 404
    err = service_error(cos.get_object, Bucket=BUCKET, Key="output/smartcover-0.jpg")
    assert (err.get_status_code(), err.get_error_code()) == (404, "NoSuchKey")
    assert err.get_request_id() != "Unknown"
    cos.delete_object(Bucket=BUCKET, Key="never-existed")  # 204 for a missing key too
    assert [r.status for r in srv.requests if r.op == "DeleteObject"] == [204, 204]


def test_crc64_is_crc64_xz():
    assert crc64ecma(b"123456789") == str(0x995DC9BBDF1939FA)


def test_put_tagging_header_and_forbid_overwrite(srv, cos):
    cos.put_object(Bucket=BUCKET, Key="k", Body=b"one", Tagging="state=raw&note=a%20b")
    assert srv.tags(BUCKET, "k") == {"state": "raw", "note": "a b"}
    assert cos.head_object(Bucket=BUCKET, Key="k")["x-cos-tagging-count"] == "2"
    err = service_error(cos.put_object, Bucket=BUCKET, Key="k", Body=b"two",
                        Metadata={"x-cos-forbid-overwrite": "true"})
    assert (err.get_status_code(), err.get_error_code()) == (409, "FileAlreadyExists")
    assert srv.get(BUCKET, "k").body == b"one"
    err = service_error(cos.put_object, Bucket=BUCKET, Key="bad", Body=b"x", Tagging="a=%21")
    assert (err.get_status_code(), err.get_error_code()) == (400, "InvalidTag")
    assert srv.get(BUCKET, "bad") is None


def test_unknown_bucket_region_mismatch_and_unsupported(srv, cos):
    assert service_error(cos.head_object, Bucket="nope-123456789", Key="k").get_status_code() == 404
    err = service_error(make_client(srv, region="ap-beijing").get_object, Bucket=BUCKET, Key="k")
    assert (err.get_status_code(), err.get_error_code()) == (404, "NoSuchBucket")
    err = service_error(cos.delete_bucket, Bucket=BUCKET)
    assert (err.get_status_code(), err.get_error_code()) == (501, "NotImplemented")
    assert [w.op for w in srv.writes()] == ["DeleteBucket"]


# ---- copy ------------------------------------------------------------------------------------------

def test_copy_directives(srv, cos):
    srv.put(BUCKET, "in/a.jpg", b"img", tags={"t": "1"}, content_type="image/jpeg",
            metadata={"x-cos-meta-a": "b"})
    res = cos.copy_object(Bucket=BUCKET, Key="out/a.jpg", CopySource=src("in/a.jpg"))
    assert res["ETag"] == srv.get(BUCKET, "in/a.jpg").etag and res["CRC64"] == crc64ecma(b"img")
    copied = srv.get(BUCKET, "out/a.jpg")
    assert (copied.content_type, copied.metadata, copied.tags) == ("image/jpeg", {"x-cos-meta-a": "b"}, {"t": "1"})
    cos.copy_object(Bucket=BUCKET, Key="out/b.jpg", CopySource=src("in/a.jpg"), CopyStatus="Replaced",
                    ContentType="image/png", Metadata={"x-cos-meta-c": "d", "x-cos-tagging-directive": "Replaced",
                                                       "x-cos-tagging": "done=yes&by=scf"})
    replaced = srv.get(BUCKET, "out/b.jpg")
    assert (replaced.content_type, replaced.metadata, replaced.tags) == (
        "image/png", {"x-cos-meta-c": "d"}, {"done": "yes", "by": "scf"})
    assert replaced.body == b"img"


def test_copy_forbid_overwrite_and_errors(srv, cos):
    srv.put(BUCKET, "src", b"new")
    srv.put(BUCKET, "dst", b"old")
    err = service_error(cos.copy_object, Bucket=BUCKET, Key="dst", CopySource=src("src"),
                        Metadata={"x-cos-forbid-overwrite": "true"})
    assert (err.get_status_code(), err.get_error_code()) == (409, "FileAlreadyExists")
    assert srv.get(BUCKET, "dst").body == b"old"
    err = service_error(cos.copy_object, Bucket=BUCKET, Key="dst", CopySource=src("missing"))
    assert (err.get_status_code(), err.get_error_code()) == (404, "NoSuchKey")
    err = service_error(cos.copy_object, Bucket=BUCKET, Key="src", CopySource=src("src"))
    assert (err.get_status_code(), err.get_error_code()) == (400, "InvalidRequest")
    err = service_error(cos.copy_object, Bucket=BUCKET, Key="dst", CopySource=src("src", region="ap-beijing"))
    assert err.get_error_code() == "NoSuchBucket"
    make_client(srv, region=OTHER_REGION).copy_object(Bucket=OTHER_BUCKET, Key="x", CopySource=src("src"))
    assert srv.get(OTHER_BUCKET, "x").body == b"new"


def test_concurrent_forbid_overwrite_copies_have_one_winner(srv):
    for i in range(8):
        srv.put(BUCKET, f"s{i}", b"%d" % i)

    def attempt(i):
        try:
            make_client(srv).copy_object(Bucket=BUCKET, Key="race", CopySource=src(f"s{i}"),
                                         Metadata={"x-cos-forbid-overwrite": "true"})
            return "ok"
        except CosServiceError as exc:
            return exc.get_error_code()

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, range(8)))
    assert sorted(outcomes) == ["FileAlreadyExists"] * 7 + ["ok"]


# ---- tagging ---------------------------------------------------------------------------------------

def tagset(pairs):
    return {"TagSet": {"Tag": [{"Key": k, "Value": v} for k, v in pairs]}}


def test_tagging_round_trip(srv, cos):
    srv.put(BUCKET, "k", b"x", tags={"old": "1"})
    cos.put_object_tagging(Bucket=BUCKET, Key="k", Tagging=tagset([("a", "1"), ("path", "out/x:y@z+=.-_ ")]))
    assert srv.tags(BUCKET, "k") == {"a": "1", "path": "out/x:y@z+=.-_ "}  # the whole set is replaced
    got = cos.get_object_tagging(Bucket=BUCKET, Key="k")["TagSet"]["Tag"]
    assert {t["Key"]: t["Value"] for t in got} == {"a": "1", "path": "out/x:y@z+=.-_ "}
    cos.delete_object_tagging(Bucket=BUCKET, Key="k")
    assert srv.tags(BUCKET, "k") == {}
    err = service_error(cos.get_object_tagging, Bucket=BUCKET, Key="missing")
    assert (err.get_status_code(), err.get_error_code()) == (404, "NoSuchKey")
    err = service_error(cos.put_object_tagging, Bucket=BUCKET, Key="missing", Tagging=tagset([("a", "1")]))
    assert err.get_error_code() == "NoSuchKey"


@pytest.mark.parametrize("pairs", [
    [(f"k{i}", "v") for i in range(11)],
    [("k" * 128, "v")],
    [("k", "v" * 256)],
    [("k", "中" * 86)],  # 258 bytes: under 256 characters, not under 256 bytes
    [("", "v")],
    [("k", "")],
    [("k!", "v")],
    [("k", "é")],
    [("dup", "1"), ("dup", "2")],
])
def test_tagging_limits_rejected(srv, cos, pairs):
    srv.put(BUCKET, "k", b"x", tags={"keep": "me"})
    err = service_error(cos.put_object_tagging, Bucket=BUCKET, Key="k", Tagging=tagset(pairs))
    assert (err.get_status_code(), err.get_error_code()) == (400, "InvalidTag")
    assert srv.tags(BUCKET, "k") == {"keep": "me"}


def test_tagging_limits_accepted_at_the_edge(srv, cos):
    srv.put(BUCKET, "k", b"x")
    pairs = [("k" * 127, "v" * 255), ("中" * 42, "中" * 85), ("a@b", "用户@例子")] + [(f"k{i}", "v") for i in range(7)]
    cos.put_object_tagging(Bucket=BUCKET, Key="k", Tagging=tagset(pairs))
    assert srv.tags(BUCKET, "k") == dict(pairs)
    with pytest.raises(COSError):
        srv.put(BUCKET, "k2", b"x", tags={"bad!": "x"})


# ---- batch delete and listing ---------------------------------------------------------------------

def test_batch_delete_quiet_and_verbose(srv, cos):
    for key in ("a", "b", "c"):
        srv.put(BUCKET, key, b"x")
    res = cos.delete_objects(Bucket=BUCKET, Delete={"Object": [{"Key": "a"}, {"Key": "missing"}], "Quiet": "false"})
    assert sorted(d["Key"] for d in res["Deleted"]) == ["a", "missing"] and not res.get("Error")
    res = cos.delete_objects(Bucket=BUCKET, Delete={"Object": [{"Key": "b"}], "Quiet": "true"})
    assert not res.get("Deleted") and srv.keys(BUCKET) == ["c"]


def test_batch_delete_bad_digest_and_limits(srv):
    srv.put(BUCKET, "a", b"x")
    body = b"<Delete><Object><Key>a</Key></Object></Delete>"
    resp = signed_raw(srv, "POST", "/", params={"delete": ""}, data=body,
                      headers={"Content-MD5": base64.b64encode(hashlib.md5(b"other").digest()).decode()})
    assert resp.status_code == 400 and b"<Code>BadDigest</Code>" in resp.content
    assert srv.keys(BUCKET) == ["a"]
    many = b"<Delete>" + b"".join(b"<Object><Key>k%d</Key></Object>" % i for i in range(1001)) + b"</Delete>"
    resp = signed_raw(srv, "POST", "/", params={"delete": ""}, data=many,
                      headers={"Content-MD5": base64.b64encode(hashlib.md5(many).digest()).decode()})
    assert resp.status_code == 400 and b"MalformedXML" in resp.content


def test_listing_prefix_delimiter_and_pagination(srv, cos):
    keys = ["dir/a", "dir/b", "dir/sub/c", "other", "x1", "x2", "x3"]
    for key in keys:
        srv.put(BUCKET, key, b"data")
    res = cos.list_objects(Bucket=BUCKET, Prefix="dir/", Delimiter="/")
    assert [c["Key"] for c in res["Contents"]] == ["dir/a", "dir/b"]
    assert [p["Prefix"] for p in res["CommonPrefixes"]] == ["dir/sub/"]
    assert res["Contents"][0]["Size"] == "4" and res["Contents"][0]["ETag"] == srv.get(BUCKET, "dir/a").etag
    seen, marker, pages = [], "", 0
    while True:
        page = cos.list_objects(Bucket=BUCKET, Marker=marker, MaxKeys=3)
        seen += [c["Key"] for c in page.get("Contents", [])]
        pages += 1
        if page["IsTruncated"] == "false":
            assert "NextMarker" not in page
            break
        marker = page["NextMarker"]
    assert seen == keys and pages == 3
    top = cos.list_objects(Bucket=BUCKET, Delimiter="/", MaxKeys=1)
    assert top["CommonPrefixes"] == [{"Prefix": "dir/"}] and top["IsTruncated"] == "true"
    rest = cos.list_objects(Bucket=BUCKET, Delimiter="/", Marker=top["NextMarker"])
    assert [c["Key"] for c in rest["Contents"]] == ["other", "x1", "x2", "x3"] and not rest.get("CommonPrefixes")
    assert srv.keys(BUCKET, "x") == ["x1", "x2", "x3"]


# ---- awkward keys ----------------------------------------------------------------------------------

def test_odd_keys_round_trip_through_copy_tagging_list_delete(srv, cos):
    for key in ODD_KEYS:
        cos.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
        cos.copy_object(Bucket=BUCKET, Key="copy/" + key, CopySource=src(key),
                        Metadata={"x-cos-tagging-directive": "Replaced", "x-cos-tagging": "moved=yes"})
        cos.put_object_tagging(Bucket=BUCKET, Key=key, Tagging=tagset([("seen", "1")]))
        assert cos.get_object(Bucket=BUCKET, Key="copy/" + key)["Body"].get_raw_stream().read() == key.encode()
        assert srv.tags(BUCKET, "copy/" + key) == {"moved": "yes"} and srv.tags(BUCKET, key) == {"seen": "1"}
    listed = [c["Key"] for c in cos.list_objects(Bucket=BUCKET, Prefix="copy/")["Contents"]]
    assert listed == sorted("copy/" + k for k in ODD_KEYS)
    for key in ODD_KEYS:
        cos.delete_object(Bucket=BUCKET, Key=key)
    cos.delete_objects(Bucket=BUCKET, Delete={"Object": [{"Key": "copy/" + k} for k in ODD_KEYS]})
    assert srv.keys(BUCKET) == []
    assert all(r.status < 300 for r in srv.requests)


# ---- CI jobs ---------------------------------------------------------------------------------------

def test_ci_get_media_jobs(srv, cos):
    srv.add_job(BUCKET, job_xml("j1", "2022-06-30T15:29:42+0800"))
    res = cos.ci_get_media_jobs(Bucket=BUCKET, JobIDs="j1,j1x")
    assert [j["JobId"] for j in res["JobsDetail"]] == ["j1"] and res["NonExistJobIds"] == "j1x"
    assert res["JobsDetail"][0]["Operation"]["Output"]["Object"] == "out/${Number}.jpg"
    miss = cos.ci_get_media_jobs(Bucket=BUCKET, JobIDs="j")  # ids match exactly, not by prefix
    assert "JobsDetail" not in miss and miss["NonExistJobIds"] == "j"
    assert [r.service for r in srv.requests] == ["ci", "ci"]
    assert {r.op for r in srv.requests} == {"GetMediaJobs"}


def test_ci_add_job_accepts_callback_response(srv, cos):
    text = (Path(__file__).resolve().parent / "events" / "smartcover-job-api.xml").read_text()  # a whole official callback
    (job_id,) = srv.add_job(BUCKET, text)
    assert job_id == "j6842765cf84611ecb8546d80f2baf56f"
    assert cos.ci_get_media_jobs(Bucket=BUCKET, JobIDs=job_id)["JobsDetail"][0]["State"] == "Success"
    with pytest.raises(ValueError):
        srv.add_job(BUCKET, "<JobsDetail><JobId>x</JobId></JobsDetail>")


def test_ci_list_media_jobs_pages_and_filters(srv, cos):
    for i in range(7):
        srv.add_job(BUCKET, job_xml(f"j{i}", f"2022-06-30T15:2{i}:00+0800", state="Failed" if i == 3 else "Success"))
    srv.add_job(BUCKET, job_xml("snap", "2022-06-30T15:25:00+0800", tag="Snapshot"))
    ids, token, pages = [], "", 0
    while True:
        res = cos.ci_list_media_jobs(Bucket=BUCKET, Tag="SmartCover", Size=3, NextToken=token)
        ids += [j["JobId"] for j in res.get("JobsDetail", [])]
        pages += 1
        token = res.get("NextToken") or ""
        if not token:
            break
    assert ids == [f"j{i}" for i in reversed(range(7))] and pages == 3
    res = cos.ci_list_media_jobs(Bucket=BUCKET, Tag="SmartCover", OrderByTime="Asc", States="Failed,Success",
                                 StartCreationTime="2022-06-30T07:22:00+0000", EndCreationTime="2022-06-30T15:24:00+08:00")
    assert [j["JobId"] for j in res["JobsDetail"]] == ["j2", "j3", "j4"]
    res = cos.ci_list_media_jobs(Bucket=BUCKET, Tag="SmartCover", States="Failed")
    assert [j["JobId"] for j in res["JobsDetail"]] == ["j3"]
    err = service_error(cos.ci_list_media_jobs, Bucket=BUCKET, Tag="SmartCover", Size=101)  # CI allows 1-100
    assert (err.get_status_code(), err.get_error_code()) == (400, "InvalidArgument")
    assert service_error(cos.ci_list_media_jobs, Bucket=BUCKET, Tag="SmartCover",
                         NextToken="forged").get_status_code() == 400


# ---- signature and tokens --------------------------------------------------------------------------

def test_signature_failures(srv):
    err = service_error(make_client(srv, sk="wrong").head_bucket, Bucket=BUCKET)
    assert err.get_status_code() == 403
    err = service_error(make_client(srv, sk="wrong").get_object, Bucket=BUCKET, Key="k")
    assert (err.get_status_code(), err.get_error_code()) == (403, "SignatureDoesNotMatch")
    err = service_error(make_client(srv, ak="AKIDUNKNOWN").get_object, Bucket=BUCKET, Key="k")
    assert (err.get_status_code(), err.get_error_code()) == (403, "InvalidAccessKeyId")
    err = service_error(make_client(srv, token="wrong").get_object, Bucket=BUCKET, Key="k")
    assert (err.get_status_code(), err.get_error_code()) == (403, "InvalidToken")
    err = service_error(make_client(srv, token=None).ci_get_media_jobs, Bucket=BUCKET, JobIDs="j1")
    assert err.get_error_code() == "InvalidToken"
    assert srv.keys(BUCKET) == []


def test_signature_covers_headers_and_time(srv):
    resp = requests.get(f"{srv.endpoint}/k", headers={"Host": HOST})
    assert resp.status_code == 403 and b"<Code>AccessDenied</Code>" in resp.content
    resp = signed_raw(srv, "GET", "/k", expire=-120)
    assert resp.status_code == 403 and b"Request has expired" in resp.content
    conf = CosConfig(Region=REGION, SecretId=AK, SecretKey=SK, Token=TOKEN)
    prepared = requests.Request("PUT", f"{srv.endpoint}/k", data=b"body",
                                headers={"Host": HOST, "x-cos-security-token": TOKEN, "x-cos-meta-a": "1"},
                                auth=CosS3Auth(conf, "k")).prepare()
    prepared.headers["x-cos-meta-a"] = "2"  # tamper with a signed header
    resp = requests.Session().send(prepared)
    assert resp.status_code == 403 and b"SignatureDoesNotMatch" in resp.content
    assert srv.get(BUCKET, "k") is None
    assert resp.headers["Content-Type"] == "application/xml" and resp.headers["x-cos-request-id"]


def test_expired_token_then_renewed(srv, cos):
    srv.expire_token(AK)
    err = service_error(cos.put_object, Bucket=BUCKET, Key="k", Body=b"x")
    assert (err.get_status_code(), err.get_error_code()) == (400, "ExpiredToken")
    assert err.get_error_msg() == "The provided token has expired."
    srv.set_token(AK, "fresh")
    assert service_error(cos.put_object, Bucket=BUCKET, Key="k", Body=b"x").get_error_code() == "InvalidToken"
    make_client(srv, token="fresh").put_object(Bucket=BUCKET, Key="k", Body=b"x")
    assert srv.get(BUCKET, "k").body == b"x"
    assert [w.status for w in srv.writes()] == [400, 403, 200]


# ---- faults ----------------------------------------------------------------------------------------

def test_fault_status_skip_and_times(srv, cos):
    srv.put(BUCKET, "k", b"x")
    srv.inject(Fault(op="HeadObject", status=503, skip=1, times=2))
    cos.head_object(Bucket=BUCKET, Key="k")
    for _ in range(2):
        err = service_error(cos.head_object, Bucket=BUCKET, Key="k")
        assert err.get_status_code() == 503
    cos.head_object(Bucket=BUCKET, Key="k")
    assert [r.fault for r in srv.requests] == [None, "status:503", "status:503", None]
    srv.inject(Fault(op={"PutObject", "DeleteObject"}, key="out/*", code="SlowDown", message="slow down"))
    cos.put_object(Bucket=BUCKET, Key="in/a", Body=b"x")
    err = service_error(cos.delete_object, Bucket=BUCKET, Key="out/a")
    assert (err.get_status_code(), err.get_error_code(), err.get_error_msg()) == (500, "SlowDown", "slow down")
    cos.delete_object(Bucket=BUCKET, Key="out/a")  # the rule is spent


def test_fault_status_does_not_perform_write(srv, cos):
    srv.put(BUCKET, "src", b"x")
    srv.inject(Fault(op="PutObjectCopy", method="PUT", status=500, times=None))
    for _ in range(2):
        assert service_error(cos.copy_object, Bucket=BUCKET, Key="dst", CopySource=src("src")).get_error_code() == "InternalError"
    assert srv.get(BUCKET, "dst") is None
    srv.clear_faults()
    cos.copy_object(Bucket=BUCKET, Key="dst", CopySource=src("src"))
    assert srv.get(BUCKET, "dst") is not None


def test_fault_reset_and_reset_after(srv, cos):
    srv.inject(Fault(op="PutObject", reset=True))
    with pytest.raises(CosClientError):
        cos.put_object(Bucket=BUCKET, Key="a", Body=b"x")
    assert srv.get(BUCKET, "a") is None
    srv.inject(Fault(op="PutObject", reset_after=True))
    with pytest.raises(CosClientError):
        cos.put_object(Bucket=BUCKET, Key="b", Body=b"x")
    assert srv.get(BUCKET, "b").body == b"x"  # the write happened, the client never heard
    assert [(r.status, r.fault) for r in srv.requests] == [(0, "reset"), (0, "reset_after")]
    cos.put_object(Bucket=BUCKET, Key="c", Body=b"x")  # the client recovers on a new connection
    assert srv.keys(BUCKET) == ["b", "c"]


def test_fault_copy_error_body_and_empty_body(srv, cos):
    srv.put(BUCKET, "src", b"x")
    srv.inject(Fault(op="PutObjectCopy", copy_error_body=True))
    err = service_error(cos.copy_object, Bucket=BUCKET, Key="dst", CopySource=src("src"))
    assert (err.get_status_code(), err.get_error_code()) == (200, "InternalError")
    srv.inject(Fault(op="PutObjectCopy", empty_body=True))
    with pytest.raises(Exception) as info:
        cos.copy_object(Bucket=BUCKET, Key="dst", CopySource=src("src"))
    assert not isinstance(info.value, CosServiceError)
    assert srv.get(BUCKET, "dst") is None
    assert [r.fault for r in srv.writes()] == ["copy_error_body", "empty_body"]


def test_fault_delay_and_latency(srv, cos):
    srv.put(BUCKET, "k", b"x")
    srv.inject(Fault(op="GetObject", delay=0.2))
    start = time.monotonic()
    assert cos.get_object(Bucket=BUCKET, Key="k")["Body"].get_raw_stream().read() == b"x"
    assert time.monotonic() - start >= 0.2
    srv.latency = 0.05
    start = time.monotonic()
    cos.head_object(Bucket=BUCKET, Key="k")
    assert time.monotonic() - start >= 0.05
    assert srv.requests[0].fault == "delay:0.2" and srv.requests[1].fault is None


def test_fault_batch_delete_per_key_errors(srv, cos):
    for key in ("keep/1", "drop/1", "drop/2"):
        srv.put(BUCKET, key, b"x")
    srv.inject(Fault(op="DeleteObjects", key="keep/*", code="AccessDenied"))
    res = cos.delete_objects(Bucket=BUCKET, Delete={"Object": [{"Key": k} for k in ("keep/1", "drop/1", "drop/2")]})
    assert res["Error"] == [{"Key": "keep/1", "Code": "AccessDenied", "Message": "Injected fault."}]
    assert srv.keys(BUCKET) == ["keep/1"] and srv.requests[-1].fault == "key_errors:1"


# ---- records, HTTP details, SSM, CLI ---------------------------------------------------------------

def test_records_and_writes(srv, cos):
    cos.put_object(Bucket=BUCKET, Key="a b", Body=b"x")
    cos.get_object(Bucket=BUCKET, Key="a b")
    cos.put_object_tagging(Bucket=BUCKET, Key="a b", Tagging=tagset([("k", "v")]))
    cos.list_objects(Bucket=BUCKET, Prefix="a")
    recs = srv.requests
    assert [(r.op, r.key, r.status) for r in recs] == [
        ("PutObject", "a b", 200), ("GetObject", "a b", 200), ("PutObjectTagging", "a b", 200), ("ListObjects", None, 200)]
    assert recs[0].bucket == BUCKET and recs[0].service == "cos" and recs[0].headers["host"] == HOST
    assert recs[3].query["prefix"] == "a" and recs[2].query == {"tagging": ""}
    assert [w.op for w in srv.writes()] == ["PutObject", "PutObjectTagging"]
    srv.clear_requests()
    assert srv.requests == []


def test_keep_alive_head_without_body_and_501(srv):
    srv.put(BUCKET, "k", b"0123456789")
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    conn.request("HEAD", "/k", headers={"Host": HOST})  # unsigned -> 403, no body
    resp = conn.getresponse()
    assert resp.status == 403 and resp.read() == b"" and resp.getheader("x-cos-request-id")
    conn.request("GET", "/", headers={"Host": "127.0.0.1"})  # same connection still usable
    resp = conn.getresponse()
    body = resp.read()
    assert resp.status == 501 and b"<Code>NotImplemented</Code>" in body
    assert int(resp.getheader("Content-Length")) == len(body)
    conn.close()


def test_ssm_get_secret_value(srv):
    from tencentcloud.common import credential
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.ssm.v20190923 import models, ssm_client

    srv.set_secret("smartcover/cos", '{"SecretId": "x"}', version="v2")
    profile = ClientProfile(httpProfile=HttpProfile(endpoint=f"127.0.0.1:{srv.port}", protocol="http"))
    client = ssm_client.SsmClient(credential.Credential(AK, SK, TOKEN), REGION, profile)
    req = models.GetSecretValueRequest()
    req.SecretName, req.VersionId = "smartcover/cos", "v2"
    res = client.GetSecretValue(req)
    assert (res.SecretName, res.VersionId, res.SecretString) == ("smartcover/cos", "v2", '{"SecretId": "x"}')
    req.VersionId = "v9"
    with pytest.raises(TencentCloudSDKException) as info:
        client.GetSecretValue(req)
    assert info.value.get_code() == "ResourceNotFound"
    assert [(r.service, r.op, r.key) for r in srv.requests] == [("ssm", "GetSecretValue", "smartcover/cos")] * 2


def test_cli_serves_and_prints_endpoint():
    proc = subprocess.Popen([sys.executable, "-m", "localcos", "--port", "0", "--bucket", f"{BUCKET}:{REGION}"],
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    try:
        first = proc.stdout.readline()
        assert first.startswith("localcos serving on http://127.0.0.1:")
        port = int(first.rsplit(":", 1)[1])
        cos = CosS3Client(CosConfig(Region=REGION, SecretId=AK, SecretKey=SK, IP="127.0.0.1", Port=port,
                                    Scheme="http"), retry=0)
        cos.put_object(Bucket=BUCKET, Key="k", Body=b"x")
        assert cos.get_object(Bucket=BUCKET, Key="k")["Body"].get_raw_stream().read() == b"x"
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        proc.stdout.close()


def test_stop_closes_idle_keep_alive_connections():
    server = LocalCOS(credentials={AK: SK}).start()
    server.create_bucket(BUCKET, REGION)
    cos = make_client(server, token=None)
    cos.put_object(Bucket=BUCKET, Key="k", Body=b"x")
    server.stop()
    with pytest.raises(CosClientError):
        cos.head_object(Bucket=BUCKET, Key="k")
    # the function's shared worker threads (smartcover.cloud.pool) outlive invocations by design
    assert sum(1 for t in threading.enumerate() if not t.name.startswith("smartcover-worker")) < 50


def test_unexpected_exception_answers_500_xml(srv, cos, monkeypatch):
    from localcos import router

    def boom(app, req):
        raise RuntimeError("bug")

    monkeypatch.setitem(router.HANDLERS, "GetObject", boom)
    err = service_error(cos.get_object, Bucket=BUCKET, Key="k")
    assert (err.get_status_code(), err.get_error_code()) == (500, "InternalError")
    cos.put_object(Bucket=BUCKET, Key="k", Body=b"still serving")
    assert srv.get(BUCKET, "k").body == b"still serving"


def test_malformed_and_hostile_xml_rejected(srv):
    srv.put(BUCKET, "k", b"x", tags={"a": "1"})
    bomb = (b'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY e "xxxx">]>'
            b"<Tagging><TagSet><Tag><Key>&e;</Key><Value/></Tag></TagSet></Tagging>")
    for body in (b"<Tagging><TagSet>", bomb):
        resp = signed_raw(srv, "PUT", "/k", params={"tagging": ""}, data=body)
        assert resp.status_code == 400 and b"<Code>MalformedXML</Code>" in resp.content
    assert srv.tags(BUCKET, "k") == {"a": "1"}


def test_chunked_upload(srv):
    resp = signed_raw(srv, "PUT", "/chunked", data=iter([b"ab", b"cd", b"ef"]))
    assert resp.status_code == 200 and srv.get(BUCKET, "chunked").body == b"abcdef"
    assert srv.requests[-1].headers.get("transfer-encoding") == "chunked"


def test_jobs_paths_route_to_ci_or_objects(srv, cos):
    srv.put(BUCKET, "jobs/j1", b"an object")
    srv.add_job(BUCKET, job_xml("j1", "2022-06-30T15:29:42+0800"))
    assert cos.ci_get_media_jobs(Bucket=BUCKET, JobIDs="j1")["JobsDetail"][0]["JobId"] == "j1"
    assert cos.get_object(Bucket=BUCKET, Key="jobs/j1")["Body"].get_raw_stream().read() == b"an object"
    assert [(r.service, r.op) for r in srv.requests] == [("ci", "GetMediaJobs"), ("cos", "GetObject")]
