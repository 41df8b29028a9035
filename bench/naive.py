"""The naive baseline handler: what a straightforward SCF function for the SmartCover callback does.

Used by ``bench/tiers.py`` as the thing to compare with; it is never deployed and checks little
(no job verification, no provenance, no ownership rules). Per callback it builds a new
``CosS3Client`` (so a new ``requests`` session and new connections: no pooling across
invocations), parses the body with ``xmltodict``, and for each cover, one after the other: PUT
Object - Copy, PUT Object tagging on the target, DELETE Object on the source (Tencent's demo
functions work this way). Environment: the function's own names (``SMARTCOVER_COS_ENDPOINT``,
``SMARTCOVER_TOKEN``, ``TENCENTCLOUD_SECRETID``/``_SECRETKEY``/``_SESSIONTOKEN``).

``main_handler(event, context)`` takes a Function URL event and answers ``{"statusCode",
"body"}``: 401 for a wrong token, 200 with ``{"moved": n}`` otherwise. COS errors raise.
"""
import json
import os
from urllib.parse import urlsplit


def main_handler(event, context):
    """Move and tag every cover of every job in the callback, one request at a time."""
    import xmltodict
    from qcloud_cos import CosConfig, CosS3Client

    token = (event.get("queryString") or event.get("queryStringParameters") or {}).get("token")
    if token != os.environ.get("SMARTCOVER_TOKEN"):
        return {"statusCode": 401, "body": "unauthorized"}
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        import base64

        body = base64.b64decode(body).decode("utf-8")
    doc = xmltodict.parse(body)["Response"]
    jobs = doc["JobsDetail"] if isinstance(doc["JobsDetail"], list) else [doc["JobsDetail"]]
    endpoint = urlsplit(os.environ["SMARTCOVER_COS_ENDPOINT"]) if os.environ.get("SMARTCOVER_COS_ENDPOINT") else None
    moved = 0
    for job in jobs:
        files = job["Operation"]["MediaResult"]["OutputFile"]
        bucket, region = files["Bucket"], files["Region"]
        conf = CosConfig(Region=region, SecretId=os.environ["TENCENTCLOUD_SECRETID"],
                         SecretKey=os.environ["TENCENTCLOUD_SECRETKEY"], Token=os.environ.get("TENCENTCLOUD_SESSIONTOKEN"),
                         **({"IP": endpoint.hostname, "Port": endpoint.port, "Scheme": endpoint.scheme} if endpoint else {}))
        client = CosS3Client(conf)
        names = files["ObjectName"] if isinstance(files["ObjectName"], list) else [files["ObjectName"]]
        for i, name in enumerate(names):
            key = (files.get("ObjectPrefix") or "") + name
            target = f"covers/{job['JobId']}/{i}.{key.rsplit('.', 1)[-1]}"
            client.copy_object(Bucket=bucket, Key=target, CopySource={"Bucket": bucket, "Key": key, "Region": region})
            client.put_object_tagging(Bucket=bucket, Key=target, Tagging={"TagSet": {"Tag": [
                {"Key": "smartcover:jobid", "Value": job["JobId"]}, {"Key": "smartcover:index", "Value": str(i)}]}})
            client.delete_object(Bucket=bucket, Key=key)
            moved += 1
    return {"statusCode": 200, "body": json.dumps({"moved": moved})}
