#!/usr/bin/env bash
# test/dump_restore.sh - a database that enforces refunds survives pg_dump and
# pg_restore: the check constraint and the trigger are restored, the accepted
# refunds (some of them years old: no now() in the checks) load again without
# an error, every row is identical, and the restored database still refuses
# what the policy forbids.
#
# Run by scripts/test.sh with PGHOST/PGPORT/PGUSER of the test cluster; run
# alone (no PGPORT set, or RR_DUMP_OWN_CLUSTER=1) it starts its own cluster
# "dump_restore" on port 54412.  Exit status 0 when every check passes.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

BIN=$RR_PGBIN
OWN_CLUSTER=dump_restore
OWN_PORT=54412

failures=0
ok() { printf '  ok    %s\n' "$*"; }
bad() {
	printf '  FAIL  %s\n' "$*"
	failures=$((failures + 1))
}

work=$(mktemp -d "${TMPDIR:-/tmp}/rr_dump_restore.XXXXXX") || exit 2
chmod 755 "$work"
SRC=rr_dump_src_$$
DST=rr_dump_dst_$$
own_started=0

# shellcheck disable=SC2317  # called by the trap
cleanup() {
	if [ -n "${PGPORT:-}" ]; then
		"$BIN/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS $SRC" >/dev/null 2>&1
		"$BIN/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS $DST" >/dev/null 2>&1
	fi
	[ "$own_started" -eq 1 ] && rr_stop_cluster "$OWN_CLUSTER" >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${PGPORT:-}" ] || [ "${RR_DUMP_OWN_CLUSTER:-0}" = 1 ]; then
	own_started=1
	rr_start_cluster "$OWN_CLUSTER" "$OWN_PORT" || exit 1
fi
export PGHOST PGPORT PGUSER
echo "dump/restore on ${PGHOST:-local socket} port $PGPORT"

# psql_db DB [psql args]: quiet, stop at the first error.
psql_db() {
	local db=$1
	shift
	"$BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"
}

# expect_error DB SQLSTATE LABEL SQL: SQL must fail with SQLSTATE.
expect_error() {
	local db=$1 want=$2 label=$3 sql=$4 out got
	out=$("$BIN/psql" -X -q -d "$db" -v VERBOSITY=verbose -v SHOW_CONTEXT=never \
		-c "$sql" 2>&1)
	got=$(printf '%s\n' "$out" | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\): .*/\1/p' | head -n1)
	if [ "$got" = "$want" ]; then
		ok "$label: refused with $got ($(printf '%s\n' "$out" | sed -n 's/^ERROR:  [0-9A-Z]*: //p' | head -n1)$(printf '%s\n' "$out" | sed -n 's/^DETAIL:  Reasons: \(.*\)\./; \1/p' | head -n1))"
	else
		bad "$label: wanted SQLSTATE $want, got '${got:-none}'"
		printf '%s\n' "$out" | sed 's/^/        /'
	fi
}

# expect_ok DB LABEL SQL: SQL must succeed.
expect_ok() {
	local db=$1 label=$2 sql=$3 out
	if out=$(psql_db "$db" -c "$sql" 2>&1); then
		ok "$label"
	else
		bad "$label"
		printf '%s\n' "$out" | sed 's/^/        /'
	fi
}

# ---------------------------------------------------------------------------
echo "1. source database $SRC"
if ! psql_db postgres -c "CREATE DATABASE $SRC TEMPLATE template0" >/dev/null; then
	bad "create database $SRC"
	exit 1
fi
if psql_db "$SRC" >"$work/setup.log" 2>&1 <<'SQL'; then
SET TimeZone = 'UTC';
CREATE EXTENSION refund_rules;
CREATE SCHEMA shop;
CREATE SCHEMA billing;

-- Purchases that record their own refund: the check constraint.
CREATE TABLE shop.memberships (
    id                          integer PRIMARY KEY,
    offer                       refund_rules.mpn_offer NOT NULL,
    purchased_at                timestamptz NOT NULL,
    benefits_activated          boolean NOT NULL DEFAULT false,
    product_keys_viewed         boolean NOT NULL DEFAULT false,
    upgraded_with_gold_discount boolean NOT NULL DEFAULT false,
    tax_exempt                  boolean NOT NULL DEFAULT false,
    refunded_at                 timestamptz,
    CONSTRAINT refund_allowed
      CHECK (refunded_at IS NULL OR refund_rules.check_refund(memberships, refunded_at))
);
-- Tax refunds recorded on a table with text offers and timestamp columns.
CREATE TABLE shop.tax_refunds (
    id           integer PRIMARY KEY,
    offer        text,
    purchased_at timestamp,
    tax_exempt   boolean,
    kind         text NOT NULL DEFAULT 'tax',
    refunded_at  timestamp,
    CONSTRAINT tax_refund_allowed
      CHECK (refunded_at IS NULL
             OR refund_rules.check_refund(tax_refunds, refunded_at, kind::refund_rules.refund_kind))
);
-- Purchases and refund requests: the trigger, unqualified and qualified.
CREATE TABLE shop.purchases (
    id                          bigint PRIMARY KEY,
    offer                       refund_rules.mpn_offer,
    purchased_at                timestamptz,
    benefits_activated          boolean,
    product_keys_viewed         boolean,
    upgraded_with_gold_discount boolean,
    tax_exempt                  boolean
);
CREATE TABLE shop.refund_requests (
    id                bigserial PRIMARY KEY,
    purchase_id       bigint NOT NULL,
    requested_at      timestamptz NOT NULL,
    kind              refund_rules.refund_kind NOT NULL DEFAULT 'purchase',
    requested_by_role text NOT NULL,
    note              text
);
CREATE UNIQUE INDEX refund_requests_once ON shop.refund_requests (purchase_id, kind);
CREATE TRIGGER refund_policy
  BEFORE INSERT OR UPDATE ON shop.refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
CREATE TABLE billing.requests (
    purchase_ref      bigint,
    requested_at      timestamptz,
    requested_by_role text
);
CREATE TRIGGER refund_policy
  BEFORE INSERT OR UPDATE ON billing.requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('shop.purchases', 'purchase_ref', 'id');

-- Data: refunds accepted in 2001, 2024 and 2026 (all long before or after
-- whatever now() is when this runs).
INSERT INTO shop.memberships
SELECT g, (ARRAY['action_pack', 'silver', 'gold'])[1 + g % 3]::refund_rules.mpn_offer,
       timestamptz '2001-01-01 00:00+00' + g * interval '7 hours 13 minutes',
       false, false, (g % 3 = 2) AND (g % 2 = 0), g % 5 = 0,
       CASE WHEN g % 4 = 0
            THEN timestamptz '2001-01-01 00:00+00' + g * interval '7 hours 13 minutes'
                 + (g % 720) * interval '1 hour' END
FROM generate_series(1, 2000) g;
UPDATE shop.memberships SET benefits_activated = true WHERE refunded_at IS NULL AND id % 3 = 0;
INSERT INTO shop.tax_refunds VALUES
  (1, 'gold', '2036-02-29 12:00', true, 'tax', '2037-02-28 12:00'),
  (2, 'silver', '2038-11-20 09:00', true, 'tax', '2038-11-20 09:00'),
  (3, 'action_pack', '2038-11-20 09:00', false, 'tax', NULL);
-- Purchases of the last 20 days (the trigger judges at the database's
-- clock, so requests are made now), and one whose window closed (1001).
INSERT INTO shop.purchases
SELECT g, (ARRAY['action_pack', 'silver', 'gold'])[1 + g % 3]::refund_rules.mpn_offer,
       now() - interval '20 days' + g * interval '20 minutes',
       g % 7 = 0, g % 11 = 0, g % 13 = 0, g % 2 = 0
FROM generate_series(1, 1000) g;
INSERT INTO shop.purchases VALUES (1001, 'gold', now() - interval '31 days', false, false, false, true);
-- Every request that the policy allows goes in (one per purchase and kind).
INSERT INTO shop.refund_requests (purchase_id, requested_at, kind, requested_by_role)
SELECT p.id, now(), 'purchase',
       CASE WHEN p.id % 2 = 0 THEN 'account_admin' ELSE 'mpn_partner_admin' END
FROM shop.purchases p
WHERE refund_rules.refund_eligible(p, now());
INSERT INTO shop.refund_requests (purchase_id, requested_at, kind, requested_by_role)
SELECT p.id, now(), 'tax', 'account_admin'
FROM shop.purchases p
WHERE refund_rules.tax_refund_eligible(p, now());
INSERT INTO billing.requests
SELECT id, now(), 'mpn_partner_admin' FROM shop.purchases
WHERE NOT benefits_activated AND NOT product_keys_viewed
  AND NOT (offer = 'silver' AND upgraded_with_gold_discount) AND id <> 1001;
SQL
	ok "schema and data created"
else
	bad "schema and data created"
	sed 's/^/        /' "$work/setup.log"
	exit 1
fi
psql_db "$SRC" -At -F ' ' -c "
  SELECT 'memberships refunded: ' || count(*) FILTER (WHERE refunded_at IS NOT NULL)
         || ' of ' || count(*) FROM shop.memberships
  UNION ALL SELECT 'refund requests: ' || count(*) FILTER (WHERE kind = 'purchase') || ' purchase, '
         || count(*) FILTER (WHERE kind = 'tax') || ' tax' FROM shop.refund_requests
  UNION ALL SELECT 'billing requests: ' || count(*) FROM billing.requests
  UNION ALL SELECT 'tax refunds: ' || count(*) FROM shop.tax_refunds" | sed 's/^/        /'

# ---------------------------------------------------------------------------
echo "2. pg_dump -Fc, pg_restore --exit-on-error into $DST"
if "$BIN/pg_dump" -Fc -d "$SRC" -f "$work/src.dump" 2>"$work/dump.err" && [ ! -s "$work/dump.err" ]; then
	ok "pg_dump -Fc ($(wc -c <"$work/src.dump") bytes, no message)"
else
	bad "pg_dump -Fc"
	sed 's/^/        /' "$work/dump.err"
	exit 1
fi
psql_db postgres -c "CREATE DATABASE $DST TEMPLATE template0" >/dev/null || {
	bad "create database $DST"
	exit 1
}
if "$BIN/pg_restore" --exit-on-error -d "$DST" "$work/src.dump" 2>"$work/restore.err"; then
	if [ -s "$work/restore.err" ]; then
		bad "pg_restore exited 0 but printed:"
		sed 's/^/        /' "$work/restore.err"
	else
		ok "pg_restore --exit-on-error: exit status 0, no message"
	fi
else
	bad "pg_restore --exit-on-error failed:"
	sed 's/^/        /' "$work/restore.err"
	exit 1
fi

# ---------------------------------------------------------------------------
echo "3. same objects, same rows"
tables_sql="SELECT format('%I.%I', n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  ORDER BY 1"
psql_db "$SRC" -At -c "$tables_sql" >"$work/src.tables"
psql_db "$DST" -At -c "$tables_sql" >"$work/dst.tables"
if cmp -s "$work/src.tables" "$work/dst.tables" && [ -s "$work/src.tables" ]; then
	ok "same $(wc -l <"$work/src.tables") tables: $(tr '\n' ' ' <"$work/src.tables")"
else
	bad "table lists differ"
	diff "$work/src.tables" "$work/dst.tables" | sed 's/^/        /'
fi
# One line per table: name, row count, md5 of the ordered row texts.
: >"$work/src.sums"
: >"$work/dst.sums"
while IFS= read -r t; do
	q="SELECT '$t', count(*), md5(coalesce(string_agg(x.r, E'\n' ORDER BY x.r), ''))
	   FROM (SELECT t::text AS r FROM $t t) x"
	psql_db "$SRC" -At -F ' ' -c "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; $q" >>"$work/src.sums"
	psql_db "$DST" -At -F ' ' -c "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; $q" >>"$work/dst.sums"
done <"$work/src.tables"
if cmp -s "$work/src.sums" "$work/dst.sums"; then
	ok "every table's rows identical (count and md5 of the ordered row text):"
	sed 's/^/        /' "$work/src.sums"
else
	bad "rows differ after restore:"
	diff "$work/src.sums" "$work/dst.sums" | sed 's/^/        /'
fi
# The definitions of both databases, dumped again, are the same (but for the
# version comments and the random key of pg_dump's \restrict lines).
schema_filter() { grep -v -e '^-- Dumped from' -e '^-- Dumped by' -e '^\\restrict ' -e '^\\unrestrict '; }
"$BIN/pg_dump" -s -d "$SRC" | schema_filter >"$work/src.schema"
"$BIN/pg_dump" -s -d "$DST" | schema_filter >"$work/dst.schema"
if cmp -s "$work/src.schema" "$work/dst.schema"; then
	ok "pg_dump --schema-only of both databases identical"
else
	bad "schema differs after restore:"
	diff "$work/src.schema" "$work/dst.schema" | head -n 40 | sed 's/^/        /'
fi
n=$(psql_db "$DST" -At -c "
  SELECT count(*) FROM pg_trigger t
  WHERE NOT t.tgisinternal AND t.tgfoid = 'refund_rules.enforce_refund_policy()'::regprocedure
     AND t.tgenabled = 'O'")
if [ "$n" = 2 ]; then ok "both triggers restored and enabled"; else bad "triggers restored: $n, wanted 2"; fi
n=$(psql_db "$DST" -At -c "
  SELECT count(*) FROM pg_constraint
  WHERE contype = 'c' AND convalidated AND conname IN ('refund_allowed', 'tax_refund_allowed')")
if [ "$n" = 2 ]; then ok "both check constraints restored and validated"; else bad "check constraints restored: $n, wanted 2"; fi

# ---------------------------------------------------------------------------
echo "4. the restored database still enforces the policy"
# Purchase 7 has its benefits activated, 11 its keys viewed; 2 is allowed.
expect_error "$DST" 23514 "trigger: refund of a purchase with benefits activated" \
	"INSERT INTO shop.refund_requests (purchase_id, requested_at, requested_by_role)
	 SELECT id, now(), 'account_admin' FROM shop.purchases WHERE id = 7"
expect_error "$DST" 23514 "trigger: refund after the window" \
	"INSERT INTO billing.requests VALUES (1001, now(), 'account_admin')"
expect_error "$DST" 23514 "trigger: requester not authorized" \
	"INSERT INTO billing.requests VALUES (2, now(), 'billing_clerk')"
expect_error "$DST" 23503 "trigger: purchase that does not exist" \
	"INSERT INTO billing.requests VALUES (424242, now(), 'account_admin')"
expect_error "$DST" 23514 "trigger: re-check on UPDATE of requested_at (a moment of another transaction)" \
	"UPDATE shop.refund_requests SET requested_at = requested_at - interval '1 second'
	 WHERE purchase_id = 2 AND kind = 'purchase'"
expect_error "$DST" 23505 "unique index: a second refund of the same purchase" \
	"INSERT INTO shop.refund_requests (purchase_id, requested_at, requested_by_role)
	 VALUES (2, now(), 'account_admin')"
expect_ok "$DST" "trigger: an allowed request is accepted" \
	"INSERT INTO billing.requests VALUES (2, now(), 'account_admin')"
expect_error "$DST" 23514 "check constraint: activating benefits of a refunded membership" \
	"UPDATE shop.memberships SET benefits_activated = true
	 WHERE id = (SELECT min(id) FROM shop.memberships WHERE refunded_at IS NOT NULL)"
expect_error "$DST" 23514 "check constraint: refunding a membership with benefits activated" \
	"UPDATE shop.memberships SET refunded_at = purchased_at
	 WHERE id = (SELECT min(id) FROM shop.memberships WHERE benefits_activated)"
expect_error "$DST" 23514 "check constraint: tax refund of a purchase not tax exempt" \
	"UPDATE shop.tax_refunds SET refunded_at = purchased_at WHERE id = 3"
expect_ok "$DST" "check constraint: rows accepted in 2001 pass again (UPDATE of every refunded row)" \
	"UPDATE shop.memberships SET refunded_at = refunded_at WHERE refunded_at IS NOT NULL"
expect_ok "$DST" "check constraint: re-validating the restored constraint passes" \
	"ALTER TABLE shop.memberships DROP CONSTRAINT refund_allowed;
	 ALTER TABLE shop.memberships ADD CONSTRAINT refund_allowed
	   CHECK (refunded_at IS NULL OR refund_rules.check_refund(memberships, refunded_at))"

echo
if [ "$failures" -eq 0 ]; then
	echo "dump_restore: all checks passed"
	exit 0
fi
echo "dump_restore: $failures check(s) failed"
exit 1
