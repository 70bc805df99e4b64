#!/usr/bin/env bash
# test/fdw_shards.sh - scaling out with postgres_fdw: a purchases table
# partitioned by partner whose partitions are foreign tables on two shards.
#
#   1. starts two throwaway clusters, shard1 and shard2 (scripts/lib.sh),
#      and installs refund_rules on them and on the coordinator (the cluster
#      named by PGHOST/PGPORT/PGUSER, in a database of its own);
#   2. on the coordinator: purchases PARTITION BY LIST (partner), each
#      partition a postgres_fdw foreign table on one shard, through a server
#      with  extensions 'refund_rules'  so that our functions may be shipped;
#      the same randomized rows (NULLs, window edges, infinities, a NULL
#      partner) go into the shards (through the partitioned table) and into
#      a plain local table;
#   3. checks that
#      a. WHERE refund_rules.refund_eligible(p, <constant>) (and
#         tax_refund_eligible, refund_ineligibility_reasons(...) IS NULL) is
#         evaluated on the shards: each Foreign Scan's "Remote SQL:" holds
#         the function's column form; a now() as_of must not be shipped;
#      b. the answers through the shards (counts, and every row's
#         eligibility and reasons as an ordered digest) equal the local
#         table's, and each shard computing on its own rows agrees too;
#      and reports (without failing) whether a target-list call, a
#      comparison of the reasons array and count(*) itself are shipped.
#
# Ports: RR_FDW_SHARD_PORTS (default "54405 54406"). Exit 0 when all pass.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

: "${PGHOST:?PGHOST of the coordinator cluster}" "${PGPORT:?PGPORT of the coordinator cluster}"
COORD_HOST=$PGHOST
COORD_PORT=$PGPORT
COORD_USER=${PGUSER:-postgres}
COORD_DATABASE=${PGDATABASE:-}
read -r PORT1 PORT2 <<<"${RR_FDW_SHARD_PORTS:-54405 54406}"
COORD_DB=regress_rr_fdw
SHARD_DB=rr_shard
AS_OF='2024-03-15 12:00+00'

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

fails=0
ok() { printf '  ok    %s\n' "$*"; }
bad() { printf '  FAIL  %s\n' "$*"; fails=$((fails + 1)); }
info() { printf '  info  %s\n' "$*"; }
indent() { sed 's/^ */        /'; }

# Restore the coordinator's connection variables (rr_start_cluster exports
# those of the cluster it started).
restore_pg_env() {
	export PGHOST=$COORD_HOST PGPORT=$COORD_PORT PGUSER=$COORD_USER
	if [ -n "$COORD_DATABASE" ]; then export PGDATABASE=$COORD_DATABASE; else unset PGDATABASE; fi
}
run_psql() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
coord() { run_psql -h "$COORD_HOST" -p "$COORD_PORT" -U "$COORD_USER" -d "$COORD_DB" "$@"; }
shard() { # shard N psql-args...
	local n=$1
	shift
	run_psql -h "$(rr_cluster_dir "shard$n")" -p "$(eval echo "\$PORT$n")" -U postgres -d "$SHARD_DB" "$@"
}

started=()
cleanup() {
	restore_pg_env
	run_psql -d postgres -c "DROP DATABASE IF EXISTS $COORD_DB" >/dev/null 2>&1
	local s
	for s in "${started[@]}"; do rr_stop_cluster "$s" >/dev/null 2>&1; done
}
trap cleanup EXIT

echo "postgres_fdw shards: coordinator $COORD_HOST:$COORD_PORT, shards on ports $PORT1 $PORT2"

