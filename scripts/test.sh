#!/usr/bin/env bash
# scripts/test.sh - the all-in-one test run of refund_rules on a fresh Debian
# machine: what CI runs (.ci/run). A developer uses PostgreSQL's commands:
#   make installcheck                  against a running server (as a non-root user)
#   pg_virtualenv make installcheck    in a throwaway cluster
#
#   bash scripts/test.sh [MAJOR] [--matrix | --no-matrix]
#
# MAJOR is the PostgreSQL major version to test (default: RR_PG_MAJOR, else
# the one this machine has, see scripts/lib.sh). With --matrix (the default
# when CI=true and no MAJOR is given) the run goes on to every version of
# RR_MATRIX ("MAJOR:SUITE ...", default "17:trixie 18:sid"), each in a
# throwaway Debian chroot (scripts/matrix.sh, scripts/chroot.sh) that runs
# this script with its MAJOR; their checks are counted in the final line.
#
# Each version runs, as root (or a user with passwordless sudo):
#   a. install the Debian packages needed (scripts/lib.sh: rr_install_deps)
#   b. build the Debian package, dpkg -i it, check what it ships (test/package.sh)
#   c. CI's build: PG_CFLAGS='-Wall -Wextra -Werror', PostgreSQL's headers
#      read with -isystem (the warnings are ours only); cppcheck on every *.c
#   d. in a copy of the tree owned by postgres, as postgres: pg_virtualenv
#      (Unix socket only) around make installcheck: pg_regress, isolation,
#      and prove_installcheck for t/*.pl (PostgreSQL::Test::Cluster)
#   e. every test/*.sh but package.sh (README runners, Debian server, Citus)
#   f. the UBSan build installed, d again, no "runtime error" in any server
#      log (pg_virtualenv's and the TAP nodes'); then the normal build again
#
# Counting: each step's check is one; each pg_regress or isolation test is
# one check; each t/*.pl file is one check, passed only when prove says "ok"
# for it (a skipped file fails), whatever the number of its TAP assertions
# (prove's "Files=N, Tests=M" line shows those); each test/*.sh is one check.
# The run goes on after a failure and ends with exactly one line
# "N passed, N failed" (exit status 1 if any failed).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

matrix=
for arg in "$@"; do
	case $arg in
	--matrix) matrix=1 ;;
	--no-matrix) matrix=0 ;;
	[1-9] | [1-9][0-9]) export RR_PG_MAJOR=$arg && matrix=${matrix:-0} ;;
	*)
		sed -n '2,14s/^# \{0,1\}//p' "$0" >&2
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

WARN_CFLAGS='-Wall -Wextra -Werror'
# PostgreSQL's own headers are not -Wextra clean: read them as system headers.
# (-isystem: PostgreSQL's headers; worked out once step a installed them)
warn_cppflags() { printf -- '-isystem %s' "$("$RR_PG_CONFIG" --includedir-server)"; }
UBSAN_CFLAGS="-fsanitize=undefined -fno-sanitize-recover=all -fno-omit-frame-pointer $WARN_CFLAGS"
# The copy of the tree the tests run in (owned by postgres: PostgreSQL
# refuses to run as root) and its socket folder.
SRC=$RR_TMP/src
SOCK=$RR_TMP/socket
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
	for f in "$SRC"/regression.diffs "$SRC"/output_iso/regression.diffs; do
		if [ -s "$f" ]; then
			printf -- '--- %s ---\n' "$f"
			cat "$f"
		fi
	done
}

# copy_tree: the tree's files (not its build products) into SRC, for postgres.
copy_tree() {
	rr_as_root rm -rf "$SRC" && mkdir -p "$SRC" "$SOCK" || return 1
	if git ls-files >/dev/null 2>&1; then
		git ls-files -z --cached --others --exclude-standard |
			while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
			tar --null -T - -cf - | tar -xf - -C "$SRC"
	else
		tar --exclude-vcs --exclude-vcs-ignores -cf - . | tar -xf - -C "$SRC"
	fi
	rr_as_root chown -R postgres "$SRC" "$SOCK"
}

# virtualenv CMD...: CMD as postgres in SRC, in a throwaway cluster of
# pg_virtualenv that listens on a Unix socket in SOCK only.
virtualenv() {
	rr_as_root timeout --foreground "${RR_TIMEOUT:-1800}" runuser -u postgres -- env -C "$SRC" pg_virtualenv -v "$RR_PG_MAJOR" -o 'listen_addresses= ' -o "unix_socket_directories=$SOCK" \
		env PGHOST="$SOCK" "$@"
}

