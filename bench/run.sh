#!/usr/bin/env bash
# bench/run.sh [ROWS] - measure refund_rules against hand-written SQL.
#
# One command, one throwaway cluster, one report (Markdown, on stdout;
# progress goes to stderr):
#
#   bench/run.sh              # 10 000 000 purchases (a few minutes to build)
#   bench/run.sh 1000000      # a quick run
#   bench/run.sh > bench/results-10M.md
#
# It runs in a throwaway cluster of its own (pg_virtualenv, as postgres when
# started as root, Unix socket only), installs the extension, builds
# ROWS purchases spread over the two years that end now, and times every
# query BENCH_RUNS times, interleaved round-robin so that noise hits all
# alike; it reports medians, the ratios the design sets as targets (MET /
# NOT MET; the exit status does not depend on them), the plans, and the
# machine.  The enforcement trigger is measured with pgbench.
#
# Environment (all optional):
#   BENCH_RUNS=7              timed runs (rounds) of each query
#   BENCH_SHARED_BUFFERS=4GB  enough to hold the table and its indexes
#   BENCH_PGBENCH_SECONDS=10  duration of each pgbench run
#   BENCH_PGBENCH_CLIENTS=2   pgbench clients (and threads)
#   BENCH_PGBENCH_ROUNDS=5    pgbench runs of each trigger variant
#   BENCH_BUILD=0             1: build and install the extension first

set -euo pipefail

ROWS=${1:-10000000}
RUNS=${BENCH_RUNS:-7}
SHARED_BUFFERS=${BENCH_SHARED_BUFFERS:-4GB}
PGB_SECONDS=${BENCH_PGBENCH_SECONDS:-10}
PGB_CLIENTS=${BENCH_PGBENCH_CLIENTS:-2}
PGB_ROUNDS=${BENCH_PGBENCH_ROUNDS:-5}
DB=refund_bench

case $ROWS in '' | *[!0-9]*)
	echo "usage: bench/run.sh [ROWS]   (ROWS a positive integer, default 10000000)" >&2
	exit 2
	;;
esac
[ "$ROWS" -ge 10000 ] || { echo "bench/run.sh: ROWS must be at least 10000" >&2; exit 2; }

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
export PATH="$RR_PGBIN:$PATH"

say() { printf '%s  %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Outside a cluster: build if asked (or not installed), then run this script
# again inside pg_virtualenv with the bench's settings.
if [ -z "${BENCH_IN_CLUSTER:-}" ]; then
	if [ "${BENCH_BUILD:-0}" = 1 ] ||
		[ ! -f "$("$RR_PG_CONFIG" --sharedir)/extension/refund_rules.control" ]; then
		say "building and installing the extension"
		rr_make >&2 && rr_as_root make PG_CONFIG="$RR_PG_CONFIG" install >&2
	fi
	sock=$(mktemp -d /tmp/refund_rules-bench-socket.XXXXXX)
	chmod 777 "$sock"
	cmd=(env BENCH_IN_CLUSTER=1 pg_virtualenv -v "$RR_PG_MAJOR" -o "listen_addresses= "
		-o "unix_socket_directories=$sock" -o "shared_buffers=$SHARED_BUFFERS" -o work_mem=256MB
		-o maintenance_work_mem=1GB -o max_wal_size=16GB -o checkpoint_timeout=1h -o autovacuum=off
		-o jit=off -o max_parallel_workers_per_gather=0 -o max_connections=50 -o timezone=UTC
		-o synchronous_commit=off env PGHOST="$sock" bash "$PWD/bench/run.sh" "$ROWS")
	say "starting a throwaway cluster (pg_virtualenv)"
	rc=0
	# pg_virtualenv's own lines go to stderr, the report alone to stdout
	if rr_is_root; then cmd=(runuser -u postgres -- "${cmd[@]}"); fi
	"${cmd[@]}" | sed -u '/^Creating new PostgreSQL cluster /{w /dev/stderr
d}; /^Dropping cluster /{w /dev/stderr
d}' || rc=$?
	rm -rf "$sock"
	exit "$rc"
fi

WORK=$(mktemp -d /tmp/refund_rules-bench.XXXXXX)
chmod 755 "$WORK"
trap 'rm -rf "$WORK"' EXIT