# --- 1. the clusters ------------------------------------------------------------
for n in 1 2; do
	port=$(eval echo "\$PORT$n")
	if ! rr_start_cluster "shard$n" "$port"; then
		restore_pg_env
		bad "start cluster shard$n on port $port"
		exit 1
	fi
	started+=("shard$n")
	restore_pg_env
	if run_psql -h "$(rr_cluster_dir "shard$n")" -p "$port" -U postgres -d postgres \
		-c "CREATE DATABASE $SHARD_DB" >/dev/null &&
		shard "$n" -c "CREATE EXTENSION refund_rules" >/dev/null; then
		ok "shard$n: cluster on port $port, refund_rules $(shard "$n" -c "SELECT extversion FROM pg_extension WHERE extname = 'refund_rules'")"
	else
		bad "shard$n: CREATE EXTENSION refund_rules"
		exit 1
	fi
	shard "$n" >/dev/null <<-'SQL' || { bad "shard$n: create table"; exit 1; }
		CREATE TABLE public.purchases (
		    id integer PRIMARY KEY,
		    partner text,
		    offer refund_rules.mpn_offer,
		    purchased_at timestamptz,
		    benefits_activated boolean,
		    product_keys_viewed boolean,
		    upgraded_with_gold_discount boolean,
		    tax_exempt boolean);
	SQL
done

run_psql -d postgres -c "DROP DATABASE IF EXISTS $COORD_DB" -c "CREATE DATABASE $COORD_DB" >/dev/null ||
	{ bad "create database $COORD_DB on the coordinator"; exit 1; }

# --- 2. the coordinator -----------------------------------------------------------
if coord >/dev/null <<SQL; then
CREATE EXTENSION refund_rules;
CREATE EXTENSION postgres_fdw;
CREATE SERVER shard1 FOREIGN DATA WRAPPER postgres_fdw
  OPTIONS (host '$(rr_cluster_dir shard1)', port '$PORT1', dbname '$SHARD_DB', extensions 'refund_rules');
CREATE SERVER shard2 FOREIGN DATA WRAPPER postgres_fdw
  OPTIONS (host '$(rr_cluster_dir shard2)', port '$PORT2', dbname '$SHARD_DB', extensions 'refund_rules');
CREATE USER MAPPING FOR CURRENT_USER SERVER shard1 OPTIONS (user 'postgres');
CREATE USER MAPPING FOR CURRENT_USER SERVER shard2 OPTIONS (user 'postgres');

CREATE TABLE purchases (
    id integer NOT NULL,
    partner text,
    offer refund_rules.mpn_offer,
    purchased_at timestamptz,
    benefits_activated boolean,
    product_keys_viewed boolean,
    upgraded_with_gold_discount boolean,
    tax_exempt boolean
) PARTITION BY LIST (partner);
CREATE FOREIGN TABLE purchases_shard1 PARTITION OF purchases
  FOR VALUES IN ('alpha', 'bravo', 'charlie')
  SERVER shard1 OPTIONS (schema_name 'public', table_name 'purchases');
CREATE FOREIGN TABLE purchases_shard2 PARTITION OF purchases
  FOR VALUES IN ('delta', 'echo', NULL)
  SERVER shard2 OPTIONS (schema_name 'public', table_name 'purchases');
CREATE TABLE purchases_local (LIKE purchases);

-- Random rows, plus rows on the edges of the windows at the test's as_of.
SELECT setseed(0.25);
INSERT INTO purchases_local
SELECT i,
       (ARRAY['alpha', 'bravo', 'charlie', 'delta', 'echo', NULL])[1 + floor(random() * 6)::int],
       (ARRAY['action_pack', 'silver', 'gold', NULL])[1 + floor(random() * 4)::int]::refund_rules.mpn_offer,
       CASE WHEN random() < 0.05 THEN NULL
            ELSE timestamptz '$AS_OF' - random() * interval '420 days' + interval '5 days' END,
       CASE WHEN random() < 0.1 THEN NULL ELSE random() < 0.3 END,
       CASE WHEN random() < 0.1 THEN NULL ELSE random() < 0.3 END,
       CASE WHEN random() < 0.1 THEN NULL ELSE random() < 0.5 END,
       CASE WHEN random() < 0.1 THEN NULL ELSE random() < 0.5 END
  FROM generate_series(1, 5000) i;
