"""A real S3 server on 127.0.0.1 for the object-storage tests: moto's ``ThreadedMotoServer`` (as Ray's own
storage tests use), with one bucket, and the URI and environment a study needs to reach it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BUCKET = "welllog-studies"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",  # never ask a cloud's metadata service for credentials
}


@dataclass
class S3Server:
    """A running moto server (``stop``/``start`` keep its objects: they live in this process)."""

    server: object
    host: str
    port: int

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def uri(self, prefix: str = "studies") -> str:
        """``--storage`` for a study in the bucket (pyarrow's spelling of an S3-compatible endpoint)."""
        return f"s3://{BUCKET}/{prefix}?endpoint_override={self.endpoint}&scheme=http"

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=f"http://{self.endpoint}",
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDENTIALS["AWS_REGION"],
        )

    def objects(self, prefix: str = "") -> list[str]:
        """Every object key in the bucket under ``prefix``."""
        paginator = self.client().get_paginator("list_objects_v2")
        return [o["Key"] for page in paginator.paginate(Bucket=BUCKET, Prefix=prefix) for o in page.get("Contents", [])]

    def stop(self) -> None:
        self.server.stop()  # type: ignore[attr-defined]

    def start(self) -> None:
        """Start again on the same port (a study that failed on the store resumes against it)."""
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self.server.start()  # type: ignore[attr-defined]


@contextlib.contextmanager
def s3_server() -> Iterator[S3Server]:
    """An S3 server on 127.0.0.1 with the bucket ``BUCKET``; the credentials are set in this process too."""
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    s3 = S3Server(server, host, port)
    try:
        s3.client().create_bucket(Bucket=BUCKET)
        yield s3
    finally:
        with contextlib.suppress(Exception):
            s3.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def s3_env(base: dict[str, str]) -> dict[str, str]:
    """A driver's environment with the test credentials (and nothing that would reach a real cloud)."""
    return {**base, **CREDENTIALS}


def working_copies(tmp: Path) -> list[Path]:
    """Working copies a driver left under the temporary folder ``tmp`` (there should be none)."""
    return sorted(tmp.glob("welllog-study-*"))
