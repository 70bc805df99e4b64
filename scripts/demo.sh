#!/usr/bin/env bash
# scripts/demo.sh - see refund_rules at work in one command.
#
# Installs what is missing, builds and installs the extension, starts a
# throwaway cluster "demo" (Unix socket only, under $RR_TMP), loads
# scripts/sample.sql and prints a refund report as of 2026-11-25 12:00 UTC.
# The cluster is stopped and removed at the end.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
trap rr_stop_all EXIT

DEMO_PORT=${DEMO_PORT:-54350}
AS_OF='2026-11-25 12:00+00'

echo "== installing dependencies"
rr_install_deps
echo "== building and installing refund_rules"
mkdir -p "$RR_TMP"
rr_build_install >"$RR_TMP/demo-build.log" 2>&1 || {
	cat "$RR_TMP/demo-build.log" >&2
	exit 1
}
echo "== starting a throwaway cluster"
rr_start_cluster demo "$DEMO_PORT"

psql() { "$RR_PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql -c 'CREATE EXTENSION refund_rules'
psql -f scripts/sample.sql

echo
echo "== refund report as of $AS_OF ($(psql -Atc 'SELECT count(*) FROM purchases') purchases)"
psql -v as_of="$AS_OF" <<'SQL'
SET TimeZone = 'UTC';
\pset footer off

\echo
\echo 'Eligible for a purchase refund:'
SELECT count(*) FILTER (WHERE refund_rules.refund_eligible(p, as_of => :'as_of'))          AS eligible,
       count(*) FILTER (WHERE NOT refund_rules.refund_eligible(p, as_of => :'as_of'))      AS not_eligible,
       count(*) FILTER (WHERE refund_rules.refund_eligible(p, as_of => :'as_of') IS NULL)  AS unknown
FROM purchases p;

\echo 'Why not (purchase refunds):'
SELECT reason, count(*) AS purchases
FROM purchases p,
     unnest(refund_rules.refund_ineligibility_reasons(p, as_of => :'as_of')) AS reason
GROUP BY reason
ORDER BY count(*) DESC, reason;

\echo 'Why not (tax refunds):'
SELECT reason, count(*) AS purchases
FROM purchases p,
     unnest(refund_rules.refund_ineligibility_reasons(p, as_of => :'as_of', kind => 'tax')) AS reason
GROUP BY reason
ORDER BY count(*) DESC, reason;

\echo 'Next refund deadlines:'
SELECT p.id, p.partner, p.offer,
       refund_rules.refund_deadline(p.purchased_at)                        AS deadline,
       refund_rules.refund_deadline(p.purchased_at) - :'as_of'::timestamptz AS time_left
FROM purchases p
WHERE refund_rules.refund_eligible(p, as_of => :'as_of')
ORDER BY deadline, p.id;
SQL

rr_stop_cluster demo
echo "== done (cluster stopped)"