INSERT INTO purchases_local
SELECT 100000 + row_number() OVER (), partner, offer, t, false, false, false, true
  FROM unnest(ARRAY['alpha', 'delta', NULL]) partner,
       unnest(ARRAY['action_pack', 'silver', 'gold']::refund_rules.mpn_offer[]) offer,
       unnest(ARRAY[timestamptz '$AS_OF',
                    timestamptz '$AS_OF' + interval '1 microsecond',
                    timestamptz '$AS_OF' - interval '30 days',
                    timestamptz '$AS_OF' - interval '30 days 1 microsecond',
                    timestamptz '$AS_OF' - interval '1 year',
                    timestamptz '$AS_OF' - interval '1 year 1 microsecond',
                    '-infinity', 'infinity', NULL]) t;
INSERT INTO purchases SELECT * FROM purchases_local;
ANALYZE purchases_local;
SQL
	ok "coordinator: servers (extensions 'refund_rules'), partitioned purchases on two foreign tables, rows loaded"
else
	bad "coordinator setup"
	exit 1
fi
n_local=$(coord -c "SELECT count(*) FROM purchases_local")
n1=$(shard 1 -c "SELECT count(*) FROM purchases")
n2=$(shard 2 -c "SELECT count(*) FROM purchases")
if [ "$n_local" -gt 0 ] && [ "$n1" -gt 0 ] && [ "$n2" -gt 0 ] && [ $((n1 + n2)) -eq "$n_local" ]; then
	ok "rows: $n_local local = $n1 on shard1 + $n2 on shard2"
else
	bad "rows: $n_local local, $n1 on shard1, $n2 on shard2"
fi
for n in 1 2; do shard "$n" -c "ANALYZE purchases" >/dev/null; done

# --- 3a. what runs on the shards -------------------------------------------------
explain() { coord -c "EXPLAIN (VERBOSE, COSTS OFF) $1"; }
# pushed require|report NAME PATTERN QUERY: whether every Foreign Scan's
# Remote SQL has PATTERN in its WHERE; "require" fails when not.
pushed() {
	local mode=$1 name=$2 pattern=$3 query=$4 plan nscan nremote nhit
	plan=$(explain "$query") || { bad "$name: EXPLAIN failed"; return; }
	nscan=$(grep -c 'Foreign Scan on' <<<"$plan")
	nremote=$(grep -c 'Remote SQL:' <<<"$plan")
	nhit=$(grep 'Remote SQL:' <<<"$plan" | grep -c -- " WHERE .*$pattern")
	if [ "$nscan" -eq 2 ] && [ "$nremote" -eq 2 ] && [ "$nhit" -eq 2 ]; then
		if [ "$mode" = require ]; then ok "$name: runs on both shards"; else info "$name: runs on both shards"; fi
		grep 'Remote SQL:' <<<"$plan" | head -1 | indent
	elif [ "$mode" = require ]; then
		bad "$name: $nscan foreign scans, $nremote Remote SQL lines, $nhit with $pattern in WHERE:"
		indent <<<"$plan"
	else
		info "$name: filtered on the coordinator, not shipped:"
		grep -E 'Filter:' <<<"$plan" | head -1 | indent
	fi
}
pushed require "WHERE refund_eligible(p, constant)" 'refund_rules\._refund_eligible(' \
	"SELECT count(*) FROM purchases p WHERE refund_rules.refund_eligible(p, '$AS_OF')"
pushed require "WHERE tax_refund_eligible(p, constant)" 'refund_rules\._tax_refund_eligible(' \
	"SELECT count(*) FROM purchases p WHERE refund_rules.tax_refund_eligible(p, '$AS_OF')"
pushed require "WHERE refund_ineligibility_reasons(p, constant) IS NULL" 'refund_rules\._refund_ineligibility_reasons(' \
	"SELECT count(*) FROM purchases p WHERE refund_rules.refund_ineligibility_reasons(p, '$AS_OF') IS NULL"
