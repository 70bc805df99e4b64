#!/usr/bin/env bash
# scripts/test.sh - the whole test run of refund_rules (what CI runs).
#
#   bash scripts/test.sh [MAJOR] [--matrix | --no-matrix]
#
# MAJOR is the PostgreSQL major version to test (default: RR_PG_MAJOR, else
# the one this machine has, see scripts/lib.sh). With --matrix (the default
# when CI=true and no MAJOR is given) the run goes on, after this machine's
# version, to every version of RR_MATRIX ("MAJOR:SUITE ...", default
# "17:trixie 18:sid"), each in a throwaway Debian chroot of that suite
# (scripts/chroot.sh, under RR_CHROOT_DIR, default /var/tmp/refund_rules-chroots)
# that runs this script with its MAJOR and is removed afterwards; their
# checks are counted in the final line. RR_MATRIX_HOST=0 leaves out this
# machine's own run (then RR_MATRIX may name its version too).
#
# Each version runs:
#   a. install the Debian packages needed (scripts/lib.sh: rr_install_deps)
#   b. build the Debian package and install it with dpkg -i (test/package.sh)
#   c. warning-free build (-Wall -Wextra -Werror) and cppcheck
#   d. throwaway cluster "test" (port 54351), make installcheck against the
#      installed package; every pg_regress / isolation test is one check
#   e. every other test/*.sh, one check each (cwd = repo root, PGHOST etc. set)
#   f. UBSan build installed over it, make installcheck again, server log free
#      of "runtime error"; then the normal build is restored
#
# Every step counts as passed or failed; the run keeps going after a failure and
# ends with exactly one line "N passed, N failed" (exit status 1 if any failed).
# Runs unattended, as root (CI) or as a user with passwordless sudo (from a
# terminal, sudo may ask for the password once, at the start); otherwise it
# stops at once. Every step prints its name and its time; test results
# stream as they come, and a long step says "[still running, N s]".
# Before each installcheck, the installed refund_rules.so must be the one
# just built (sha256), or that installcheck is not run and counts as failed.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

matrix=
for arg in "$@"; do
	case $arg in
	--matrix) matrix=1 ;;
	--no-matrix) matrix=0 ;;
	[1-9] | [1-9][0-9]) export RR_PG_MAJOR=$arg && matrix=${matrix:-0} ;;
	*)
		sed -n '3,15s/^# \{0,1\}//p' "$0" >&2
		exit 2
		;;
	esac
done
[ -n "$matrix" ] || { [ "${CI:-}" = true ] && matrix=1; } || matrix=0

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
export PATH="$RR_PGBIN:$PATH"
# Every check is labelled with the version it runs on.
LABEL=${RR_LABEL:-pg$RR_PG_MAJOR}

TEST_CLUSTER='test'
TEST_PORT=54351
WARN_CFLAGS='-Wall -Wextra -Werror'
UBSAN_CFLAGS="-fsanitize=undefined -fno-sanitize-recover=all -fno-omit-frame-pointer $WARN_CFLAGS"
UBSAN_LDFLAGS='-fsanitize=undefined'
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
LOGDIR=$RR_TMP/logs

passed=0
failed=0
failed_names=()

# pass NAME [TIME] / fail NAME [TIME]: count and print one check.
pass() {
	passed=$((passed + 1))
	printf '  PASS  [%s] %s%s\n' "$LABEL" "$1" "${2:+ ($2)}"
}
fail() {
	failed=$((failed + 1))
	failed_names+=("[$LABEL] $1")
	printf '  FAIL  [%s] %s%s\n' "$LABEL" "$1" "${2:+ ($2)}"
}
# check NAME CMD...: run CMD (output shown as it comes), one check, timed.
check() {
	local name=$1 t0=$SECONDS
	shift
	if "$@"; then
		pass "$name" "$((SECONDS - t0)) s"
	else
		fail "$name" "$((SECONDS - t0)) s"
	fi
}
# step NAME: print the step's name, and the time of the step before it.
step_name=''
step_t0=$SECONDS
step_done() {
	[ -z "$step_name" ] || printf -- '--- [%s] %s: %d s\n' "$LABEL" "$step_name" $((SECONDS - step_t0))
	step_name=''
}
step() {
	step_done
	printf '\n=== [%s] %s ===\n' "$LABEL" "$*"
	step_name=$*
	step_t0=$SECONDS
}
# indent: four spaces before each line, as it comes; "[still running, N s]"
# after 8 s without output.
indent() { rr_indent '    '; }

