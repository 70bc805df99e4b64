#!/bin/bash
# citus.sh - run the refund_rules checks of docs/citus.md against a Citus cluster.
#
#   CITUS_COORDINATOR="host=/tmp/citus-cluster/coord port=55432 user=postgres dbname=postgres" test/citus.sh
#
# CITUS_COORDINATOR is a libpq connection string of the coordinator (a superuser
# or the database owner; Citus and refund_rules must be installed on every node,
# the workers added to the coordinator's metadata).  Without it the script prints
# a skip line and exits 0 (CI has no Citus).  It creates its objects in schema
# rr_citus_test (dropped first if left over, and at the end), creates the
# refund_rules extension only when it is missing (and then drops it again), and
# never builds or installs anything.  Each check prints "ok - ..." or
# "FAIL - ...".  Checks of a documented failure pass when the documented error
# comes back: if Citus or refund_rules changes, they fail and the doc is stale.
# It connects only through CITUS_COORDINATOR: the libpq environment (PGHOST,
# PGPORT, PGUSER, PGDATABASE, PGSERVICE, ...) is cleared first, so a cluster
# named there (as in CI) is never used.  Needs bash and psql, nothing else.
# Exit status: 0 when every check passed, 1 otherwise.

set -u

if [ -z "${CITUS_COORDINATOR:-}" ]; then
	echo "skip - CITUS_COORDINATOR is not set (a libpq connection string of a Citus coordinator)"
	exit 0
fi
# Everything about the connection comes from CITUS_COORDINATOR.
for v in $(compgen -e); do
	case $v in PG*) unset "$v" ;; esac
done

PSQL=${PSQL:-psql}
[ -x /usr/lib/postgresql/15/bin/psql ] && [ "$PSQL" = psql ] && PSQL=/usr/lib/postgresql/15/bin/psql
S=rr_citus_test
PASS=0
FAILS=0
FAILED=()
PRE="SET client_min_messages = warning; SET search_path = $S, public; SET citus.enable_unsafe_triggers = on; SET citus.shard_count = 4;"

# sql: run stdin (after the preamble) in one session; sets OUT and RC.
sql() {
	local body
	body=$(cat)
	OUT=$(printf '%s\n%s\n' "$PRE" "$body" |
		"$PSQL" -X -q -At -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -d "$CITUS_COORDINATOR" -f - 2>&1)
	RC=$?
}
ok() { PASS=$((PASS + 1)); echo "ok - $1"; }
fail() {
	FAILS=$((FAILS + 1)); FAILED+=("$1"); echo "FAIL - $1"
	printf '%s\n' "$2" | head -n 8 | sed 's/^/    | /'
}
# expect_ok NAME <<SQL : no error
expect_ok() {
	sql
	if [ "$RC" -eq 0 ] && ! grep -q '^psql:.*ERROR:\|^ERROR:' <<<"$OUT"; then ok "$1"; else fail "$1" "$OUT"; fi
}
# expect_val NAME EXPECTED <<SQL : the output (last line) equals EXPECTED
expect_val() {
	local name=$1 want=$2 got
	sql
	got=$(printf '%s\n' "$OUT" | tail -n 1)
	if [ "$RC" -eq 0 ] && [ "$got" = "$want" ]; then ok "$name"; else fail "$name (want '$want', got '$got')" "$OUT"; fi
}
# expect_err NAME SQLSTATE [TEXT|!TEXT]... <<SQL : the first error has SQLSTATE,
# the output contains every TEXT and none of the !TEXT
expect_err() {
	local name=$1 state=$2 got t bad=""
	shift 2
	sql
	got=$(grep -o -m1 'ERROR:  [0-9A-Z]\{5\}:' <<<"$OUT" | sed 's/ERROR:  //; s/://')
	[ "$got" = "$state" ] || bad="SQLSTATE '${got:-none}' instead of $state"
	for t in "$@"; do
		if [ "${t#!}" != "$t" ]; then
			grep -qF -- "${t#!}" <<<"$OUT" && bad="$bad; unexpected '${t#!}'"
		else
			grep -qF -- "$t" <<<"$OUT" || bad="$bad; missing '$t'"
		fi
	done
	if [ -z "$bad" ]; then ok "$name"; else fail "$name: ${bad#; }" "$OUT"; fi
}

cleanup() {
	sql <<<"DROP SCHEMA IF EXISTS $S CASCADE;"
	[ "${CREATED_EXT:-0}" = 1 ] && sql <<<"DROP EXTENSION IF EXISTS refund_rules;"
}

# ---------------------------------------------------------------- set-up
sql <<<"SELECT citus_version();"
if [ "$RC" -ne 0 ]; then
	echo "FAIL - cannot reach a Citus coordinator at CITUS_COORDINATOR"
	printf '%s\n' "$OUT" | head -n 3 | sed 's/^/    | /'
	echo "summary: 0 passed, 1 failed"
	exit 1
fi
echo "# $(printf '%s' "$OUT" | tail -n 1)"
sql <<<"SELECT count(*) FROM pg_extension WHERE extname = 'refund_rules';"
CREATED_EXT=0
if [ "$(tail -n 1 <<<"$OUT")" = 0 ]; then
	CREATED_EXT=1
	expect_ok "CREATE EXTENSION refund_rules on the coordinator" <<<"CREATE EXTENSION refund_rules;"
fi
trap cleanup EXIT
sql <<<"SELECT extversion FROM pg_extension WHERE extname = 'refund_rules';"
echo "# refund_rules $(tail -n 1 <<<"$OUT") on the coordinator"
expect_val "the workers have refund_rules (CREATE EXTENSION reached them)" t <<'EOF'
SELECT count(*) > 0 AND bool_and(success AND result <> '')
FROM run_command_on_workers($$SELECT coalesce((SELECT extversion FROM pg_extension WHERE extname = 'refund_rules'), '')$$);
EOF
expect_ok "a fresh schema for the test objects" <<EOF
DROP SCHEMA IF EXISTS $S CASCADE;
CREATE SCHEMA $S;
EOF

# The purchase columns, for the CREATE TABLEs below.
PCOLS="offer refund_rules.mpn_offer, purchased_at timestamptz, benefits_activated boolean,
    product_keys_viewed boolean, upgraded_with_gold_discount boolean, tax_exempt boolean"
ROWFORM="ROW(offer, purchased_at, benefits_activated, product_keys_viewed, upgraded_with_gold_discount, tax_exempt)::refund_rules.purchase"

# ------------------------------------------------ a. the CHECK constraint
expect_err "a1 whole-row CHECK: create_distributed_table refuses it (42P01)" 42P01 \
	'missing FROM-clause entry for table "rr_citus_test.m_whole"' <<EOF
CREATE TABLE m_whole (partner text NOT NULL, id bigint NOT NULL, $PCOLS, refunded_at timestamptz,
    PRIMARY KEY (partner, id),
    CHECK (refunded_at IS NULL OR refund_rules.check_refund(m_whole, refunded_at)));
SELECT create_distributed_table('m_whole', 'partner');
EOF
expect_err "a2 whole-row CHECK, unnamed, added to a distributed table: 42P01 on the shards" 42P01 \
	'missing FROM-clause entry for table "m_whole"' <<EOF
