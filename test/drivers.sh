#!/usr/bin/env bash
# test/drivers.sh - the driver examples of docs/drivers.md for psycopg2 (and,
# where node and its pg module are installed, node-postgres) work as written.
#
# It takes the Python block that docs/drivers.md marks "test/drivers.sh runs this
# block: psycopg2" (so the page shows exactly the code tested here), loads
# it as a module, and calls its request_refund() against a database with a
# purchases table, a request table with the enforce_refund_policy trigger,
# a unique index and an ordinary CHECK constraint of its own (1.2's AFTER
# trigger bound by the foreign key). Checks:
#   - an allowed request returns its id and is committed;
#   - a refusal raises RefundRefused with the reason codes in the policy's
#     order, the HINT's window, the request table's schema and name, and the
#     trigger's name as the constraint name;
#   - another CHECK's 23514 (DETAIL "Failing row contains ...") is not taken
#     for a refusal, and 23503 / 23505 come through as psycopg2 raises them;
#   - after every error the connection is idle and usable (no 25P02), and
#     only the allowed requests are in the table, seen from another session.
# The purchases are dated relative to now(): the test does not age.
#
# Run by scripts/test.sh in a pg_virtualenv cluster; alone: pg_virtualenv
# bash test/drivers.sh (the extension must be installed). Needs python3-psycopg2. Exit status 0
# when every check passes.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
export PATH="$RR_PGBIN:$PATH"

DB=regress_rr_drivers
work=$(mktemp -d "${TMPDIR:-/tmp}/rr_drivers.XXXXXX") || exit 2
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT


snippet=$work/readme_psycopg2.py
awk '
	/<!-- test\/drivers.sh runs this block: psycopg2 -->/ { marked = 1; next }
	marked && /^```python$/ { inblock = 1; next }
	inblock && /^```$/ { exit }
	inblock { print }
' docs/drivers.md >"$snippet"
if ! [ -s "$snippet" ]; then
	echo "  FAIL  docs/drivers.md has no python block marked \"test/drivers.sh runs this block: psycopg2\""
	exit 1
fi
echo "  ok    docs/drivers.md's psycopg2 block extracted ($(wc -l <"$snippet") lines)"

PGOPTIONS="-c client_min_messages=warning" psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" || exit 1
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" <<'SQL' || exit 1
CREATE EXTENSION refund_rules;
CREATE TABLE purchases (
    id bigint PRIMARY KEY, partner text NOT NULL, offer refund_rules.mpn_offer,
    purchased_at timestamptz, benefits_activated boolean, product_keys_viewed boolean,
    upgraded_with_gold_discount boolean, tax_exempt boolean);
INSERT INTO purchases VALUES
    (1, 'Contoso',  'gold',   now() - interval '1 day', false, false, false, true),
    (2, 'Fabrikam', 'silver', now() - interval '1 day', true,  false, false, false),
    (3, 'Litware',  'gold',   now() - interval '1 day', false, false, false, true),
    (4, 'Lucerne',  'silver', now() - interval '1 day', false, true,  false, false);
CREATE TABLE refund_requests (
    id                bigserial PRIMARY KEY,
    purchase_id       bigint NOT NULL REFERENCES purchases,
    kind              refund_rules.refund_kind NOT NULL DEFAULT 'purchase',
    requested_at      timestamptz NOT NULL DEFAULT now(),
    requested_by_role text NOT NULL,
    -- an ordinary CHECK of the application's, which the trigger lets through
    CONSTRAINT no_tax_refunds_by_account_admins CHECK (kind <> 'tax' OR requested_by_role <> 'account_admin'));
CREATE UNIQUE INDEX ON refund_requests (purchase_id, kind);
CREATE TRIGGER refund_policy AFTER INSERT OR UPDATE ON refund_requests
    FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
SQL

PGDATABASE=$DB "$RR_PYTHON" - "$snippet" <<'PY'
import importlib.util
import sys

import psycopg2
import psycopg2.errors
import psycopg2.extensions as ext

spec = importlib.util.spec_from_file_location("readme_psycopg2", sys.argv[1])
readme = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme)

fails = 0


def check(ok, what):
    global fails
    print("  %s %s" % ("ok   " if ok else "FAIL ", what))
    if not ok:
        fails += 1


conn = psycopg2.connect("")


def usable(after):
    """The connection is idle (not in an aborted transaction) and answers."""
    idle = conn.get_transaction_status() == ext.TRANSACTION_STATUS_IDLE
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            answers = cur.fetchone() == (1,)
    except psycopg2.Error as e:
        answers = False
        print("        SELECT 1 after %s: %s %s" % (after, e.pgcode, e.pgerror))
    check(idle and answers, "after %s the connection is idle and usable" % after)


def attempt(purchase_id, role, kind="purchase"):
    """request_refund's result: ("id", n), ("refused", e) or ("error", e)."""
    try:
        return "id", readme.request_refund(conn, purchase_id, role, kind)
    except readme.RefundRefused as e:
        return "refused", e
    except Exception as e:  # noqa: BLE001 - the test sorts them below
        return "error", e


# 1. allowed
what, v = attempt(1, "account_admin")
check(what == "id" and isinstance(v, int), "an allowed request returns its id (%s %r)" % (what, v))
usable("an allowed request")

# 2. refused: one reason, then two
what, v = attempt(2, "mpn_partner_admin")
check(what == "refused" and v.reasons == ["benefits_activated"],
      "a refusal raises RefundRefused(['benefits_activated']) (%s %r)" % (what, getattr(v, "reasons", v)))
