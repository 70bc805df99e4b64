#!/usr/bin/env python3
"""bench/run.py [ROWS] - measure refund_rules against hand-written SQL.

One command, one throwaway cluster, one report (Markdown on stdout, progress on stderr):

    python3 bench/run.py            # 10 000 000 purchases (about 15 minutes)
    python3 bench/run.py 1000000    # a quicker run
    python3 bench/run.py > bench/results-10M.md

It starts itself again inside pg_virtualenv, in a throwaway cluster (as postgres when run
as root; Unix socket only, in a private folder, no TCP port), with Debian's python3 and
python3-psycopg2.  There it builds ROWS purchases over the two years that end now and
times every query BENCH_RUNS times, interleaved round-robin so that noise hits all alike:
medians, per-round pair ratios, the ratios the design sets as targets (MET / NOT MET; the
exit status does not depend on them), plans, the machine.  The enforcement trigger is
measured with pgbench, forbidden_refunds over a history table with a dry-run trigger.
Times are client-side, as psql's \\timing takes them: time.perf_counter() around each query
sent through psycopg2 (autocommit, the simple query protocol, as psql sends it).

Environment (all optional):
    BENCH_RUNS=7              timed runs (rounds) of each query
    BENCH_SHARED_BUFFERS=4GB  enough to hold the table and its indexes
    BENCH_PGBENCH_SECONDS=10  duration of each pgbench run
    BENCH_PGBENCH_CLIENTS=2   pgbench clients (and threads)
    BENCH_PGBENCH_ROUNDS=5    pgbench runs of each trigger variant
    BENCH_BUILD=0             1: build and install the extension first
    RR_PG_MAJOR               the PostgreSQL version (default: the newest installed)
"""

import glob
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

RUNS = int(os.environ.get("BENCH_RUNS", "7"))
SHARED_BUFFERS = os.environ.get("BENCH_SHARED_BUFFERS", "4GB")
PGB_SECONDS = int(os.environ.get("BENCH_PGBENCH_SECONDS", "10"))
PGB_CLIENTS = int(os.environ.get("BENCH_PGBENCH_CLIENTS", "2"))
PGB_ROUNDS = int(os.environ.get("BENCH_PGBENCH_ROUNDS", "5"))
DB = "refund_bench"
PYTHON = "/usr/bin/python3"  # Debian's, the one python3-psycopg2 installs into
CLUSTER_SETTINGS = ["listen_addresses= ", "shared_buffers=" + SHARED_BUFFERS, "work_mem=256MB",
                    "maintenance_work_mem=1GB", "max_wal_size=16GB", "checkpoint_timeout=1h",
                    "autovacuum=off", "jit=off", "max_parallel_workers_per_gather=0",
                    "max_connections=50", "timezone=UTC", "synchronous_commit=off"]
ONE_BACKEND = ["SET max_parallel_workers_per_gather = 0"]
TWO_WORKERS = ["SET max_parallel_workers_per_gather = 2", "SET parallel_setup_cost = 10",
               "SET parallel_tuple_cost = 0.01"]
NO_INDEX = ["SET enable_indexscan = off", "SET enable_bitmapscan = off",
            "SET enable_indexonlyscan = off"]
VARIANTS = ["none", "c", "plpgsql"]  # of the trigger: the order of pgbench's scripts


def say(msg):
    print(time.strftime("%H:%M:%S") + "  " + msg, file=sys.stderr, flush=True)


def run_outside(rows):
    """Build if asked (or not installed), then run this script again inside pg_virtualenv;
    pg_virtualenv's own lines go to stderr, the report alone to stdout."""
    major = os.environ.get("RR_PG_MAJOR") or str(max(
        int(p.split("/")[4]) for p in glob.glob("/usr/lib/postgresql/[0-9]*/bin/postgres")))
    pgbin = f"/usr/lib/postgresql/{major}/bin"
    sharedir = subprocess.run([pgbin + "/pg_config", "--sharedir"], capture_output=True,
                              text=True, check=True).stdout.strip()
    is_root = os.geteuid() == 0
    if (os.environ.get("BENCH_BUILD", "0") == "1"
            or not os.path.exists(sharedir + "/extension/refund_rules.control")):
        say("building and installing the extension")
        make = ["make", f"PG_CONFIG={pgbin}/pg_config"]
        subprocess.run(make, stdout=sys.stderr, check=True)
        subprocess.run(([] if is_root else ["sudo", "-n", "--"]) + make + ["install"],
                       stdout=sys.stderr, check=True)
    sock = tempfile.mkdtemp(prefix="refund_rules-bench-socket.")
    os.chmod(sock, 0o777)
    cmd = ["env", "BENCH_IN_CLUSTER=1", f"PATH={pgbin}:{os.environ['PATH']}",
           "pg_virtualenv", "-v", major]
    for setting in CLUSTER_SETTINGS + ["unix_socket_directories=" + sock]:
        cmd += ["-o", setting]
    cmd += ["env", "PGHOST=" + sock, PYTHON, os.path.abspath(__file__), str(rows)]
    if is_root:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    say("starting a throwaway cluster (pg_virtualenv)")
    try:
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        for line in child.stdout:
            pg_virtualenv_says = line.startswith(("Creating new PostgreSQL cluster ",
                                                  "Dropping cluster "))
            (sys.stderr if pg_virtualenv_says else sys.stdout).write(line)
        return child.wait()
    finally:
        shutil.rmtree(sock, ignore_errors=True)