ALTER TABLE m_whole DROP CONSTRAINT m_whole_check;
SELECT create_distributed_table('m_whole', 'partner');
ALTER TABLE m_whole ADD CHECK (refunded_at IS NULL OR refund_rules.check_refund(m_whole, refunded_at));
EOF
expect_err "a2b whole-row CHECK, named, added to a distributed table: 42703 on the shards" 42703 \
	'column "m_whole" does not exist' <<EOF
ALTER TABLE m_whole ADD CONSTRAINT refund_allowed CHECK (refunded_at IS NULL OR refund_rules.check_refund(m_whole, refunded_at));
EOF
expect_val "a3 ROW(...)::refund_rules.purchase CHECK: distributed, on every shard" t <<EOF
CREATE TABLE m (partner text NOT NULL, id bigint NOT NULL, $PCOLS, refunded_at timestamptz,
    PRIMARY KEY (partner, id),
    CONSTRAINT refund_allowed CHECK (refunded_at IS NULL OR refund_rules.check_refund($ROWFORM, refunded_at)));
SELECT create_distributed_table('m', 'partner');
SELECT count(*) = 4 AND bool_and(success AND result = '1')
FROM run_command_on_shards('m', \$\$SELECT count(*) FROM pg_constraint WHERE conrelid = '%s'::regclass AND contype = 'c'\$\$);
EOF
expect_ok "a4 allowed refunds are accepted (INSERT, UPDATE)" <<'EOF'
INSERT INTO m VALUES
    ('a', 1, 'gold',   now() - interval '3 days',  false, false, false, false, NULL),
    ('b', 2, 'gold',   now() - interval '60 days', false, false, false, false, NULL),
    ('c', 3, 'silver', now() - interval '3 days',  true,  false, false, false, NULL),
    ('d', 4, 'gold',   now() - interval '3 days',  false, false, false, false, now());
UPDATE m SET refunded_at = now() WHERE partner = 'a' AND id = 1;
EOF
# On 1.2, check_refund() on a ROW(...) built from a table's columns shows the
# purchase's own reasons as one code, purchase_not_eligible (it cannot tell
# who may read the columns), whoever the caller is.
expect_err "a5 UPDATE: activating a refunded purchase gives 23514, reasons hidden (ROW(...) form)" 23514 \
	'refund is not allowed' 'DETAIL:  Reasons: purchase_not_eligible.' \
	"HINT:  The purchase's own reasons are shown only to roles that may read the purchase." <<'EOF'
UPDATE m SET benefits_activated = true WHERE partner = 'a' AND id = 1;
EOF
expect_err "a6 UPDATE (multi-shard): refund after the window gives 23514" 23514 \
	'DETAIL:  Reasons: purchase_not_eligible.' 'HINT:' <<'EOF'
UPDATE m SET refunded_at = now() WHERE id = 2;
EOF
expect_err "a7 INSERT of a forbidden refund gives 23514" 23514 'DETAIL:  Reasons: purchase_not_eligible.' <<'EOF'
INSERT INTO m VALUES ('e', 5, 'gold', now() - interval '3 days', true, false, false, false, now());
EOF
expect_err "a8 COPY of a forbidden refund: XX000 from Citus, DETAIL kept, no HINT" XX000 \
	'refund is not allowed' 'DETAIL:  Reasons: purchase_not_eligible.' '!HINT:' <<'EOF'
COPY m FROM STDIN;
f	6	gold	2020-01-01 00:00+00	f	f	f	f	2020-01-02 00:00+00
g	7	gold	2020-01-01 00:00+00	t	f	f	f	2020-01-02 00:00+00
\.
EOF
expect_val "a9 COPY of allowed rows is accepted" 2 <<'EOF'
COPY m FROM STDIN;
f	6	gold	2020-01-01 00:00+00	f	f	f	f	2020-01-02 00:00+00
h	8	gold	2020-01-01 00:00+00	t	f	f	f	\N
\.
SELECT count(*) FROM m WHERE id IN (6, 8);
EOF
expect_val "a10 without the companion trigger a backdated refunded_at is accepted" 1 <<'EOF'
INSERT INTO m VALUES ('i', 9, 'gold', now() - interval '60 days', false, false, false, false, NULL);
UPDATE m SET refunded_at = now() - interval '59 days' WHERE partner = 'i' AND id = 9;
SELECT count(*) FROM m WHERE id = 9 AND refunded_at IS NOT NULL;
EOF
expect_err "a11 enforce_refund_moment (AFTER) needs citus.enable_unsafe_triggers (XX000)" XX000 \
	'triggers are not supported on distributed tables' <<'EOF'
SET citus.enable_unsafe_triggers = off;
CREATE TRIGGER refund_moment AFTER INSERT OR UPDATE ON m
    FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_moment();
EOF
expect_val "a12 with the setting on, the AFTER trigger is on every shard" t <<'EOF'
CREATE TRIGGER refund_moment AFTER INSERT OR UPDATE ON m
    FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_moment();
SELECT count(*) = 4 AND bool_and(success AND result = '1')
FROM run_command_on_shards('m', $$SELECT count(*) FROM pg_trigger WHERE tgrelid = '%s'::regclass AND tgname LIKE 'refund_moment%%'$$);
EOF
expect_err "a12b a BEFORE enforce_refund_moment (1.1's form) is refused on the shard (39P01)" 39P01 \
	'must be declared AFTER INSERT OR UPDATE ... FOR EACH ROW' <<'EOF'
BEGIN;
CREATE OR REPLACE TRIGGER refund_moment BEFORE INSERT OR UPDATE ON m
    FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_moment();
INSERT INTO m VALUES ('j', 10, 'gold', now() - interval '3 days', false, false, false, false, NULL);
ROLLBACK;
EOF
expect_err "a13 max_lag 0: SET refunded_at = now() is refused (Citus ships the coordinator's now())" 23514 \
	'DETAIL:  Reasons: backdated_request.' "UPDATE $S.m_" "refunded_at = '" <<EOF
INSERT INTO m VALUES ('j', 10, 'gold', now() - interval '3 days', false, false, false, false, NULL);
SET client_min_messages = notice;
SET citus.log_remote_commands = on;
UPDATE m SET refunded_at = now() WHERE partner = 'j' AND id = 10;
EOF
expect_ok "a14 max_lag=2 seconds: SET refunded_at = now() is accepted (router and multi-shard)" <<'EOF'
CREATE OR REPLACE TRIGGER refund_moment AFTER INSERT OR UPDATE ON m
    FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_moment('max_lag=2 seconds');
UPDATE m SET refunded_at = now() WHERE partner = 'j' AND id = 10;
UPDATE m SET refunded_at = now() WHERE id = 10;
EOF
expect_err "a15 max_lag=2 seconds: a backdated refunded_at is still refused" 23514 \
	'DETAIL:  Reasons: backdated_request' <<'EOF'
INSERT INTO m VALUES ('k', 11, 'gold', now() - interval '60 days', false, false, false, false, NULL);
UPDATE m SET refunded_at = now() - interval '59 days' WHERE partner = 'k' AND id = 11;
EOF
expect_err "a16 a transaction older than max_lag when it first reaches the shard: refused" 23514 \
	'DETAIL:  Reasons: backdated_request.' <<'EOF'
INSERT INTO m VALUES ('l', 12, 'gold', now() - interval '3 days', false, false, false, false, NULL);
BEGIN;
SELECT pg_sleep(2.5);
UPDATE m SET refunded_at = now() WHERE partner = 'l' AND id = 12;
COMMIT;
EOF

