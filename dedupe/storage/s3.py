"""A repository in an S3 bucket (FORMAT.md section 11.2), through botocore (the AWS SDK).

``s3://BUCKET[/PREFIX]`` uses the usual AWS settings (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``AWS_DEFAULT_REGION``,
``AWS_ENDPOINT_URL``); the ``--s3-endpoint`` option (handed in as ``endpoint``), else
``DEDUPE_S3_ENDPOINT``, names another S3 server, as does the long form
``s3:http://HOST:PORT/BUCKET[/PREFIX]`` (which comes first).

There is no rename on S3, and none is needed: a PUT is all-or-nothing (an object
appears whole or not at all), every PUT carries a Content-MD5 the server checks, a
large object goes up as a multipart upload that is invisible until it is completed
and whose length is checked afterwards, and ``create`` is a PUT with
``If-None-Match: *``. Transient failures (5xx, throttling, timeouts, refused
connections, a body cut short) are retried here, with exponential backoff and jitter,
up to ``DEDUPE_S3_MAX_ATTEMPTS`` attempts; whatever still fails is one ``StorageError``
naming the bucket and key. botocore's own retries are off: their schedule is not
ours to rely on (botocore 1.40 cut the backoff for non-throttling errors twentyfold,
so 8 attempts no longer outlasted a gateway restart).
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import io
import itertools
import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, TypeVar

from dedupe.storage.base import Data, NoDirectory, ObjectExists, ObjectNotFound, StorageError, joined
from repo_format import layout

SCHEME = "s3://"
LONG_SCHEMES = ("s3:http://", "s3:https://")
ENDPOINT_ENV = "DEDUPE_S3_ENDPOINT"
ATTEMPTS_ENV = "DEDUPE_S3_MAX_ATTEMPTS"
DEFAULT_ATTEMPTS = 8  # with the backoff below: 16-32 s of waiting in all before giving up
BACKOFF_FIRST = 0.25  # seconds before the second attempt; doubles each time ...
BACKOFF_MAX = 16.0  # ... up to this; each wait is scaled by a random factor in [0.5, 1)
# error codes worth another attempt whatever their HTTP status (throttling, server trouble)
TRANSIENT_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
                              "TooManyRequestsException", "RequestTimeout", "RequestTimeoutException",
                              "InternalError", "ServiceUnavailable"})
MULTIPART_THRESHOLD = 64 << 20  # packs (16 MiB by default) go up in one PUT
PART_SIZE = 16 << 20
MIN_PART_SIZE = 5 << 20  # S3's lower bound for every part but the last
READ_SPAN = 32 << 20  # stored bytes one restore read may cover
READ_THREADS = 4  # restore reads in flight

T = TypeVar("T")


# Every object is written granting the bucket's owner full control: on a bucket shared
# with write-only backup hosts (README, "Write-only backup hosts"), an object a host wrote
# belongs to that host's user, and without this grant the trusted side (the bucket owner:
# prune, gc, check) could not even read it (measured on Ceph RGW: AccessDenied).
OWNER_ACL = "bucket-owner-full-control"
CONTENT_NAMED = frozenset({layout.DATA_DIR, layout.INDEX_DIR, layout.MANIFEST_DIR})  # named by their content


class S3AccessDenied(StorageError):
    """Wrong or missing credentials, or no permission for the bucket."""

    exit_code = 26


class BucketNotFound(StorageError):
    exit_code = 27


class PrefixNotEmpty(StorageError):
    """``init`` into a bucket prefix that already holds objects."""

    exit_code = 14


class UploadMismatch(StorageError):
    """The server stored something other than what was sent."""

    exit_code = 24


class UnsupportedServer(StorageError):
    """The S3 server lacks something dedupe relies on (conditional writes)."""

    exit_code = 24


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # no leading or trailing '/'; may be empty
    endpoint: str | None  # only when the location names one (s3:http://...)

    @property
    def url(self) -> str:
        return f"{SCHEME}{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")


def is_s3(location: str) -> bool:
    return location.startswith(SCHEME) or location.startswith(LONG_SCHEMES)


def parse_location(location: str) -> S3Location:
    """``s3://BUCKET[/PREFIX]`` or ``s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]``."""
    endpoint = None
    if location.startswith(LONG_SCHEMES):
        rest = location[3:]
        scheme, _, after = rest.partition("://")
        host, _, path = after.partition("/")
        endpoint = f"{scheme}://{host}"
    elif location.startswith(SCHEME):
        path = location[len(SCHEME):]
    else:
        raise StorageError(f"{location}: not an s3:// location")
    bucket, _, prefix = path.partition("/")
    prefix = prefix.strip("/")
    if not bucket or ".." in prefix.split("/"):
        raise StorageError(f"{location}: expected s3://BUCKET[/PREFIX]")
    return S3Location(bucket, prefix, endpoint)


