# shellcheck shell=bash
# shellcheck disable=SC2034 # RR_MATRIX_CHROOT is read by scripts/test.sh's cleanup
# scripts/matrix.sh - the version matrix of scripts/test.sh: the whole run
# again on other PostgreSQL versions, each in a throwaway Debian chroot.
#
# Sourced by scripts/test.sh (which defines pass, fail, check, step, LOGDIR
# and the counters); not a script of its own.
#
#   rr_matrix_run     for each MAJOR:SUITE of RR_MATRIX (default
#                     "17:trixie 18:sid"): create a chroot of SUITE under
#                     RR_CHROOT_DIR, copy this repository (and RR_SHARED,
#                     default ../shared beside it, when it exists)
#                     in, run scripts/test.sh MAJOR inside, fold its counts
#                     and failed checks into this run's, remove the chroot
#                     (also when anything failed or the run is interrupted)
#   rr_matrix_record  one line of the per-version summary
#
# A version whose chroot cannot be made counts as one failed check.

RR_MATRIX=${RR_MATRIX:-17:trixie 18:sid}
RR_CHROOT_DIR=${RR_CHROOT_DIR:-/var/tmp/refund_rules-chroots}
# The project's shared folder (a git worktree elsewhere: set RR_SHARED).
RR_SHARED=${RR_SHARED:-$(dirname "$PWD")/shared}
# The longest one version may take inside its chroot, set-up included.
RR_MATRIX_TIMEOUT=${RR_MATRIX_TIMEOUT:-2700}
matrix_summary=
# The chroot in use, for scripts/test.sh's cleanup when the run is stopped.
RR_MATRIX_CHROOT=

# rr_matrix_duration SECONDS: "7m05s"
rr_matrix_duration() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# rr_matrix_record LABEL PASSED FAILED STARTED: remember one version's line.
rr_matrix_record() {
	local took=$(($(date +%s) - $4))
	matrix_summary+=$(printf '  %-24s %4d passed, %3d failed  %s' "$1:" "$2" "$3" \
		"$(rr_matrix_duration "$took")")$'\n'
}

# rr_matrix_one MAJOR SUITE: one version in its chroot.
rr_matrix_one() {
	local major=$1 suite=$2 label="pg$1" dir result log started rc
	local p0=$passed f0=$failed
	local saved_label=$LABEL
	started=$(date +%s)
	dir=$RR_CHROOT_DIR/$label-$suite-$$
	log=$LOGDIR/$label.log
	result=$dir/work/result
	LABEL=$label
	step "PostgreSQL $major in a Debian $suite chroot ($dir)"

	mkdir -p "$RR_CHROOT_DIR" 2>/dev/null || rr_as_root mkdir -p "$RR_CHROOT_DIR"
	RR_MATRIX_CHROOT=$dir
	if ! check "create the $suite chroot" rr_as_root bash scripts/chroot.sh create "$dir" "$suite"; then
		rr_as_root bash scripts/chroot.sh remove "$dir"
		RR_MATRIX_CHROOT=
		rr_matrix_record "$label ($suite chroot)" $((passed - p0)) $((failed - f0)) "$started"
		LABEL=$saved_label
		return
	fi
	rr_as_root bash scripts/chroot.sh copy "$dir" "$PWD" /work/refund_rules &&
		{ [ ! -d "$RR_SHARED" ] || rr_as_root bash scripts/chroot.sh copy "$dir" "$(cd "$RR_SHARED" && pwd)" /work/shared; }
	check "copy the repository into the chroot" test -f "$dir/work/refund_rules/scripts/test.sh"

	echo "  bash scripts/test.sh $major in the chroot (log: $log)"
	# --foreground: a signal to this run's process group reaches the run in
	# the chroot too; whatever a timeout leaves, the removal ends.
	rr_as_root timeout --foreground "$RR_MATRIX_TIMEOUT" bash scripts/chroot.sh run "$dir" \
		env CI="${CI:-}" RR_RESULT_FILE=/work/result RR_LABEL="$label" \
		bash /work/refund_rules/scripts/test.sh "$major" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	# its logs outlive the chroot
	rm -rf "$LOGDIR/$label-logs"
	cp -r "$dir/tmp/refund_rules/logs" "$LOGDIR/$label-logs" 2>/dev/null

	# Fold the run's counts into ours: its checks were printed as they ran.
	if [ -f "$result" ]; then
		local key value n
		while read -r key value; do
			case $key in
			passed) passed=$((passed + value)) ;;
			failed) failed=$((failed + value)) ;;
			fail) failed_names+=("$value") ;;
			esac
		done <"$result"
		n=$(awk '$1 == "failed" { print $2 }' "$result")
		if [ "$rc" -ne 0 ] && [ "${n:-0}" -eq 0 ]; then
			fail "scripts/test.sh $major exit status $rc, no failed check named"
		fi
	else
		fail "scripts/test.sh $major in the chroot ended without a result (exit status $rc)"
	fi

	check "remove the $suite chroot" rr_as_root bash scripts/chroot.sh remove "$dir"
	RR_MATRIX_CHROOT=
	rr_matrix_record "$label ($suite chroot)" $((passed - p0)) $((failed - f0)) "$started"
	LABEL=$saved_label
}

rr_matrix_run() {
	local entry
	for entry in $RR_MATRIX; do
		case $entry in
		[1-9]*:?*) rr_matrix_one "${entry%%:*}" "${entry#*:}" ;;
		*) fail "RR_MATRIX entry \"$entry\" is not MAJOR:SUITE" ;;
		esac
	done
}