# ------------------------------------------------ b. the trigger, co-located
# Table names of 57 characters or more: a shard's name (table name, "_", shard
# id) is then longer than 63 bytes, and Citus shortens it with a hash
# (purchases_with_a_name_long_enough_that_citus_ha_3fc4154d_102070).  On 1.2
# the trigger reads the table its shard's foreign key references, whatever
# its name.
PUR=purchases_with_a_name_long_enough_that_citus_hashes_shards
REQ=refund_requests_with_a_name_long_enough_that_citus_hashes_it
expect_ok "b0 purchases (a 58-character name) distributed by partner" <<EOF
CREATE TABLE $PUR (partner text NOT NULL, id bigint NOT NULL, $PCOLS, PRIMARY KEY (partner, id));
SELECT create_distributed_table('$PUR', 'partner');
INSERT INTO $PUR VALUES
    ('a', 1, 'gold',   now() - interval '3 days',  false, false, false, false),
    ('a', 2, 'gold',   now() - interval '3 days',  true,  false, false, false),
    ('b', 3, 'silver', now() - interval '60 days', false, false, false, true),
    ('c', 4, 'gold',   now() - interval '3 days',  false, false, false, false),
    ('d', 5, 'gold',   now() - interval '3 days',  false, false, false, true);
EOF
RCOLS="partner text NOT NULL, id bigserial, purchase_id bigint NOT NULL,
    kind refund_rules.refund_kind NOT NULL DEFAULT 'purchase',
    requested_at timestamptz NOT NULL DEFAULT now(), requested_by_role text NOT NULL"
# b1: the layout, the composite foreign key.  On a worker the trigger fires
# on a shard of the request table, whose foreign key references the
# co-located purchases shard; the trigger reads and locks that shard.
expect_ok "b1 composite FK to purchases, AFTER trigger, max_lag=2 seconds: an allowed request is accepted" <<EOF
CREATE TABLE $REQ ($RCOLS, PRIMARY KEY (partner, id),
    CONSTRAINT request_purchase_fkey FOREIGN KEY (partner, purchase_id) REFERENCES $PUR (partner, id));
CREATE UNIQUE INDEX ON $REQ (partner, purchase_id, kind);
SELECT create_distributed_table('$REQ', 'partner', colocate_with => '$PUR');
CREATE TRIGGER enforce_refund_policy AFTER INSERT OR UPDATE ON $REQ
    FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('$PUR', 'partner, purchase_id', 'partner, id', 'max_lag=2 seconds');
INSERT INTO $REQ (partner, purchase_id, requested_by_role) VALUES ('a', 1, 'account_admin');
EOF
expect_val "b1s Citus hashed the shard names: each request shard's FK references a purchases shard not named <table>_<shardid>" t <<EOF
SELECT count(*) = 4 AND bool_and(success AND result LIKE '${PUR:0:40}%' AND length(result) = 63
                                 AND result NOT LIKE '${PUR}\\_%')
FROM run_command_on_shards('$REQ', \$\$SELECT c.relname FROM pg_constraint k JOIN pg_class c ON c.oid = k.confrelid
    WHERE k.conrelid = '%s'::regclass AND k.contype = 'f'\$\$);
EOF
expect_err "b1a FK: forbidden purchase gives 23514 with reasons and window" 23514 \
	'refund of purchase "a, 2" is not allowed' 'DETAIL:  Reasons: benefits_activated.' 'HINT:  Refunds of this purchase are allowed from' <<EOF
INSERT INTO $REQ (partner, purchase_id, requested_by_role) VALUES ('a', 2, 'account_admin');
EOF
expect_err "b1b FK: expired window gives 23514 refund_window_expired" 23514 \
	'DETAIL:  Reasons: refund_window_expired.' <<EOF
INSERT INTO $REQ (partner, purchase_id, requested_by_role) VALUES ('b', 3, 'account_admin');
EOF
expect_err "b1b2 FK: unauthorized requester gives 23514 requester_not_authorized" 23514 \
	'DETAIL:  Reasons: requester_not_authorized.' <<EOF
INSERT INTO $REQ (partner, purchase_id, requested_by_role) VALUES ('c', 4, 'nobody');
EOF
expect_err "b1c FK: missing purchase gives the FK's own 23503 (RI triggers fire before the AFTER trigger)" 23503 \
	'violates foreign key constraint "request_purchase_fkey_' \
	'DETAIL:  Key (partner, purchase_id)=(a, 99) is not present in table "'"${PUR:0:40}" \
	'!purchase "a, 99" does not exist' <<EOF
INSERT INTO $REQ (partner, purchase_id, requested_by_role) VALUES ('a', 99, 'account_admin');
EOF
expect_err "b1d FK: requested_at 1 minute ahead gives 23514 postdated_request" 23514 \
	'DETAIL:  Reasons: postdated_request.' 'give or take 2 seconds' <<EOF
INSERT INTO $REQ (partner, purchase_id, requested_at, requested_by_role) VALUES ('c', 4, now() + interval '1 minute', 'account_admin');
EOF
expect_err "b1e FK: requested_at 1 hour back gives 23514 backdated_request" 23514 \
	'DETAIL:  Reasons: backdated_request.' <<EOF
INSERT INTO $REQ (partner, purchase_id, requested_at, requested_by_role) VALUES ('c', 4, now() - interval '1 hour', 'account_admin');
EOF
expect_err "b1f FK: multi-shard UPDATE of the requester is judged again" 23514 \
	'DETAIL:  Reasons: requester_not_authorized.' <<EOF
UPDATE $REQ SET requested_by_role = 'nobody' WHERE purchase_id = 1;
EOF
expect_err "b1g FK, max_lag 0: an allowed request is refused, backdated_request (DEFAULT now() is the coordinator's)" 23514 \
	'DETAIL:  Reasons: backdated_request.' <<EOF
CREATE TABLE refund_requests0 ($RCOLS, PRIMARY KEY (partner, id),
    FOREIGN KEY (partner, purchase_id) REFERENCES $PUR (partner, id));
SELECT create_distributed_table('refund_requests0', 'partner', colocate_with => '$PUR');
CREATE TRIGGER enforce_refund_policy AFTER INSERT OR UPDATE ON refund_requests0
    FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('$PUR', 'partner, purchase_id', 'partner, id');
INSERT INTO refund_requests0 (partner, purchase_id, requested_by_role) VALUES ('a', 1, 'account_admin');
EOF
expect_err "b1h FK: DROP TABLE purchases (no CASCADE) is refused, 2BP01" 2BP01 \
	"cannot drop table $PUR because other objects depend on it" \
	"constraint request_purchase_fkey on table $REQ depends on table $PUR" <<EOF
DROP TABLE $PUR;
EOF
expect_val "b1i FK: after the refused DROP the shard triggers are all there" 4 <<EOF
SELECT sum(result::int) FROM run_command_on_shards('$REQ',
    \$\$SELECT count(*) FROM pg_trigger WHERE tgrelid = '%s'::regclass AND NOT tgisinternal\$\$);
EOF
# b2-b18 ran on 1.1 without a foreign key; 1.2 needs one, so each now runs on
# the FK layout above, or checks what 1.2 does without the FK.
expect_err "b2 no FK: every request is refused, 39P01 no foreign key (1.2 binds by the FK)" 39P01 \
	'refund request table "requests_' 'has no foreign key on the reference of trigger "enforce_refund_policy_' \
	'HINT:  Add FOREIGN KEY (partner, purchase_id) REFERENCES' <<EOF