def connect(dbname=DB):
    import psycopg2  # here, not at the top: outside the cluster any python3 will do
    conn = psycopg2.connect(dbname=dbname)
    conn.autocommit = True
    return conn


def sql(*statements):
    """Run the statements one by one in a new session (as psql -c would); the last one's rows."""
    conn = connect()
    try:
        cur = conn.cursor()
        for statement in statements:
            cur.execute(statement)
        return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def value(*statements):
    """The first value the last statement returns, as text."""
    return str(sql(*statements)[0][0])


def explain(query, settings=(), analyze=False):
    """The plan of QUERY after SETTINGS, indented for Markdown."""
    options = "ANALYZE, BUFFERS, TIMING OFF, COSTS OFF" if analyze else "COSTS OFF"
    return "\n".join("    " + row[0] for row in sql(*settings, f"EXPLAIN ({options}) {query}"))


def scan_of(plan):
    """The scan on purchases in PLAN, such as "Index Scan using ... on purchases p"."""
    found = re.search(r"^\s*->\s*(.* on purchases p)", plan, re.M)
    return found.group(1) if found else ""


def fmt(x):
    return f"{x:.3f}"


def ratio(a, b):
    return "nan" if b == 0 else f"{a / b:.2f}"


def met(ratio_text, op, limit):
    r = float(ratio_text)
    return "MET" if (r <= limit if op == "<=" else r >= limit) else "NOT MET"


def queries(t, t_low):
    """The queries, by name: as_of is the constant T, T_LOW is T - 720 hours."""
    flags = "NOT benefits_activated AND NOT product_keys_viewed AND NOT (offer = 'silver' AND upgraded_with_gold_discount)"
    count = "SELECT count(*) FROM purchases p"
    idx = count + " WHERE refund_rules.refund_eligible(p)"
    reasons = f"refund_rules.refund_ineligibility_reasons(p, '{t}')"
    return {
        "count": count,
        "hand": f"{count} WHERE purchased_at >= '{t_low}' AND purchased_at <= '{t}' AND {flags}",
        "inline": f"{count} WHERE purchased_at <= '{t}' AND purchased_at + interval '30 days' >= '{t}' AND {flags}",
        "plpgsql": f"{count} WHERE plpgsql_refund_eligible(p, '{t}')",
        "isnotnull": f"{count} WHERE p IS NOT NULL",
        "eligible": f"{count} WHERE refund_rules.refund_eligible(p, '{t}')",
        "reasons": f"{count} WHERE cardinality({reasons}) = 0",
        "reasons_sum": f"SELECT sum(cardinality({reasons})) FROM purchases p",
        "reasons_hist": f"SELECT string_agg(r || ':' || n, ' ' ORDER BY r) FROM (SELECT r, count(*) AS n FROM purchases p, unnest({reasons}) r GROUP BY r) h",
        "reasons_sql": f"{count} WHERE cardinality(array_remove(ARRAY[CASE WHEN purchased_at > '{t}' THEN 'not_yet_purchased' WHEN purchased_at + interval '30 days' < '{t}' THEN 'refund_window_expired' END, CASE WHEN benefits_activated THEN 'benefits_activated' END, CASE WHEN product_keys_viewed THEN 'product_keys_viewed' END, CASE WHEN offer = 'silver' AND upgraded_with_gold_discount THEN 'upgraded_with_gold_discount' END], NULL)) = 0",
        "idx_eligible": idx,
        "idx_eligible_seq": idx,
        "idx_eligible_bitmap": idx,
        "idx_cover_seq": idx,
        "idx_hand": f"{count} WHERE purchased_at >= now() - interval '720 hours' AND purchased_at <= now() AND {flags}",
        "validate": "SELECT count(*) FROM refund_rules.forbidden_refunds('history')",
        "validate_join": "SELECT count(*) FROM history r JOIN purchases p ON p.id = r.purchase_id",
    }


