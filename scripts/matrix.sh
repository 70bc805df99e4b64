# shellcheck shell=bash
# scripts/matrix.sh - the version matrix of scripts/test.sh: the whole run again
# on other PostgreSQL versions, each in a throwaway Debian chroot (no other
# repository of PostgreSQL 17 and 18 is reachable from CI). Sourced by
# scripts/test.sh, which defines pass, fail, check, step, LABEL and LOGDIR.
#
#   rr_matrix_run     for each MAJOR:SUITE of RR_MATRIX (default "17:trixie
#                     18:sid"): debootstrap SUITE under RR_CHROOT_DIR, copy this
#                     tree (and RR_SHARED, default ../shared, when it exists)
#                     in, run scripts/test.sh MAJOR inside, fold its counts into
#                     this run's, remove the chroot (also after a failure or an
#                     interrupt)
#   rr_matrix_record  one line of the per-version summary
#
# In a chroot, installing postgresql creates no cluster (createcluster.d) and
# starts no service (policy-rc.d); only sid accepts a Release file past its
# Valid-Until date (a mirror may lag). RR_MIRROR: http://deb.debian.org/debian.

RR_MATRIX=${RR_MATRIX:-17:trixie 18:sid}
RR_CHROOT_DIR=${RR_CHROOT_DIR:-/var/tmp/refund_rules-chroots}
RR_SHARED=${RR_SHARED:-$(dirname "$PWD")/shared}
RR_MIRROR=${RR_MIRROR:-http://deb.debian.org/debian}
matrix_summary=
chroot_dir=
trap '[ -z "$chroot_dir" ] || chroot_remove "$chroot_dir" >/dev/null 2>&1' EXIT
trap 'exit 130' INT TERM

rr_matrix_record() {
	local took=$(($(date +%s) - $4))
	matrix_summary+=$(printf '  %-24s %4d passed, %3d failed  %dm%02ds' "$1:" "$2" "$3" \
		$((took / 60)) $((took % 60)))$'\n'
}

chroot_mount() {
	local d=$1
	mountpoint -q "$d/proc" || mount -t proc proc "$d/proc" || return 1
	mountpoint -q "$d/dev" || mount --bind /dev "$d/dev" || return 1
	mountpoint -q "$d/dev/pts" || mount --bind /dev/pts "$d/dev/pts" || return 1
	# PostgreSQL's dynamic shared memory: a /dev/shm of its own
	mountpoint -q "$d/dev/shm" || mount -t tmpfs -o mode=1777 tmpfs "$d/dev/shm"
}

# chroot_create DIR SUITE
chroot_create() {
	local d=$1 suite=$2
	command -v debootstrap >/dev/null || apt-get install -y -q debootstrap >/dev/null || return 1
	mkdir -p "$d" || return 1
	if ! debootstrap --variant=minbase "$suite" "$d" "$RR_MIRROR" >"$d.log" 2>&1; then
		tail -n 30 "$d.log"
		return 1
	fi
	cp /etc/resolv.conf "$d/etc/resolv.conf"
	printf '#!/bin/sh\nexit 101\n' >"$d/usr/sbin/policy-rc.d" && chmod 755 "$d/usr/sbin/policy-rc.d"
	mkdir -p "$d/etc/postgresql-common/createcluster.d"
	echo 'create_main_cluster = false' >"$d/etc/postgresql-common/createcluster.d/refund-rules.conf"
	echo 'APT::Install-Recommends "false";' >"$d/etc/apt/apt.conf.d/90refund-rules"
	[ "$suite" != sid ] || echo 'Acquire::Check-Valid-Until "false";' >"$d/etc/apt/apt.conf.d/91refund-rules"
	chroot_mount "$d"
}

# chroot_remove DIR: end what runs inside, unmount everything under it, remove it.
chroot_remove() {
	local real p pids tries m
	[ -e "$1" ] || return 0
	real=$(readlink -f "$1")
	for tries in TERM TERM KILL; do
		pids=()
		for p in /proc/[0-9]*; do
			[ "$(readlink "$p/root" 2>/dev/null)" != "$real" ] || pids+=("${p#/proc/}")
		done
		[ "${#pids[@]}" -gt 0 ] || break
		kill "-$tries" "${pids[@]}" 2>/dev/null
		sleep 2
	done
	mounts() { awk -v d="$real" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts | sort -r; }
	for m in $(mounts); do umount "$m" 2>/dev/null || umount -l "$m"; done
	[ -z "$(mounts)" ] || { echo "    mounts left under $real, not removing it"; return 1; }
	rm -rf --one-file-system "$real" "$real.log"
}

# matrix_one MAJOR SUITE: one version in its chroot.
matrix_one() {
	local major=$1 suite=$2 result rc p0=$passed f0=$failed saved=$LABEL started key value
	started=$(date +%s)
	LABEL=pg$major
	chroot_dir=$RR_CHROOT_DIR/$LABEL-$suite-$$
	result=$chroot_dir/work/result
	step "PostgreSQL $major in a Debian $suite chroot ($chroot_dir)"
	if check "create the $suite chroot" chroot_create "$chroot_dir" "$suite"; then
		(rr_copy_tree "$chroot_dir/work/refund_rules") &&
			{ [ ! -d "$RR_SHARED" ] || (cd "$RR_SHARED" && rr_copy_tree "$chroot_dir/work/shared"); }
		check "copy the repository into the chroot" test -f "$chroot_dir/work/refund_rules/scripts/test.sh"
		echo "  bash scripts/test.sh $major in the chroot (log: $LOGDIR/$LABEL.log)"
		timeout --foreground "${RR_MATRIX_TIMEOUT:-2700}" chroot "$chroot_dir" /usr/bin/env -i HOME=/root \
			LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			CI="${CI:-}" RR_RESULT_FILE=/work/result RR_LABEL="$LABEL" \
			bash /work/refund_rules/scripts/test.sh "$major" 2>&1 | tee "$LOGDIR/$LABEL.log"
		rc=${PIPESTATUS[0]}
		rm -rf "$LOGDIR/$LABEL-logs" && cp -r "$chroot_dir/tmp/refund_rules/logs" "$LOGDIR/$LABEL-logs" 2>/dev/null
		# its checks were printed as they ran: fold in the counts
		if [ -f "$result" ]; then
			while read -r key value; do
				case $key in
				passed) passed=$((passed + value)) ;;
				failed) failed=$((failed + value)) ;;
				fail) failed_names+=("$value") ;;
				esac
			done <"$result"
			[ "$rc" -eq 0 ] || [ "$failed" -gt "$f0" ] || fail "scripts/test.sh $major: exit status $rc, no failed check"
		else
			fail "scripts/test.sh $major in the chroot ended without a result (exit status $rc)"
		fi
	fi
	check "remove the $suite chroot" chroot_remove "$chroot_dir"
	chroot_dir=
	rr_matrix_record "$LABEL ($suite chroot)" $((passed - p0)) $((failed - f0)) "$started"
	LABEL=$saved
}

rr_matrix_run() {
	local entry
	for entry in $RR_MATRIX; do
		case $entry in
		[1-9]*:?*) matrix_one "${entry%%:*}" "${entry#*:}" ;;
		*) fail "RR_MATRIX entry \"$entry\" is not MAJOR:SUITE" ;;
		esac
	done
}
