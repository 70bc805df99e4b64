#!/usr/bin/env bash
# test/memory.sh - the backend's memory does not grow with the number of rows.
#
# In the cluster of PGHOST/PGPORT/PGUSER (a superuser: the backend reads its
# own /proc/<pid>/status with pg_read_file), in a scratch database:
#   1. a separate session builds two purchase tables, 200k and 2M rows;
#   2. ONE new backend (no parallel workers, no JIT) warms up on a few rows,
#      reads its own peak memory, runs every path over the 200k rows, reads
#      it again, runs the same over the 2M rows, reads it again.  Its own:
#      the peak resident memory (VmHWM) less the shared memory it has mapped
#      (RssShmem), which grows as the backend touches shared buffers and
#      PostgreSQL 18's larger shared structures, not with what it allocates;
#        - a table's whole row, rewritten by the planner support:
#          refund_ineligibility_reasons, refund_status (LATERAL), WHERE
#          refund_eligible / tax_refund_eligible;
#        - the row of a subquery (RECORD, not rewritten): the same three;
#        - check_refund (purchase and tax) on both;
#        - ROW(...)::refund_rules.purchase over generate_series, and a
#          subquery's record with a text offer;
#   3. fails when the 2M run raised its own peak by more than SLACK_KB over
#      the 200k run's;
#   4. control: an array_agg of 3M integers in the same backend must raise the
#      peak (so the method does see growth).
# Prints the figures; exit 0 on pass.  Runs in well under 2 minutes.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

SMALL=${MEMORY_SMALL_ROWS:-200000}
BIG=${MEMORY_BIG_ROWS:-2000000}
SLACK_KB=${MEMORY_SLACK_KB:-8192}
CONTROL=3000000 # array_agg of this many integers: tens of MB
DB=rr_memory_$$
export PGDATABASE=$DB
PSQL=(psql -X -v ON_ERROR_STOP=1 -q -At)
OUT=$(mktemp)

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
	rm -f "$OUT"
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1
}
trap cleanup EXIT

echo "memory: cluster ${PGHOST:-?}:${PGPORT:-?}, database $DB, $SMALL and $BIG rows, slack ${SLACK_KB} kB"

if ! psql -X -q -d postgres -c "CREATE DATABASE $DB" >/dev/null; then
	echo "FAIL: cannot create database $DB"
	exit 1
fi