if what == "refused":
    check((v.hint or "").startswith("Refunds of this purchase are allowed from "),
          "RefundRefused.hint is the window (%r)" % v.hint)
    check(v.table == "public.refund_requests", "RefundRefused.table is the request table (%r)" % v.table)
    check(v.constraint == "refund_policy", "RefundRefused.constraint is the trigger's name (%r)" % v.constraint)
    check(isinstance(v.__cause__, psycopg2.errors.CheckViolation) and v.__cause__.pgcode == "23514",
          "RefundRefused comes from a 23514")
usable("a refusal")
what, v = attempt(2, "intern")
check(what == "refused" and v.reasons == ["benefits_activated", "requester_not_authorized"],
      "two reasons, in the policy's order (%s %r)" % (what, getattr(v, "reasons", v)))
usable("a refusal with two reasons")

# 3. other errors are not refusals
what, v = attempt(1, "account_admin", "tax")
check(what == "error" and isinstance(v, psycopg2.errors.CheckViolation)
      and (v.diag.message_detail or "").startswith("Failing row contains"),
      "another CHECK's 23514 propagates as CheckViolation, not RefundRefused (%s %r)" % (what, v))
usable("another CHECK's 23514")
what, v = attempt(999, "account_admin")
check(what == "error" and getattr(v, "pgcode", None) == "23503",
      "no such purchase: 23503 propagates (%s %s)" % (what, getattr(v, "pgcode", v)))
usable("a 23503")
what, v = attempt(1, "account_admin")
check(what == "error" and isinstance(v, psycopg2.errors.UniqueViolation),
      "a second request: 23505 propagates (%s %s)" % (what, getattr(v, "pgcode", v)))
usable("a 23505")

# 4. a tax refund through the same function
what, v = attempt(1, "mpn_partner_admin", "tax")
check(what == "id", "an allowed tax refund request returns its id (%s %r)" % (what, v))

# 5. what was committed, seen from another session
other = psycopg2.connect("")
with other, other.cursor() as cur:
    cur.execute("SELECT purchase_id, kind::text FROM refund_requests ORDER BY id")
    rows = cur.fetchall()
other.close()
check(rows == [(1, "purchase"), (1, "tax")],
      "another session sees exactly the two allowed requests (%r)" % rows)
conn.close()
sys.exit(1 if fails else 0)
PY
rc=$?

# node-postgres, where node and its pg module are installed (not by default).
if command -v node >/dev/null && node -e "require('pg')" >/dev/null 2>&1; then
	js=$work/readme_node_postgres.js
	awk '
		/<!-- test\/drivers.sh runs this block: node-postgres -->/ { marked = 1; next }
		marked && /^```js$/ { inblock = 1; next }
		inblock && /^```$/ { exit }
		inblock { print }
	' docs/drivers.md >"$js"
	if [ -s "$js" ]; then
		echo "  ok    docs/drivers.md's node-postgres block extracted ($(wc -l <"$js") lines); node $(node --version), pg $(node -p "require('pg/package.json').version")"
		cat >>"$js" <<'JS'

// --- test/drivers.sh: the checks -------------------------------------------
const { Client } = require('pg');
(async () => {
  const client = new Client(); // PGHOST, PGPORT, PGUSER, PGDATABASE
  await client.connect();
  let fails = 0;
  const check = (ok, what) => { console.log(`  ${ok ? 'ok   ' : 'FAIL '} node-postgres: ${what}`); if (!ok) fails++; };
  const attempt = async (...args) => { try { return ['result', await requestRefund(client, ...args)]; } catch (e) { return ['error', e]; } };
  const usable = async (after) => {
    try { const r = await client.query('SELECT 1 AS one'); check(r.rows[0].one === 1, `after ${after} the connection is usable`); }
    catch (e) { check(false, `after ${after} the connection is usable (${e.code} ${e.message})`); }
  };
  let [what, v] = await attempt(3, 'account_admin');
  check(what === 'result' && v.id !== undefined && v.refused === undefined, `an allowed request returns its id (${JSON.stringify(v)})`);
  [what, v] = await attempt(4, 'intern');
  check(what === 'result' && JSON.stringify(v.refused) === '["product_keys_viewed","requester_not_authorized"]',
        `a refusal returns the reasons in the policy's order (${JSON.stringify(v.refused)})`);
  check(what === 'result' && (v.hint || '').startsWith('Refunds of this purchase are allowed from ') && v.table === 'public.refund_requests' && v.constraint === 'refund_policy',
        `the refusal has the window and the request table (${v.table})`);
  await usable('a refusal');
  [what, v] = await attempt(3, 'account_admin', 'tax');
  check(what === 'error' && v.code === '23514' && (v.detail || '').startsWith('Failing row contains'),
        `another CHECK's 23514 is thrown, not taken for a refusal (${v.code})`);
  await usable("another CHECK's 23514");
  [what, v] = await attempt(999, 'account_admin');
  check(what === 'error' && v.code === '23503', `no such purchase: 23503 is thrown (${v.code})`);
  await usable('a 23503');
  const r = await client.query('SELECT count(*)::int AS n FROM refund_requests WHERE purchase_id IN (3, 4)');
  check(r.rows[0].n === 1, `only the allowed request was committed (${r.rows[0].n})`);
  await client.end();
  process.exit(fails ? 1 : 0);
})().catch((e) => { console.log(`  FAIL  node-postgres: ${e.stack}`); process.exit(1); });
JS
		PGDATABASE=$DB node "$js" || rc=1
	else
		echo "  FAIL  docs/drivers.md has no js block marked \"test/drivers.sh runs this block: node-postgres\""
		rc=1
	fi
else
	echo "  skip  node-postgres: node or its pg module is not installed"
fi

if [ "$rc" -eq 0 ]; then
	echo "  drivers checks passed"
else
	echo "  drivers checks failed"
fi
exit "$rc"
