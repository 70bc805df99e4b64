#!/usr/bin/env bash
# scripts/demo.sh - see refund_rules at work in one command.
#
#   bash scripts/demo.sh          install, build, report, then stop and remove the cluster
#   bash scripts/demo.sh --keep   the same, but leave the cluster running and print
#                                 how to connect to it (to try the README's SQL)
#   bash scripts/demo.sh --stop   stop and remove a cluster left by --keep
#
# Installs what is missing (needs root or passwordless sudo), builds and
# installs the extension, starts a throwaway cluster "demo" (Unix socket only,
# in $RR_TMP/demo, port $DEMO_PORT or 54350), loads scripts/sample.sql into
# the database "postgres" and prints a refund report as of 2026-11-25 12:00 UTC.
# Every step prints its name and its time.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

DEMO_PORT=${DEMO_PORT:-54350}
AS_OF='2026-11-25 12:00+00'
keep=0
case ${1:-} in
'') ;;
--keep) keep=1 ;;
--stop)
	if [ -f "$(rr_cluster_dir demo)/data/postmaster.pid" ]; then
		rr_stop_cluster demo
		echo "demo cluster stopped and removed ($(rr_cluster_dir demo))"
	else
		echo "no demo cluster running ($(rr_cluster_dir demo))"
	fi
	exit 0
	;;
*)
	echo "usage: bash scripts/demo.sh [--keep | --stop]" >&2
	exit 2
	;;
esac
trap rr_stop_all EXIT

# step NAME: print the step's name, and the time of the step before it.
step_name=''
step_t0=$SECONDS
step_done() {
	[ -z "$step_name" ] || printf -- '-- %s: %d s\n' "$step_name" $((SECONDS - step_t0))
	step_name=''
}
step() {
	step_done
	printf '== %s\n' "$*"
	step_name=$*
	step_t0=$SECONDS
}

rr_need_root "scripts/demo.sh" || exit 1
step "installing dependencies"
rr_install_deps
step "building and installing refund_rules"
mkdir -p "$RR_TMP/logs"
build_log=$RR_TMP/logs/demo-build.log
: >"$build_log"
rr_run_logged "$build_log" rr_build_install || {
	cat "$build_log" >&2
	echo "build failed; its output: $build_log" >&2
	exit 1
}
rr_so_installed_is refund_rules.so || exit 1
step "starting a throwaway cluster"
rr_start_cluster demo "$DEMO_PORT"

psql() { "$RR_PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
step "loading scripts/sample.sql"
psql -c 'CREATE EXTENSION refund_rules'
psql -f scripts/sample.sql

step_done
echo
echo "== refund report as of $AS_OF ($(psql -Atc 'SELECT count(*) FROM purchases') purchases)"
psql -v as_of="$AS_OF" <<'SQL'
SET TimeZone = 'UTC';
\pset footer off

\echo
\echo 'Eligible for a purchase refund:'
SELECT count(*) FILTER (WHERE refund_rules.refund_eligible(p, as_of => :'as_of'))          AS eligible,
       count(*) FILTER (WHERE NOT refund_rules.refund_eligible(p, as_of => :'as_of'))      AS not_eligible,
       count(*) FILTER (WHERE refund_rules.refund_eligible(p, as_of => :'as_of') IS NULL)  AS unknown
FROM purchases p;

\echo 'Why not (purchase refunds):'
SELECT reason, count(*) AS purchases
FROM purchases p,
     unnest(refund_rules.refund_ineligibility_reasons(p, as_of => :'as_of')) AS reason
GROUP BY reason
ORDER BY count(*) DESC, reason;

\echo 'Why not (tax refunds):'
SELECT reason, count(*) AS purchases
FROM purchases p,
     unnest(refund_rules.refund_ineligibility_reasons(p, as_of => :'as_of', kind => 'tax')) AS reason
GROUP BY reason
ORDER BY count(*) DESC, reason;

\echo 'Next refund deadlines:'
SELECT p.id, p.partner, p.offer,
       refund_rules.refund_deadline(p.purchased_at)                        AS deadline,
       refund_rules.refund_deadline(p.purchased_at) - :'as_of'::timestamptz AS time_left
FROM purchases p
WHERE refund_rules.refund_eligible(p, as_of => :'as_of')
ORDER BY deadline, p.id;
SQL


if [ "$keep" -eq 1 ]; then
	trap - EXIT
	log=$(rr_cluster_log demo)
	cat <<-EOF

		== the demo cluster is still running (--keep): the database "postgres" has the
		   extension and the table "purchases" from scripts/sample.sql. Connect with

		    export PGHOST=$PGHOST PGPORT=$PGPORT PGUSER=$PGUSER PGDATABASE=$PGDATABASE
		    psql

		   or in one command:

		    psql -h $PGHOST -p $PGPORT -U $PGUSER $PGDATABASE

		   server log: $log
		   stop and remove it: bash scripts/demo.sh --stop
	EOF
	exit 0
fi
rr_stop_cluster demo
echo "== done in $SECONDS s (cluster stopped and removed; keep it with --keep)"
