#!/usr/bin/env bash
# test/upgrade.sh - ALTER EXTENSION refund_rules UPDATE gives exactly what a
# fresh CREATE EXTENSION gives.
#
# The versions come from the server (pg_available_extension_versions and
# pg_extension_update_paths), so the test follows the releases by itself:
# every installable version from which an update path leads to the default
# version is installed in one database, updated, and its catalog compared
# with a fresh install in another database. Today that is 1.0 updated to 1.1
# against a fresh 1.1.
#
# Compared: every member function (pg_get_functiondef: arguments, defaults,
# result, language, volatility, strictness, parallel safety, cost, rows,
# support function, security, settings, body/symbol; plus its ACL and
# comment), every member type (kind, attributes in order, enum labels in
# order, ACL, comment), pg_describe_object of every pg_depend member, the
# extension row (version, schema, relocatable, config tables) and the
# schema's ACL. Before the update a table with a CHECK constraint and a
# trigger that use the extension is created; after it they must still work.
#
# Also: the repository's control file and update scripts match what the
# server has installed. Needs PGHOST/PGPORT/PGUSER of a cluster with the
# extension installed (scripts/test.sh sets them). Exit 0 when all pass.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
export PATH=$RR_PGBIN:$PATH
DB_OLD=regress_rr_upgrade_old
DB_NEW=regress_rr_upgrade_fresh
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rr-upgrade.XXXXXX")
fails=0
ok() { printf '  ok    %s\n' "$*"; }
bad() { printf '  FAIL  %s\n' "$*"; fails=$((fails + 1)); }

psqlx() { PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "$@"; }
q() { psqlx -At -d "${DB:-postgres}" -c "$1"; }