# The planner settings a timed query runs with: set before it, reset after it, untimed.
SCANS_OFF = {"idx_eligible_seq": ["enable_indexscan", "enable_bitmapscan"],
             "idx_eligible_bitmap": ["enable_indexscan"],
             "idx_cover_seq": ["enable_indexscan", "enable_bitmapscan", "enable_indexonlyscan"]}


class Phase:
    """Each query of NAMES timed RUNS times, round-robin, in one session after SETUP and an
    untimed warm-up round: times[name] holds its times (s) in round order, result[name] its
    answer."""

    def __init__(self, q, setup, names):
        self.times = {name: [] for name in names}
        self.result = {}
        conn = connect()
        cur = conn.cursor()
        for statement in setup:
            cur.execute(statement)
        for rnd in range(RUNS + 1):
            for name in names:
                for guc in SCANS_OFF.get(name, []):
                    cur.execute(f"SET {guc} = off")
                start = time.perf_counter()
                cur.execute(q[name])
                elapsed = time.perf_counter() - start
                answer = cur.fetchone()[0]
                for guc in SCANS_OFF.get(name, []):
                    cur.execute(f"RESET {guc}")
                if rnd == 0:
                    self.result[name] = "" if answer is None else str(answer)
                else:
                    self.times[name].append(elapsed)
        conn.close()

    def median(self, name):
        return statistics.median(self.times[name])

    def pair_ratio(self, a, b):
        """The median over the rounds of A's time / B's time in the same round (the two ran
        back to back, so they met the same noise)."""
        pairs = [x / y for x, y in zip(self.times[a], self.times[b]) if y > 0]
        return f"{statistics.median(pairs):.2f}" if pairs else "nan"


def build_data(rows):
    """The database and its ROWS purchases; returns as_of (T), T - 720 hours and sizes."""
    conn = connect("postgres")
    conn.cursor().execute(f"CREATE DATABASE {DB} TEMPLATE template0")
    conn.close()
    sql("CREATE EXTENSION refund_rules", "CREATE EXTENSION pg_prewarm")
    t = value("SELECT to_char(date_trunc('second', now()), 'YYYY-MM-DD HH24:MI:SS') || '+00'")
    t_low = value(f"SELECT to_char(timestamptz '{t}' - interval '720 hours', 'YYYY-MM-DD HH24:MI:SS') || '+00'")
    say(f"building {rows} purchases over the two years up to {t}")
    # Purchases are stored as they arrive: id and the physical order follow purchased_at,
    # give or take a minute (concurrent commits), never after T.  Offer mix 50/35/15; ~5 %
    # benefits activated, ~3 % keys viewed, ~10 % of Silver upgraded with the Gold
    # discount, ~20 % tax exempt.  Every tenth purchase has no flag set: the trigger
    # benchmark requests refunds of those.  About 100 bytes a row.
    sql("""CREATE TABLE purchases (
    id bigint PRIMARY KEY, partner_id int NOT NULL, partner text NOT NULL,
    offer refund_rules.mpn_offer NOT NULL, purchased_at timestamptz NOT NULL,
    amount numeric(10,2) NOT NULL, currency text NOT NULL, benefits_activated boolean NOT NULL,
    product_keys_viewed boolean NOT NULL, upgraded_with_gold_discount boolean NOT NULL,
    tax_exempt boolean NOT NULL, country text NOT NULL)""", f"""INSERT INTO purchases
SELECT g, pid, 'Partner ' || pid || ' Ltd', o,
       least(timestamptz '{t}', timestamptz '{t}' - interval '730 days'
             + (g::float8 / {rows}) * interval '730 days' + (random() - 0.5) * interval '2 minutes'),
       CASE o WHEN 'action_pack' THEN 475.00 WHEN 'silver' THEN 1670.00 ELSE 4730.00 END,
       (ARRAY['USD', 'EUR', 'SEK', 'GBP'])[1 + g % 4],
       g % 10 <> 0 AND random() < 0.05, g % 10 <> 0 AND random() < 0.03,
       g % 10 <> 0 AND o = 'silver' AND random() < 0.10, random() < 0.20,
       (ARRAY['US', 'SE', 'DE', 'GB', 'FR', 'IN', 'BR', 'JP'])[1 + g % 8]
FROM generate_series(1, {rows}) g,
     LATERAL (SELECT (1 + floor(random() * 200000))::int + g * 0 AS pid,
                     CASE WHEN r < 0.50 THEN 'action_pack' WHEN r < 0.85 THEN 'silver' ELSE 'gold' END::refund_rules.mpn_offer AS o
              FROM (SELECT random() + g * 0 AS r) rr) x""", "VACUUM (FREEZE, ANALYZE) purchases")
    # The reference: the same rule as a PL/pgSQL function on the row.
    sql("""CREATE FUNCTION plpgsql_refund_eligible(p purchases, t timestamptz) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
  RETURN p.purchased_at <= t AND p.purchased_at + interval '30 days' >= t
     AND NOT p.benefits_activated AND NOT p.product_keys_viewed
     AND NOT (p.offer = 'silver' AND p.upgraded_with_gold_discount);
END $$""")
    return {"T": t, "T_LOW": t_low,
            "table_size": value("SELECT pg_size_pretty(pg_table_size('purchases'))"),
            "row_bytes": value(f"SELECT round(pg_table_size('purchases')::numeric / {rows})"),
            "in_window": value(f"SELECT round(100.0 * count(*) / {rows}, 1) FROM purchases WHERE purchased_at >= timestamptz '{t_low}'")}