# 1. The tables, in a session of their own (its memory is not measured).
# Even ids are refundable at the as_of used below (both kinds); odd ids
# fail for various reasons, some with NULLs.
if ! "${PSQL[@]}" >/dev/null <<'SQL'; then
CREATE EXTENSION refund_rules;
CREATE FUNCTION make_purchases(name text, n int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format($q$
    CREATE TABLE %I AS
    SELECT i AS id,
           (ARRAY['action_pack', 'silver', 'gold'])[1 + i %% 3]::refund_rules.mpn_offer AS offer,
           CASE WHEN i %% 2 = 0 THEN timestamptz '2026-11-25 12:00+00' - (i %% 29) * interval '1 day'
                WHEN i %% 97 = 1 THEN NULL
                ELSE timestamptz '2026-11-25 12:00+00' - (i %% 700) * interval '1 day' END AS purchased_at,
           CASE WHEN i %% 2 = 0 THEN false WHEN i %% 89 = 1 THEN NULL ELSE i %% 5 = 1 END AS benefits_activated,
           CASE WHEN i %% 2 = 0 THEN false ELSE i %% 7 = 1 END AS product_keys_viewed,
           CASE WHEN i %% 2 = 0 THEN false ELSE i %% 11 = 1 END AS upgraded_with_gold_discount,
           CASE WHEN i %% 2 = 0 THEN true ELSE i %% 3 = 1 END AS tax_exempt,
           'note ' || i AS note
      FROM generate_series(1, %s) i$q$, name, n);
    EXECUTE format('ANALYZE %I', name);
END $$;
SQL
	echo "FAIL: could not set up the database"
	exit 1
fi
"${PSQL[@]}" -c "SELECT make_purchases('p_small', $SMALL)" -c "SELECT make_purchases('p_big', $BIG)" \
	-c "SELECT make_purchases('p_warm', 100)" >/dev/null || {
	echo "FAIL: could not build the tables"
	exit 1
}

# 2. The measuring backend.  :n and :t are set before each \ir of the run.
RUN=$(mktemp)
trap 'rm -f "$RUN"; cleanup' EXIT
cat >"$RUN" <<'SQL'
-- every path over table :t (and generate_series(1, :n))
SELECT 'rows ' || :'t' || ' ' ||
       (SELECT sum(cardinality(refund_rules.refund_ineligibility_reasons(p, :'a')))
          FROM :t p) || ' ' ||
       (SELECT count(*) FILTER (WHERE s.refund_eligible) || '/' || sum(cardinality(s.tax_refund_reasons))
          FROM :t p CROSS JOIN LATERAL refund_rules.refund_status(p, :'a') s) || ' ' ||
       (SELECT count(*) FROM :t p
         WHERE refund_rules.refund_eligible(p, :'a') OR refund_rules.tax_refund_eligible(p, :'a')) || ' ' ||
       (SELECT sum(cardinality(refund_rules.refund_ineligibility_reasons(p, :'a', 'tax')))
          FROM (SELECT * FROM :t OFFSET 0) p) || ' ' ||
       (SELECT count(*) FILTER (WHERE s.refund_eligible) || '/' || sum(cardinality(s.tax_refund_reasons))
          FROM (SELECT * FROM :t OFFSET 0) p CROSS JOIN LATERAL refund_rules.refund_status(p, :'a') s) || ' ' ||
       (SELECT count(*) FROM (SELECT * FROM :t OFFSET 0) p
         WHERE refund_rules.refund_eligible(p, :'a') OR refund_rules.tax_refund_eligible(p, :'a')) || ' ' ||
       (SELECT count(CASE WHEN p.id % 2 = 0 THEN refund_rules.check_refund(p, :'a', 'purchase') END) || '/' ||
               count(CASE WHEN p.id % 2 = 0 THEN refund_rules.check_refund(p, :'a', 'tax') END)
          FROM :t p) || ' ' ||
       (SELECT count(CASE WHEN p.id % 2 = 0 THEN refund_rules.check_refund(p, :'a', 'purchase') END)
          FROM (SELECT * FROM :t OFFSET 0) p) || ' ' ||
       (SELECT sum(cardinality(refund_rules.refund_ineligibility_reasons(
                   ROW((ARRAY['action_pack', 'silver', 'gold'])[1 + i % 3], :'a'::timestamptz - (i % 40) * interval '1 day',
                       i % 5 = 1, i % 7 = 1, i % 11 = 1, i % 2 = 0)::refund_rules.purchase, :'a')))
          FROM (SELECT generate_series(1, :n) AS i) g) || ' ' ||
       (SELECT count(*) FILTER (WHERE s.refund_eligible) || '/' || count(*) FILTER (WHERE s.tax_refund_eligible)
          FROM (SELECT generate_series(1, :n) AS i) g
          CROSS JOIN LATERAL refund_rules.refund_status(
                   ROW((ARRAY['action_pack', 'silver', 'gold'])[1 + i % 3], :'a'::timestamptz - (i % 40) * interval '1 day',
                       i % 5 = 1, i % 7 = 1, i % 11 = 1, i % 2 = 0)::refund_rules.purchase, :'a') s) || ' ' ||
       (SELECT sum(cardinality(refund_rules.refund_ineligibility_reasons(g, :'a')))
          FROM (SELECT i, (ARRAY['action_pack', 'silver', 'gold', NULL])[1 + i % 4] AS offer,
                       (:'a'::timestamptz - (i % 40) * interval '1 day')::timestamp AS purchased_at,
                       i % 5 = 1 AS benefits_activated, i % 7 = 1 AS product_keys_viewed,
                       i % 11 = 1 AS upgraded_with_gold_discount, i % 2 = 0 AS tax_exempt
                  FROM generate_series(1, :n) i OFFSET 0) g);
SELECT 'hwm ' || :'t' || ' ' ||
       substring(s FROM 'VmHWM:\s*(\d+) kB') || ' ' || substring(s FROM 'RssShmem:\s*(\d+) kB')
  FROM pg_read_file('/proc/' || pg_backend_pid() || '/status') s;
SQL

if ! "${PSQL[@]}" >"$OUT" 2>&1 <<SQL; then
SET max_parallel_workers_per_gather = 0;
SET jit = off;
\set a '2026-11-25 12:00:00+00'
-- warm up: caches, plans, the library; every page of the tables touched
-- once, so that shared buffers count in the baseline
SELECT count(*) FROM p_small;
SELECT count(*) FROM p_big;
\set t p_warm
\set n 100
\ir $RUN
\set t p_small
\set n $SMALL
\ir $RUN
\set t p_big
\set n $BIG
\ir $RUN
-- control: this must raise the peak
SELECT 'control ' || count(*) FROM (SELECT array_agg(i) AS a FROM generate_series(1, $CONTROL) i) x
 WHERE cardinality(a) > 0;
SELECT 'hwm control ' ||
       substring(s FROM 'VmHWM:\s*(\d+) kB') || ' ' || substring(s FROM 'RssShmem:\s*(\d+) kB')
  FROM pg_read_file('/proc/' || pg_backend_pid() || '/status') s;
SQL
	cat "$OUT"
	echo "FAIL: the measuring session failed (a superuser is needed to read /proc with pg_read_file)"
	exit 1
fi

hwm() { awk -v k="$1" '$1 == "hwm" && $2 == k { print $3 }' "$OUT"; }
shmem() { awk -v k="$1" '$1 == "hwm" && $2 == k { print $4 }' "$OUT"; }
for k in p_warm p_small p_big control; do
	for v in "$(hwm $k)" "$(shmem $k)"; do
		case $v in
		'' | *[!0-9]*)
			cat "$OUT"
			echo "FAIL: could not read VmHWM and RssShmem"
			exit 1
			;;
		esac
	done