cleanup() {
	psqlx -d postgres -c "DROP DATABASE IF EXISTS $DB_OLD" -c "DROP DATABASE IF EXISTS $DB_NEW" \
		>/dev/null 2>&1
	[ -n "${RR_KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

# The catalog of the extension, one sorted line per fact, no OIDs.
CATALOG_SQL=$(
	cat <<'SQL'
SET search_path = '';
WITH ext AS (SELECT * FROM pg_catalog.pg_extension WHERE extname = 'refund_rules'),
members AS (
  SELECT d.classid, d.objid FROM pg_catalog.pg_depend d, ext
   WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
     AND d.refobjid = ext.oid AND d.deptype = 'e'),
facts AS (
  SELECT 'extension ' || e.extname || ' version=' || e.extversion
         || ' schema=' || e.extnamespace::pg_catalog.regnamespace::pg_catalog.text
         || ' relocatable=' || e.extrelocatable
         || ' config=' || COALESCE(e.extconfig::pg_catalog.regclass[]::pg_catalog.text, '-')
         || ' condition=' || COALESCE(e.extcondition::pg_catalog.text, '-')
         || ' comment=' || COALESCE(pg_catalog.obj_description(e.oid, 'pg_extension'), '-') AS fact
    FROM ext e
  UNION ALL
  SELECT 'schema ' || n.nspname || ' acl=' || COALESCE(n.nspacl::pg_catalog.text, 'default')
    FROM pg_catalog.pg_namespace n, ext WHERE n.oid = ext.extnamespace
  UNION ALL
  SELECT 'member ' || pg_catalog.pg_describe_object(m.classid, m.objid, 0) FROM members m
  UNION ALL
  SELECT 'function ' || p.oid::pg_catalog.regprocedure::pg_catalog.text
         || ' acl=' || COALESCE(p.proacl::pg_catalog.text, 'default')
         || ' leakproof=' || p.proleakproof
         || ' comment=' || COALESCE(pg_catalog.obj_description(p.oid, 'pg_proc'), '-')
         || E'\n' || pg_catalog.pg_get_functiondef(p.oid)
    FROM members m JOIN pg_catalog.pg_proc p ON p.oid = m.objid
   WHERE m.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
  UNION ALL
  SELECT 'type ' || t.oid::pg_catalog.regtype::pg_catalog.text
         || ' typtype=' || t.typtype::pg_catalog.text || ' category=' || t.typcategory::pg_catalog.text
         || ' len=' || t.typlen || ' byval=' || t.typbyval || ' align=' || t.typalign::pg_catalog.text
         || ' storage=' || t.typstorage::pg_catalog.text || ' notnull=' || t.typnotnull
         || ' base=' || pg_catalog.format_type(t.typbasetype, t.typtypmod)
         || ' collation=' || COALESCE(NULLIF(t.typcollation, 0)::pg_catalog.regcollation::pg_catalog.text, '-')
         || ' default=' || COALESCE(t.typdefault, '-')
         || ' acl=' || COALESCE(t.typacl::pg_catalog.text, 'default')
         || ' comment=' || COALESCE(pg_catalog.obj_description(t.oid, 'pg_type'), '-')
         || ' labels=' || COALESCE((
              SELECT pg_catalog.string_agg(e.enumlabel::pg_catalog.text, ',' ORDER BY e.enumsortorder)
                FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid), '-')
         || ' attributes=' || COALESCE((
              SELECT pg_catalog.string_agg(a.attname::pg_catalog.text || ' '
                       || pg_catalog.format_type(a.atttypid, a.atttypmod)
                       || COALESCE(' collate ' || NULLIF(a.attcollation, 0)::pg_catalog.regcollation::pg_catalog.text, '')
                       || COALESCE(' comment=' || pg_catalog.col_description(t.typrelid, a.attnum), ''),
                       ', ' ORDER BY a.attnum)
                FROM pg_catalog.pg_attribute a
               WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped), '-')
    FROM members m JOIN pg_catalog.pg_type t ON t.oid = m.objid
   WHERE m.classid = 'pg_catalog.pg_type'::pg_catalog.regclass
  UNION ALL
  SELECT 'operator ' || o.oid::pg_catalog.regoperator::pg_catalog.text
         || ' proc=' || o.oprcode::pg_catalog.regproc::pg_catalog.text
         || ' commutator=' || o.oprcom::pg_catalog.regoper::pg_catalog.text
         || ' negator=' || o.oprnegate::pg_catalog.regoper::pg_catalog.text
         || ' restrict=' || o.oprrest::pg_catalog.regproc::pg_catalog.text
         || ' join=' || o.oprjoin::pg_catalog.regproc::pg_catalog.text
         || ' comment=' || COALESCE(pg_catalog.obj_description(o.oid, 'pg_operator'), '-')
    FROM members m JOIN pg_catalog.pg_operator o ON o.oid = m.objid
   WHERE m.classid = 'pg_catalog.pg_operator'::pg_catalog.regclass
  UNION ALL
  -- What every member depends on (types, the support function, the schema;
  -- for members of other kinds, such as casts or tables, the only check).
  SELECT 'depends ' || pg_catalog.pg_describe_object(m.classid, m.objid, 0) || ' -> '
         || pg_catalog.pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid) || ' (' || d.deptype::pg_catalog.text || ')'
    FROM members m JOIN pg_catalog.pg_depend d ON d.classid = m.classid AND d.objid = m.objid
   WHERE d.deptype <> 'e')
SELECT fact FROM facts ORDER BY fact COLLATE "C";
SQL
)

# Uses of the extension that an update must keep working: a CHECK
# constraint, a trigger, columns of its types.  The trigger judges requests
# at the database's clock: the purchases are placed relative to T0, the
# same moment (this run's start) in both databases, so their answers agree.
T0=$(date -u '+%Y-%m-%d %H:%M:%S+00')
USES_SQL=$(
	cat <<'SQL'
SET TimeZone = 'UTC';
CREATE TABLE public.purchases (
    id integer PRIMARY KEY,
    offer refund_rules.mpn_offer,
    purchased_at timestamptz,
    benefits_activated boolean,
    product_keys_viewed boolean,
    upgraded_with_gold_discount boolean,
    tax_exempt boolean,
    refunded_at timestamptz,
    CHECK (refunded_at IS NULL OR refund_rules.check_refund(purchases, refunded_at)));
CREATE TABLE public.refund_requests (
    id integer PRIMARY KEY,
    purchase_id integer NOT NULL REFERENCES public.purchases,
    requested_at timestamptz NOT NULL,
    kind refund_rules.refund_kind NOT NULL,
    requested_by_role text NOT NULL);
CREATE TRIGGER refund_requests_policy BEFORE INSERT OR UPDATE ON public.refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
INSERT INTO public.purchases VALUES
  (1, 'gold', timestamptz 'T0' - interval '10 days', false, false, false, true, timestamptz 'T0' - interval '1 day'),
  (2, 'silver', timestamptz 'T0' - interval '10 days', false, false, true, true, NULL);
INSERT INTO public.refund_requests VALUES (1, 1, now(), 'purchase', 'account_admin');
SQL
)
USES_SQL=${USES_SQL//T0/$T0}

# After the update: the valid uses still pass, the invalid ones still fail
# with 23514, and the query functions answer as before.
check_uses() {
	local db=$1 out
	if out=$(DB=$db q "UPDATE public.purchases SET refunded_at = now() WHERE id = 1 RETURNING id" 2>&1) &&
		[ "$out" = 1 ]; then
		ok "$db: CHECK constraint still accepts an allowed refund"
	else
		bad "$db: CHECK constraint rejects an allowed refund: $out"
	fi
	out=$(DB=$db q "DO \$\$ BEGIN UPDATE public.purchases SET refunded_at = now() WHERE id = 2;
		RAISE EXCEPTION 'accepted'; EXCEPTION WHEN check_violation THEN RAISE WARNING 'rejected %', SQLSTATE; END \$\$" 2>&1)
	case $out in
	*"rejected 23514"*) ok "$db: CHECK constraint still rejects a forbidden refund (23514)" ;;
	*) bad "$db: CHECK constraint on a forbidden refund: $out" ;;
	esac
	out=$(DB=$db q "DO \$\$ BEGIN INSERT INTO public.refund_requests VALUES (2, 2, now(), 'purchase', 'account_admin');
		RAISE EXCEPTION 'accepted'; EXCEPTION WHEN check_violation THEN RAISE WARNING 'rejected %', SQLSTATE; END \$\$" 2>&1)
	case $out in
	*"rejected 23514"*) ok "$db: trigger still rejects a forbidden refund request (23514)" ;;
	*) bad "$db: trigger on a forbidden refund request: $out" ;;
	esac
	if out=$(DB=$db q "INSERT INTO public.refund_requests VALUES (3, 1, now(), 'tax', 'mpn_partner_admin') RETURNING id" 2>&1) &&
		[ "$out" = 3 ]; then
		ok "$db: trigger still accepts an allowed refund request"
	else
		bad "$db: trigger rejects an allowed refund request: $out"
	fi
}

