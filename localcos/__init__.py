"""localcos: a COS-compatible HTTP server on 127.0.0.1 for tests, benchmarks and the local demo.

    from localcos import LocalCOS, Fault
    with LocalCOS(credentials={"AKIDLOCALTEST": "local-secret-key"}) as srv:
        srv.create_bucket("test-123456789", "ap-chongqing")
        # CosConfig(Region="ap-chongqing", SecretId=..., SecretKey=..., IP="127.0.0.1",
        #           Port=srv.port, Scheme="http")

Serves the object API (PUT/GET/HEAD/DELETE Object, PUT Object - Copy, object tagging, batch delete,
List Objects V1), CI media job queries, SmartCover job submission (covers written, callback POSTed to
loopback URLs: ``srv.callbacks``, ``srv.wait_jobs()``), CI media queues (``srv.add_queue``) and SSM
GetSecretValue; verifies COS request signatures
(436/7778); injects faults; records every request.
"""
from .faults import Fault
from .protocol import COSError, RequestRecord
from .quirks import QUIRKS
from .server import DEFAULT_CREDENTIALS, LocalCOS
from .store import StoredObject, crc64ecma

__all__ = ["LocalCOS", "Fault", "COSError", "RequestRecord", "StoredObject", "crc64ecma",
           "DEFAULT_CREDENTIALS", "QUIRKS"]