done
# own KEY: the backend's own peak, VmHWM less RssShmem
own() { echo $(($(hwm "$1") - $(shmem "$1"))); }
base=$(own p_warm)
small=$(own p_small)
big=$(own p_big)
control=$(own control)

grep '^rows ' "$OUT" | sed 's/^/  results: /'
grow_small=$((small - base))
grow_big=$((big - base))
grow_control=$((control - big))
echo "  own peak (VmHWM - RssShmem) after warm-up:  ${base} kB (VmHWM $(hwm p_warm), RssShmem $(shmem p_warm) kB)"
echo "  own peak after $SMALL rows:   ${small} kB (+${grow_small} kB; VmHWM $(hwm p_small), RssShmem $(shmem p_small) kB)"
echo "  own peak after $BIG rows:  ${big} kB (+${grow_big} kB from warm-up, +$((big - small)) kB over the $SMALL-row run; VmHWM $(hwm p_big), RssShmem $(shmem p_big) kB)"
echo "  control, array_agg of $CONTROL ints: ${control} kB (+${grow_control} kB; VmHWM $(hwm control), RssShmem $(shmem control) kB)"

rc=0
if [ "$grow_big" -gt $((grow_small + SLACK_KB)) ]; then
	echo "FAIL: memory grows with the number of rows: +${grow_big} kB for $BIG rows against +${grow_small} kB for $SMALL (slack ${SLACK_KB} kB)"
	rc=1
else
	echo "ok: memory flat: +${grow_big} kB for $BIG rows <= +${grow_small} kB for $SMALL rows + ${SLACK_KB} kB"
fi
if [ "$grow_control" -le "$SLACK_KB" ]; then
	echo "FAIL: the control query did not raise the peak by more than ${SLACK_KB} kB: the measurement sees nothing"
	rc=1
else
	echo "ok: the control query raised the peak by ${grow_control} kB (the measurement works)"
fi
exit "$rc"