# Reported, not required. A comparison of the text[] of reasons is collation
# sensitive, and postgres_fdw ships such a comparison only when the text
# comes from a column of the foreign table (the same holds for built-ins:
# WHERE to_char(purchased_at, 'YYYY') = '2024' is not shipped either).
pushed report "WHERE refund_ineligibility_reasons(p, constant) = '{}'" 'refund_rules\._refund_ineligibility_reasons(' \
	"SELECT count(*) FROM purchases p WHERE refund_rules.refund_ineligibility_reasons(p, '$AS_OF') = '{}'"
pushed report "WHERE refund_ineligibility_reasons(p, constant, 'tax') && ARRAY[...]" 'refund_rules\._refund_ineligibility_reasons(' \
	"SELECT count(*) FROM purchases p WHERE refund_rules.refund_ineligibility_reasons(p, '$AS_OF', 'tax') && ARRAY['not_tax_exempt']"
# The window's range on purchased_at goes along (a shard can use its index).
pushed require "the window range on purchased_at" 'purchased_at <= ' \
	"SELECT count(*) FROM purchases p WHERE refund_rules.refund_eligible(p, '$AS_OF')"

# Reported, not required: a target-list call, and now() as as_of.
plan=$(explain "SELECT p.id, refund_rules.refund_ineligibility_reasons(p, '$AS_OF') FROM purchases p")
if grep 'Remote SQL:' <<<"$plan" | grep -q '_refund_ineligibility_reasons('; then
	info "target list refund_ineligibility_reasons(p, constant): computed on the shards"
else
	info "target list refund_ineligibility_reasons(p, constant): the shards send the columns, the coordinator computes it (postgres_fdw ships no target-list expressions of a plain scan)"
fi
grep -E 'Output:|Remote SQL:' <<<"$plan" | head -3 | indent
plan=$(explain "SELECT count(*) FROM purchases p WHERE refund_rules.refund_eligible(p)")
if grep 'Remote SQL:' <<<"$plan" | grep -q '_refund_eligible('; then
	bad "WHERE refund_eligible(p) with the default as_of now() was shipped: the shard's clock would decide"
else
	ok "WHERE refund_eligible(p) with the default now(): not shipped (now() is not immutable), filtered on the coordinator"
fi
aggregate_pushdown() { # aggregate_pushdown LABEL QUERY
	local plan
	plan=$(coord -c "SET enable_partitionwise_aggregate = on" -c "EXPLAIN (VERBOSE, COSTS OFF) $2")
	if grep 'Remote SQL:' <<<"$plan" | grep -q 'SELECT .*count(\*) FROM .*_refund_eligible('; then
		info "enable_partitionwise_aggregate = on, $1: counted on the shards"
	else
		info "enable_partitionwise_aggregate = on, $1: counted on the coordinator"
	fi
	grep 'Remote SQL:' <<<"$plan" | head -1 | indent
}
aggregate_pushdown "count(*) of eligible purchases" \
	"SELECT count(*) FROM purchases p WHERE refund_rules.refund_eligible(p, '$AS_OF')"
aggregate_pushdown "count(*) of eligible purchases GROUP BY partner (the partition key)" \
	"SELECT partner, count(*) FROM purchases p WHERE refund_rules.refund_eligible(p, '$AS_OF') GROUP BY partner"
grep 'Remote SQL:' <<<"$plan" | head -1 | indent