CREATE TABLE requests ($RCOLS, PRIMARY KEY (partner, id));
SELECT create_distributed_table('requests', 'partner', colocate_with => '$PUR');
CREATE TRIGGER enforce_refund_policy AFTER INSERT OR UPDATE ON requests
    FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('$PUR', 'partner, purchase_id', 'partner, id', 'max_lag=2 seconds');
INSERT INTO requests (partner, purchase_id, requested_by_role) VALUES ('a', 1, 'account_admin');
EOF
expect_err "b3 a BEFORE trigger (1.1's form) is refused on the shard, 39P01" 39P01 \
	'must be declared AFTER INSERT OR UPDATE ... FOR EACH ROW' <<EOF
BEGIN;
CREATE OR REPLACE TRIGGER enforce_refund_policy BEFORE INSERT OR UPDATE ON $REQ
    FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('$PUR', 'partner, purchase_id', 'partner, id', 'max_lag=2 seconds');
INSERT INTO $REQ (partner, purchase_id, requested_by_role) VALUES ('c', 4, 'account_admin');
ROLLBACK;
EOF
expect_val "b4 the shard trigger's lookup is local: no command is sent to another node for it" 0 <<EOF
SET client_min_messages = notice;
SET citus.propagate_set_commands = 'local';
BEGIN;
SET LOCAL citus.log_remote_commands = on;
SET LOCAL citus.log_local_commands = on;
INSERT INTO $REQ (partner, purchase_id, requested_by_role) VALUES ('c', 4, 'account_admin');
ROLLBACK;
SELECT 0;
EOF
if [ "$RC" -eq 0 ] && [ "$(grep -c 'NOTICE:.*issuing\|NOTICE:.*executing the command locally' <<<"$OUT")" -ge 1 ] &&
	! grep -q "NOTICE:.*SELECT .*FROM .*${PUR:0:40}" <<<"$OUT"; then
	ok "b4b the coordinator sends the INSERT only; the purchase is read on the worker from the FK's shard"
else
	fail "b4b the coordinator sends the INSERT only; the purchase is read on the worker from the FK's shard" "$OUT"
fi
expect_err "b5 the FK's first argument must name the purchases table only on plain PostgreSQL: on a Citus node any name is accepted, the FK decides" 23514 \
	'refund of purchase "a, 2" is not allowed' 'DETAIL:  Reasons: benefits_activated.' <<EOF
CREATE TABLE requests_named_otherwise ($RCOLS, PRIMARY KEY (partner, id),
    FOREIGN KEY (partner, purchase_id) REFERENCES $PUR (partner, id));
SELECT create_distributed_table('requests_named_otherwise', 'partner', colocate_with => '$PUR');
CREATE TRIGGER enforce_refund_policy AFTER INSERT OR UPDATE ON requests_named_otherwise
    FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('no_such_table', 'partner, purchase_id', 'partner, id', 'max_lag=2 seconds');
INSERT INTO requests_named_otherwise (partner, purchase_id, requested_by_role) VALUES ('a', 1, 'account_admin');
INSERT INTO requests_named_otherwise (partner, purchase_id, requested_by_role) VALUES ('a', 2, 'account_admin');
EOF
expect_err "b6 expired window (requested_at written as now()): 23514 refund_window_expired" 23514 'DETAIL:  Reasons: refund_window_expired.' <<EOF
INSERT INTO $REQ (partner, purchase_id, requested_at, requested_by_role) VALUES ('b', 3, now(), 'account_admin');
EOF
expect_ok "b7 tax refund of a tax-exempt purchase is accepted" <<EOF
INSERT INTO $REQ (partner, purchase_id, kind, requested_by_role) VALUES ('b', 3, 'tax', 'account_admin');
EOF
expect_err "b8 unauthorized requester (UPDATE of an accepted request, router): 23514 requester_not_authorized" 23514 'DETAIL:  Reasons: requester_not_authorized.' <<EOF
UPDATE $REQ SET requested_by_role = 'nobody' WHERE partner = 'b' AND purchase_id = 3;
EOF
expect_err "b9 missing purchase in another shard's partner: the FK's 23503" 23503 'violates foreign key constraint "request_purchase_fkey_' \
	'Key (partner, purchase_id)=(c, 5) is not present' <<EOF
INSERT INTO $REQ (partner, purchase_id, requested_by_role) VALUES ('c', 5, 'account_admin');
EOF
expect_err "b10 a second request of the same kind: 23505" 23505 'duplicate key value violates unique constraint' <<EOF
INSERT INTO $REQ (partner, purchase_id, requested_by_role) VALUES ('a', 1, 'account_admin');
EOF
expect_err "b11 a NULL requested_at: 23514 missing_requested_at" 23514 'DETAIL:  Reasons: missing_requested_at.' <<EOF
ALTER TABLE requests_named_otherwise ALTER requested_at DROP NOT NULL;
INSERT INTO requests_named_otherwise (partner, purchase_id, requested_at, requested_by_role) VALUES ('c', 4, NULL, 'account_admin');
EOF
expect_err "b12 UPDATE moving an accepted request onto a forbidden purchase is judged again" 23514 \
	'refund of purchase "a, 2" is not allowed' 'DETAIL:  Reasons: benefits_activated.' <<EOF
UPDATE $REQ SET purchase_id = 2 WHERE partner = 'a' AND purchase_id = 1;
EOF
expect_err "b13 a transaction older than max_lag when it first reaches the shard: refused" 23514 \
	'DETAIL:  Reasons: backdated_request.' <<EOF
BEGIN;
SELECT pg_sleep(2.5);
INSERT INTO $REQ (partner, purchase_id, requested_by_role) VALUES ('c', 4, 'account_admin');
COMMIT;
EOF
expect_val "b14 refund_request_status on the coordinator answers like the trigger" 'f|{benefits_activated}' <<EOF
SELECT allowed, reasons FROM refund_rules.refund_request_status(jsonb_populate_record(NULL::$REQ,
    '{"partner": "a", "purchase_id": 2, "kind": "purchase", "requested_by_role": "account_admin"}'));
EOF
# The companion: CREATE CONSTRAINT TRIGGER ... FROM the request table.  Citus
# creates it on every purchases shard, but keeps the FROM table as it is
# written: the shell table, whose FK references the shell purchases table, not
# the shard.  On a Citus node the companion then reads the co-located request
# shard (one of the FROM table's shards in pg_dist_shard, named by Citus's
# shard_name()) whose FK references this purchases shard.
expect_val "b15 CREATE CONSTRAINT TRIGGER ... FROM on distributed purchases: accepted, on every shard, FROM the shell table" t <<EOF
CREATE CONSTRAINT TRIGGER protect_refunded_purchase AFTER INSERT OR UPDATE ON $PUR FROM $REQ
    FOR EACH ROW EXECUTE FUNCTION refund_rules.protect_refunded_purchase('$REQ', 'partner, purchase_id', 'partner, id');