def time_reads(q):
    """Phases A (full scans), P (2 workers), B (btree) and C (covering btree); and plans."""
    say("warming the cache")
    sql("SELECT pg_prewarm('purchases')", "SELECT count(*) FROM purchases")
    # Pairs compared round by round run back to back: hand, eligible; eligible, reasons.
    order_a = ["count", "hand", "eligible", "reasons", "reasons_sum", "reasons_hist", "inline",
               "plpgsql", "isnotnull", "reasons_sql"]
    say(f"phase A: full scans, one backend ({RUNS} runs of {len(order_a)} queries)")
    phases = {"A": Phase(q, ONE_BACKEND, order_a)}
    say("phase P: the same with 2 parallel workers")
    phases["P"] = Phase(q, TWO_WORKERS, ["count", "hand", "inline", "plpgsql", "eligible", "reasons"])

    say("phase B: btree on purchased_at")
    sql("CREATE INDEX purchases_purchased_at ON purchases (purchased_at)", "VACUUM ANALYZE purchases")
    sql("SELECT pg_prewarm('purchases_purchased_at')")
    phases["B"] = Phase(q, ONE_BACKEND, ["idx_eligible", "idx_hand", "idx_eligible_seq", "idx_eligible_bitmap"])
    plans = {"B": explain(q["idx_eligible"], analyze=True),
             "B_bitmap": explain(q["idx_eligible"], NO_INDEX[:1], analyze=True),
             "B_seq": explain(q["idx_eligible"], NO_INDEX[:2], analyze=True)}

    say("phase C: covering btree on purchased_at INCLUDE the flags")
    sql("DROP INDEX purchases_purchased_at",
        "CREATE INDEX purchases_purchased_at_cover ON purchases (purchased_at) INCLUDE (offer, benefits_activated, product_keys_viewed, upgraded_with_gold_discount)",
        "VACUUM ANALYZE purchases")
    sql("SELECT pg_prewarm('purchases_purchased_at_cover')")
    phases["C"] = Phase(q, ONE_BACKEND, ["idx_eligible", "idx_cover_seq"])
    return phases, plans


PLPGSQL_TRIGGER = """CREATE FUNCTION plpgsql_enforce_refund_policy() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE p purchases;
BEGIN
  SELECT * INTO p FROM purchases WHERE id = NEW.purchase_id FOR SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation', MESSAGE = format('purchase "%s" does not exist', NEW.purchase_id);
  END IF;
  IF NEW.requested_by_role IS NULL OR NEW.requested_by_role NOT IN ('mpn_partner_admin', 'account_admin')
     OR NOT coalesce(CASE WHEN NEW.kind = 'tax' THEN
            p.purchased_at <= NEW.requested_at AND NEW.requested_at <= p.purchased_at + interval '1 year' AND p.tax_exempt
          ELSE
            p.purchased_at <= NEW.requested_at AND NEW.requested_at <= p.purchased_at + interval '30 days'
            AND NOT p.benefits_activated AND NOT p.product_keys_viewed AND NOT (p.offer = 'silver' AND p.upgraded_with_gold_discount)
          END, false)
  THEN
    RAISE EXCEPTION USING ERRCODE = 'check_violation', MESSAGE = format('refund of purchase "%s" is not allowed', NEW.purchase_id);
  END IF;
  RETURN NEW;
END $$"""


