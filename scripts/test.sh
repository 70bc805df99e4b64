#!/usr/bin/env bash
# scripts/test.sh - everything CI runs (.ci/run), on a fresh Debian machine, as root:
#
#   sudo bash scripts/test.sh [MAJOR] [--matrix | --no-matrix]
#
# A developer uses PostgreSQL's own commands instead (docs/testing.md):
#   make installcheck                  against a running server
#   pg_virtualenv make installcheck    in a throwaway cluster
#
# On PostgreSQL MAJOR (default: RR_PG_MAJOR, else this machine's, see
# scripts/lib.sh), as root:
#   a. install the Debian packages needed
#   b. build the Debian package, dpkg -i it, check what it ships (test/package.sh)
#   c. CI's build: PG_CFLAGS='-Wall -Wextra -Werror' (PostgreSQL's headers read
#      with -isystem: the warnings are ours only); cppcheck on every *.c
#   d. as postgres, in a copy of the tree: pg_virtualenv (Unix socket only)
#      around make installcheck: pg_regress, isolation, and prove_installcheck
#      for t/*.pl (PostgreSQL::Test::Cluster)
#   e. every test/*.sh and test/*.py but package.sh, in the same way
#   f. an UBSan build installed, d again, no "runtime error" in any server log;
#      then the normal build again
# With --matrix (the default when CI=true and no MAJOR is given) the run goes
# on to each MAJOR:SUITE of RR_MATRIX ("17:trixie 18:sid"), in a throwaway
# Debian chroot that runs this script (scripts/matrix.sh).
#
# Each step, each pg_regress or isolation test and each t/*.pl is one check (a
# t/*.pl that skips, as t/citus.pl without Citus, is shown and not counted).
# The run goes on after a failure and ends with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

matrix=
for arg in "$@"; do
	case $arg in
	--matrix) matrix=1 ;;
	--no-matrix) matrix=0 ;;
	[1-9] | [1-9][0-9]) export RR_PG_MAJOR=$arg && matrix=${matrix:-0} ;;
	*) sed -n '2,9s/^# \{0,1\}//p' "$0" >&2 && exit 2 ;;
	esac
done
[ -n "$matrix" ] || { [ "${CI:-}" = true ] && matrix=1; } || matrix=0

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
export PATH="$RR_PGBIN:$PATH"
LABEL=${RR_LABEL:-pg$RR_PG_MAJOR}
WARN_CFLAGS='-Wall -Wextra -Werror'
UBSAN_CFLAGS="-fsanitize=undefined -fno-sanitize-recover=all -fno-omit-frame-pointer $WARN_CFLAGS"
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
SRC=$RR_TMP/src # the copy of the tree the tests run in, owned by postgres
SOCK=$RR_TMP/socket
LOGDIR=$RR_TMP/logs

passed=0
failed=0
failed_names=()
pass() {
	passed=$((passed + 1))
	printf '  PASS  [%s] %s%s\n' "$LABEL" "$1" "${2:+ ($2)}"
}
fail() {
	failed=$((failed + 1))
	failed_names+=("[$LABEL] $1")
	printf '  FAIL  [%s] %s%s\n' "$LABEL" "$1" "${2:+ ($2)}"
}
# check NAME CMD...: one check, timed.
check() {
	local name=$1 t0=$SECONDS
	shift
	if "$@"; then pass "$name" "$((SECONDS - t0)) s"; else fail "$name" "$((SECONDS - t0)) s"; fi
}
step_t0=$SECONDS
step() {
	printf '\n=== [%s] %s === (%d s so far)\n' "$LABEL" "$*" $((SECONDS - step_t0))
}

# finish: the failed checks and one line "N passed, N failed"; a run in a
# chroot of the matrix (RR_RESULT_FILE set) writes its counts there too.
finish() {
	echo
	[ "$failed" -eq 0 ] || printf 'Failed:\n%s\n' "$(printf '  %s\n' "${failed_names[@]}")"
	echo "Logs: $LOGDIR; total time $SECONDS s"
	if [ -n "${RR_RESULT_FILE:-}" ]; then
		{
			printf 'passed %s\nfailed %s\n' "$passed" "$failed"
			[ "$failed" -eq 0 ] || printf 'fail %s\n' "${failed_names[@]}"
		} >"$RR_RESULT_FILE"
		echo "[$LABEL] $passed passed, $failed failed"
	else
		printf '%s' "${matrix_summary:-}"
		echo "$passed passed, $failed failed"
	fi
	[ "$failed" -eq 0 ]
}

if ! rr_need_root scripts/test.sh; then
	fail "run as root"
	finish
	exit
fi
mkdir -p "$LOGDIR"

