"""Drop one order id into the itnio-otp-exporter spool atomically."""
import json
import os
import tempfile
import time


def drop_order(order_id: str, app_id: str | None = None, spool: str = "/var/spool/itnio-otp") -> None:
    line = {"orderId": order_id, "issuedAt": int(time.time())}
    if app_id:
        line["appId"] = app_id
    # Write a hidden temporary file in the spool itself (same filesystem), then rename:
    # the exporter never reads names starting with "." or ending in ".tmp".
    fd, tmp = tempfile.mkstemp(dir=spool, prefix=".order-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")
    os.rename(tmp, os.path.join(spool, f"order-{time.time_ns()}-{os.getpid()}"))


if __name__ == "__main__":
    import sys

    drop_order(sys.argv[1], spool=sys.argv[2] if len(sys.argv) > 2 else "/var/spool/itnio-otp")