SELECT count(*) = 4 AND bool_and(success AND result = '$S.$REQ')
FROM run_command_on_shards('$PUR', \$\$SELECT tgconstrrelid::regclass FROM pg_trigger WHERE tgrelid = '%s'::regclass AND tgname LIKE 'protect_refunded_purchase%%'\$\$);
EOF
expect_err "b1k the companion: activating a requested purchase gives 23514, HINT naming the co-located request shard (hashed name)" 23514 \
	'purchase "a, 1" has an accepted refund request' \
	'DETAIL:  Reasons: purchase_refunded. Column "benefits_activated" cannot change once a refund of the purchase is accepted.' \
	"HINT:  A refund request in table \"$S.${REQ:0:40}" <<EOF
UPDATE $PUR SET benefits_activated = true WHERE partner = 'a' AND id = 1;
EOF
expect_err "b1k2 the companion: the same through a multi-shard UPDATE" 23514 \
	'purchase "a, 1" has an accepted refund request' <<EOF
UPDATE $PUR SET benefits_activated = true WHERE id = 1;
EOF
expect_err "b1k3 the companion: INSERT ... ON CONFLICT DO UPDATE activating a requested purchase: 23514" 23514 \
	'purchase "a, 1" has an accepted refund request' <<EOF
INSERT INTO $PUR VALUES ('a', 1, 'gold', now(), true, false, false, false)
    ON CONFLICT (partner, id) DO UPDATE SET benefits_activated = true;
EOF
expect_ok "b16 the companion: a purchase without requests changes" <<EOF
UPDATE $PUR SET product_keys_viewed = false WHERE partner = 'c' AND id = 4;
UPDATE $PUR SET upgraded_with_gold_discount = false WHERE partner <> 'a';
EOF
expect_ok "b16b the companion: a purchase without requests is inserted" <<EOF
INSERT INTO $PUR VALUES ('e', 6, 'gold', now() - interval '3 days', false, false, false, false);
EOF
expect_err "b16c a requested purchase cannot be deleted: the FK's 23503 (so not deleted and re-inserted either)" 23503 \
	'violates foreign key constraint "request_purchase_fkey_' 'Key (partner, id)=(a, 1) is still referenced' <<EOF
BEGIN;
DELETE FROM $PUR WHERE partner = 'a' AND id = 1;
INSERT INTO $PUR VALUES ('a', 1, 'gold', now() - interval '3 days', true, false, false, false);
COMMIT;
EOF
# With a deferred FK the DELETE goes through; the re-INSERT is the companion's.
REQD=refund_requests_deferred_with_a_name_long_enough_that_citus_has
expect_err "b16d deferred FK: DELETE and re-INSERT of a requested purchase in one transaction: 23514 cannot be inserted again" 23514 \
	'purchase "h, 9" has an accepted refund request' \
	'DETAIL:  Reasons: purchase_refunded. A purchase with an accepted refund request cannot be inserted again.' \
	"HINT:  A refund request in table \"$S.${REQD:0:40}" <<EOF
INSERT INTO $PUR VALUES ('h', 9, 'gold', now() - interval '3 days', false, false, false, false);
CREATE TABLE $REQD ($RCOLS, PRIMARY KEY (partner, id),
    FOREIGN KEY (partner, purchase_id) REFERENCES $PUR (partner, id) DEFERRABLE INITIALLY DEFERRED);
SELECT create_distributed_table('$REQD', 'partner', colocate_with => '$PUR');
CREATE TRIGGER enforce_refund_policy AFTER INSERT OR UPDATE ON $REQD
    FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('$PUR', 'partner, purchase_id', 'partner, id', 'max_lag=2 seconds');
CREATE CONSTRAINT TRIGGER protect_refunded_purchase_d AFTER INSERT OR UPDATE ON $PUR FROM $REQD
    FOR EACH ROW EXECUTE FUNCTION refund_rules.protect_refunded_purchase('$REQD', 'partner, purchase_id', 'partner, id');
INSERT INTO $REQD (partner, purchase_id, requested_by_role) VALUES ('h', 9, 'account_admin');
BEGIN;
DELETE FROM $PUR WHERE partner = 'h' AND id = 9;
INSERT INTO $PUR VALUES ('h', 9, 'gold', now() - interval '3 days', false, false, false, false);
COMMIT;
EOF
expect_err "b16e deferred FK: DELETE and re-INSERT in one statement (a modifying CTE): XX000 from Citus, DETAIL kept" XX000 \
	'purchase "h, 9" has an accepted refund request' 'A purchase with an accepted refund request cannot be inserted again.' <<EOF
WITH gone AS (DELETE FROM $PUR WHERE partner = 'h' AND id = 9 RETURNING *)
INSERT INTO $PUR SELECT partner, id, offer, purchased_at, true, product_keys_viewed, upgraded_with_gold_discount, tax_exempt FROM gone;
EOF
expect_val "b16f the deferred pair is dropped; purchase h, 9 is unchanged" 'f' <<EOF
DROP TRIGGER protect_refunded_purchase_d ON $PUR;
DROP TABLE $REQD;
SELECT benefits_activated FROM $PUR WHERE partner = 'h' AND id = 9;
EOF
# Tables in schema public: shard_name() leaves their shard names unqualified,
# so the companion's to_regclass() depends on the workers' search_path.
PUBP=public.rr_citus_test_purchases_with_a_name_long_enough_that_citus_h
PUBR=public.rr_citus_test_requests_with_a_name_long_enough_that_citus_has
expect_err "b19 the companion on tables in schema public, workers' search_path without public: still 23514" 23514 \
	'purchase "a, 1" has an accepted refund request' <<EOF
SET citus.multi_shard_modify_mode = sequential;
BEGIN;
CREATE TABLE $PUBP (partner text NOT NULL, id bigint NOT NULL, $PCOLS, PRIMARY KEY (partner, id));
SELECT create_distributed_table('$PUBP', 'partner');
INSERT INTO $PUBP VALUES ('a', 1, 'gold', now() - interval '3 days', false, false, false, false);
CREATE TABLE $PUBR ($RCOLS, PRIMARY KEY (partner, id),
    FOREIGN KEY (partner, purchase_id) REFERENCES $PUBP (partner, id));
SELECT create_distributed_table('$PUBR', 'partner', colocate_with => '$PUBP');
CREATE CONSTRAINT TRIGGER protect_refunded_purchase AFTER INSERT OR UPDATE ON $PUBP FROM $PUBR
    FOR EACH ROW EXECUTE FUNCTION refund_rules.protect_refunded_purchase('$PUBR', 'partner, purchase_id', 'partner, id');
INSERT INTO $PUBR (partner, purchase_id, requested_by_role) VALUES ('a', 1, 'account_admin');
SET LOCAL citus.propagate_set_commands = 'local';
SET LOCAL search_path = pg_catalog;
UPDATE $PUBP SET benefits_activated = true WHERE partner = 'a' AND id = 1;
ROLLBACK;
EOF
expect_ok "b21b the companion: a purchase without requests changes, new ones are inserted (multi-row)" <<EOF
UPDATE $PUR SET product_keys_viewed = false WHERE partner = 'c' AND id = 4;
INSERT INTO $PUR VALUES ('e', 7, 'gold', now() - interval '3 days', false, false, false, false),
                        ('g', 8, 'gold', now() - interval '3 days', false, false, false, false);
EOF
# Two sessions: the lock the trigger takes on the purchases shard's row.
printf '%s\n' "$PRE" "BEGIN;" "UPDATE $PUR SET benefits_activated = true WHERE partner = 'g' AND id = 8;" \
	"SELECT pg_sleep(2);" "COMMIT;" | "$PSQL" -X -q -d "$CITUS_COORDINATOR" -f - >/dev/null 2>&1 &