copy_tree() {
	rm -rf "$SRC" && rr_copy_tree "$SRC" && mkdir -p "$SOCK" && chown -R postgres "$SRC" "$SOCK"
}
# virtualenv CMD...: CMD as postgres in SRC, in a throwaway cluster of
# pg_virtualenv listening on a Unix socket in SOCK only.
virtualenv() {
	timeout --foreground "${RR_TIMEOUT:-1800}" runuser -u postgres -- env -C "$SRC" \
		pg_virtualenv -v "$RR_PG_MAJOR" -o 'listen_addresses= ' -o "unix_socket_directories=$SOCK" \
		env PGHOST="$SOCK" "$@"
}

# installcheck LOG: in a fresh copy of the tree, make installcheck in
# pg_virtualenv, in three parts (a failed part does not hide the next one's
# tests); the server log is kept as LOG.server. Shows the diffs of a failure.
installcheck() {
	local log=$1 rc f
	copy_tree || return 1
	: >"$log.server" && chmod 666 "$log.server"
	# shellcheck disable=SC2016 # expanded by the inner shell
	virtualenv bash -c '
		rc=0
		make installcheck ISOLATION= TAP_TESTS= PG_CONFIG="$1" || rc=1
		make installcheck REGRESS= TAP_TESTS= PG_CONFIG="$1" || rc=1
		make installcheck REGRESS= ISOLATION= PG_CONFIG="$1" || rc=1
		cat "${PG_CLUSTER_CONF_ROOT%/postgresql}"/log/*.log >"$2"
		exit $rc' installcheck "$RR_PG_CONFIG" "$log.server" 2>&1 | tee "$log" |
		grep --line-buffered -vE '^(SET|(DROP|CREATE|ALTER) DATABASE|# (Checking|Found) port)' | rr_indent
	rc=${PIPESTATUS[0]}
	for f in "$SRC"/regression.diffs "$SRC"/output_iso/regression.diffs; do
		[ ! -s "$f" ] || { echo "--- $f" && rr_indent <"$f"; }
	done
	return "$rc"
}

# count_tests LOG: one check per test that pg_regress and pg_isolation_regress
# report (15: "test foo ... ok", 16 on: "ok 1 - foo"), and per t/*.pl
# ("t/foo.pl .. ok" from prove).
count_tests() {
	local line t suite=regress n=0
	local re15='^(test +| +)([A-Za-z0-9_.+-]+) +\.\.\. +(.*)$'
	local re16='^(not )?ok +[0-9]+ +[-+] +([A-Za-z0-9_.+-]+)'
	while IFS= read -r line; do
		[[ $line != *pg_isolation_regress* ]] || suite=isolation
		if [[ $line =~ $re16 ]]; then
			if [ -z "${BASH_REMATCH[1]}" ]; then pass "$suite: ${BASH_REMATCH[2]}"; else fail "$suite: ${BASH_REMATCH[2]}"; fi
		elif [[ $line =~ $re15 ]]; then
			case ${BASH_REMATCH[3]} in
			ok* | "failed (ignored)"*) pass "$suite: ${BASH_REMATCH[2]}" ;;
			*) fail "$suite: ${BASH_REMATCH[2]} (${BASH_REMATCH[3]:0:60})" ;;
			esac
		else
			continue
		fi
		n=$((n + 1))
	done <"$1"
	for t in t/*.pl; do
		line=$(grep -E "^${t//./\\.} \.+ (ok|skipped)" "$1" | tail -n 1)
		case $line in
		*" ok"*) pass "tap: $t" ;;
		*skipped*) printf '  SKIP  [%s] tap: %s (%s; not counted)\n' "$LABEL" "$t" "${line#*skipped: }" ;;
		*) fail "tap: $t (see its output above and $SRC/tmp_check/log)" ;;
		esac
		n=$((n + 1))
	done
	[ "$n" -gt 0 ] || fail "make installcheck ran no test"
}

if [ "$matrix" -eq 1 ]; then
	# shellcheck source=scripts/matrix.sh
	. scripts/matrix.sh
	if [ "${RR_MATRIX_HOST:-1}" = 0 ]; then
		rr_matrix_run
		finish
		exit
	fi
fi
host_started=$(date +%s)

step "a. dependencies"
check "install dependencies" rr_install_deps

step "b. Debian package (build, dpkg -i, dpkg -L)"
check "debian package" bash test/package.sh
# The library the tests load must be the package's.
deb=$(find "$RR_TMP/pkg" -maxdepth 1 -name "postgresql-$RR_PG_MAJOR-refund-rules_*.deb" 2>/dev/null | head -n 1)
so_ok=0
if [ -n "$deb" ] && dpkg-deb --fsys-tarfile "$deb" | tar -xOf - --wildcards '*/refund_rules.so' >"$RR_TMP/pkg/deb.so" &&
	rr_so_installed_is "$RR_TMP/pkg/deb.so" | rr_indent; then
	so_ok=1
	pass "installed refund_rules.so is the package's"
else
	fail "installed refund_rules.so is the package's"
fi

step "c. warning-free build and cppcheck"
# build LOG MAKEARGS...: make clean, then make with MAKEARGS; no warning.
build() {
	local log=$LOGDIR/$1
	shift
	make PG_CONFIG="$RR_PG_CONFIG" clean >/dev/null 2>&1
	if ! make PG_CONFIG="$RR_PG_CONFIG" PG_CPPFLAGS="-isystem $("$RR_PG_CONFIG" --includedir-server)" "$@" >"$log" 2>&1 ||
		grep -q 'warning:' "$log"; then
		rr_indent <"$log"
		return 1
	fi
	echo "    built with $*: no warnings"
}
check "make PG_CFLAGS='$WARN_CFLAGS'" build build-warnings.log PG_CFLAGS="$WARN_CFLAGS"

run_cppcheck() {
	local level=() log=$LOGDIR/cppcheck.log rc
	# every branch analysed where cppcheck can (2.11 on)
	cppcheck --check-level=exhaustive --version >/dev/null 2>&1 && level=(--check-level=exhaustive)
	# One configuration (gcc on Linux x86-64); the PostgreSQL headers' findings are not ours.
	cppcheck "${level[@]}" --error-exitcode=1 --quiet --inline-suppr \
		--enable=warning,performance,portability --std=c99 \
		-I"$("$RR_PG_CONFIG" --includedir-server)" -D__GNUC__=12 -D__x86_64__ -D__linux__ \
		--suppress=missingIncludeSystem --suppress=toomanyconfigs --suppress='*:/usr/include/*' \
		./*.c >"$log" 2>&1
	rc=$?
	rr_indent <"$log"
	# cppcheck 2.17 exits 1 on an "information:" note alone: that is no finding.
	if [ "$rc" -eq 1 ] && ! grep -qE '^[^ ]+:[0-9]+:[0-9]+: (error|warning|style|performance|portability):' "$log"; then
		rc=0
	fi
	[ "$rc" -ne 0 ] || echo "    $(cppcheck --version) ${level[*]}: no findings"
	return "$rc"
}
check "cppcheck *.c" run_cppcheck

step "d. pg_virtualenv make installcheck against the installed package"
if [ "$so_ok" -eq 1 ]; then
	check "pg_virtualenv make installcheck: exit status 0" installcheck "$LOGDIR/installcheck.log"
	count_tests "$LOGDIR/installcheck.log"
else
	fail "installcheck not run: the installed refund_rules.so is not the package's (step b)"
fi

step "e. test/*.sh and test/*.py"
run_cmd() { "${cmd[@]}" </dev/null 2>&1 | rr_indent; }
for t in test/*.sh test/*.py; do
	case $t in
	test/package.sh) continue ;; # step b
	test/debian_server.sh) cmd=(timeout --foreground 900 bash "$t") ;; # its own Debian cluster, as root
	*.py) cmd=(virtualenv "$RR_PYTHON" "$t") ;;
	*) cmd=(virtualenv bash "$t") ;;
	esac
	[ -d "$SRC" ] || copy_tree
	echo "  --- $t"
	check "$t" run_cmd
done

step "f. UBSan build and installcheck"
ubsan_build_install() {
	build build-ubsan.log PG_CFLAGS="$UBSAN_CFLAGS" PG_LDFLAGS=-fsanitize=undefined &&
		{ ldd refund_rules.so | grep -q libubsan || { echo "    not linked with libubsan"; return 1; }; } &&
		make PG_CONFIG="$RR_PG_CONFIG" install >>"$LOGDIR/build-ubsan.log" 2>&1 &&
		rr_so_installed_is refund_rules.so | rr_indent
}
if check "UBSan build and install" ubsan_build_install; then
	# one check: step d counted the tests
	check "ubsan installcheck" installcheck "$LOGDIR/installcheck-ubsan.log"
	# UBSan prints "runtime error" and (no recovery) ends the backend.
	if [ ! -s "$LOGDIR/installcheck-ubsan.log.server" ]; then
		fail "UBSan: no server log to read ($LOGDIR/installcheck-ubsan.log.server)"
	elif cat "$LOGDIR/installcheck-ubsan.log.server" "$SRC"/tmp_check/log/*.log 2>/dev/null |
		grep -E -B1 -A3 'runtime error|server process .*(terminated by signal|exited with exit code)'; then
		fail "UBSan: no runtime error in the server logs"
	else
		pass "UBSan: no runtime error in the server logs"
	fi
fi
restore_build() { rr_build_install >"$LOGDIR/build-restore.log" 2>&1 && rr_so_installed_is refund_rules.so | rr_indent; }
check "restore the normal build (make clean; make; make install)" restore_build

if [ "$matrix" -eq 1 ]; then
	rr_matrix_record "$LABEL (this machine)" "$passed" "$failed" "$host_started"
	rr_matrix_run
fi
finish