def _md5_b64(data: bytes | memoryview) -> tuple[bytes, str]:
    digest = hashlib.md5(data).digest()
    return digest, base64.b64encode(digest).decode()


class _Parts:
    """A file given as its parts (a pack's header, blobs, table and trailer): PUT as a
    reader over them, with no joined copy of the whole pack."""

    def __init__(self, parts: Iterable[bytes | memoryview]) -> None:
        self.views = [v for v in (memoryview(p).cast("B") for p in parts) if v.nbytes]
        self._len = sum(v.nbytes for v in self.views)
        self._md5: str | None = None

    def __len__(self) -> int:
        return self._len

    def md5_b64(self) -> str:
        if self._md5 is None:
            h = hashlib.md5()
            for v in self.views:
                h.update(v)
            self._md5 = base64.b64encode(h.digest()).decode()
        return self._md5

    def reader(self) -> _PartsReader:
        return _PartsReader(self)


class _PartsReader(io.RawIOBase):
    """``_Parts`` as a seekable binary file (botocore reads the body to sign it, seeks
    back, then sends it block by block)."""

    def __init__(self, parts: _Parts) -> None:
        super().__init__()
        self._views = parts.views
        self._starts = list(itertools.accumulate((v.nbytes for v in parts.views), initial=0))
        self._len = len(parts)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._len}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, b: Any) -> int:
        out = memoryview(b).cast("B")
        done = 0
        i = bisect.bisect_right(self._starts, self._pos) - 1
        while done < out.nbytes and i < len(self._views):
            v, at = self._views[i], self._pos - self._starts[i]
            n = min(v.nbytes - at, out.nbytes - done)
            out[done:done + n] = v[at:at + n]
            done += n
            self._pos += n
            i += 1
        return done


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