BG=$!
sleep 0.7
expect_err "b1j FK: a request waits for an activation under way and is then refused" 23514 'DETAIL:  Reasons: benefits_activated.' <<EOF
INSERT INTO $REQ (partner, purchase_id, requested_by_role) VALUES ('g', 8, 'account_admin');
EOF
wait "$BG"
printf '%s\n' "$PRE" "BEGIN;" "INSERT INTO $REQ (partner, purchase_id, requested_by_role) VALUES ('e', 7, 'account_admin');" \
	"SELECT pg_sleep(2);" "COMMIT;" | "$PSQL" -X -q -d "$CITUS_COORDINATOR" -f - >/dev/null 2>&1 &
BG=$!
sleep 0.7
expect_err "b20 the companion: an activation waits for an open request and is refused once it commits" 23514 \
	'purchase "e, 7" has an accepted refund request' <<EOF
UPDATE $PUR SET benefits_activated = true WHERE partner = 'e' AND id = 7;
EOF
wait "$BG"
# Citus recreates the companion on a moved shard (FROM the shell table), so
# it survives a move; the per-shard stop-gap of 1.2's first measurement did not.
# (The coordinator connects to itself for the move: over its socket directory
# when it has no TCP.)
expect_val "b21 citus_move_shard_placement of the requested purchase's shard group: the shard is on another node" t <<EOF
SELECT set_config('citus.local_hostname', split_part(current_setting('unix_socket_directories'), ',', 1), false)
WHERE current_setting('listen_addresses') = '';
CREATE TEMP TABLE before_move AS
SELECT pl.shardid, n.nodename, n.nodeport FROM pg_dist_placement pl JOIN pg_dist_node n USING (groupid)
WHERE pl.shardid = get_shard_id_for_distribution_column('$PUR', 'a');
SELECT citus_move_shard_placement(b.shardid, b.nodename, b.nodeport, t.nodename, t.nodeport, shard_transfer_mode => 'block_writes')
FROM before_move b, LATERAL (SELECT nodename, nodeport FROM pg_dist_node
    WHERE groupid > 0 AND isactive AND noderole = 'primary' AND shouldhaveshards AND (nodename, nodeport) <> (b.nodename, b.nodeport)
    ORDER BY nodeid LIMIT 1) t;
SELECT (n.nodename, n.nodeport) <> (b.nodename, b.nodeport)
FROM before_move b JOIN pg_dist_placement pl USING (shardid) JOIN pg_dist_node n USING (groupid);
EOF
expect_err "b21a after the move: activating the requested purchase still gives 23514" 23514 \
	'purchase "a, 1" has an accepted refund request' "HINT:  A refund request in table \"$S.${REQ:0:40}" <<EOF
UPDATE $PUR SET benefits_activated = true WHERE partner = 'a' AND id = 1;
EOF
expect_err "b17 a single-column key on distributed purchases: no FK can be made (42830), so no trigger works" 42830 \
	"there is no unique constraint matching given keys for referenced table \"$PUR\"" <<EOF
CREATE TABLE requests1 ($RCOLS, PRIMARY KEY (partner, id), FOREIGN KEY (purchase_id) REFERENCES $PUR (id));
EOF
expect_err "b18 no FK: DROP TABLE purchases succeeds, and a request is still refused (39P01), never unchecked" 39P01 \
	'has no foreign key on the reference of trigger' <<EOF
CREATE TABLE p_drop (partner text NOT NULL, id bigint NOT NULL, $PCOLS, PRIMARY KEY (partner, id));
SELECT create_distributed_table('p_drop', 'partner', colocate_with => '$PUR');
CREATE TABLE r_drop ($RCOLS, PRIMARY KEY (partner, id));
SELECT create_distributed_table('r_drop', 'partner', colocate_with => '$PUR');
CREATE TRIGGER enforce_refund_policy AFTER INSERT OR UPDATE ON r_drop
    FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('p_drop', 'partner, purchase_id', 'partner, id', 'max_lag=2 seconds');
INSERT INTO p_drop SELECT * FROM $PUR;
DROP TABLE p_drop;
INSERT INTO r_drop (partner, purchase_id, requested_by_role) VALUES ('a', 2, 'nobody');
EOF

# ------------------------------------------------ c. local request tables, reference purchases
# 1.2 needs the foreign key: a local request table's FK to the distributed
# purchases is the only local layout left (c1-c4); without it (c5, c13) every
# request is refused.
expect_ok "c1 local request table on the coordinator, composite FK to the distributed purchases: allowed request accepted" <<EOF
CREATE TABLE local_requests ($RCOLS, PRIMARY KEY (id), UNIQUE (partner, purchase_id, kind),
    FOREIGN KEY (partner, purchase_id) REFERENCES $PUR (partner, id));
CREATE TRIGGER enforce_refund_policy AFTER INSERT OR UPDATE ON local_requests
    FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('$PUR', 'partner, purchase_id', 'partner, id');
INSERT INTO local_requests (partner, purchase_id, requested_by_role) VALUES ('a', 1, 'account_admin');
EOF
expect_err "c2 local: forbidden gives 23514 with schema, table and constraint in the error fields" 23514 \
	'DETAIL:  Reasons: benefits_activated.' 'HINT:' "SCHEMA NAME:  $S" 'TABLE NAME:  local_requests' \
	'CONSTRAINT NAME:  enforce_refund_policy' <<EOF
INSERT INTO local_requests (partner, purchase_id, requested_by_role) VALUES ('a', 2, 'account_admin');
EOF
expect_err "c3 local: missing purchase gives the FK's 23503" 23503 \
	'violates foreign key constraint "local_requests_partner_purchase_id_fkey"' \
	"Key (partner, purchase_id)=(a, 99) is not present in table \"$PUR\"." <<EOF
INSERT INTO local_requests (partner, purchase_id, requested_by_role) VALUES ('a', 99, 'account_admin');
EOF
expect_ok "c4 local: max_lag 0 is enough (the coordinator's clock judges), also after 1 s in a transaction" <<EOF
BEGIN;
SELECT pg_sleep(1.1);
INSERT INTO local_requests (partner, purchase_id, requested_by_role) VALUES ('c', 4, 'account_admin');
ROLLBACK;
EOF
expect_err "c5 local, single-column key on distributed purchases: no FK (42830), the trigger refuses every request (39P01)" 39P01 \
	'refund request table "local_requests1" has no foreign key on the reference of trigger "enforce_refund_policy"' <<EOF
CREATE TABLE local_requests1 ($RCOLS, PRIMARY KEY (id));
CREATE TRIGGER enforce_refund_policy AFTER INSERT OR UPDATE ON local_requests1
    FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('$PUR', 'purchase_id', 'id');
INSERT INTO local_requests1 (partner, purchase_id, requested_by_role) VALUES ('a', 1, 'account_admin');
EOF
expect_val "c6 hazard: a local table's FK to the distributed purchases is accepted but not enforced on DELETE" '1|1' <<EOF
CREATE TABLE local_fk_requests ($RCOLS, PRIMARY KEY (id),
    FOREIGN KEY (partner, purchase_id) REFERENCES $PUR (partner, id));
