#!/usr/bin/env bash
# Yesterday-to-now orders as CSV (id, placed at, e-mail, total), straight from a pull.
#
#   ./jq-pipeline.sh                   # the built-in sandbox store
#   ./jq-pipeline.sh --profile shop    # a configured store
#
# --since with --until is a bounded re-pull: it neither reads nor moves the
# store's saved cursor, so a report never disturbs the cron job.
set -euo pipefail
[ $# -gt 0 ] || set -- --sandbox
until_now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "id,placed_at,email,total"
miva-sync pull "$@" --since 1d --until "$until_now" --quiet --no-progress \
  | jq -r '[.id, (.orderdate | todate), .bill_email, .total] | @csv'