# --- 3b. the answers --------------------------------------------------------------
# One line per as_of: counts and an ordered digest of every row's answers.
answers() { # answers TABLE: on the coordinator
	coord -c "SET TimeZone = 'UTC'" -c "
	SELECT a.as_of,
	       (SELECT count(*) FROM $1 p WHERE refund_rules.refund_eligible(p, a.as_of)),
	       (SELECT count(*) FROM $1 p WHERE refund_rules.tax_refund_eligible(p, a.as_of)),
	       (SELECT count(*) FROM $1 p WHERE refund_rules.refund_ineligibility_reasons(p, a.as_of) = '{}'),
	       (SELECT md5(string_agg(concat_ws('|', p.id, refund_rules.refund_eligible(p, a.as_of),
	                                        refund_rules.tax_refund_eligible(p, a.as_of),
	                                        refund_rules.refund_ineligibility_reasons(p, a.as_of),
	                                        refund_rules.refund_ineligibility_reasons(p, a.as_of, 'tax')),
	                              ',' ORDER BY p.id)) FROM $1 p)
	  FROM (VALUES (timestamptz '$AS_OF'), ('2023-11-01 00:00+00'), ('2024-03-20 08:30+00')) a(as_of)
	 ORDER BY a.as_of"
}
# The same with literal constants, the form whose shipping 3a checked.
counts_literal() { # counts_literal TABLE
	coord -c "SELECT count(*) FROM $1 p WHERE refund_rules.refund_eligible(p, '$AS_OF')" \
		-c "SELECT count(*) FROM $1 p WHERE refund_rules.tax_refund_eligible(p, '$AS_OF')" \
		-c "SELECT count(*) FROM $1 p WHERE refund_rules.refund_ineligibility_reasons(p, '$AS_OF', 'tax') && ARRAY['not_tax_exempt']" \
		-c "SELECT count(*) FROM $1 p WHERE refund_rules.refund_eligible(p, '$AS_OF') IS NULL"
}
local_answers=$(answers purchases_local) || bad "answers on the local table"
fdw_answers=$(answers purchases) || bad "answers through the shards"
if [ -n "$local_answers" ] && [ "$local_answers" = "$fdw_answers" ]; then
	ok "same answers through the shards as on the local table, at 3 as_of values:"
	indent <<<"$local_answers"
else
	bad "answers differ (as_of|eligible|tax eligible|no reasons|digest):"
	diff <(echo "$local_answers") <(echo "$fdw_answers") | indent
fi
local_counts=$(counts_literal purchases_local | tr '\n' ' ')
fdw_counts=$(counts_literal purchases | tr '\n' ' ')
if [ -n "$local_counts" ] && [ "$local_counts" = "$fdw_counts" ]; then
	ok "counts with the WHERE shipped: $fdw_counts(eligible, tax eligible, not tax exempt, unknown) = local"
else
	bad "counts with the WHERE shipped: shards $fdw_counts, local $local_counts"
fi

# Each shard, queried directly, agrees with the local table on its rows.
shard_rows() { # shard_rows N: id|eligible|reasons|tax reasons, computed on the shard
	shard "$1" -c "SET TimeZone = 'UTC'" -c "
	SELECT concat_ws('|', p.id, refund_rules.refund_eligible(p, '$AS_OF'),
	                 refund_rules.refund_ineligibility_reasons(p, '$AS_OF'),
	                 refund_rules.refund_ineligibility_reasons(p, '$AS_OF', 'tax'))
	  FROM public.purchases p"
}
local_rows=$(coord -c "SET TimeZone = 'UTC'" -c "
	SELECT concat_ws('|', p.id, refund_rules.refund_eligible(p, '$AS_OF'),
	                 refund_rules.refund_ineligibility_reasons(p, '$AS_OF'),
	                 refund_rules.refund_ineligibility_reasons(p, '$AS_OF', 'tax'))
	  FROM purchases_local p" | LC_ALL=C sort)
shard_all=$({ shard_rows 1; shard_rows 2; } | LC_ALL=C sort)
if [ -n "$local_rows" ] && [ "$local_rows" = "$shard_all" ]; then
	ok "each shard computing on its own rows: $(wc -l <<<"$shard_all") rows, same as local"
else
	bad "rows computed on the shards differ from local:"
	diff <(echo "$local_rows") <(echo "$shard_all") | head -20 | indent
fi

echo "fdw shards: $fails failure(s)"
[ "$fails" -eq 0 ]