def pgbench(work, seconds, variants, *options):
    """Run pgbench with the scripts of VARIANTS; its output."""
    cmd = ["pgbench", "-n", "-c", str(PGB_CLIENTS), "-j", str(PGB_CLIENTS), "-T", str(seconds), *options]
    for v in variants:
        cmd += ["-f", f"{work}/pgbench_{v}.sql"]
    done = subprocess.run(cmd + [DB], capture_output=True, text=True, check=True)
    return done.stdout + done.stderr


def time_trigger(work):
    """The enforcement trigger with pgbench: no trigger, the C trigger, a PL/pgSQL one."""
    import psycopg2
    say("trigger: setting up")
    sql(PLPGSQL_TRIGGER)
    for v in VARIANTS:
        sql(f"""CREATE TABLE requests_{v} (id bigserial PRIMARY KEY, purchase_id bigint NOT NULL REFERENCES purchases,
                requested_at timestamptz NOT NULL DEFAULT now(), kind refund_rules.refund_kind NOT NULL DEFAULT 'purchase',
                requested_by_role text NOT NULL, note text)""")
    sql("CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON requests_c FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id')")
    sql("CREATE TRIGGER enforce BEFORE INSERT OR UPDATE ON requests_plpgsql FOR EACH ROW EXECUTE FUNCTION plpgsql_enforce_refund_policy()")

    # Refundable purchases: every tenth id (no flag set) bought 1 hour to 29 days ago.
    lo, hi = sql("SELECT min(id), max(id) FROM purchases WHERE purchased_at BETWEEN now() - interval '29 days' AND now() - interval '1 hour'")[0]
    lo = (lo + 9) // 10 * 10
    span = (hi - lo) // 10
    # sanity: the picks are eligible, a refused refund raises
    if value(f"SELECT count(*) FILTER (WHERE NOT refund_rules.refund_eligible(p)) FROM purchases p WHERE id BETWEEN {lo} AND {hi} AND id % 10 = 0") != "0":
        sys.exit("bench: refundable picks are not all eligible")
    for v in ["c", "plpgsql"]:
        try:
            sql(f"INSERT INTO requests_{v} (purchase_id, requested_by_role) VALUES (1, 'account_admin')")
        except psycopg2.Error:
            continue
        sys.exit(f"bench: trigger on requests_{v} let an expired refund through")

    for v in VARIANTS:
        with open(f"{work}/pgbench_{v}.sql", "w") as f:
            f.write(f"\\set k random(0, {span})\nINSERT INTO requests_{v} (purchase_id, requested_by_role, note) VALUES ({lo} + 10 * :k, 'account_admin', 'bench');\n")
    tps_runs = {v: [] for v in VARIANTS}
    for rnd in range(1, PGB_ROUNDS + 1):
        for v in VARIANTS:
            say(f"trigger: pgbench round {rnd}/{PGB_ROUNDS}, {v}")
            found = re.search(r"^tps = (\S+)", pgbench(work, PGB_SECONDS, [v]), re.M)
            if not found:
                sys.exit(f"bench: pgbench gave no tps for {v}")
            tps_runs[v].append(found.group(1))

    # The three in one pgbench run, each transaction picking a script at random: every
    # variant meets the same noise.  Per-script latency gives the inserts/s each would reach
    # alone (clients / latency).  Latencies from pgbench's transaction log, a 20 % sample,
    # in microseconds; a line: client transaction latency_us script epoch epoch_us.
    say(f"trigger: pgbench, the three variants mixed ({PGB_SECONDS * PGB_ROUNDS} s)")
    pgbench(work, PGB_SECONDS * PGB_ROUNDS, VARIANTS, "--log", f"--log-prefix={work}/pgblog", "--sampling-rate=0.2")
    latencies = {v: [] for v in VARIANTS}
    for path in glob.glob(f"{work}/pgblog.*"):
        with open(path) as f:
            for fields in map(str.split, f):
                latencies[VARIANTS[int(fields[3])]].append(float(fields[2]))
    lat = {v: f"{statistics.fmean(latencies[v]):.1f}" for v in VARIANTS}
    return {"tps_runs": tps_runs,
            "tps": {v: statistics.median(float(x) for x in tps_runs[v]) for v in VARIANTS},
            "lat": lat,
            "mixed": {v: f"{PGB_CLIENTS * 1000000 / float(lat[v]):.0f}" for v in VARIANTS},
            "requests": value("SELECT (SELECT count(*) FROM requests_none) || ' / ' || (SELECT count(*) FROM requests_c) || ' / ' || (SELECT count(*) FROM requests_plpgsql)")}


