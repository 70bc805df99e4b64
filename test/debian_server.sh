#!/usr/bin/env bash
# shellcheck disable=SC2015 # ok and bad always succeed
# test/debian_server.sh - the README's "against a server you already run"
# block works on a server set up the way Debian sets one up.
#
# As root: a throwaway cluster from pg_createcluster (as Debian's own 15/main:
# owned by postgres, peer authentication on the socket in /var/run/postgresql),
# on port 54361 and without TCP; checks that peer authentication is on. Then,
# in a root-owned copy of the tree (mode 700), runs with bash -e the sh block
# README.md marks "test/debian_server.sh runs this block", its first line
# "port=5432" given the test cluster's port. Checks: the block succeeds, both
# installcheck suites passed, no "could not change directory", the extension
# is in the database postgres, the installed refund_rules.so is the block's.
# The cluster and the copies are removed at the end. Exit status 0 when every
# check passes.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

PORT=${RR_DEBIAN_PORT:-54361}
NAME=rr_debian_test_$$
VER=$RR_PG_MAJOR
fails=0
ok() { printf '  ok    %s\n' "$*"; }
bad() { printf '  FAIL  %s\n' "$*" && fails=$((fails + 1)); }
psql_as() { (cd / && runuser -u "$1" -- "$RR_PGBIN/psql" -X -h /var/run/postgresql -p "$PORT" -d postgres -Atc "$2" 2>&1); }

rr_need_root test/debian_server.sh || exit 1
# The block's plain "make" builds for the newest server-dev installed (the
# README says to add PG_CONFIG otherwise): nothing to test with another one.
newest=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/pg_config' | sort -V | tail -n 1)
if [ "$newest" != "$RR_PG_CONFIG" ]; then
	echo "  skip  the README block builds with the newest pg_config ($newest), not $RR_PG_CONFIG"
	exit 0
fi

work=$(mktemp -d /tmp/rr_debian_server.XXXXXX) && chmod 700 "$work" || exit 2
created=0
cleanup() {
	if [ "$created" -eq 1 ]; then
		(cd / && pg_dropcluster --stop "$VER" "$NAME") || echo "  could not drop cluster $VER/$NAME"
		rm -rf "/etc/postgresql/$VER/$NAME" # left because of conf.d/no_tcp.conf
	fi
	rm -rf "$work"
}
trap cleanup EXIT

block=$work/readme-block.sh
sed -n '/<!-- test\/debian_server.sh runs this block -->/,/^```$/p' README.md | sed '1,2d;$d' >"$block"
if ! head -n 1 "$block" | grep -qE '^port=5432([[:space:]]|$)'; then
	bad "README.md has no marked sh block starting with port=5432" && exit 1
fi
sed -i "1s/^port=5432/port=$PORT/" "$block"
ok "README block extracted ($(wc -l <"$block") lines; port=5432 becomes port=$PORT)"

if [ -e "/var/run/postgresql/.s.PGSQL.$PORT" ]; then bad "port $PORT is taken" && exit 1; fi
created=1
if (cd / && pg_createcluster "$VER" "$NAME" -p "$PORT" --start-conf=manual &&
	echo "listen_addresses = ''" >"/etc/postgresql/$VER/$NAME/conf.d/no_tcp.conf" &&
	pg_ctlcluster "$VER" "$NAME" start) >"$work/createcluster.log" 2>&1; then
	ok "pg_createcluster $VER $NAME -p $PORT; started (peer authentication, no TCP)"
else
	bad "pg_createcluster $VER $NAME:" && rr_indent <"$work/createcluster.log" && exit 1
fi
out=$(PGUSER=postgres psql_as nobody 'SELECT 1')
case $out in
*"Peer authentication failed"*) ok "peer authentication: OS user nobody may not connect as postgres" ;;
*) bad "OS user nobody connecting as postgres was not refused by peer authentication: $out" ;;
esac

tree=$work/refund_rules
rr_copy_tree "$tree"
echo "  the README block in $tree (owner $(id -un), mode 700):"
rr_indent <"$block"
if (cd "$tree" && bash -e "$block") 2>&1 </dev/null | tee "$work/block.log" | rr_indent; then
	ok "the README block ran (exit status 0)"
else
	bad "the README block failed"
	# bash -e stopped before the block's last line removed its copy
	find /tmp -maxdepth 1 -user postgres -name 'tmp.*' -newer "$block" | while read -r d; do
		cat "$d"/regression.diffs "$d"/output_iso/regression.diffs 2>/dev/null | head -n 60 | rr_indent
		rm -rf "$d"
	done
fi
n=$(grep -cE '^[#[:space:]]*All [0-9]+ tests passed' "$work/block.log")
[ "$n" -eq 2 ] && ok "make installcheck: both suites passed" || bad "make installcheck: $n of 2 suites passed"
! grep -q 'could not change directory' "$work/block.log" && ok 'no "could not change directory"' ||
	bad 'a command printed "could not change directory"'
ver=$(psql_as postgres "SELECT extversion FROM pg_extension WHERE extname = 'refund_rules'")
[ "$ver" = "$(sed -n "s/^default_version = '\(.*\)'/\1/p" refund_rules.control)" ] &&
	ok "refund_rules $ver is in the database postgres" || bad "refund_rules is not in the database postgres ($ver)"
rr_so_installed_is "$tree/refund_rules.so" >/dev/null && ok "installed refund_rules.so is the block's" ||
	bad "installed refund_rules.so is not the block's"

[ "$fails" -eq 0 ] && echo "  debian_server checks passed" || { echo "  $fails check(s) failed" && exit 1; }
