#!/usr/bin/env bash
# test/debian_server.sh - the README's "Against a server you already run"
# commands work on a server set up the way Debian sets one up.
#
# It creates a throwaway cluster with pg_createcluster (as Debian's own
# 15/main is made: owned by the postgres OS user, peer authentication on the
# Unix socket in /var/run/postgresql), on port 54361 and without TCP (a file
# in its conf.d), and checks
# that it really is Debian-style (connecting as PGUSER=postgres from another
# OS user is refused by peer authentication). Then it copies the source tree
# into a fresh folder owned by whoever runs this (root: a root-owned tree,
# mode 700) and runs there, with bash -e, the shell block that README.md
# marks "test/debian_server.sh runs this block", exactly as written except
# its first line "port=5432", which gets the test cluster's port. Checks:
# the block succeeds, the extension is in the database postgres, both
# installcheck suites passed, nothing printed "could not change directory",
# and the installed refund_rules.so is the one the block built.
# The cluster and the copies are removed at the end.
#
# Needs root or passwordless sudo, postgresql-common and sudo (the README's
# commands use it). Exit status 0 when every check passes.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

PORT=${RR_DEBIAN_PORT:-54361}
NAME=rr_debian_test_$$
VER=$RR_PG_MAJOR
SOCKDIR=/var/run/postgresql

fails=0
ok() { printf '  ok    %s\n' "$*"; }
bad() {
	printf '  FAIL  %s\n' "$*"
	fails=$((fails + 1))
}

rr_need_root "test/debian_server.sh" || exit 1
for cmd in pg_createcluster pg_dropcluster pg_lsclusters sudo; do
	command -v "$cmd" >/dev/null || {
		bad "$cmd is not installed"
		exit 1
	}
done

# The README block's plain "make" uses Debian's pg_config wrapper, which picks
# the newest installed server-dev: with another, newer PostgreSQL installed
# besides RR_PG_MAJOR, the block would build for that one (the README says to
# add PG_CONFIG then), so there is nothing to test here.
newest=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/pg_config' 2>/dev/null | sort -V | tail -n 1)
if [ "$newest" != "$RR_PG_CONFIG" ]; then
	echo "  skip  the README block builds with the newest pg_config ($newest), not $RR_PG_CONFIG"
	exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/rr_debian_server.XXXXXX") || exit 2
created=0
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	if [ "$created" -eq 1 ]; then
		(cd / && rr_as_root pg_dropcluster --stop "$VER" "$NAME") ||
			echo "  could not drop cluster $VER/$NAME"
		# pg_dropcluster leaves the folder because of conf.d/no_tcp.conf
		rr_as_root rm -rf "/etc/postgresql/$VER/$NAME"
	fi
	rm -rf "$work"
}
trap cleanup EXIT

# --- the README block --------------------------------------------------------
block=$work/readme-block.sh
awk '
	/<!-- test\/debian_server.sh runs this block -->/ { marked = 1; next }
	marked && /^```sh$/ { inblock = 1; next }
	inblock && /^```$/ { exit }
	inblock { print }
' README.md >"$block"
if ! [ -s "$block" ]; then
	bad "README.md has no sh block marked \"test/debian_server.sh runs this block\""
	exit 1
fi
if ! head -n 1 "$block" | grep -qE '^port=5432([[:space:]]|$)'; then
	bad "the README block does not start with port=5432: $(head -n 1 "$block")"
	exit 1
fi
sed -i "1s/^port=5432/port=$PORT/" "$block"
ok "README block extracted ($(wc -l <"$block") lines; port=5432 becomes port=$PORT)"

# --- a Debian-style cluster ----------------------------------------------------
if [ -e "$SOCKDIR/.s.PGSQL.$PORT" ] || pg_lsclusters -h 2>/dev/null | awk '{print $3}' | grep -qx "$PORT"; then
	bad "port $PORT is taken (socket $SOCKDIR/.s.PGSQL.$PORT or a cluster in pg_lsclusters)"
	exit 1
