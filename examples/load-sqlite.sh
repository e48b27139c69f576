#!/usr/bin/env bash
# Pull into SQLite, then query it. Run it again later: it resumes from the cursor
# the database keeps with its rows, and upserts (no duplicates).
#
#   ./load-sqlite.sh [orders.db] [miva-sync options]   # default: the sandbox store
set -euo pipefail
db="${1:-orders.db}"
shift || true
[ $# -gt 0 ] || set -- --sandbox
if miva-sync state show "$@" -o "sqlite:///$db" >/dev/null 2>&1; then
  miva-sync pull "$@" -o "sqlite:///$db" --quiet            # resume
else
  miva-sync pull "$@" -o "sqlite:///$db" --since 30d --quiet  # first run
fi
echo "orders:        $(sqlite3 "$db" 'SELECT count(*) FROM orders')"
echo "revenue (30d): $(sqlite3 "$db" "SELECT round(sum(total), 2) FROM orders
                                      WHERE orderdate >= strftime('%s', 'now', '-30 days')")"
echo "top SKUs:"
sqlite3 -separator '  ' "$db" "SELECT sku, sum(quantity) AS sold FROM order_items
                               GROUP BY sku ORDER BY sold DESC LIMIT 5"