def time_validation(q, rows):
    """Phase V: forbidden_refunds over a history of recorded requests, one per purchase in
    another order (a permutation of the ids), made 0 to 40 days after the purchase; every
    tenth for the tax, every fiftieth by a role that may not request."""
    say(f"validation: {rows} recorded refund requests")
    sql("""CREATE TABLE history (id bigint PRIMARY KEY, purchase_id bigint NOT NULL,
                kind refund_rules.refund_kind NOT NULL, requested_at timestamptz NOT NULL,
                requested_by_role text NOT NULL)""",
        f"""INSERT INTO history
SELECT g, p.id, CASE WHEN g % 10 = 0 THEN 'tax' ELSE 'purchase' END::refund_rules.refund_kind,
       p.purchased_at + random() * interval '40 days',
       CASE WHEN g % 50 = 0 THEN 'partner_user' ELSE 'account_admin' END
FROM generate_series(1, {rows}) g JOIN purchases p ON p.id = (g::bigint * 7919) % {rows} + 1""",
        "ALTER TABLE history ADD FOREIGN KEY (purchase_id) REFERENCES purchases NOT VALID",
        "CREATE TRIGGER refund_policy AFTER INSERT OR UPDATE ON history FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id', 'mode=dry_run')",
        "VACUUM (FREEZE, ANALYZE) history")
    history_rows = value("SELECT count(*) FROM history")
    sql("SELECT pg_prewarm('history')")
    say(f"phase V: forbidden_refunds over the history ({RUNS} runs of 2 queries)")
    return Phase(q, ONE_BACKEND, ["validate_join", "validate"]), history_rows


def machine():
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    cpu = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "")
    with open("/proc/meminfo") as f:
        mem_kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    return f"""- {value("SELECT version()")}
- CPU: {cpu}, {len(os.sched_getaffinity(0))} cores visible; memory {mem_kb / 1048576:.1f} GB
- Kernel: {os.uname().sysname} {os.uname().release}
- Settings: shared_buffers {SHARED_BUFFERS}, work_mem 256MB, jit off, fsync off, synchronous_commit off, autovacuum off
- Load average at the end: {load} (other work on the machine adds noise; ratios come from interleaved runs)"""