fi
created=1
# As Debian makes a cluster, but no TCP (conf.d is included by Debian's postgresql.conf).
if (cd / && rr_as_root pg_createcluster "$VER" "$NAME" -p "$PORT" --start-conf=manual &&
	echo "listen_addresses = ''" | rr_as_root tee "/etc/postgresql/$VER/$NAME/conf.d/no_tcp.conf" >/dev/null &&
	rr_as_root pg_ctlcluster "$VER" "$NAME" start) >"$work/createcluster.log" 2>&1; then
	ok "pg_createcluster $VER $NAME -p $PORT; pg_ctlcluster start (peer authentication, socket in $SOCKDIR, no TCP)"
else
	bad "pg_createcluster $VER $NAME failed:"
	sed 's/^/        /' "$work/createcluster.log"
	exit 1
fi
# Debian-style: the postgres role is reachable only as the postgres OS user.
if out=$(cd / && rr_as_root runuser -u nobody -- env PGUSER=postgres \
	"$RR_PGBIN/psql" -X -h "$SOCKDIR" -p "$PORT" -d postgres -Atc 'SELECT 1' 2>&1); then
	bad "OS user nobody connected as postgres: not peer authentication ($out)"
else
	case $out in
	*"Peer authentication failed"*) ok "peer authentication: OS user nobody may not connect as postgres" ;;
	*) bad "connecting as nobody failed, but not by peer authentication: $out" ;;
	esac
fi

# --- the README commands, in a copy of the tree owned by whoever runs this ----
tree=$work/refund_rules
mkdir -p "$tree" && chmod 700 "$work" "$tree"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
		tar --null -T - -cf - | tar -xf - -C "$tree"
else
	tar --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
		--exclude=results --exclude=output_iso -cf - . | tar -xf - -C "$tree"
fi
echo "  running the README block in $tree (owner $(id -un), mode 700):"
sed 's/^/        | /' "$block"
(cd "$tree" && bash -e "$block") 2>&1 </dev/null | tee "$work/block.log" | rr_indent '        '
rc=${PIPESTATUS[0]}
if [ "$rc" -eq 0 ]; then
	ok "the README block ran (exit status 0)"
else
	bad "the README block failed (exit status $rc)"
	# bash -e stopped before the block's last line removed its copy.
	find /tmp -maxdepth 1 -user postgres -name 'tmp.*' -newer "$block" 2>/dev/null |
		while IFS= read -r d; do
			for f in "$d/regression.diffs" "$d/output_iso/regression.diffs"; do
				[ -s "$f" ] && { echo "  --- $f"; head -n 60 "$f" | sed 's/^/        /'; }
			done
			(cd / && rr_as_root rm -rf "$d")
		done
fi
npassed=$(grep -cE '^[#[:space:]]*All [0-9]+ tests passed' "$work/block.log")
if [ "$npassed" -eq 2 ]; then
	ok "make installcheck: the regression and the isolation suite passed"
else
	bad "make installcheck: $npassed of 2 suites say \"All N tests passed\""
fi
if grep -q 'could not change directory' "$work/block.log"; then
	bad "a command printed \"could not change directory\""
else
	ok "no \"could not change directory\""
fi
ver=$(cd / && rr_as_root runuser -u postgres -- "$RR_PGBIN/psql" -X -h "$SOCKDIR" -p "$PORT" -d postgres \
	-Atc "SELECT extversion FROM pg_extension WHERE extname = 'refund_rules'" 2>&1)
if [ -n "$ver" ] && [ "$ver" = "$(sed -n "s/^default_version = '\(.*\)'/\1/p" refund_rules.control)" ]; then
	ok "refund_rules $ver is installed in the database postgres"
else
	bad "refund_rules is not installed in the database postgres (got: ${ver:-nothing})"
fi
if rr_so_installed_is "$tree/refund_rules.so" >/dev/null; then
	ok "installed refund_rules.so is the one the README block built"
else
	bad "installed refund_rules.so is not the one the README block built"
fi

if [ "$fails" -eq 0 ]; then
	echo "  debian_server checks passed"
	exit 0
fi
echo "  $fails debian_server check(s) failed"
exit 1
