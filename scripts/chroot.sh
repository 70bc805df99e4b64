#!/usr/bin/env bash
# scripts/chroot.sh - throwaway Debian chroots for the version matrix.
#
# As root, source it (. scripts/chroot.sh, after scripts/lib.sh) or run it:
#   bash scripts/chroot.sh create DIR SUITE | copy DIR SRC DEST | run DIR CMD... | remove DIR
# (scripts/test.sh runs it through rr_as_root, so sudo works too).
#
#   rr_chroot_create DIR SUITE   debootstrap SUITE into DIR (which must not
#                                exist), set it up for the tests, mount /proc,
#                                /dev, /dev/pts and a private /dev/shm
#   rr_chroot_run DIR CMD...     run CMD inside (cwd /, HOME=/root)
#   rr_chroot_copy_in DIR SRC DEST  copy the tree SRC to DIR/DEST (no .git,
#                                no build products)
#   rr_chroot_remove DIR         end what still runs inside, unmount, remove
#
# A chroot is set up so that installing postgresql creates no cluster
# (create_main_cluster = false in postgresql-common's createcluster.d,
# written before anything is installed) and starts no service
# (policy-rc.d). Only the "sid" chroot accepts a Release file past its
# Valid-Until date (unstable's can be, on a machine whose mirror lags).
#
# Environment: RR_MIRROR (default http://deb.debian.org/debian).

RR_MIRROR=${RR_MIRROR:-http://deb.debian.org/debian}

# rr_chroot_mounts DIR: the mount points under DIR, deepest first.
rr_chroot_mounts() {
	local dir
	dir=$(readlink -f "$1") || return 0
	awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts |
		sort -r
}

# rr_chroot_mount DIR: mount what the tests need inside.
rr_chroot_mount() {
	local dir=$1
	mountpoint -q "$dir/proc" || mount -t proc proc "$dir/proc" || return 1
	mountpoint -q "$dir/dev" || mount --bind /dev "$dir/dev" || return 1
	mkdir -p "$dir/dev/pts" "$dir/dev/shm"
	mountpoint -q "$dir/dev/pts" || mount --bind /dev/pts "$dir/dev/pts" || return 1
	# PostgreSQL's dynamic shared memory: a /dev/shm of its own.
	mountpoint -q "$dir/dev/shm" || mount -t tmpfs -o mode=1777 tmpfs "$dir/dev/shm" || return 1
}

# rr_chroot_create DIR SUITE
rr_chroot_create() {
	local dir=${1:?rr_chroot_create DIR SUITE} suite=${2:?rr_chroot_create DIR SUITE}
	if [ -e "$dir" ]; then
		rr_log "chroot: $dir exists already"
		return 1
	fi
	command -v debootstrap >/dev/null 2>&1 ||
		rr_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap ||
		return 1
	mkdir -p "$dir" || return 1
	if ! debootstrap --variant=minbase "$suite" "$dir" "$RR_MIRROR" >"$dir.debootstrap.log" 2>&1; then
		rr_log "chroot: debootstrap $suite failed; last lines of $dir.debootstrap.log:"
		tail -n 30 "$dir.debootstrap.log" >&2
		return 1
	fi
	rm -f "$dir.debootstrap.log"
	cp /etc/resolv.conf "$dir/etc/resolv.conf" 2>/dev/null
	printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
	chmod 755 "$dir/usr/sbin/policy-rc.d"
	# In createcluster.d, which the package's own createcluster.conf includes:
	# that file stays as Debian ships it (conf.d for every cluster, ...).
	mkdir -p "$dir/etc/postgresql-common/createcluster.d"
	printf '# refund_rules chroot: no cluster on install\ncreate_main_cluster = false\n' \
		>"$dir/etc/postgresql-common/createcluster.d/refund-rules.conf"
	printf 'APT::Install-Recommends "false";\n' >"$dir/etc/apt/apt.conf.d/90refund-rules"
	if [ "$suite" = sid ] || [ "$suite" = unstable ]; then
		printf 'Acquire::Check-Valid-Until "false";\n' >"$dir/etc/apt/apt.conf.d/91refund-rules-valid-until"
	fi
	rr_chroot_mount "$dir"
}

# rr_chroot_run DIR CMD...
rr_chroot_run() {
	local dir=${1:?rr_chroot_run DIR CMD...}
	shift
	rr_chroot_mount "$dir" || return 1
	chroot "$dir" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

# rr_chroot_copy_in DIR SRC DEST: the tree SRC as DIR/DEST: the files git
# knows (tracked or new, not ignored) in a git work tree, else everything
# but .git and build products.
rr_chroot_copy_in() {
	local dir=$1 src=$2 dest=$3
	rm -rf "${dir:?}/${dest#/}"
	mkdir -p "$dir/$dest" || return 1
	if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		(cd "$src" && git ls-files -z --cached --others --exclude-standard |
			while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
			tar --null -T - -cf -) | tar -C "$dir/$dest" -xf -
	else
		tar -C "$src" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
			--exclude=results --exclude=output_iso --exclude='regression.*' -cf - . |
			tar -C "$dir/$dest" -xf -
	fi
}

# rr_chroot_remove DIR: end the processes whose root is DIR (only those were
# started in it), unmount everything under DIR, remove it. Refuses to remove
# anything while a mount is left.
rr_chroot_remove() {
	local dir=${1:?rr_chroot_remove DIR} real p pids m tries
	[ -e "$dir" ] || return 0
	real=$(readlink -f "$dir")
	for tries in 1 2 3; do
		pids=()
		for p in /proc/[0-9]*; do
			[ "$(readlink "$p/root" 2>/dev/null)" = "$real" ] && pids+=("${p#/proc/}")
		done
		[ "${#pids[@]}" -eq 0 ] && break
		if [ "$tries" -lt 3 ]; then kill -TERM "${pids[@]}" 2>/dev/null; else kill -KILL "${pids[@]}" 2>/dev/null; fi
		sleep 2
	done
	for m in $(rr_chroot_mounts "$real"); do
		umount "$m" 2>/dev/null || umount -l "$m" || rr_log "chroot: cannot unmount $m"
	done
	if [ -n "$(rr_chroot_mounts "$real")" ]; then
		rr_log "chroot: mounts left under $real, not removing it"
		return 1
	fi
	rm -rf --one-file-system "$real"
}

# Run as a command: the sub-command names the function.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -uo pipefail
	cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
	# shellcheck source=scripts/lib.sh
	. scripts/lib.sh
	cmd=${1:-}
	shift || true
	case $cmd in
	create) rr_chroot_create "$@" ;;
	copy) rr_chroot_copy_in "$@" ;;
	run) rr_chroot_run "$@" ;;
	remove) rr_chroot_remove "$@" ;;
	*)
		echo "usage: $0 create DIR SUITE | copy DIR SRC DEST | run DIR CMD... | remove DIR" >&2
		exit 2
		;;
	esac
fi