def report(rows, data, phases, plans, trig, v, history_rows, q):
    A, B, C, P = phases["A"], phases["B"], phases["C"], phases["P"]
    a = {name: fmt(A.median(name)) for name in A.times}
    e = A.median("eligible")
    p_hand = A.pair_ratio("eligible", "hand")
    r_inline = ratio(e, A.median("inline"))
    r_plpgsql = ratio(e, A.median("plpgsql"))
    p_reasons = A.pair_ratio("reasons", "eligible")
    p_index = B.pair_ratio("idx_eligible", "idx_hand")
    r_index = ratio(B.median("idx_eligible_seq"), B.median("idx_eligible"))
    r_cover = ratio(C.median("idx_cover_seq"), C.median("idx_eligible"))
    tps, lat, mixed, runs = trig["tps"], trig["lat"], trig["mixed"], trig["tps_runs"]
    r_trig_none = ratio(tps["c"], tps["none"])
    r_trig_plpgsql = ratio(tps["c"], tps["plpgsql"])
    r_mix_none = ratio(float(lat["none"]), float(lat["c"]))
    r_mix_plpgsql = ratio(float(lat["plpgsql"]), float(lat["c"]))
    parallel = "\n".join(f"| {n} | {a[n]} | {fmt(P.median(n))} | {ratio(A.median(n), P.median(n))}× |" for n in P.times)
    agree = "\n".join([f"| {n} | {A.result[n]} |" for n in ["count", "hand", "inline", "plpgsql", "isnotnull", "eligible", "reasons", "reasons_sum", "reasons_hist", "reasons_sql"]]
                      + [f"| {n} | {B.result[n]} |" for n in ["idx_eligible", "idx_eligible_seq", "idx_eligible_bitmap", "idx_hand"]]
                      + [f"| {n} (covering) | {C.result[n]} |" for n in C.result])
    plan_list = [
        ("refund_eligible, full scan (no index on purchased_at at that point; shown here with the\nindex hidden)", explain(q["eligible"], NO_INDEX)),
        ("PL/pgSQL function (the whole row is built for each row)", explain(q["plpgsql"], NO_INDEX)),
        ("refund_ineligibility_reasons", explain(q["reasons"])),
        ("refund_eligible(p) with the btree (as_of = now())", plans["B"]),
        ("The same, index scans off (a bitmap scan)", plans["B_bitmap"]),
        ("The same, index and bitmap scans off", plans["B_seq"]),
        ("With the covering btree", explain(q["idx_eligible"], analyze=True)),
        ("With 2 parallel workers", explain(q["eligible"], TWO_WORKERS + NO_INDEX))]
    plan_text = "\n\n".join(f"{caption}:\n\n{plan}" for caption, plan in plan_list)
    return f"""# refund_rules benchmark: {rows} purchases

{time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, `python3 bench/run.py {rows}`; medians of {RUNS} runs, interleaved
round-robin (a ratio "per round" is the median of the ratios of two queries run back to back in each round), one backend (`max_parallel_workers_per_gather = 0`, `jit = off`), table in
shared buffers ({data["table_size"]}, {data["row_bytes"]} bytes a row). Purchases span the two years up to
as_of = `{data["T"]}`; the 30-day window holds {data["in_window"]} % of them. Times are client-side, as psql's `\\timing`
takes them (psycopg2, `time.perf_counter()` around each query).

## Full scans (no index on purchased_at)

| query | median s | ratio | target | met? |
|---|---:|---:|---|---|
| `count(*)` alone | {a["count"]} | | | |
| hand-written predicate (`purchased_at >= const AND ... AND NOT benefits_activated ...`) | {a["hand"]} | | | |
| inline SQL with interval arithmetic (`purchased_at + interval '30 days' >= t ...`) | {a["inline"]} | | | |
| PL/pgSQL function on the row | {a["plpgsql"]} | | | |
| `WHERE p IS NOT NULL` (the cost of building whole rows) | {a["isnotnull"]} | | | |
| **`refund_eligible(p, t)`** | {a["eligible"]} | {p_hand} × hand-written, median of per-round pairs | ≤ 1.0 | {met(p_hand, "<=", 1.0)} |
| | | {ratio(e, A.median("hand"))} × hand-written, ratio of medians | | |
| | | {r_inline} × inline SQL | ≤ 0.6 | {met(r_inline, "<=", 0.6)} |
| | | {r_plpgsql} × PL/pgSQL | ≤ 0.1 | {met(r_plpgsql, "<=", 0.1)} |
| `refund_ineligibility_reasons(p, t)`, `count(*) WHERE cardinality(..) = 0` | {a["reasons"]} | {p_reasons} × refund_eligible, per-round pairs | ≤ 1.5 | {met(p_reasons, "<=", 1.5)} |
| `refund_ineligibility_reasons(p, t)`, `sum(cardinality(..))` | {a["reasons_sum"]} | {ratio(A.median("reasons_sum"), e)} × refund_eligible | | |
| reasons histogram, `unnest(refund_ineligibility_reasons(p, t)) ... GROUP BY` | {a["reasons_hist"]} | {A.pair_ratio("reasons_hist", "eligible")} × refund_eligible, per-round pairs | | |
| the reasons as a plain SQL CASE/array expression | {a["reasons_sql"]} | {ratio(A.median("reasons"), A.median("reasons_sql"))} × (C reasons ÷ this) | | |

## Btree on purchased_at

| query | median s | ratio | target | met? |
|---|---:|---:|---|---|
| `WHERE refund_eligible(p)` (as_of = now()): {scan_of(plans["B"])} | {fmt(B.median("idx_eligible"))} | {r_index} × faster than the seq scan | ≥ 20 | {met(r_index, ">=", 20)} |
| the same with `enable_indexscan = off, enable_bitmapscan = off` | {fmt(B.median("idx_eligible_seq"))} | | | |
| the same with `enable_indexscan = off` (a bitmap scan) | {fmt(B.median("idx_eligible_bitmap"))} | {ratio(B.median("idx_eligible_seq"), B.median("idx_eligible_bitmap"))} × faster than the seq scan | | |
| hand-written predicate with `now()`, same index | {fmt(B.median("idx_hand"))} | refund_eligible ÷ this: {p_index}, median of per-round pairs | ≤ 1.05 | {met(p_index, "<=", 1.05)} |
| covering btree `(purchased_at) INCLUDE (offer, benefits_activated, product_keys_viewed, upgraded_with_gold_discount)`: `WHERE refund_eligible(p)`: {scan_of(explain(q["idx_eligible"]))} | {fmt(C.median("idx_eligible"))} | {r_cover} × faster than the seq scan | ≥ 20 | {met(r_cover, ">=", 20)} |
| the same with index-only, index and bitmap scans off | {fmt(C.median("idx_cover_seq"))} | | | |

## Two parallel workers (full scans)

| query | median s, 1 backend | median s, 2 workers | speed-up |
|---|---:|---:|---:|
{parallel}

## Enforcement trigger (pgbench)

`pgbench -n -c {PGB_CLIENTS} -j {PGB_CLIENTS}` over the Unix socket; each transaction inserts one refund
request for a random refundable purchase (bought 1 hour to 29 days ago). Separate runs:
{PGB_ROUNDS} rounds of {PGB_SECONDS} s per variant, round-robin, median inserts/s. Mixed run: the three
scripts in one pgbench run of {PGB_SECONDS * PGB_ROUNDS} s, each transaction picking one at random, so
that every variant meets the same noise; its inserts/s is clients ÷ that script's mean latency.

| table of refund requests | separate runs, inserts/s | mixed run, latency µs (inserts/s) | ratio | target | met? |
|---|---:|---:|---:|---|---|
| no trigger | {fmt(tps["none"])} | {lat["none"]} ({mixed["none"]}) | | | |
| **`refund_rules.enforce_refund_policy`** (C) | {fmt(tps["c"])} | {lat["c"]} ({mixed["c"]}) | mixed: {r_mix_none} × no trigger | ≥ 0.75 | {met(r_mix_none, ">=", 0.75)} |
| | | | mixed: {r_mix_plpgsql} × PL/pgSQL | ≥ 1 | {met(r_mix_plpgsql, ">=", 1)} |
| | | | separate: {r_trig_none} × no trigger | ≥ 0.75 | {met(r_trig_none, ">=", 0.75)} |
| | | | separate: {r_trig_plpgsql} × PL/pgSQL | ≥ 1 | {met(r_trig_plpgsql, ">=", 1)} |
| PL/pgSQL trigger (`SELECT ... FOR SHARE`, same checks) | {fmt(tps["plpgsql"])} | {lat["plpgsql"]} ({mixed["plpgsql"]}) | | | |

Separate runs (inserts/s): no trigger {" ".join(runs["none"])}; C {" ".join(runs["c"])}; PL/pgSQL {" ".join(runs["plpgsql"])}.
Rows inserted in all (none / C / PL/pgSQL): {trig["requests"]}.

## Validating recorded refunds

`history`: {history_rows} recorded refund requests, one per purchase in another order, made 0 to
40 days after it (a tenth for the tax, a fiftieth by a role that may not request), with
an `enforce_refund_policy` trigger in `mode=dry_run`.

| query | median s | ratio |
|---|---:|---:|
| `SELECT count(*) FROM history r JOIN purchases p ON p.id = r.purchase_id` | {fmt(v.median("validate_join"))} | |
| **`SELECT count(*) FROM refund_rules.forbidden_refunds('history')`** ({v.result["validate"]} rows forbidden) | {fmt(v.median("validate"))} | {v.pair_ratio("validate", "validate_join")} × the join, median of per-round pairs |

## Results agree

| query | result |
|---|---|
{agree}

## Plans

{plan_text}

## Machine

{machine()}
"""


def run_inside(rows):
    with tempfile.TemporaryDirectory(prefix="refund_rules-bench.") as work:
        data = build_data(rows)
        q = queries(data["T"], data["T_LOW"])
        phases, plans = time_reads(q)
        trig = time_trigger(work)
        v, history_rows = time_validation(q, rows)
        sys.stdout.write(report(rows, data, phases, plans, trig, v, history_rows, q))
    say("done")
    return 0


def main():
    rows = sys.argv[1] if len(sys.argv) > 1 else "10000000"
    if len(sys.argv) > 2 or not rows.isdigit() or int(rows) < 10000:
        print("usage: python3 bench/run.py [ROWS]   (ROWS at least 10000, default 10000000)", file=sys.stderr)
        return 2
    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if os.environ.get("BENCH_IN_CLUSTER"):
        return run_inside(int(rows))
    return run_outside(int(rows))


if __name__ == "__main__":
    sys.exit(main())
