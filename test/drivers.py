#!/usr/bin/python3
"""test/drivers.py - the driver examples of docs/drivers.md for psycopg2 (and,
where node and its pg module are installed, node-postgres) work as written.

It takes the Python block that docs/drivers.md marks "test/drivers.py runs this
block: psycopg2" (so the page shows exactly the code tested here), loads
it as a module, and calls its request_refund() against a database with a
purchases table, a request table with the enforce_refund_policy trigger,
a unique index and an ordinary CHECK constraint of its own (1.2's AFTER
trigger bound by the foreign key). Checks:
  - an allowed request returns its id and is committed;
  - a refusal raises RefundRefused with the reason codes in the policy's
    order, the HINT's window, the request table's schema and name, and the
    trigger's name as the constraint name;
  - another CHECK's 23514 (DETAIL "Failing row contains ...") is not taken
    for a refusal, and 23503 / 23505 come through as psycopg2 raises them;
  - after every error the connection is idle and usable (no 25P02), and
    only the allowed requests are in the table, seen from another session.
The purchases are dated relative to now(): the test does not age.

Run by scripts/test.sh in a pg_virtualenv cluster; alone: pg_virtualenv
python3 test/drivers.py (the extension must be installed). Needs
python3-psycopg2. Exit status 0 when every check passes.
"""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile

import psycopg2
import psycopg2.errors
import psycopg2.extensions as ext

os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DB = "regress_rr_drivers"
SETUP = """
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
"""


def psql(db, *args, stdin=None):
    return subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, *args],
                          input=stdin, text=True, env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning"))


def block(lang, marker):
    """The fenced block of docs/drivers.md right after <!-- MARKER -->."""
    text = open("docs/drivers.md").read()
    m = re.search(r"<!-- %s -->\n```%s\n(.*?)\n```" % (re.escape(marker), lang), text, re.S)
    return m.group(1) + "\n" if m else None


work = tempfile.mkdtemp(prefix="rr_drivers.")
try:
    code = block("python", "test/drivers.py runs this block: psycopg2")
    if not code:
        print("  FAIL  docs/drivers.md has no python block marked \"test/drivers.py runs this block: psycopg2\"")
        sys.exit(1)
    snippet_path = os.path.join(work, "readme_psycopg2.py")
    with open(snippet_path, "w") as f:
        f.write(code)
    print("  ok    docs/drivers.md's psycopg2 block extracted (%d lines)" % code.count("\n"))
    if psql("postgres", "-c", "DROP DATABASE IF EXISTS " + DB, "-c", "CREATE DATABASE " + DB).returncode \
            or psql(DB, stdin=SETUP).returncode:
        sys.exit(1)
    os.environ["PGDATABASE"] = DB

    spec = importlib.util.spec_from_file_location("readme_psycopg2", snippet_path)
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

    # node-postgres, where node and its pg module are installed (not by default).
    has_pg = shutil.which("node") and subprocess.run(["node", "-e", "require('pg')"], capture_output=True).returncode == 0
    if not has_pg:
        print("  skip  node-postgres: node or its pg module is not installed")
    else:
        js = block("js", "test/drivers.py runs this block: node-postgres")
        if not js:
            print("  FAIL  docs/drivers.md has no js block marked \"test/drivers.py runs this block: node-postgres\"")
            fails += 1
        else:
            js_path = os.path.join(work, "readme_node_postgres.js")
            with open(js_path, "w") as f:
                f.write(js + "\n" + open("test/drivers_node.js").read())
            print("  ok    docs/drivers.md's node-postgres block extracted (%d lines)" % js.count("\n"))
            fails += subprocess.run(["node", js_path]).returncode != 0
finally:
    psql("postgres", "-c", "DROP DATABASE IF EXISTS " + DB)
    shutil.rmtree(work)

print("  drivers checks %s" % ("failed" if fails else "passed"))
sys.exit(1 if fails else 0)
