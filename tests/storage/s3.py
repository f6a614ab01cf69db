"""An S3 server on loopback for the tests (moto in server mode), and the settings that
point the service's storage at one of its buckets."""

import socket
import uuid
from dataclasses import dataclass

import boto3
from moto.server import ThreadedMotoServer

from config.storage import s3_storages

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


@dataclass
class S3Server:
    endpoint_url: str
    server: ThreadedMotoServer

    @classmethod
    def start(cls, address: str = "127.0.0.1") -> "S3Server":
        """A server listening on ``address`` (loopback unless a test's hosts need another)."""
        port = _free_port(address)
        server = ThreadedMotoServer(ip_address=address, port=port, verbose=False)
        server.start()
        return cls(endpoint_url=f"http://{address}:{port}", server=server)

    def stop(self) -> None:
        self.server.stop()

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
        )

    def new_bucket(self) -> str:
        name = f"jobs-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=bucket)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def environment(self, bucket: str) -> dict[str, str]:
        """The environment that points a process of the service at ``bucket``."""
        return {
            **CREDENTIALS,
            "STORAGE_S3_BUCKET": bucket,
            "STORAGE_S3_ENDPOINT_URL": self.endpoint_url,
            "STORAGE_S3_REGION": CREDENTIALS["AWS_DEFAULT_REGION"],
        }


def storages_for(server: S3Server, bucket: str) -> dict:
    """``STORAGES`` as the settings make it for ``environment(bucket)``."""
    return s3_storages(
        bucket=bucket, endpoint_url=server.endpoint_url, region=CREDENTIALS["AWS_DEFAULT_REGION"]
    )
