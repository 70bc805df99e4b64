#!/usr/bin/env bash
# test/readme_enforcement.sh - the README's enforcement examples run as
# written and give the outcomes their comments promise.
#
# The SQL blocks of "Getting started" (the purchases table) and "Triggers"
# are taken from README.md and run in that order in a fresh database, after
# one purchase (42, benefits activated) is added. Checked: every statement
# runs, the triggers are created (also with requester=session), and
# refund_request_status() answers for purchase 42 as shown. (The Check
# constraints block is test/readme_sql.sh's.) Needs
# PGHOST/PGPORT/PGUSER of a cluster with the extension installed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

DB=regress_rr_readme
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rr-readme.XXXXXX")
fails=0
ok() { printf '  ok    %s\n' "$*"; }
bad() { printf '  FAIL  %s\n' "$*"; fails=$((fails + 1)); }
psqlx() { psql -X -q "$@"; }
cleanup() {
	psqlx -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "DROP ROLE IF EXISTS alice" \
		-c "DROP ROLE IF EXISTS mpn_partner_admins" -c "DROP ROLE IF EXISTS account_admins" >/dev/null 2>&1
	rm -rf "$WORK"
}
trap cleanup EXIT

# The ```sql blocks of one README section (from its "## " heading to the next).
sql_blocks() {
	awk -v section="## $1" '
		$0 == section { inside = 1; next }
		inside && /^## / { inside = 0 }
		inside && /^```sql$/ { code = 1; next }
		inside && code && /^```$/ { code = 0; print ""; next }
		inside && code { print }
	' README.md
}

cleanup
trap cleanup EXIT
mkdir -p "$WORK"
psqlx -d postgres -c "CREATE DATABASE $DB" || exit 1
{
	echo 'SET client_min_messages = warning;'
	sql_blocks 'Getting started' | sed -n '1,/^);$/p'
	echo "INSERT INTO purchases VALUES (42, 'contoso', 'gold', now() - interval '10 days', true, false, false, true);"
	sql_blocks 'Triggers'
} >"$WORK/readme.sql"
grep -c . "$WORK/readme.sql" | sed 's/^/  lines of README SQL run: /'
out=$(psqlx -d "$DB" -v VERBOSITY=default -f "$WORK/readme.sql" 2>&1)
printf '%s\n' "$out" >"$WORK/out.txt"

errors=$(grep -c '^psql:.*ERROR:' "$WORK/out.txt")
if [ "$errors" -eq 0 ]; then ok "every statement runs (no error)"; else
	bad "$errors errors:"; grep -A2 'ERROR:' "$WORK/out.txt" | sed 's/^/        /'; fi
trig=$(psqlx -d "$DB" -At -c "SELECT string_agg(pg_get_triggerdef(oid), '; ' ORDER BY tgname)
	FROM pg_trigger WHERE NOT tgisinternal" 2>&1)
case $trig in
*"TRIGGER enforce_refund_policy "*"requester=session"*) ok "enforce_refund_policy replaced by the session-requester trigger" ;;
*) bad "triggers: $trig" ;;
esac
case $trig in
*"TRIGGER protect_refunded_purchase BEFORE UPDATE ON public.purchases"*) ok "protect_refunded_purchase created on purchases" ;;
*) bad "no protect_refunded_purchase trigger: $trig" ;;
esac
if grep -Eq '^ *f +\| \{benefits_activated\} \| [0-9]{4}-' "$WORK/out.txt"; then
	ok "refund_request_status() for purchase 42: f, {benefits_activated}, a deadline"
else bad "refund_request_status() output:"; grep -A3 'allowed' "$WORK/out.txt" | sed 's/^/        /'; fi

echo "readme_enforcement: $fails failure(s)"
[ "$fails" -eq 0 ]
