"""Where stored files go (uploads, extracted text): the ``STORAGES`` setting for S3."""


def s3_storages(*, bucket: str, endpoint_url: str = "", region: str = "", prefix: str = "") -> dict:
    """``STORAGES`` with the files in an S3-compatible bucket (django-storages) and the
    static files on local disk, as before (WhiteNoise serves them)."""
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
            },
        },
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
