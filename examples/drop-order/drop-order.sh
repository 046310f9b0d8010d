#!/bin/sh
# Drop one order id into the spool atomically: write a dot-file, then rename it into place.
# Usage: drop-order.sh ORDER_ID [SPOOL_DIR]
set -eu
order_id=$1
spool=${2:-/var/spool/itnio-otp}
tmp=$(mktemp "$spool/.order.XXXXXX")
printf '{"orderId":"%s","issuedAt":%s}\n' "$order_id" "$(date +%s)" > "$tmp"
mv "$tmp" "$spool/order-$(date +%s%N)-$$"
