"""Where stored files go (uploads, extracted text): the ``STORAGES`` setting for S3."""

from botocore.config import Config


def s3_storages(
    *,
    bucket: str,
    endpoint_url: str = "",
    region: str = "",
    prefix: str = "",
    connect_timeout: float = 5,
    read_timeout: float = 60,
    attempts: int = 3,
) -> dict:
    """``STORAGES`` with the files in an S3-compatible bucket (django-storages) and the
    static files on local disk, as before (WhiteNoise serves them).

    A store that does not answer fails a call within about ``attempts`` × the timeouts,
    as an error the documents app turns into a 503 or a retry (documents/file_store.py),
    never a request or a task stuck on it.
    """
    client_config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": attempts, "mode": "standard"},
    )
    return {
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": endpoint_url or None,
                "region_name": region or None,
                "location": prefix,
                # As on disk: a name in use gets another, nothing is overwritten.
                "file_overwrite": False,
                "default_acl": None,  # the bucket's own policy: files are never public
                "client_config": client_config,
            },
        },
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