ANSWERS_SQL="SET TimeZone = 'UTC';
SELECT p.id, refund_rules.refund_eligible(p, '$T0'), refund_rules.tax_refund_eligible(p, '$T0'),
       refund_rules.refund_ineligibility_reasons(p, '$T0'),
       refund_rules.refund_ineligibility_reasons(p, '$T0', 'tax'), s.*
  FROM public.purchases p CROSS JOIN LATERAL refund_rules.refund_status(p, '$T0') s ORDER BY p.id"

echo "upgrade test on ${PGHOST:-local}:${PGPORT:-5432}"

# --- the versions, from the server and from the repository ------------------
default_version=$(q "SELECT default_version FROM pg_available_extensions WHERE name = 'refund_rules'")
if [ -z "$default_version" ]; then
	bad "refund_rules is not installed on the server"
	exit 1
fi
repo_default=$(sed -n "s/^[[:space:]]*default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" refund_rules.control)
if [ "$repo_default" = "$default_version" ]; then
	ok "default_version $default_version (server) = refund_rules.control"
else
	bad "server default_version '$default_version' but refund_rules.control says '$repo_default'"
fi
versions=$(q "SELECT version FROM pg_available_extension_versions WHERE name = 'refund_rules' ORDER BY version")
echo "  installable versions: $(printf '%s' "$versions" | tr '\n' ' ')"
# Every update script in the repository is an edge the server knows.
for f in refund_rules--*--*.sql; do
	[ -e "$f" ] || continue
	edge=${f#refund_rules--}
	edge=${edge%.sql}
	from=${edge%%--*}
	to=${edge#*--}
	path=$(q "SELECT path FROM pg_extension_update_paths('refund_rules') WHERE source = '$from' AND target = '$to'")
	if [ "$path" = "$from--$to" ]; then
		ok "update script $f is installed ($from -> $to)"
	else
		bad "update script $f: server path from $from to $to is '${path:-none}'"
	fi
done
# Every installable version other than the default has an update path to it.
sources=$(q "SELECT source FROM pg_extension_update_paths('refund_rules')
             WHERE target = '$default_version' AND path IS NOT NULL ORDER BY source")
for v in $versions; do
	[ "$v" = "$default_version" ] && continue
	if printf '%s\n' "$sources" | grep -qxF -- "$v"; then
		ok "version $v has an update path to $default_version"
	else
		bad "version $v has no update path to $default_version"
	fi
done
if [ -z "$sources" ]; then
	sources=$default_version
	echo "  only $default_version is released: comparing $default_version updated in place (a no-op) with a fresh install"
fi

# --- the fresh install --------------------------------------------------------
psqlx -d postgres -c "DROP DATABASE IF EXISTS $DB_NEW" -c "CREATE DATABASE $DB_NEW" >/dev/null || exit 1
DB=$DB_NEW q "CREATE EXTENSION refund_rules" >/dev/null || exit 1
DB=$DB_NEW q "$CATALOG_SQL" >"$WORK/fresh.txt" || exit 1
DB=$DB_NEW q "$USES_SQL" >/dev/null || exit 1
DB=$DB_NEW q "$ANSWERS_SQL" >"$WORK/fresh-answers.txt" || exit 1
nfunc=$(grep -c '^function ' "$WORK/fresh.txt")
ntype=$(grep -c '^type ' "$WORK/fresh.txt")
nmember=$(grep -c '^member ' "$WORK/fresh.txt")
echo "  fresh $default_version: $nmember members ($nfunc functions, $ntype types), $(wc -l <"$WORK/fresh.txt") catalog lines"
if [ "$nfunc" -eq 0 ] || [ "$ntype" -eq 0 ]; then bad "the catalog query found no functions or types"; fi

# --- the comparison can fail: each change, rolled back, shows in the catalog ----
mutations=(
	"ALTER FUNCTION refund_rules.refund_deadline(timestamptz) VOLATILE"
	"ALTER FUNCTION refund_rules.refund_deadline(timestamptz) CALLED ON NULL INPUT"
	"ALTER FUNCTION refund_rules.refund_eligible(record, timestamptz) PARALLEL RESTRICTED"
	"ALTER FUNCTION refund_rules.refund_eligible(record, timestamptz) COST 7"
	"COMMENT ON FUNCTION refund_rules.refund_eligible(record, timestamptz) IS 'changed'"
	"REVOKE EXECUTE ON FUNCTION refund_rules.refund_deadline(timestamptz) FROM PUBLIC"
	"REVOKE USAGE ON SCHEMA refund_rules FROM PUBLIC"
	"COMMENT ON TYPE refund_rules.mpn_offer IS 'changed'"
	"ALTER TYPE refund_rules.mpn_offer ADD VALUE 'platinum'"
	"ALTER TYPE refund_rules.refund_kind RENAME VALUE 'tax' TO 'taxes'"
	"ALTER TYPE refund_rules.purchase ADD ATTRIBUTE extra integer"
	"ALTER EXTENSION refund_rules DROP FUNCTION refund_rules.refund_deadline(timestamptz)"
)
nseen=0
for m in "${mutations[@]}"; do
	if ! psqlx -At -d "$DB_NEW" -c BEGIN -c "$m" -c "$CATALOG_SQL" -c ROLLBACK \
		>"$WORK/mutated.txt" 2>"$WORK/mutated.err" ||
		! [ -s "$WORK/mutated.txt" ]; then
		bad "could not try the change: $m: $(cat "$WORK/mutated.err")"
	elif cmp -s "$WORK/fresh.txt" "$WORK/mutated.txt"; then
		bad "the catalog comparison misses: $m"
	else
		nseen=$((nseen + 1))
	fi
done
[ "$nseen" -eq "${#mutations[@]}" ] &&
	ok "the catalog comparison sees each of ${#mutations[@]} deliberate changes (volatility, strictness, parallel safety, cost, comments, ACLs, enum labels, attributes, membership)"
DB=$DB_NEW q "$CATALOG_SQL" | cmp -s "$WORK/fresh.txt" - || bad "the fresh database changed while trying the changes"

# --- each old version, updated ------------------------------------------------
for v in $sources; do
	psqlx -d postgres -c "DROP DATABASE IF EXISTS $DB_OLD" -c "CREATE DATABASE $DB_OLD" >/dev/null || exit 1
	if ! DB=$DB_OLD q "CREATE EXTENSION refund_rules VERSION '$v'" >/dev/null; then
		bad "CREATE EXTENSION refund_rules VERSION '$v'"
		continue
	fi
	if ! DB=$DB_OLD q "$USES_SQL" >/dev/null; then
		bad "$v: creating the table, CHECK constraint and trigger that use it"
		continue
	fi
	if [ "$v" = 1.0 ]; then
		# A database made with the 1.0 release names the column forms' C
		# functions as 1.0's library did ("_refund_eligible"); this
		# library has them without the underscore.  Until the update, the
		# planner support leaves calls unrewritten, so queries still work.
		DB=$DB_OLD q "UPDATE pg_proc SET prosrc = proname WHERE proname IN
			('_refund_eligible', '_tax_refund_eligible', '_refund_ineligibility_reasons', '_refund_status')
			AND pronamespace = 'refund_rules'::regnamespace" >/dev/null
		out=$(DB=$DB_OLD q "SET TimeZone = 'UTC';
			EXPLAIN (COSTS OFF) SELECT count(*) FROM public.purchases p WHERE refund_rules.refund_eligible(p, '$T0');
			SELECT count(*) FROM public.purchases p WHERE refund_rules.refund_eligible(p, '$T0')" 2>&1)
		case $out in
		*"_refund_eligible"*) bad "1.0 catalog with this library: the call was rewritten into a function it cannot load: $out" ;;
		*"refund_eligible(p"*1) ok "1.0 catalog with this library: the call is left as it is, and answers (1 eligible)" ;;
		*) bad "1.0 catalog with this library: $out" ;;
		esac
	fi
	if DB=$DB_OLD q "ALTER EXTENSION refund_rules UPDATE" >/dev/null 2>"$WORK/update.err"; then
		ok "$v: ALTER EXTENSION refund_rules UPDATE"
	else
		bad "$v: ALTER EXTENSION refund_rules UPDATE: $(cat "$WORK/update.err")"
		continue
	fi
	now=$(DB=$DB_OLD q "SELECT extversion FROM pg_extension WHERE extname = 'refund_rules'")
	if [ "$now" = "$default_version" ]; then
		ok "$v: now at version $now"
	else
		bad "$v: at version '$now' after the update, expected $default_version"
	fi
	DB=$DB_OLD q "$CATALOG_SQL" >"$WORK/updated-$v.txt" || exit 1
	if diff -u "$WORK/fresh.txt" "$WORK/updated-$v.txt" >"$WORK/diff-$v.txt"; then
		ok "$v -> $default_version: catalog identical to a fresh $default_version ($(wc -l <"$WORK/fresh.txt") lines)"
	else
		bad "$v -> $default_version: catalog differs from a fresh install (- fresh, + updated):"
		sed 's/^/        /' "$WORK/diff-$v.txt"
	fi
	DB=$DB_OLD q "$ANSWERS_SQL" >"$WORK/updated-answers-$v.txt" || exit 1
	if cmp -s "$WORK/fresh-answers.txt" "$WORK/updated-answers-$v.txt"; then
		ok "$v -> $default_version: same answers on the same rows"
	else
		bad "$v -> $default_version: answers differ"
		diff -u "$WORK/fresh-answers.txt" "$WORK/updated-answers-$v.txt" | sed 's/^/        /'
	fi
	check_uses "$DB_OLD"
done

echo "upgrade test: $fails failure(s)"
[ "$fails" -eq 0 ]