class S3Storage(NoDirectory):
    """The storage protocol on one bucket and prefix. Thread-safe (one botocore client)."""

    def __init__(self, loc: S3Location, *, endpoint: str | None = None, max_attempts: int | None = None,
                 multipart_threshold: int = MULTIPART_THRESHOLD, part_size: int = PART_SIZE,
                 client: Any = None) -> None:
        self.loc = loc
        self.bucket = loc.bucket
        self.location = loc.url
        self._root = f"{loc.prefix}/" if loc.prefix else ""
        self.endpoint = loc.endpoint or endpoint or os.environ.get(ENDPOINT_ENV) or None
        self.max_attempts = max_attempts or int(os.environ.get(ATTEMPTS_ENV) or DEFAULT_ATTEMPTS)
        self.multipart_threshold = multipart_threshold
        self.part_size = max(part_size, MIN_PART_SIZE)
        self.page_size = 1000  # keys per listing request (S3's maximum)
        # Restore reads (dedupe.read): each request costs a round trip and, on clouds,
        # money, so read whole packs (16 MiB by default) in one ranged GET, several at once.
        self.read_span = READ_SPAN
        self.read_threads = READ_THREADS
        self.requests: Counter[str] = Counter()  # HTTP requests sent, by operation (retries included)
        self.sleep: Callable[[float], None] = time.sleep  # between attempts (tests record the waits)
        self._count_lock = threading.Lock()
        self.client = client or self._make_client()
        self.client.meta.events.register("before-send.s3.*", self._count)

    @classmethod
    def from_location(cls, location: str, **kw: Any) -> S3Storage:
        return cls(parse_location(location), **kw)

    # -- the client -----------------------------------------------------------------

    def _make_client(self) -> Any:
        # botocore's own session, not boto3's: boto3 adds nothing used here, and importing
        # it (with s3transfer) costs ~0.13-0.27 s and some MiB at every start
        import botocore.session
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError

        cfg = Config(
            retries={"mode": "standard", "total_max_attempts": 1},  # S3Storage._call retries
            connect_timeout=10, read_timeout=120, max_pool_connections=32,
            # Ceph before 17 refuses the aws-chunked uploads with trailing checksums that
            # boto3 >= 1.36 sends by default over https; every PUT carries a Content-MD5 instead.
            request_checksum_calculation="when_required", response_checksum_validation="when_required",
            s3={"addressing_style": "path"} if self.endpoint else {},
            user_agent_extra="dedupe",
        )
        try:
            session = botocore.session.get_session()
            region = session.get_config_variable("region") or ("us-east-1" if self.endpoint else None)
            return session.create_client("s3", endpoint_url=self.endpoint, region_name=region, config=cfg)
        except BotoCoreError as e:  # a profile that does not exist, a bad endpoint URL, ...
            raise StorageError(f"{self.location}: cannot set up the S3 client ({_one_line(e)})") from None

    def _count(self, event_name: str = "", **_: Any) -> None:
        op = event_name.rsplit(".", 1)[-1]
        with self._count_lock:
            self.requests[op] += 1

    def request_count(self) -> int:
        with self._count_lock:
            return sum(self.requests.values())

    def _key(self, name: str) -> str:
        if name.startswith("/") or ".." in name.split("/"):
            raise StorageError(f"{self.location}: refusing object name {name!r}")
        return self._root + name

    def _where(self, name: str) -> str:
        return f"{self.location}/{name}" if name else self.location

    # -- errors ---------------------------------------------------------------------

    def _error(self, e: Exception, op: str, name: str) -> StorageError:
        """One line naming the bucket and key, and the right exit code."""
        from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

        where = self._where(name)
        if isinstance(e, ClientError):
            err = e.response.get("Error", {})
            code = str(err.get("Code") or "")
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            detail = code + (f": {_one_line(err['Message'])}" if err.get("Message") else "")
            if code == "NoSuchBucket":
                return BucketNotFound(f"{self.location}: no such bucket {self.bucket!r}"
                                      f"{f' at {self.endpoint}' if self.endpoint else ''}")
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken",
                        "ExpiredToken", "AllAccessDisabled", "AccountProblem", "403") or status == 403:
                return S3AccessDenied(f"{where}: access denied ({detail}); check the credentials "
                                      f"(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE)")
            if code in ("NoSuchKey", "404") or status == 404:
                return ObjectNotFound(f"{where}: missing")
            return StorageError(f"{where}: cannot {op} ({detail or 'HTTP ' + str(status)}"
                                f"{f' after {self.max_attempts} attempts' if status and status >= 500 else ''})")
        if isinstance(e, (NoCredentialsError, PartialCredentialsError)):
            return S3AccessDenied(f"{self.location}: no usable S3 credentials ({_one_line(e)}); set "
                                  f"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE")
        from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError
        if isinstance(e, (EndpointConnectionError, ConnectTimeoutError)):
            server = self.endpoint or "the S3 endpoint"
            return StorageError(f"{where}: cannot {op}: {server} does not answer "
                                f"(gave up after {self.max_attempts} attempts)")
        return StorageError(f"{where}: cannot {op} ({_one_line(e)}; gave up after {self.max_attempts} attempts)")

    def _call(self, op: str, name: str, fn: Callable[[], T]) -> T:
        """Run one S3 operation, retrying transient failures (see ``_transient``) up to
        ``max_attempts`` attempts in all, with exponential backoff and jitter."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                return fn()
            except StorageError:
                raise
            except Exception as e:  # noqa: BLE001 - S3's errors only; anything else goes on up
                if not (isinstance(e, _BodyError) or _is_botocore_error(e)):
                    raise
                if attempt == self.max_attempts or not _transient(e):
                    raise self._error(e.cause if isinstance(e, _BodyError) else e, op, name) from None
            self.sleep(backoff(attempt) * (0.5 + random.random() / 2))
        raise AssertionError("unreachable")

    # -- the protocol -----------------------------------------------------------------

    def put(self, name: str, data: Data) -> None:
        body = data if isinstance(data, (bytes, bytearray, memoryview)) else _Parts(data)
        if len(body) >= self.multipart_threshold:
            self._put_multipart(name, joined(data))
        elif name.split("/", 1)[0] in CONTENT_NAMED:
            self._call("write", name, lambda: self._put_new(name, body))
        else:
            self._call("write", name, lambda: self._put_object(name, body))

    def _put_new(self, name: str, data: bytes | _Parts) -> None:
        """A content-named object is never overwritten (If-None-Match): one already there
        under its name holds this content, or is damage that reading it shows. So a
        backup host needs no right to overwrite (which no Ceph bucket policy can deny)."""
        from botocore.exceptions import ClientError

        try:
            self._put_object(name, data, IfNoneMatch="*")
        except ClientError as e:
            exists = (e.response.get("Error", {}).get("Code") == "PreconditionFailed"
                      or e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 412)
            if not exists:
                raise

    def _put_object(self, name: str, data: bytes | _Parts, **extra: Any) -> dict[str, Any]:
        if isinstance(data, _Parts):
            md5, body = data.md5_b64(), data.reader()  # a fresh reader for each attempt
        else:
            md5, body = _md5_b64(data)[1], data
        # Content-MD5: the server refuses (BadDigest) a body that arrived damaged.
        return self.client.put_object(Bucket=self.bucket, Key=self._key(name), Body=body,  # type: ignore[no-any-return]
                                      ContentMD5=md5, ContentLength=len(data), ACL=OWNER_ACL, **extra)

    def _put_multipart(self, name: str, data: bytes) -> None:
        """Parts with a Content-MD5 each; the object appears only when the upload is
        completed; its length and (where the server reports it) multipart ETag are
        checked afterwards. Any failure aborts the upload."""
        key = self._key(name)
        upload = self._call("write", name, lambda: self.client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ACL=OWNER_ACL))["UploadId"]
        try:
            parts, digests = [], []
            view = memoryview(data)
            for number, offset in enumerate(range(0, len(data), self.part_size), start=1):
                piece = bytes(view[offset:offset + self.part_size])
                digest, md5 = _md5_b64(piece)
                digests.append(digest)
                resp = self._call("write", name, lambda p=piece, n=number, m=md5: self.client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload, PartNumber=n, Body=p, ContentMD5=m,
                    ContentLength=len(p)))
                parts.append({"ETag": resp["ETag"], "PartNumber": number})
            # The response's ETag is not used: Ceph RGW returns it empty after completion.
            try:
                self._call("write", name, lambda: self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}))
            except ObjectNotFound:
                pass  # NoSuchUpload: a retry after a completion whose answer was lost; checked below
        except BaseException:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload)
            except Exception:  # noqa: BLE001 - best effort; the original error matters
                pass
            raise
        head = self._call("check", name, lambda: self.client.head_object(Bucket=self.bucket, Key=key))
        etag = str(head.get("ETag", "")).strip('"')
        expected = f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"
        if head["ContentLength"] != len(data) or ("-" in etag and etag != expected):
            self.delete(name)
            raise UploadMismatch(f"{self._where(name)}: stored object does not match the upload "
                                 f"({head['ContentLength']} bytes, ETag {etag}; sent {len(data)} bytes, {expected})")

    def create(self, name: str, data: bytes) -> None:
        data = bytes(data)
        for attempt in range(1, self.max_attempts + 1):
            tries = 0

            def put() -> str:
                nonlocal tries
                tries += 1
                return self._put_if_absent(name, data, retried=tries > 1)

            outcome = self._call("create", name, put)
            if outcome == "created":
                return
            if outcome == "exists":
                raise ObjectExists(f"{self._where(name)}: already exists")
            self.sleep(0.05 * attempt * (0.5 + random.random()))  # another create was in flight: ask again
        raise StorageError(f"{self._where(name)}: cannot create (conflicting writes, {self.max_attempts} attempts)")

    def _put_if_absent(self, name: str, data: bytes, *, retried: bool = False) -> str:
        """``created``, ``exists`` or ``conflict`` (AWS: a concurrent conditional write).
        ``retried``: an earlier attempt of this create failed without an answer."""
        from botocore.exceptions import ClientError

        try:
            self._put_object(name, data, IfNoneMatch="*")
            return "created"
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code")
            meta = e.response.get("ResponseMetadata", {})
            if code == "PreconditionFailed" or meta.get("HTTPStatusCode") == 412:
                # A retried PUT whose first attempt did succeed (the answer was lost)
                # meets our own object: identical bytes mean the create was ours.
                if retried and self._get_or_none(name) == data:
                    return "created"
                return "exists"
            if code == "ConditionalRequestConflict":
                return "conflict"
            if code == "NotImplemented":
                raise UnsupportedServer(f"{self.location}: the S3 server does not support conditional "
                                        f"writes (If-None-Match), which dedupe's locks need") from None
            raise

    def _get_or_none(self, name: str) -> bytes | None:
        try:
            return self.get(name)
        except ObjectNotFound:
            return None

    def get(self, name: str) -> bytes:
        return self._call("read", name, lambda: self._read(name, {}))

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        return self._call("read", name, lambda: self._read_range(name, offset, length))

    def _read_range(self, name: str, offset: int, length: int) -> bytes:
        from botocore.exceptions import ClientError

        try:
            return self._read(name, {"Range": f"bytes={offset}-{offset + length - 1}"})
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") == "InvalidRange":
                return b""  # the offset is at or past the end: nothing there
            raise

    def _read(self, name: str, extra: dict[str, str]) -> bytes:
        resp = self.client.get_object(Bucket=self.bucket, Key=self._key(name), **extra)
        try:
            data: bytes = resp["Body"].read()
        except Exception as e:  # noqa: BLE001 - the connection dropped while reading the body
            raise _BodyError(e) from None
        finally:
            resp["Body"].close()
        if len(data) != resp["ContentLength"]:
            raise _BodyError(IOError(f"short read: {len(data)} of {resp['ContentLength']} bytes"))
        return data

    def size(self, name: str) -> int:
        head = self._call("stat", name, lambda: self.client.head_object(Bucket=self.bucket, Key=self._key(name)))
        return int(head["ContentLength"])

    def exists(self, name: str) -> bool:
        try:
            self.size(name)
            return True
        except ObjectNotFound:
            return False

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """Every object under ``prefix/``, a page (up to 1000 keys) per request."""
        pre = self._key(prefix.strip("/") + "/") if prefix.strip("/") else self._root
        token: str | None = None
        while True:
            args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": pre, "MaxKeys": self.page_size}
            if token:
                args["ContinuationToken"] = token
            page = self._call("list", prefix, lambda a=args: self.client.list_objects_v2(**a))
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if not key.endswith("/"):
                    yield key[len(self._root):], int(obj["Size"])
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def delete(self, name: str) -> None:
        self._call("delete", name, lambda: self.client.delete_object(Bucket=self.bucket, Key=self._key(name)))

    # -- beyond the protocol ------------------------------------------------------------

    def prepare_init(self) -> None:
        """Before ``init``: make the bucket if it is missing, refuse a prefix that holds
        objects, and make sure the server honours conditional writes."""
        if not self._call("open bucket", "", self._bucket_exists):
            self._call("create bucket", "", lambda: self.client.create_bucket(Bucket=self.bucket))
        for name, _size in self.list(""):
            what = "is a dedupe repository already" if name == "config" else f"holds objects already ({name})"
            raise PrefixNotEmpty(f"{self.location}: {what}; choose an empty bucket or prefix")
        probe = f".init-probe-{os.urandom(8).hex()}.tmp"  # garbage by FORMAT.md section 3 if left behind
        try:
            self.create(probe, b"1")
            try:
                self.create(probe, b"2")
            except ObjectExists:
                return
            raise UnsupportedServer(f"{self.location}: the S3 server ignores If-None-Match; "
                                    f"dedupe's locks need conditional writes")
        finally:
            self.delete(probe)

    def _bucket_exists(self) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
            return True
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket"):
                return False
            raise

    def incomplete_uploads(self) -> list[tuple[str, str, float]]:
        """``(name, upload id, age in seconds)`` of multipart uploads never completed
        under the prefix (left by a crash; invisible to readers; gc aborts old ones).
        Ages are measured on the server's clock (its ``Date`` header against the
        upload's ``Initiated``), so a skewed client clock does not age them."""
        out = []
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._root, "MaxUploads": self.page_size}
        while True:
            page = self._call("list", "", lambda a=dict(args): self.client.list_multipart_uploads(**a))
            now = _server_time(page)
            for u in page.get("Uploads", []):
                out.append((u["Key"][len(self._root):], u["UploadId"],
                            max(0.0, now - u["Initiated"].timestamp())))  # Date has whole seconds
            if not page.get("IsTruncated"):
                return out
            key, upload = page.get("NextKeyMarker"), page.get("NextUploadIdMarker")
            if not key or (key, upload) == (args.get("KeyMarker"), args.get("UploadIdMarker")):
                return out  # a server that says "truncated" without a way on
            args["KeyMarker"], args["UploadIdMarker"] = key, upload or ""

    def abort_upload(self, name: str, upload_id: str) -> None:
        self._call("abort", name, lambda: self.client.abort_multipart_upload(
            Bucket=self.bucket, Key=self._key(name), UploadId=upload_id))

    def abort_stale_uploads(self, older_than_s: float) -> int:
        """Abort the incomplete multipart uploads under the prefix initiated more than
        ``older_than_s`` seconds ago (FORMAT.md section 11.2); how many were aborted.
        One that is gone meanwhile (completed or aborted by its writer) is skipped."""
        n = 0
        for name, upload_id, age in self.incomplete_uploads():
            if age < older_than_s:
                continue
            try:
                self.abort_upload(name, upload_id)
                n += 1
            except ObjectNotFound:  # NoSuchUpload (404)
                continue
        return n


def _server_time(resp: dict[str, Any]) -> float:
    """The server's clock from a response's ``Date`` header (the local clock without one)."""
    from email.utils import parsedate_to_datetime

    date = resp.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        return parsedate_to_datetime(date).timestamp() if date else time.time()
    except (TypeError, ValueError):
        return time.time()


def backoff(attempt: int) -> float:
    """The longest wait after failed attempt number ``attempt`` (1-based)."""
    return float(min(BACKOFF_FIRST * 2 ** (attempt - 1), BACKOFF_MAX))


def _is_botocore_error(e: BaseException) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    return isinstance(e, (BotoCoreError, ClientError))


def _transient(e: BaseException) -> bool:
    """Worth another attempt: the server is down, busy or failing (5xx, 429, throttling),
    the connection was refused, dropped or timed out, or a response body came short."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    if isinstance(e, _BodyError):
        return True
    if isinstance(e, ClientError):
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        code = str(e.response.get("Error", {}).get("Code") or "")
        return status >= 500 or status == 429 or code in TRANSIENT_CODES
    return isinstance(e, (ConnectionError, HTTPClientError))


class _BodyError(Exception):
    """Reading a response body failed; retried by ``S3Storage._call``."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause
