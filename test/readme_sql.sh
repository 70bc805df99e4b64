#!/usr/bin/env bash
# test/readme_sql.sh - the README's Getting started and check-constraint SQL
# runs as written, in a database of its own, and gives what the README says.
#
# It runs, in order and statement by statement (autocommit), every sql block
# that README.md marks "test/readme_sql.sh runs this block". A statement whose
# line ends in a comment "-- fails (SQLSTATE)..." must fail with that SQLSTATE;
# every other statement must succeed. Then the three reports of Getting
# started must give what their comments say (purchase 1 refundable; one
# benefits_activated and one refund_window_expired; one row per purchase),
# and membership 1 must be the only one refunded. Nothing depends on today's
# date: the README's rows are dated relative to now().
#
# Run by scripts/test.sh in a pg_virtualenv cluster; alone: pg_virtualenv
# bash test/readme_sql.sh (the extension must be installed). Needs python3-psycopg2. Exit status 0
# when every check passes.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
export PATH="$RR_PGBIN:$PATH"

DB=regress_rr_readme_sql
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	PGOPTIONS="-c client_min_messages=warning" psql -X -q -d postgres \
		-c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1
}
trap cleanup EXIT

PGOPTIONS="-c client_min_messages=warning" psql -X -q -d postgres \
	-c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" || exit 1

PGDATABASE=$DB "$RR_PYTHON" - README.md <<'PY'
import re
import sys

import psycopg2

MARK = "<!-- test/readme_sql.sh runs this block -->"
fails = 0


def check(ok, what):
    global fails
    print("  %s %s" % ("ok   " if ok else "FAIL ", what))
    if not ok:
        fails += 1


# The marked blocks, in order.
blocks, lines, i = [], open(sys.argv[1]).read().split("\n"), 0
while i < len(lines):
    if lines[i].strip() == MARK:
        j = i + 1
        if j < len(lines) and lines[j] == "```sql":
            k = lines.index("```", j + 1)
            blocks.append(lines[j + 1:k])
            i = k
    i += 1
check(len(blocks) >= 3, "README has %d sql blocks marked for this test (Getting started: 2, check constraints: 1)" % len(blocks))

# Statements: up to a line whose code (before "--") ends with ";".
statements = []
for block in blocks:
    cur = []
    for line in block:
        code, _, comment = line.partition("--")
        if not cur and not code.strip():
            continue  # a comment line before a statement
        cur.append(line)
        if code.rstrip().endswith(";"):
            m = re.match(r"\s*fails \((\w{5})\)", comment)
            statements.append(("\n".join(cur), m.group(1) if m else None))
            cur = []
    check(not cur, "every statement of the block ends with ';'")

conn = psycopg2.connect("")
conn.autocommit = True
results = []
for sql, want in statements:
    first = sql.strip().split("\n")[0][:70]
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            rows = cur.fetchall() if cur.description else None
        results.append(rows)
        check(want is None, "%s: %s" % ("runs" if want is None else "should fail with %s but runs" % want, first))
    except psycopg2.Error as e:
        results.append(e)
        if want is None:
            check(False, "fails (%s %s): %s" % (e.pgcode, (e.pgerror or "").strip().split("\n")[0], first))
        else:
            check(e.pgcode == want, "fails with %s as the README says (%s): %s"
                  % (want, (e.diag.message_primary or ""), first))

selects = [r for (sql, _), r in zip(statements, results) if sql.lstrip().upper().startswith("SELECT")]
check(len(selects) >= 3, "Getting started has three reports (%d SELECTs)" % len(selects))
if len(selects) >= 3:
    r1, r2, r3 = selects[:3]
    check(isinstance(r1, list) and [row[0] for row in r1] == [1],
          "report 1: purchase 1 can be refunded (%r)" % (r1,))
    check(isinstance(r2, list) and sorted(r2) == [("benefits_activated", 1), ("refund_window_expired", 1)],
          "report 2: benefits_activated 1, refund_window_expired 1 (%r)" % (r2,))
    check(isinstance(r3, list) and sorted(row[0] for row in r3) == [1, 2, 3],
          "report 3: one row per purchase (%r)" % ([row[0] for row in r3] if isinstance(r3, list) else r3,))
with conn.cursor() as cur:
    try:
        cur.execute("SELECT id FROM memberships WHERE refunded_at IS NOT NULL ORDER BY id")
        refunded = [row[0] for row in cur.fetchall()]
    except psycopg2.Error as e:
        refunded = e.pgcode
check(refunded == [1], "check constraints: membership 1 alone is refunded (%r)" % (refunded,))
conn.close()
sys.exit(1 if fails else 0)
PY
rc=$?
if [ "$rc" -eq 0 ]; then
	echo "  readme_sql checks passed"
else
	echo "  readme_sql checks failed"
fi
exit "$rc"