cleanup() {
	rr_stop_all >/dev/null 2>&1
	# a chroot of the matrix that an interrupted run left (scripts/matrix.sh)
	if [ -n "${RR_MATRIX_CHROOT:-}" ]; then
		rr_as_root bash scripts/chroot.sh remove "$RR_MATRIX_CHROOT" >/dev/null 2>&1
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$LOGDIR"

# Root is needed (dpkg -i, make install): fail now rather than half-way.
if ! rr_need_root "scripts/test.sh"; then
	fail "root or passwordless sudo available"
	echo "$passed passed, $failed failed"
	exit 1
fi

# Show regression.diffs of a failed installcheck.
show_diffs() {
	local f
	for f in regression.diffs output_iso/regression.diffs; do
		if [ -s "$f" ]; then
			printf -- '--- %s ---\n' "$f"
			cat "$f"
		fi
	done
}

# run_installcheck LABEL LOG [MAKE ARGS...]: make installcheck, output to the
# screen and LOG; returns make's status.
run_installcheck() {
	local label=$1 log=$2
	shift 2
	echo "  make installcheck $* ($label)"
	# The log keeps everything; the screen skips pg_regress's database setup.
	# --foreground: in our process group, so that Ctrl-C stops it at once
	# (on expiry, timeout then ends make only, not what make started).
	timeout --foreground 1800 make PG_CONFIG="$RR_PG_CONFIG" installcheck "$@" 2>&1 | tee "$log" |
		rr_indent '    ' '^(SET|DROP DATABASE|CREATE DATABASE|ALTER DATABASE)$'
	return "${PIPESTATUS[0]}"
}

# count_tests LOG: one check per test line of pg_regress / pg_isolation_regress,
# in PostgreSQL 15's format ("test foo ... ok", "     foo ... FAILED",
# "... failed (ignored)"; anything else after "..." is a test that could not
# even be compared: failed) and in the TAP of 16 on ("ok 1 - foo 12 ms",
# "not ok 2 + foo 30 ms", "# SKIP" or "(ignored)" after an ignored failure).
# Adds to ntests and ntests_failed.
ntests=0
ntests_failed=0
count_tests() {
	local log=$1 suite=regress line name result
	while IFS= read -r line; do
		case $line in
		*pg_isolation_regress*) suite=isolation; continue ;;
		esac
		if [[ $line =~ ^(not[[:space:]]+)?ok[[:space:]]+[0-9]+[[:space:]]+[-+][[:space:]]+([A-Za-z0-9_.+-]+)(.*)$ ]]; then
			name=${BASH_REMATCH[2]}
			result=${BASH_REMATCH[3]}
			ntests=$((ntests + 1))
			if [ -z "${BASH_REMATCH[1]}" ]; then
				case $result in
				*"# SKIP"* | *"(ignored)"*) pass "$suite: $name (failure ignored)" ;;
				*) pass "$suite: $name" ;;
				esac
			else
				ntests_failed=$((ntests_failed + 1))
				fail "$suite: $name"
			fi
		elif [[ $line =~ ^(test[[:space:]]+|[[:space:]]+)([A-Za-z0-9_.+-]+)[[:space:]]+\.\.\.[[:space:]]*(.*)$ ]]; then
			name=${BASH_REMATCH[2]}
			result=${BASH_REMATCH[3]}
			ntests=$((ntests + 1))
			case $result in
			ok*) pass "$suite: $name" ;;
			"failed (ignored)"*) pass "$suite: $name (failure ignored)" ;;
			FAILED*)
				ntests_failed=$((ntests_failed + 1))
				fail "$suite: $name"
				;;
			*)
				ntests_failed=$((ntests_failed + 1))
				fail "$suite: $name (${result:0:60})"
				;;
			esac
		fi
	done <"$log"
}

# installcheck_checks LABEL LOGNAME [count]: make installcheck; with "count",
# every test is one check, and a failure that no test line names is one more.
# On failure the diffs are shown. Returns non-zero on failure.
installcheck_checks() {
	local label=$1 log=$LOGDIR/$2.log counting=${3:-} rc nsql nspec
	nsql=$(find sql -maxdepth 1 -name '*.sql' 2>/dev/null | wc -l)
	nspec=$(find specs -maxdepth 1 -name '*.spec' 2>/dev/null | wc -l)
	rm -rf results output_iso regression.diffs regression.out
	ntests=0
	ntests_failed=0
	run_installcheck "$label" "$log"
	rc=$?
	if [ "$rc" -ne 0 ] && [ "$nspec" -gt 0 ] && [ "$nsql" -gt 0 ] &&
		! grep -q pg_isolation_regress "$log"; then
		# pg_regress failed, so make never reached the isolation suite: run it
		# on its own so that every test is counted.
		echo "  (the regression suite failed; running the isolation suite on its own)"
		run_installcheck "$label, isolation only" "$log.iso" REGRESS=
		cat "$log.iso" >>"$log"
		rc=1
	fi
	[ "$counting" = count ] && count_tests "$log"
	if [ "$rc" -ne 0 ]; then
		echo "  installcheck failed; diffs:"
		show_diffs | indent
		if [ "$counting" = count ] && [ "$ntests_failed" -eq 0 ]; then
			fail "$label: make installcheck exit status $rc, no failed test named (see above)"
		fi
		return 1
	fi
	if [ "$counting" = count ] && [ "$ntests" -eq 0 ]; then
		if [ $((nsql + nspec)) -gt 0 ]; then
			fail "$label: make installcheck ran no test"
			return 1
		fi
		pass "$label: CREATE EXTENSION (no tests in sql/ or specs/ yet)"
	fi
	return 0
}

