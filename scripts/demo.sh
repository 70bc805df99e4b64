#!/usr/bin/env bash
# scripts/demo.sh - see refund_rules at work in one command.
#
#   sudo bash scripts/demo.sh         install what is missing, build and install
#                                     the extension, then in a throwaway cluster
#                                     (pg_virtualenv) load scripts/sample.sql and
#                                     print a refund report as of 2026-11-25 12:00
#                                     UTC (scripts/demo.sql)
#   sudo bash scripts/demo.sh --keep  the same, then a shell in that cluster
#                                     (PGHOST etc. set: run psql); the cluster
#                                     goes when the shell exits
#
# As root (apt-get, make install); the cluster runs as postgres.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

keep=0
case ${1:-} in
'') ;;
--keep) keep=1 ;;
--stop) echo "nothing to stop: the --keep cluster goes when its shell exits"; exit 0 ;;
*) echo "usage: sudo bash scripts/demo.sh [--keep]" >&2; exit 2 ;;
esac

rr_need_root scripts/demo.sh || exit 1
echo "== installing dependencies"
rr_install_deps
echo "== building and installing refund_rules"
mkdir -p "$RR_TMP/logs"
rr_build_install >"$RR_TMP/logs/demo-build.log" 2>&1 || { cat "$RR_TMP/logs/demo-build.log" >&2; exit 1; }
echo "== a throwaway cluster: pg_virtualenv"
# as postgres (PostgreSQL refuses root), from a folder it may read
dir=$(mktemp -d) && cp scripts/sample.sql scripts/demo.sql "$dir" && chmod -R a+rX "$dir"
# shellcheck disable=SC2016 # expanded by the inner shell
run=(env -C "$dir" pg_virtualenv -v "$RR_PG_MAJOR" sh -c '
	psql -X -q -v ON_ERROR_STOP=1 -c "CREATE EXTENSION refund_rules" -f sample.sql &&
	psql -X -q -v ON_ERROR_STOP=1 -v as_of="2026-11-25 12:00+00" -f demo.sql &&
	if [ "$0" = 1 ]; then echo "== a shell in the cluster (exit to remove it)"; ${SHELL:-sh}; fi' "$keep")
runuser -u postgres -- "${run[@]}"
rm -rf "$dir"