CREATE TRIGGER enforce_refund_policy AFTER INSERT OR UPDATE ON local_fk_requests
    FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('$PUR', 'partner, purchase_id', 'partner, id');
INSERT INTO local_fk_requests (partner, purchase_id, requested_by_role) VALUES ('d', 5, 'account_admin');
BEGIN;
DELETE FROM $REQ WHERE partner = 'd';
DELETE FROM $PUR WHERE partner = 'd' AND id = 5;
SELECT (SELECT count(*) FROM local_fk_requests WHERE partner = 'd') || '|' || 1;
ROLLBACK;
EOF
expect_ok "c7 purchases as a reference table" <<EOF
CREATE TABLE ref_purchases (partner text NOT NULL, id bigint PRIMARY KEY, $PCOLS);
SELECT create_reference_table('ref_purchases');
INSERT INTO ref_purchases SELECT * FROM $PUR;
EOF
expect_ok "c8 reference purchases, distributed requests with FK, max_lag: allowed accepted" <<EOF
CREATE TABLE ref_fk_requests ($RCOLS, PRIMARY KEY (partner, id), FOREIGN KEY (purchase_id) REFERENCES ref_purchases (id));
SELECT create_distributed_table('ref_fk_requests', 'partner');
CREATE TRIGGER enforce_refund_policy AFTER INSERT OR UPDATE ON ref_fk_requests
    FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('ref_purchases', 'purchase_id', 'id', 'max_lag=2 seconds');
INSERT INTO ref_fk_requests (partner, purchase_id, requested_by_role) VALUES ('a', 1, 'account_admin');
EOF
expect_err "c8b reference purchases, distributed requests with FK: forbidden 23514" 23514 \
	'refund of purchase "2" is not allowed' 'DETAIL:  Reasons: benefits_activated.' 'HINT:  Refunds of this purchase are allowed from' <<'EOF'
INSERT INTO ref_fk_requests (partner, purchase_id, requested_by_role) VALUES ('a', 2, 'account_admin');
EOF
expect_err "c8c reference purchases, distributed requests with FK: missing, the FK's 23503" 23503 \
	'violates foreign key constraint "ref_fk_requests_purchase_id_fkey_' 'Key (purchase_id)=(99) is not present in table "ref_purchases_' <<'EOF'
INSERT INTO ref_fk_requests (partner, purchase_id, requested_by_role) VALUES ('a', 99, 'account_admin');
EOF
expect_err "c9 reference purchases, distributed requests without FK: 39P01 no foreign key" 39P01 \
	'has no foreign key on the reference of trigger "enforce_refund_policy_' <<EOF
CREATE TABLE ref_requests ($RCOLS, PRIMARY KEY (partner, id));
SELECT create_distributed_table('ref_requests', 'partner');
CREATE TRIGGER enforce_refund_policy AFTER INSERT OR UPDATE ON ref_requests
    FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('ref_purchases', 'purchase_id', 'id', 'max_lag=2 seconds');
INSERT INTO ref_requests (partner, purchase_id, requested_by_role) VALUES ('a', 1, 'account_admin');
EOF
expect_err "c10 the companion on distributed purchases FROM a local request table: 42P01 from a worker at CREATE" 42P01 \
	'relation "local_requests" does not exist' 'while executing command on' <<EOF
CREATE CONSTRAINT TRIGGER protect_from_local_requests AFTER INSERT OR UPDATE ON $PUR FROM local_requests
    FOR EACH ROW EXECUTE FUNCTION refund_rules.protect_refunded_purchase('local_requests', 'partner, purchase_id');
EOF
# The companion on reference purchases: on every placement (a worker's or the
# coordinator's) it sees a reference table's copy, whose requests are spread
# over every request shard: 0A000, every write refused.
expect_err "c11 the companion on reference purchases FROM distributed requests: every write refused, 0A000" 0A000 \
	'is a copy of a Citus reference table' <<'EOF'
BEGIN;
CREATE CONSTRAINT TRIGGER protect_refunded_purchase AFTER INSERT OR UPDATE ON ref_purchases FROM ref_fk_requests
    FOR EACH ROW EXECUTE FUNCTION refund_rules.protect_refunded_purchase('ref_fk_requests', 'purchase_id');
UPDATE ref_purchases SET product_keys_viewed = false WHERE id = 4;
ROLLBACK;
EOF
expect_val "c11b on every worker's placement of reference purchases, whatever request shards it holds: purchase 1 (requested) cannot be activated, 0A000" t <<'EOF'
CREATE CONSTRAINT TRIGGER protect_refunded_purchase AFTER INSERT OR UPDATE ON ref_purchases FROM ref_fk_requests
    FOR EACH ROW EXECUTE FUNCTION refund_rules.protect_refunded_purchase('ref_fk_requests', 'purchase_id');
SELECT bool_and(result LIKE 'ERROR:  purchases table "ref_purchases_%" is a copy of a Citus reference table')
FROM run_command_on_placements('ref_purchases',
  $q$DO $$BEGIN PERFORM set_config('citus.enable_manual_changes_to_shards', 'on', true);
     UPDATE %s SET benefits_activated = true WHERE id = 1; RAISE EXCEPTION 'not refused'; END$$ $q$) r
JOIN pg_dist_node n USING (nodename, nodeport) WHERE n.groupid > 0;
DROP TRIGGER protect_refunded_purchase ON ref_purchases;
EOF
expect_val "c12 reference purchases, local request table with FK: Citus makes it a Citus local table; allowed accepted" n <<EOF
CREATE TABLE ref_local_fk ($RCOLS, PRIMARY KEY (id), FOREIGN KEY (purchase_id) REFERENCES ref_purchases (id));
CREATE TRIGGER enforce_refund_policy AFTER INSERT OR UPDATE ON ref_local_fk
    FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('ref_purchases', 'purchase_id', 'id');
INSERT INTO ref_local_fk (partner, purchase_id, requested_by_role) VALUES ('a', 1, 'account_admin');
SELECT partmethod FROM pg_dist_partition WHERE logicalrelid = 'ref_local_fk'::regclass;
EOF
expect_err "c12b Citus local table with FK: forbidden 23514, TABLE NAME is the coordinator's shard" 23514 \
	'DETAIL:  Reasons: benefits_activated.' "SCHEMA NAME:  $S" 'TABLE NAME:  ref_local_fk_' <<'EOF'
INSERT INTO ref_local_fk (partner, purchase_id, requested_by_role) VALUES ('a', 2, 'account_admin');
EOF
expect_err "c12c Citus local table with FK: missing, the FK's 23503" 23503 \
	'violates foreign key constraint "ref_local_fk_purchase_id_fkey_' 'Key (purchase_id)=(99) is not present in table "ref_purchases_' <<'EOF'
INSERT INTO ref_local_fk (partner, purchase_id, requested_by_role) VALUES ('a', 99, 'account_admin');
EOF
expect_ok "c12d Citus local table with FK: max_lag 0 is enough, also after 1 s in a transaction" <<'EOF'
BEGIN;
SELECT pg_sleep(1.1);
INSERT INTO ref_local_fk (partner, purchase_id, requested_by_role) VALUES ('c', 4, 'account_admin');
ROLLBACK;
EOF
expect_err "c12e FK to the reference table: DROP TABLE ref_purchases (no CASCADE) is refused, 2BP01" 2BP01 \
	'cannot drop table ref_purchases because other objects depend on it' \
	'constraint ref_fk_requests_purchase_id_fkey on table ref_fk_requests depends on table ref_purchases' \
	'constraint ref_local_fk_purchase_id_fkey on table ref_local_fk depends on table ref_purchases' <<'EOF'