# finish: the summary and exactly one line "N passed, N failed"; status 1
# if any failed. A run inside a chroot of the matrix (RR_RESULT_FILE set)
# also writes its counts and failed checks there for the parent run.
finish() {
	rr_stop_all >/dev/null 2>&1
	echo
	if [ "$failed" -gt 0 ]; then
		echo "Failed:"
		printf '  %s\n' "${failed_names[@]}"
	fi
	echo "Logs: $LOGDIR; total time $SECONDS s"
	if [ -n "${RR_RESULT_FILE:-}" ]; then
		{
			printf 'passed %s\nfailed %s\n' "$passed" "$failed"
			[ "$failed" -eq 0 ] || printf 'fail %s\n' "${failed_names[@]}"
		} >"$RR_RESULT_FILE"
		echo "[$LABEL] $passed passed, $failed failed"
	else
		[ -z "${matrix_summary:-}" ] || printf '%s' "$matrix_summary"
		echo "$passed passed, $failed failed"
	fi
	[ "$failed" -eq 0 ]
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

# ---------------------------------------------------------------------------
step "a. dependencies"
check "install dependencies" rr_install_deps

# ---------------------------------------------------------------------------
step "b. Debian package (build, dpkg -i, dpkg -L)"
check "debian package" bash test/package.sh

# The library the tests below load must be the package's, not an older one.
package_so_installed() {
	local deb so=$RR_TMP/pkg/refund_rules.so.from-deb
	deb=$(find "$RR_TMP/pkg" -maxdepth 1 -name "postgresql-${RR_PG_MAJOR}-refund-rules_*.deb" | head -n 1)
	[ -n "$deb" ] || { echo "    no package in $RR_TMP/pkg"; return 1; }
	dpkg-deb --fsys-tarfile "$deb" | tar -xOf - --wildcards '*/refund_rules.so' >"$so" || return 1
	rr_so_installed_is "$so" | indent
	return "${PIPESTATUS[0]}"
}
so_ok=0
if package_so_installed; then
	so_ok=1
	pass "installed refund_rules.so is the package's"
else
	fail "installed refund_rules.so is the package's"
fi

# ---------------------------------------------------------------------------
step "c. warning-free build and cppcheck"
warning_build() {
	local log=$LOGDIR/build-warnings.log
	rr_make clean >/dev/null 2>&1
	: >"$log"
	if ! rr_run_logged "$log" rr_make PG_CFLAGS="$WARN_CFLAGS"; then
		indent <"$log"
		return 1
	fi
	if grep -q 'warning:' "$log"; then
		grep -B2 -A4 'warning:' "$log" | indent
		return 1
	fi
	echo "    built with PG_CFLAGS='$WARN_CFLAGS': no warnings"
}
check "make PG_CFLAGS='$WARN_CFLAGS'" warning_build

run_cppcheck() {
	local inc out rc level=() findings log=$LOGDIR/cppcheck.log
	inc=$("$RR_PG_CONFIG" --includedir-server)
	# Every branch analysed where cppcheck can (2.11 on; 2.17 otherwise notes
	# "Limiting analysis of branches" and exits 1 on that note alone).
	if cppcheck --check-level=exhaustive --version >/dev/null 2>&1; then
		level=(--check-level=exhaustive)
	fi
	# One configuration (what gcc on Linux x86-64 sees); findings inside the
	# PostgreSQL headers are not ours.
	: >"$log"
	rr_run_logged "$log" cppcheck "${level[@]}" --error-exitcode=1 --quiet --inline-suppr \
		--enable=warning,performance,portability --std=c99 \
		-I"$inc" -D__GNUC__=12 -D__x86_64__ -D__linux__ \
		--suppress=missingIncludeSystem --suppress=toomanyconfigs \
		--suppress='*:/usr/include/*' \
		refund_rules.c
	rc=$?
	out=$(cat "$log")
	if [ -n "$out" ]; then printf '%s\n' "$out" | indent; fi
	# An "information:" note is no finding; anything else that made
	# cppcheck exit 1 is.
	findings=$(grep -cE '^[^ ]+:[0-9]+:[0-9]+: (error|warning|style|performance|portability):' <<<"$out")
	if [ "$rc" -eq 1 ] && [ "$findings" -eq 0 ] && grep -q ': information: ' <<<"$out"; then
		echo "    cppcheck: notes only (exit status 1 for information), no findings"
		return 0
	fi
	if [ "$rc" -eq 0 ]; then echo "    cppcheck $(cppcheck --version | sed 's/^Cppcheck //') ${level[*]}: no findings"; fi
	return "$rc"
}
check "cppcheck refund_rules.c" run_cppcheck

# ---------------------------------------------------------------------------
step "d. make installcheck against the installed package"
cluster_up=0
if rr_start_cluster "$TEST_CLUSTER" "$TEST_PORT"; then
	cluster_up=1
	pass "start cluster $TEST_CLUSTER (port $TEST_PORT)"
else
	fail "start cluster $TEST_CLUSTER (port $TEST_PORT)"
fi
if [ "$cluster_up" -eq 1 ] && [ "$so_ok" -eq 1 ]; then
	installcheck_checks "installcheck" installcheck count
elif [ "$cluster_up" -eq 1 ]; then
	fail "installcheck not run: the installed refund_rules.so is not the package's (step b)"
fi

# ---------------------------------------------------------------------------
step "e. shell tests (test/*.sh)"
nshell=0
for t in test/*.sh; do
	[ -e "$t" ] || continue
	case $t in
	test/package.sh) continue ;; # step b
	esac
	nshell=$((nshell + 1))
	echo "  --- $t"
	t0=$SECONDS
	if [ "$cluster_up" -eq 1 ]; then
		timeout --foreground 900 bash "$t" </dev/null 2>&1 | indent
		rc=${PIPESTATUS[0]}
	else
		echo "    (no cluster)"
		rc=1
	fi
	if [ "$rc" -eq 0 ]; then
		pass "$t" "$((SECONDS - t0)) s"
	else
		fail "$t (exit status $rc)" "$((SECONDS - t0)) s"
	fi
done
[ "$nshell" -gt 0 ] || echo "  (no shell tests besides test/package.sh)"

# ---------------------------------------------------------------------------
step "f. UBSan build and installcheck"
ubsan_build_install() {
	local log=$LOGDIR/build-ubsan.log
	rr_make clean >/dev/null 2>&1
	: >"$log"
	if ! rr_run_logged "$log" rr_make PG_CFLAGS="$UBSAN_CFLAGS" PG_LDFLAGS="$UBSAN_LDFLAGS"; then
		indent <"$log"
		return 1
	fi
	if ! ldd refund_rules.so | grep -q libubsan; then
		echo "    refund_rules.so is not linked with libubsan"
		return 1
	fi
	rr_as_root make PG_CONFIG="$RR_PG_CONFIG" install >>"$log" 2>&1 || { indent <"$log"; return 1; }
	echo "    built with PG_CFLAGS='$UBSAN_CFLAGS' PG_LDFLAGS='$UBSAN_LDFLAGS', installed"
	rr_so_installed_is refund_rules.so 2>&1 | indent
	return "${PIPESTATUS[0]}"
}
ubsan_ok=0
if ubsan_build_install; then
	pass "UBSan build and install"
	if [ "$cluster_up" -eq 1 ]; then
		rr_restart_cluster "$TEST_CLUSTER" && ubsan_ok=1
	else
		rr_start_cluster "$TEST_CLUSTER" "$TEST_PORT" && cluster_up=1 && ubsan_ok=1
	fi
	[ "$ubsan_ok" -eq 1 ] || fail "restart cluster $TEST_CLUSTER for UBSan"
else
	fail "UBSan build and install"
fi
if [ "$ubsan_ok" -eq 1 ]; then
	# One check: the individual tests were counted in step d.
	check "ubsan installcheck" installcheck_checks "ubsan installcheck" installcheck-ubsan
	serverlog=$(rr_cluster_log "$TEST_CLUSTER")
	# UBSan prints "runtime error" and (no recovery) ends the backend.
	bad='runtime error|server process .*(terminated by signal|exited with exit code)'
	if grep -E "$bad" "$serverlog" >"$LOGDIR/ubsan-errors.log"; then
		echo "  server log $serverlog:"
		grep -E -B1 -A3 "$bad" "$serverlog" | indent
		fail "UBSan: no runtime error in the server log"
	else
		pass "UBSan: no runtime error in the server log"
	fi
fi

restore_build() {
	local log=$LOGDIR/build-restore.log
	: >"$log"
	if rr_run_logged "$log" rr_build_install && rr_so_installed_is refund_rules.so | indent; then
		echo "    normal build installed again"
	else
		indent <"$log"
		return 1
	fi
}
check "restore the normal build (make clean; make; make install)" restore_build

# ---------------------------------------------------------------------------
step_done
if [ "$matrix" -eq 1 ]; then
	rr_matrix_record "$LABEL (this machine)" "$passed" "$failed" "$host_started"
	rr_matrix_run
fi
finish
