"""Standard Webhooks' headers of one attempt: id, timestamp, and a signature per secret.

The signature is HMAC-SHA256 over ``{id}.{timestamp}.{body}``, made by the reference
``standardwebhooks`` library; ``webhook-signature`` lists one ``v1,<base64>`` per secret
in use, so a receiver rotating its secret verifies with either.
"""

from datetime import datetime

from standardwebhooks import Webhook


def signed_headers(*, msg_id: str, timestamp: datetime, body: str, secrets: list[str]) -> dict:
    signatures = " ".join(
        Webhook(secret).sign(msg_id=msg_id, timestamp=timestamp, data=body) for secret in secrets
    )
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signatures,
    }