DROP TABLE ref_purchases;
EOF
expect_err "c13 reference purchases, local request table without FK: 39P01 no foreign key" 39P01 \
	'refund request table "ref_local" has no foreign key on the reference of trigger "enforce_refund_policy"' <<EOF
CREATE TABLE ref_local ($RCOLS, PRIMARY KEY (id));
CREATE TRIGGER enforce_refund_policy AFTER INSERT OR UPDATE ON ref_local
    FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('ref_purchases', 'purchase_id', 'id');
INSERT INTO ref_local (partner, purchase_id, requested_by_role) VALUES ('a', 1, 'account_admin');
EOF
expect_err "c14 the companion on reference purchases FROM the Citus local request table: every write refused, 0A000 from a worker's placement" 0A000 \
	'is a copy of a Citus reference table' <<'EOF'
BEGIN;
CREATE CONSTRAINT TRIGGER protect_refunded_purchase AFTER INSERT OR UPDATE ON ref_purchases FROM ref_local_fk
    FOR EACH ROW EXECUTE FUNCTION refund_rules.protect_refunded_purchase('ref_local_fk', 'purchase_id');
UPDATE ref_purchases SET product_keys_viewed = false WHERE id = 4;
ROLLBACK;
EOF
# ------------------------------------------------ d. the query functions
expect_val "d0 20 000 rows in a local and a distributed table (8 shards)" '20000|20000' <<EOF
CREATE TABLE lp (partner text, id bigint, $PCOLS);
INSERT INTO lp
SELECT 'p' || (g % 37), g,
  (ARRAY['action_pack', 'silver', 'gold', NULL]::refund_rules.mpn_offer[])[1 + (hashint4(g) & 3)],
  CASE g % 11 WHEN 0 THEN NULL WHEN 1 THEN 'infinity' WHEN 2 THEN '-infinity'
    WHEN 3 THEN timestamptz '2026-10-26 12:00+00' + (((g / 11) % 3) - 1) * interval '1 microsecond'
    WHEN 4 THEN timestamptz '2025-11-25 12:00+00' + (((g / 11) % 3) - 1) * interval '1 microsecond'
    ELSE timestamptz '2026-11-25 12:00+00' - (hashint4(g + 7) & 1023) * interval '13 hours' END,
  (ARRAY[true, false, false, NULL])[1 + ((hashint4(g + 1) >> 3) & 3)],
  (ARRAY[true, false, false, NULL])[1 + ((hashint4(g + 2) >> 5) & 3)],
  (ARRAY[true, false, false, NULL])[1 + ((hashint4(g + 3) >> 7) & 3)],
  (ARRAY[true, false, true, NULL])[1 + ((hashint4(g + 4) >> 9) & 3)]
FROM generate_series(1, 20000) g;
SET citus.shard_count = 8;
CREATE TABLE dp (LIKE lp);
SELECT create_distributed_table('dp', 'partner');
INSERT INTO dp SELECT * FROM lp;
SELECT (SELECT count(*) FROM lp) || '|' || (SELECT count(*) FROM dp);
EOF
T="'2026-11-25 12:00+00'"
for q in \
	"eligible|SELECT count(*) FROM %s p WHERE refund_rules.refund_eligible(p, $T)" \
	"eligible IS NULL|SELECT count(*) FROM %s p WHERE refund_rules.refund_eligible(p, $T) IS NULL" \
	"tax_refund_eligible|SELECT count(*) FROM %s p WHERE refund_rules.tax_refund_eligible(p, $T)" \
	"eligible ids (md5)|SELECT md5(string_agg(id::text, ',' ORDER BY id)) FROM %s p WHERE refund_rules.refund_eligible(p, $T)" \
	"reasons histogram (md5)|SELECT md5(string_agg(reason || '=' || n, ',' ORDER BY reason)) FROM (SELECT reason, count(*) n FROM %s p, unnest(refund_rules.refund_ineligibility_reasons(p, $T)) reason GROUP BY 1) s" \
	"tax reasons histogram (md5)|SELECT md5(string_agg(reason || '=' || n, ',' ORDER BY reason)) FROM (SELECT reason, count(*) n FROM %s p, unnest(refund_rules.refund_ineligibility_reasons(p, $T, 'tax')) reason GROUP BY 1) s" \
	"refund_status (md5)|SELECT md5(string_agg(p.id || ':' || s::text, ',' ORDER BY p.id)) FROM %s p CROSS JOIN LATERAL refund_rules.refund_status(p, $T) s" \
	"ROW(...)::purchase eligible|SELECT count(*) FROM %s p WHERE refund_rules.refund_eligible($ROWFORM, $T)"; do
	name=${q%%|*}
	tmpl=${q#*|}
	# shellcheck disable=SC2059
	expect_val "d1 $name: distributed = local" t <<EOF
SELECT ($(printf "$tmpl" lp)) IS NOT DISTINCT FROM ($(printf "$tmpl" dp));
EOF
done
sql <<EOF
EXPLAIN (VERBOSE, COSTS OFF) SELECT count(*) FROM dp p WHERE refund_rules.refund_eligible(p, $T);
EOF
if [ "$RC" -eq 0 ] && grep -q 'Query: SELECT .*NOT benefits_activated.*offer OPERATOR(pg_catalog.=) .silver.' <<<"$OUT" &&
	! grep -q 'Query: SELECT .*refund_rules\.refund_eligible(' <<<"$OUT"; then
	ok "d2 EXPLAIN VERBOSE: the task's query has the plain conditions (rewritten before Citus ships it)"
else
	fail "d2 EXPLAIN VERBOSE: the task's query has the plain conditions (rewritten before Citus ships it)" "$OUT"
fi
if grep -q 'Query: SELECT .*purchased_at OPERATOR(pg_catalog.>=) .2026-10-26 12:00:00+00' <<<"$OUT"; then
	ok "d3 the task's query has the window as a range on purchased_at"
else
	fail "d3 the task's query has the window as a range on purchased_at" "$OUT"
fi
expect_val "d4 as_of left at now(): each shard query evaluates now() itself (more than one value)" t <<'EOF'
SELECT count(DISTINCT n) > 1 FROM (SELECT partner, min(now()) n FROM dp GROUP BY partner) s;
EOF
expect_err "d5 a subquery's row: 42703, Citus ships it as a nameless ROW(...)" 42703 'purchase has no column "offer"' <<EOF
SELECT count(*) FROM (SELECT * FROM dp) p WHERE refund_rules.refund_eligible(p, $T);
EOF
expect_val "d6 a subquery's row with OFFSET 0 (recursively planned) works" t <<EOF
SELECT (SELECT count(*) FROM (SELECT * FROM dp OFFSET 0) p WHERE refund_rules.refund_eligible(p, $T))
     = (SELECT count(*) FROM lp p WHERE refund_rules.refund_eligible(p, $T));
EOF

trap - EXIT
cleanup
echo "summary: $PASS passed, $FAILS failed"
[ "$FAILS" -eq 0 ] || { printf 'failed: %s\n' "${FAILED[@]}"; exit 1; }
exit 0