# run_installcheck LOG: pg_virtualenv, then in it make installcheck in three
# parts (so that a failed part does not hide the tests of the next); the
# server log is kept as LOG.server. Output to the screen and LOG.
run_installcheck() {
	local log=$1
	echo "  pg_virtualenv make installcheck (as postgres, in $SRC)"
	: >"$log.server"
	rr_as_root chmod 777 "$log.server"
	# shellcheck disable=SC2016 # expanded by the inner shell
	virtualenv bash -c '
		rc=0
		make installcheck ISOLATION= TAP_TESTS= PG_CONFIG="$1" || rc=1
		make installcheck REGRESS= TAP_TESTS= PG_CONFIG="$1" || rc=1
		make installcheck REGRESS= ISOLATION= PG_CONFIG="$1" || rc=1
		cat "${PG_CLUSTER_CONF_ROOT%/postgresql}"/log/*.log >"$2"
		exit $rc' installcheck "$RR_PG_CONFIG" "$log.server" 2>&1 | tee "$log" |
		rr_indent '    ' '^(SET|DROP DATABASE|CREATE DATABASE|ALTER DATABASE|# Checking port|# Found port)'
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
	local log=$1 suite=regress line name result t
	tap_seen=''
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
		elif [[ $line =~ ^(t/[A-Za-z0-9_.-]+\.pl)[[:space:]]\.+[[:space:]](.*)$ ]]; then
			tap_seen+=" ${BASH_REMATCH[1]}"
			ntests=$((ntests + 1))
			case ${BASH_REMATCH[2]} in
			ok*) pass "tap: ${BASH_REMATCH[1]}" ;;
			*) ntests_failed=$((ntests_failed + 1)); fail "tap: ${BASH_REMATCH[1]} (${BASH_REMATCH[2]:-not ok})" ;;
			esac
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
	# A t/*.pl that prove never reached, or reported over several lines
	# (prove prints "t/x.pl .. " and the verdict after the test's output).
	for t in t/*.pl; do
		[ -e "$t" ] || continue
		case "$tap_seen " in *" $t "*) continue ;; esac
		ntests=$((ntests + 1))
		if grep -qE "^${t//./\\.} \.+ ok" "$log"; then
			pass "tap: $t"
		else
			ntests_failed=$((ntests_failed + 1))
			fail "tap: $t (not ok; see its output above and $SRC/tmp_check/log)"
		fi
	done
}

# installcheck_checks LABEL LOGNAME [count]: run_installcheck in a fresh copy
# of the tree; with "count", every test is one check. On failure the diffs
# are shown. Returns non-zero on failure.
installcheck_checks() {
	local label=$1 log=$LOGDIR/$2.log counting=${3:-} rc
	ntests=0
	ntests_failed=0
	copy_tree || return 1
	run_installcheck "$log"
	rc=$?
	[ "$counting" = count ] && count_tests "$log"
	if [ "$rc" -ne 0 ]; then
		echo "  installcheck failed; diffs:"
		show_diffs | indent
		return 1
	fi
	if [ "$counting" = count ] && [ "$ntests" -eq 0 ]; then
		echo "  make installcheck ran no test"
		return 1
	fi
	return 0
}

# finish: the summary and exactly one line "N passed, N failed"; status 1
# if any failed. A run inside a chroot of the matrix (RR_RESULT_FILE set)
# also writes its counts and failed checks there for the parent run.
finish() {
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
	if ! rr_run_logged "$log" rr_make PG_CFLAGS="$WARN_CFLAGS" PG_CPPFLAGS="$(warn_cppflags)"; then
		indent <"$log"
		return 1
	fi
	if grep -q 'warning:' "$log"; then
		grep -B2 -A4 'warning:' "$log" | indent
		return 1
	fi
	echo "    built with PG_CFLAGS='$WARN_CFLAGS' PG_CPPFLAGS='$(warn_cppflags)': no warnings"
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
		./*.c
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
check "cppcheck *.c" run_cppcheck

# ---------------------------------------------------------------------------
step "d. pg_virtualenv make installcheck against the installed package"
if [ "$so_ok" -eq 1 ]; then
	check "pg_virtualenv make installcheck: exit status 0" installcheck_checks installcheck installcheck count
else
	fail "installcheck not run: the installed refund_rules.so is not the package's (step b)"
fi

# ---------------------------------------------------------------------------
step "e. README runners and other test/*.sh"
for t in test/*.sh; do
	[ -e "$t" ] || continue
	case $t in
	test/package.sh) continue ;; # step b
	test/debian_server.sh) cmd=(rr_as_root timeout --foreground 900 bash "$t") ;; # its own Debian cluster
	*) cmd=(virtualenv bash "$t") ;;
	esac
	echo "  --- $t"
	t0=$SECONDS
	[ -d "$SRC" ] || copy_tree
	"${cmd[@]}" </dev/null 2>&1 | indent
	rc=${PIPESTATUS[0]}
	if [ "$rc" -eq 0 ]; then
		pass "$t" "$((SECONDS - t0)) s"
	else
		fail "$t (exit status $rc)" "$((SECONDS - t0)) s"
	fi
done

# ---------------------------------------------------------------------------
step "f. UBSan build and installcheck"
ubsan_build_install() {
	local log=$LOGDIR/build-ubsan.log
	rr_make clean >/dev/null 2>&1
	: >"$log"
	if ! rr_run_logged "$log" rr_make PG_CFLAGS="$UBSAN_CFLAGS" PG_CPPFLAGS="$(warn_cppflags)" \
		PG_LDFLAGS="$UBSAN_LDFLAGS"; then
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
if check "UBSan build and install" ubsan_build_install; then
	# One check: the individual tests were counted in step d.
	check "ubsan installcheck" installcheck_checks "ubsan installcheck" installcheck-ubsan
	# UBSan prints "runtime error" and (no recovery) ends the backend.
	bad='runtime error|server process .*(terminated by signal|exited with exit code)'
	if cat "$LOGDIR/installcheck-ubsan.log.server" "$SRC"/tmp_check/log/*.log 2>/dev/null |
		grep -E -B1 -A3 "$bad" >"$LOGDIR/ubsan-errors.log"; then
		indent <"$LOGDIR/ubsan-errors.log"
		fail "UBSan: no runtime error in the server logs"
	elif [ -s "$LOGDIR/installcheck-ubsan.log.server" ]; then
		pass "UBSan: no runtime error in the server logs"
	else
		fail "UBSan: no server log to read ($LOGDIR/installcheck-ubsan.log.server)"
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