psql_() { psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
sql() { psql_ -At -c "$1"; }

# median of the numbers on stdin
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# fmt X: 3 decimals
fmt() { awk -v x="$1" 'BEGIN { printf "%.3f", x }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "nan"; else printf "%.2f", a / b }'; }
# met RATIO OP LIMIT
met() { awk -v r="$1" -v op="$2" -v l="$3" 'BEGIN { ok = (op == "<=") ? (r <= l) : (r >= l); print (ok ? "MET" : "NOT MET") }'; }

########################################################################
# Data
########################################################################

createdb -T template0 "$DB"
sql "CREATE EXTENSION refund_rules; CREATE EXTENSION pg_prewarm;" >/dev/null

T=$(sql "SELECT to_char(date_trunc('second', now()), 'YYYY-MM-DD HH24:MI:SS') || '+00'")
T_LOW=$(sql "SELECT to_char(timestamptz '$T' - interval '720 hours', 'YYYY-MM-DD HH24:MI:SS') || '+00'")

say "building $ROWS purchases over the two years up to $T"
# Purchases are stored as they arrive: id and the physical order follow
# purchased_at, give or take a minute (concurrent commits), never after T.
# Offer mix 50/35/15; ~5 % benefits activated, ~3 % keys viewed, ~10 % of
# Silver upgraded with the Gold discount, ~20 % tax exempt.  Every tenth
# purchase has no flag set: the trigger benchmark requests refunds of
# those.  About 100 bytes a row.
psql_ <<EOF
CREATE TABLE purchases (
    id                          bigint PRIMARY KEY,
    partner_id                  int NOT NULL,
    partner                     text NOT NULL,
    offer                       refund_rules.mpn_offer NOT NULL,
    purchased_at                timestamptz NOT NULL,
    amount                      numeric(10,2) NOT NULL,
    currency                    text NOT NULL,
    benefits_activated          boolean NOT NULL,
    product_keys_viewed         boolean NOT NULL,
    upgraded_with_gold_discount boolean NOT NULL,
    tax_exempt                  boolean NOT NULL,
    country                     text NOT NULL
);
INSERT INTO purchases
SELECT g,
       pid,
       'Partner ' || pid || ' Ltd',
       o,
       least(timestamptz '$T',
             timestamptz '$T' - interval '730 days'
             + (g::float8 / $ROWS) * interval '730 days'
             + (random() - 0.5) * interval '2 minutes'),
       CASE o WHEN 'action_pack' THEN 475.00 WHEN 'silver' THEN 1670.00 ELSE 4730.00 END,
       (ARRAY['USD', 'EUR', 'SEK', 'GBP'])[1 + g % 4],
       g % 10 <> 0 AND random() < 0.05,
       g % 10 <> 0 AND random() < 0.03,
       g % 10 <> 0 AND o = 'silver' AND random() < 0.10,
       random() < 0.20,
       (ARRAY['US', 'SE', 'DE', 'GB', 'FR', 'IN', 'BR', 'JP'])[1 + g % 8]
FROM generate_series(1, $ROWS) g,
     LATERAL (SELECT (1 + floor(random() * 200000))::int + g * 0 AS pid,
                     CASE WHEN r < 0.50 THEN 'action_pack' WHEN r < 0.85 THEN 'silver'
                          ELSE 'gold' END::refund_rules.mpn_offer AS o
              FROM (SELECT random() + g * 0 AS r) rr) x;
VACUUM (FREEZE, ANALYZE) purchases;
EOF

TABLE_SIZE=$(sql "SELECT pg_size_pretty(pg_table_size('purchases'))")
ROW_BYTES=$(sql "SELECT round(pg_table_size('purchases')::numeric / $ROWS)")
IN_WINDOW=$(sql "SELECT round(100.0 * count(*) / $ROWS, 1) FROM purchases WHERE purchased_at >= timestamptz '$T_LOW'")

# Reference functions: the same rule as a PL/pgSQL function on the row.
psql_ <<'EOF'
CREATE FUNCTION plpgsql_refund_eligible(p purchases, t timestamptz) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
  RETURN p.purchased_at <= t AND p.purchased_at + interval '30 days' >= t
     AND NOT p.benefits_activated AND NOT p.product_keys_viewed
     AND NOT (p.offer = 'silver' AND p.upgraded_with_gold_discount);
END $$;
EOF

########################################################################
# Timing
########################################################################

# The queries, by name.  :T is the constant as_of, :LOW = T - 720 hours.
declare -A Q
# Pairs compared round by round run back to back: hand, eligible; eligible, reasons.
ORDER_A=(count hand eligible reasons reasons_sum reasons_hist inline plpgsql isnotnull reasons_sql)
Q[count]="SELECT count(*) FROM purchases p"
Q[hand]="SELECT count(*) FROM purchases p WHERE purchased_at >= '$T_LOW' AND purchased_at <= '$T' AND NOT benefits_activated AND NOT product_keys_viewed AND NOT (offer = 'silver' AND upgraded_with_gold_discount)"
Q[inline]="SELECT count(*) FROM purchases p WHERE purchased_at <= '$T' AND purchased_at + interval '30 days' >= '$T' AND NOT benefits_activated AND NOT product_keys_viewed AND NOT (offer = 'silver' AND upgraded_with_gold_discount)"
Q[plpgsql]="SELECT count(*) FROM purchases p WHERE plpgsql_refund_eligible(p, '$T')"
Q[isnotnull]="SELECT count(*) FROM purchases p WHERE p IS NOT NULL"
Q[eligible]="SELECT count(*) FROM purchases p WHERE refund_rules.refund_eligible(p, '$T')"
Q[reasons]="SELECT count(*) FROM purchases p WHERE cardinality(refund_rules.refund_ineligibility_reasons(p, '$T')) = 0"
Q[reasons_sum]="SELECT sum(cardinality(refund_rules.refund_ineligibility_reasons(p, '$T'))) FROM purchases p"
Q[reasons_hist]="SELECT string_agg(r || ':' || n, ' ' ORDER BY r) FROM (SELECT r, count(*) AS n FROM purchases p, unnest(refund_rules.refund_ineligibility_reasons(p, '$T')) r GROUP BY r) h"
Q[reasons_sql]="SELECT count(*) FROM purchases p WHERE cardinality(array_remove(ARRAY[CASE WHEN purchased_at > '$T' THEN 'not_yet_purchased' WHEN purchased_at + interval '30 days' < '$T' THEN 'refund_window_expired' END, CASE WHEN benefits_activated THEN 'benefits_activated' END, CASE WHEN product_keys_viewed THEN 'product_keys_viewed' END, CASE WHEN offer = 'silver' AND upgraded_with_gold_discount THEN 'upgraded_with_gold_discount' END], NULL)) = 0"
ORDER_B=(idx_eligible idx_hand idx_eligible_seq idx_eligible_bitmap)
Q[idx_eligible]="SELECT count(*) FROM purchases p WHERE refund_rules.refund_eligible(p)"
Q[idx_eligible_seq]="SET enable_indexscan = off; SET enable_bitmapscan = off; SELECT count(*) FROM purchases p WHERE refund_rules.refund_eligible(p); RESET enable_indexscan; RESET enable_bitmapscan"
Q[idx_eligible_bitmap]="SET enable_indexscan = off; SELECT count(*) FROM purchases p WHERE refund_rules.refund_eligible(p); RESET enable_indexscan"
Q[idx_cover_seq]="SET enable_indexscan = off; SET enable_bitmapscan = off; SET enable_indexonlyscan = off; SELECT count(*) FROM purchases p WHERE refund_rules.refund_eligible(p); RESET enable_indexscan; RESET enable_bitmapscan; RESET enable_indexonlyscan"
Q[idx_hand]="SELECT count(*) FROM purchases p WHERE purchased_at >= now() - interval '720 hours' AND purchased_at <= now() AND NOT benefits_activated AND NOT product_keys_viewed AND NOT (offer = 'silver' AND upgraded_with_gold_discount)"

declare -A MED RESULT

# run_phase TAG SETUP NAME...: time each query RUNS times, round-robin, in
# one session; medians go to MED[TAG:NAME], results to RESULT[TAG:NAME].
run_phase() {
	local tag=$1 setup=$2
	shift 2
	local script=$WORK/$tag.sql out=$WORK/$tag.out r name
	{
		echo "$setup"
		printf '%s\n' '\timing on'
		for name in "$@"; do # warm-up round, untimed
			printf '\\echo @@warm %s\n' "$name"
			echo "${Q[$name]};"
		done
		for ((r = 1; r <= RUNS; r++)); do
			for name in "$@"; do
				printf '\\echo @@ %s\n' "$name"
				echo "${Q[$name]};"
			done
		done
	} >"$script"
	psql_ -At -f "$script" >"$out"
	for name in "$@"; do
		# the largest Time of a run: a query may come with SET commands
		MED[$tag:$name]=$(times_of "$out" "$name" | median)
		RESULT[$tag:$name]=$(awk -v n="$name" '
			/^@@warm/ { cur = ($2 == n); next }
			/^@@/ { cur = 0 }
			cur && !/^Time: / { print; exit }' "$out")
	done
}

# pair_ratio TAG A B: the median over rounds of A's time ÷ B's time in the
# same round (the two ran back to back, so they met the same noise).
pair_ratio() {
	local out=$WORK/$1.out r
	r=$(paste <(times_of "$out" "$2") <(times_of "$out" "$3") |
		awk '$2 > 0 { printf "%.6f\n", $1 / $2 }' | median)
	awk -v x="$r" 'BEGIN { printf "%.2f", x }'
}
# times_of OUT NAME: NAME's time in each timed round, in order
times_of() {
	awk -v n="$2" '
		function flush() { if (have) print best / 1000; have = 0; best = 0 }
		/^@@/ { flush(); cur = ($1 == "@@" && $2 == n); next }
		cur && /^Time: / { have = 1; if ($2 + 0 > best) best = $2 + 0 }
		END { flush() }' "$1"
}

say "warming the cache"
sql "SELECT pg_prewarm('purchases'); SELECT count(*) FROM purchases;" >/dev/null

say "phase A: full scans, one backend ($RUNS runs of ${#ORDER_A[@]} queries)"
run_phase A "SET max_parallel_workers_per_gather = 0;" "${ORDER_A[@]}"

say "phase P: the same with 2 parallel workers"
run_phase P "SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 10; SET parallel_tuple_cost = 0.01;" \
	count hand inline plpgsql eligible reasons

say "phase B: btree on purchased_at"
psql_ -c "CREATE INDEX purchases_purchased_at ON purchases (purchased_at)" -c "VACUUM ANALYZE purchases"
sql "SELECT pg_prewarm('purchases_purchased_at')" >/dev/null
run_phase B "SET max_parallel_workers_per_gather = 0;" "${ORDER_B[@]}"

psql_ -At -c "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, COSTS OFF) ${Q[idx_eligible]}" >"$WORK/plan_B.txt"
psql_ -At -c "SET enable_indexscan = off; EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, COSTS OFF) ${Q[idx_eligible]}" >"$WORK/plan_B_bitmap.txt"
psql_ -At -c "SET enable_indexscan = off; SET enable_bitmapscan = off; EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, COSTS OFF) ${Q[idx_eligible]}" >"$WORK/plan_B_seq.txt"

say "phase C: covering btree on purchased_at INCLUDE the flags"
psql_ -c "DROP INDEX purchases_purchased_at" \
	-c "CREATE INDEX purchases_purchased_at_cover ON purchases (purchased_at) INCLUDE (offer, benefits_activated, product_keys_viewed, upgraded_with_gold_discount)" \
	-c "VACUUM ANALYZE purchases"
sql "SELECT pg_prewarm('purchases_purchased_at_cover')" >/dev/null
run_phase C "SET max_parallel_workers_per_gather = 0;" idx_eligible idx_cover_seq

########################################################################
# The enforcement trigger, with pgbench
########################################################################

say "trigger: setting up"
psql_ <<'EOF'
CREATE FUNCTION plpgsql_enforce_refund_policy() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  p purchases;
BEGIN
  SELECT * INTO p FROM purchases WHERE id = NEW.purchase_id FOR SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
      MESSAGE = format('purchase "%s" does not exist', NEW.purchase_id);
  END IF;
  IF NEW.requested_by_role IS NULL
     OR NEW.requested_by_role NOT IN ('mpn_partner_admin', 'account_admin')
     OR NOT coalesce(CASE WHEN NEW.kind = 'tax' THEN
            p.purchased_at <= NEW.requested_at
            AND NEW.requested_at <= p.purchased_at + interval '1 year'
            AND p.tax_exempt
          ELSE
            p.purchased_at <= NEW.requested_at
            AND NEW.requested_at <= p.purchased_at + interval '30 days'
            AND NOT p.benefits_activated AND NOT p.product_keys_viewed
            AND NOT (p.offer = 'silver' AND p.upgraded_with_gold_discount)
          END, false)
  THEN
    RAISE EXCEPTION USING ERRCODE = 'check_violation',
      MESSAGE = format('refund of purchase "%s" is not allowed', NEW.purchase_id);
  END IF;
  RETURN NEW;
END $$;
EOF
for v in none c plpgsql; do
	sql "CREATE TABLE requests_$v (
	       id bigserial PRIMARY KEY,
	       purchase_id bigint NOT NULL REFERENCES purchases,
	       requested_at timestamptz NOT NULL DEFAULT now(),
	       kind refund_rules.refund_kind NOT NULL DEFAULT 'purchase',
	       requested_by_role text NOT NULL,
	       note text)" >/dev/null
done
sql "CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON requests_c FOR EACH ROW
       EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id')" >/dev/null
sql "CREATE TRIGGER enforce BEFORE INSERT OR UPDATE ON requests_plpgsql FOR EACH ROW
       EXECUTE FUNCTION plpgsql_enforce_refund_policy()" >/dev/null

# Refundable purchases: every tenth id (no flag set) bought 1 hour to 29
# days ago.
read -r LO HI < <(sql "SELECT min(id), max(id) FROM purchases
                       WHERE purchased_at BETWEEN now() - interval '29 days' AND now() - interval '1 hour'" |
	tr '|' ' ')
LO=$(((LO + 9) / 10 * 10))
SPAN=$(((HI - LO) / 10))
# sanity: the picks are eligible, a refused refund raises
sql "SELECT count(*) FILTER (WHERE NOT refund_rules.refund_eligible(p)) FROM purchases p
     WHERE id BETWEEN $LO AND $HI AND id % 10 = 0" | grep -qx 0 ||
	{ echo "bench: refundable picks are not all eligible" >&2; exit 1; }
for v in c plpgsql; do
	if sql "INSERT INTO requests_$v (purchase_id, requested_by_role) VALUES (1, 'account_admin')" 2>/dev/null; then
		echo "bench: trigger on requests_$v let an expired refund through" >&2
		exit 1
	fi
done

for v in none c plpgsql; do
	cat >"$WORK/pgbench_$v.sql" <<EOF
\\set k random(0, $SPAN)
INSERT INTO requests_$v (purchase_id, requested_by_role, note) VALUES ($LO + 10 * :k, 'account_admin', 'bench');
EOF
done
chmod 644 "$WORK"/pgbench_*.sql
declare -A TPS_RUNS
for ((r = 1; r <= PGB_ROUNDS; r++)); do
	for v in none c plpgsql; do
		say "trigger: pgbench round $r/$PGB_ROUNDS, $v"
		tps=$(pgbench -n -c "$PGB_CLIENTS" -j "$PGB_CLIENTS" -T "$PGB_SECONDS" \
			-f "$WORK/pgbench_$v.sql" "$DB" 2>&1 |
			awk '/^tps = / { print $3; exit }')
		TPS_RUNS[$v]="${TPS_RUNS[$v]:-} $tps"
	done
done
declare -A TPS
for v in none c plpgsql; do
	# shellcheck disable=SC2086 # split the list of runs
	TPS[$v]=$(printf '%s\n' ${TPS_RUNS[$v]} | median)
done
# The three in one pgbench run, each transaction picking a script at
# random: every variant meets the same noise.  Per-script latency gives
# the inserts/s each would reach alone (clients / latency).
say "trigger: pgbench, the three variants mixed ($((PGB_SECONDS * PGB_ROUNDS)) s)"
# (Latencies from pgbench's transaction log, a 20 % sample, in microseconds.)
pgbench -n -c "$PGB_CLIENTS" -j "$PGB_CLIENTS" -T "$((PGB_SECONDS * PGB_ROUNDS))" \
	--log --log-prefix="$WORK/pgblog" --sampling-rate=0.2 \
	-f "$WORK/pgbench_none.sql" -f "$WORK/pgbench_c.sql" -f "$WORK/pgbench_plpgsql.sql" \
	"$DB" >"$WORK/pgbench_mixed.out" 2>&1
declare -A LAT MIXED
i=0
for v in none c plpgsql; do
	# log line: client transaction latency_us script epoch epoch_us
	LAT[$v]=$(cat "$WORK"/pgblog.* | awk -v s=$i '$4 == s { n++; t += $3 } END { printf "%.1f", t / n }')
	MIXED[$v]=$(awk -v c="$PGB_CLIENTS" -v l="${LAT[$v]}" 'BEGIN { printf "%.0f", c * 1000000 / l }')
	i=$((i + 1))
done
REQUESTS=$(sql "SELECT (SELECT count(*) FROM requests_none) || ' / ' || (SELECT count(*) FROM requests_c) || ' / ' || (SELECT count(*) FROM requests_plpgsql)")

########################################################################
# Validating recorded refunds
########################################################################

# One recorded request per purchase, in another order (a permutation of
# the ids), made 0 to 40 days after the purchase; every tenth for the tax;
# every fiftieth by a role that may not request.
say "validation: $ROWS recorded refund requests"
psql_ <<EOF
CREATE TABLE history (
    id                bigint PRIMARY KEY,
    purchase_id       bigint NOT NULL,
    kind              refund_rules.refund_kind NOT NULL,
    requested_at      timestamptz NOT NULL,
    requested_by_role text NOT NULL
);
INSERT INTO history
SELECT g, p.id, CASE WHEN g % 10 = 0 THEN 'tax' ELSE 'purchase' END::refund_rules.refund_kind,
       p.purchased_at + random() * interval '40 days',
       CASE WHEN g % 50 = 0 THEN 'partner_user' ELSE 'account_admin' END
FROM generate_series(1, $ROWS) g JOIN purchases p ON p.id = (g::bigint * 7919) % $ROWS + 1;
ALTER TABLE history ADD FOREIGN KEY (purchase_id) REFERENCES purchases NOT VALID;
CREATE TRIGGER refund_policy AFTER INSERT OR UPDATE ON history FOR EACH ROW
    EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id', 'mode=dry_run');
VACUUM (FREEZE, ANALYZE) history;
EOF
HISTORY_ROWS=$(sql "SELECT count(*) FROM history")
Q[validate]="SELECT count(*) FROM refund_rules.forbidden_refunds('history')"
Q[validate_join]="SELECT count(*) FROM history r JOIN purchases p ON p.id = r.purchase_id"
sql "SELECT pg_prewarm('history')" >/dev/null
say "phase V: forbidden_refunds over the history ($RUNS runs of 2 queries)"
run_phase V "SET max_parallel_workers_per_gather = 0;" validate_join validate

########################################################################
# Plans
########################################################################

explain() { psql_ -At -c "${2:-} EXPLAIN (COSTS OFF) $1" | sed 's/^/    /'; }
explain_analyze() { psql_ -At -c "${2:-} EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, COSTS OFF) $1" | sed 's/^/    /'; }

########################################################################
# Report
########################################################################

A() { echo "${MED[A:$1]}"; }
E=$(A eligible)
R_HAND=$(ratio "$E" "$(A hand)")
R_INLINE=$(ratio "$E" "$(A inline)")
R_PLPGSQL=$(ratio "$E" "$(A plpgsql)")
R_REASONS=$(ratio "$(A reasons)" "$E")
# per round, the two queries back to back (the targets of the read paths)
P_HAND=$(pair_ratio A eligible hand)
P_REASONS=$(pair_ratio A reasons eligible)
P_HIST=$(pair_ratio A reasons_hist eligible)
P_INDEX=$(pair_ratio B idx_eligible idx_hand)
P_VALIDATE=$(pair_ratio V validate validate_join)
R_INDEX=$(ratio "${MED[B:idx_eligible_seq]}" "${MED[B:idx_eligible]}")
R_TRIG_NONE=$(ratio "${TPS[c]}" "${TPS[none]}")
R_TRIG_PLPGSQL=$(ratio "${TPS[c]}" "${TPS[plpgsql]}")
R_MIX_NONE=$(ratio "${LAT[none]}" "${LAT[c]}")
R_MIX_PLPGSQL=$(ratio "${LAT[plpgsql]}" "${LAT[c]}")
R_COVER=$(ratio "${MED[C:idx_cover_seq]}" "${MED[C:idx_eligible]}")
IDX_PLAN=$(sed -n 's/^ *-> *\(.* on purchases p\).*/\1/p' "$WORK/plan_B.txt" | head -1)
COVER_PLAN=$(psql_ -At -c "EXPLAIN (COSTS OFF) ${Q[idx_eligible]}" | sed -n 's/^ *-> *\(.* on purchases p\).*/\1/p' | head -1)

cat <<EOF
# refund_rules benchmark: $(printf "%'d" "$ROWS" 2>/dev/null || echo "$ROWS") purchases

$(date -u '+%Y-%m-%d %H:%M UTC'), \`bench/run.sh $ROWS\`; medians of $RUNS runs, interleaved
round-robin (a ratio "per round" is the median of the ratios of two queries run back to back in each round), one backend (\`max_parallel_workers_per_gather = 0\`, \`jit = off\`), table in
shared buffers ($TABLE_SIZE, $ROW_BYTES bytes a row). Purchases span the two years up to
as_of = \`$T\`; the 30-day window holds $IN_WINDOW % of them. Times are from psql's \`\\timing\`.

## Full scans (no index on purchased_at)

| query | median s | ratio | target | met? |
|---|---:|---:|---|---|
| \`count(*)\` alone | $(fmt "$(A count)") | | | |
| hand-written predicate (\`purchased_at >= const AND ... AND NOT benefits_activated ...\`) | $(fmt "$(A hand)") | | | |
| inline SQL with interval arithmetic (\`purchased_at + interval '30 days' >= t ...\`) | $(fmt "$(A inline)") | | | |
| PL/pgSQL function on the row | $(fmt "$(A plpgsql)") | | | |
| \`WHERE p IS NOT NULL\` (the cost of building whole rows) | $(fmt "$(A isnotnull)") | | | |
| **\`refund_eligible(p, t)\`** | $(fmt "$E") | $P_HAND × hand-written, median of per-round pairs | ≤ 1.0 | $(met "$P_HAND" '<=' 1.0) |
| | | $R_HAND × hand-written, ratio of medians | | |
| | | $R_INLINE × inline SQL | ≤ 0.6 | $(met "$R_INLINE" '<=' 0.6) |
| | | $R_PLPGSQL × PL/pgSQL | ≤ 0.1 | $(met "$R_PLPGSQL" '<=' 0.1) |
| \`refund_ineligibility_reasons(p, t)\`, \`count(*) WHERE cardinality(..) = 0\` | $(fmt "$(A reasons)") | $P_REASONS × refund_eligible, per-round pairs | ≤ 1.5 | $(met "$P_REASONS" '<=' 1.5) |
| \`refund_ineligibility_reasons(p, t)\`, \`sum(cardinality(..))\` | $(fmt "$(A reasons_sum)") | $(ratio "$(A reasons_sum)" "$E") × refund_eligible | | |
| reasons histogram, \`unnest(refund_ineligibility_reasons(p, t)) ... GROUP BY\` | $(fmt "$(A reasons_hist)") | $P_HIST × refund_eligible, per-round pairs | | |
| the reasons as a plain SQL CASE/array expression | $(fmt "$(A reasons_sql)") | $(ratio "$(A reasons)" "$(A reasons_sql)") × (C reasons ÷ this) | | |

## Btree on purchased_at

| query | median s | ratio | target | met? |
|---|---:|---:|---|---|
| \`WHERE refund_eligible(p)\` (as_of = now()): $IDX_PLAN | $(fmt "${MED[B:idx_eligible]}") | $R_INDEX × faster than the seq scan | ≥ 20 | $(met "$R_INDEX" '>=' 20) |
| the same with \`enable_indexscan = off, enable_bitmapscan = off\` | $(fmt "${MED[B:idx_eligible_seq]}") | | | |
| the same with \`enable_indexscan = off\` (a bitmap scan) | $(fmt "${MED[B:idx_eligible_bitmap]}") | $(ratio "${MED[B:idx_eligible_seq]}" "${MED[B:idx_eligible_bitmap]}") × faster than the seq scan | | |
| hand-written predicate with \`now()\`, same index | $(fmt "${MED[B:idx_hand]}") | refund_eligible ÷ this: $P_INDEX, median of per-round pairs | ≤ 1.05 | $(met "$P_INDEX" '<=' 1.05) |
| covering btree \`(purchased_at) INCLUDE (offer, benefits_activated, product_keys_viewed, upgraded_with_gold_discount)\`: \`WHERE refund_eligible(p)\`: $COVER_PLAN | $(fmt "${MED[C:idx_eligible]}") | $R_COVER × faster than the seq scan | ≥ 20 | $(met "$R_COVER" '>=' 20) |
| the same with index-only, index and bitmap scans off | $(fmt "${MED[C:idx_cover_seq]}") | | | |

## Two parallel workers (full scans)

| query | median s, 1 backend | median s, 2 workers | speed-up |
|---|---:|---:|---:|
$(for n in count hand inline plpgsql eligible reasons; do
	printf '| %s | %s | %s | %s× |\n' "$n" "$(fmt "$(A "$n")")" "$(fmt "${MED[P:$n]}")" "$(ratio "$(A "$n")" "${MED[P:$n]}")"
done)

## Enforcement trigger (pgbench)

\`pgbench -n -c $PGB_CLIENTS -j $PGB_CLIENTS\` over the Unix socket; each transaction inserts one refund
request for a random refundable purchase (bought 1 hour to 29 days ago). Separate runs:
$PGB_ROUNDS rounds of $PGB_SECONDS s per variant, round-robin, median inserts/s. Mixed run: the three
scripts in one pgbench run of $((PGB_SECONDS * PGB_ROUNDS)) s, each transaction picking one at random, so
that every variant meets the same noise; its inserts/s is clients ÷ that script's mean latency.

| table of refund requests | separate runs, inserts/s | mixed run, latency µs (inserts/s) | ratio | target | met? |
|---|---:|---:|---:|---|---|
| no trigger | $(fmt "${TPS[none]}") | ${LAT[none]} (${MIXED[none]}) | | | |
| **\`refund_rules.enforce_refund_policy\`** (C) | $(fmt "${TPS[c]}") | ${LAT[c]} (${MIXED[c]}) | mixed: $R_MIX_NONE × no trigger | ≥ 0.75 | $(met "$R_MIX_NONE" '>=' 0.75) |
| | | | mixed: $R_MIX_PLPGSQL × PL/pgSQL | ≥ 1 | $(met "$R_MIX_PLPGSQL" '>=' 1) |
| | | | separate: $R_TRIG_NONE × no trigger | ≥ 0.75 | $(met "$R_TRIG_NONE" '>=' 0.75) |
| | | | separate: $R_TRIG_PLPGSQL × PL/pgSQL | ≥ 1 | $(met "$R_TRIG_PLPGSQL" '>=' 1) |
| PL/pgSQL trigger (\`SELECT ... FOR SHARE\`, same checks) | $(fmt "${TPS[plpgsql]}") | ${LAT[plpgsql]} (${MIXED[plpgsql]}) | | | |

Separate runs (inserts/s): no trigger${TPS_RUNS[none]}; C${TPS_RUNS[c]}; PL/pgSQL${TPS_RUNS[plpgsql]}.
Rows inserted in all (none / C / PL/pgSQL): $REQUESTS.

## Validating recorded refunds

\`history\`: $(printf "%'d" "$HISTORY_ROWS" 2>/dev/null || echo "$HISTORY_ROWS") recorded refund requests, one per purchase in another order, made 0 to
40 days after it (a tenth for the tax, a fiftieth by a role that may not request), with
an \`enforce_refund_policy\` trigger in \`mode=dry_run\`.

| query | median s | ratio |
|---|---:|---:|
| \`SELECT count(*) FROM history r JOIN purchases p ON p.id = r.purchase_id\` | $(fmt "${MED[V:validate_join]}") | |
| **\`SELECT count(*) FROM refund_rules.forbidden_refunds('history')\`** ($(printf "%'d" "${RESULT[V:validate]}" 2>/dev/null || echo "${RESULT[V:validate]}") rows forbidden) | $(fmt "${MED[V:validate]}") | $P_VALIDATE × the join, median of per-round pairs |

## Results agree

| query | result |
|---|---|
$(for n in count hand inline plpgsql isnotnull eligible reasons reasons_sum reasons_hist reasons_sql; do printf '| %s | %s |\n' "$n" "${RESULT[A:$n]}"; done)
$(for n in idx_eligible idx_eligible_seq idx_eligible_bitmap idx_hand; do printf '| %s | %s |\n' "$n" "${RESULT[B:$n]}"; done)
$(for n in idx_eligible idx_cover_seq; do printf '| %s (covering) | %s |\n' "$n" "${RESULT[C:$n]}"; done)

## Plans

refund_eligible, full scan (no index on purchased_at at that point; shown here with the
index hidden):

$(explain "${Q[eligible]}" "SET enable_indexscan = off; SET enable_bitmapscan = off; SET enable_indexonlyscan = off;")

PL/pgSQL function (the whole row is built for each row):

$(explain "${Q[plpgsql]}" "SET enable_indexscan = off; SET enable_bitmapscan = off; SET enable_indexonlyscan = off;")

refund_ineligibility_reasons:

$(explain "${Q[reasons]}")

refund_eligible(p) with the btree (as_of = now()):

$(sed 's/^/    /' "$WORK/plan_B.txt")

The same, index scans off (a bitmap scan):

$(sed 's/^/    /' "$WORK/plan_B_bitmap.txt")

The same, index and bitmap scans off:

$(sed 's/^/    /' "$WORK/plan_B_seq.txt")

With the covering btree:

$(explain_analyze "${Q[idx_eligible]}")

With 2 parallel workers:

$(explain "${Q[eligible]}" "SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 10; SET parallel_tuple_cost = 0.01; SET enable_indexscan = off; SET enable_bitmapscan = off; SET enable_indexonlyscan = off;")

## Machine

- $(sql "SELECT version()")
- CPU: $(lscpu 2>/dev/null | awk -F: '/^Model name/ { gsub(/^ +/, "", $2); print $2; exit }'), $(nproc) cores visible; memory $(awk '/^MemTotal/ { printf "%.1f GB", $2 / 1048576 }' /proc/meminfo)
- Kernel: $(uname -sr)
- Settings: shared_buffers $SHARED_BUFFERS, work_mem 256MB, jit off, fsync off, synchronous_commit off, autovacuum off
- Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine adds noise; ratios come from interleaved runs)
EOF
say "done"
