# shellcheck shell=bash
# scripts/lib.sh - shared helpers for the refund_rules scripts and shell tests.
#
# Source it, do not run it:   . scripts/lib.sh
#
# It sets no shell options of its own (the caller decides on set -e etc.);
# every function returns non-zero on failure instead.
#
#   rr_install_deps            install the Debian packages the project needs
#   rr_build_install           make clean, make, make install (PostgreSQL RR_PG_MAJOR)
#   rr_start_cluster NAME PORT throwaway cluster; exports PGHOST PGPORT PGUSER PGDATABASE
#   rr_stop_cluster NAME       stop it and remove its folder
#   rr_stop_all                stop every cluster this shell started (for traps)
#
# Environment: RR_TMP is where clusters, logs and packages go (default
# /tmp/refund_rules, or /tmp/refund_rules-USER when not root). RR_PG_MAJOR is
# the PostgreSQL major version to build and test against (default: what
# rr_detect_pg_major finds).

# rr_detect_pg_major: the PostgreSQL major version this machine has: the
# newest installed server, else the one Debian's "postgresql" package
# installs here (apt's lists, else the release's default). Prints nothing
# when none is known.
rr_detect_pg_major() {
	local v
	v=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' 2>/dev/null |
		sed 's|^/usr/lib/postgresql/\([0-9][0-9]*\)/bin/postgres$|\1|' | grep -E '^[0-9]+$' | sort -n | tail -n 1)
	if [ -z "$v" ] && command -v apt-cache >/dev/null 2>&1; then
		v=$(apt-cache depends postgresql 2>/dev/null |
			sed -n 's/^ *Depends: postgresql-\([0-9][0-9]*\)$/\1/p' | sort -n | tail -n 1)
	fi
	if [ -z "$v" ] && [ -r /etc/os-release ]; then
		case $(. /etc/os-release && echo "${ID:-}:${VERSION_ID:-}") in
		debian:12) v=15 ;;
		debian:13) v=17 ;;
		esac
	fi
	printf '%s\n' "$v"
}

RR_PG_MAJOR=${RR_PG_MAJOR:-$(rr_detect_pg_major)}
if [ -z "$RR_PG_MAJOR" ]; then
	printf '%s\n' "refund_rules: cannot tell the PostgreSQL version (none installed, no apt candidate); set RR_PG_MAJOR" >&2
	RR_PG_MAJOR=unknown
fi
RR_PGBIN=/usr/lib/postgresql/${RR_PG_MAJOR}/bin
RR_PG_CONFIG=${RR_PGBIN}/pg_config
if [ "$(id -u)" -eq 0 ]; then
	RR_TMP=${RR_TMP:-/tmp/refund_rules}
else
	RR_TMP=${RR_TMP:-/tmp/refund_rules-$(id -un)}
fi
RR_DEPS=(
	"postgresql-${RR_PG_MAJOR}"
	"postgresql-server-dev-${RR_PG_MAJOR}"
	"postgresql-contrib-${RR_PG_MAJOR}"
	build-essential
	cppcheck
	debhelper
	dpkg-dev
	postgresql-server-dev-all
	python3
)
# Names of the clusters started by this shell, for rr_stop_all.
RR_CLUSTERS=${RR_CLUSTERS:-}
export RR_PG_MAJOR RR_PGBIN RR_PG_CONFIG RR_TMP

rr_log() { printf '%s\n' "$*" >&2; }

rr_is_root() { [ "$(id -u)" -eq 0 ]; }

# rr_as_root CMD...: run CMD as root (directly when we are root, else via sudo).
rr_as_root() {
	if rr_is_root; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo -n "$@" 2>/dev/null || sudo "$@"
	else
		rr_log "refund_rules: need root for: $*  (not root and no sudo)"
		return 1
	fi
}

# rr_pkg_present PKG: true when PKG is installed, or when an installed package
# provides it (postgresql-contrib-NN is a virtual package of postgresql-NN).
rr_pkg_present() {
	local pkg=$1
	if dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
		return 0
	fi
	dpkg-query -W -f='${Status}\t${Provides}\n' 2>/dev/null |
		grep '^install ok installed' |
		cut -f2 | tr ',' '\n' | sed 's/^ *//; s/ .*$//' |
		grep -qx -- "$pkg"
}

# rr_install_deps: install whatever of RR_DEPS is missing (apt-get update once,
# and only when something is missing).
rr_install_deps() {
	local missing=() pkg
	for pkg in "${RR_DEPS[@]}"; do
		rr_pkg_present "$pkg" || missing+=("$pkg")
	done
	if [ "${#missing[@]}" -eq 0 ]; then
		rr_log "deps: all present (${RR_DEPS[*]})"
		return 0
	fi
	rr_log "deps: installing ${missing[*]}"
	rr_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q || return 1
	rr_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends -o Dpkg::Options::=--force-confdef \
		-o Dpkg::Options::=--force-confold "${missing[@]}" || return 1
	for pkg in "${missing[@]}"; do
		rr_pkg_present "$pkg" || { rr_log "deps: $pkg still missing"; return 1; }
	done
}

# rr_make ARGS...: make with the pg_config of PostgreSQL RR_PG_MAJOR.
rr_make() { make PG_CONFIG="$RR_PG_CONFIG" "$@"; }

# rr_build_install: clean build of the extension and install it.
rr_build_install() {
	rr_make clean &&
		rr_make &&
		rr_as_root make PG_CONFIG="$RR_PG_CONFIG" install
}

# rr_cluster_dir NAME: the folder of cluster NAME.
rr_cluster_dir() { printf '%s/%s\n' "$RR_TMP" "$1"; }

# rr_as_pg CMD...: run CMD as the cluster's owner (postgres when we are root).
rr_as_pg() {
	if rr_is_root; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# rr_start_cluster NAME PORT: initdb + start a throwaway cluster in
# $RR_TMP/NAME, reachable only through a Unix socket in that folder.
rr_start_cluster() {
	local name=${1:?rr_start_cluster NAME PORT} port=${2:?rr_start_cluster NAME PORT}
	local dir
	dir=$(rr_cluster_dir "$name")
	rr_stop_cluster "$name" >/dev/null 2>&1

	mkdir -p "$RR_TMP" "$dir" || return 1
	RR_CLUSTERS="$RR_CLUSTERS $name" # so that rr_stop_all removes it, started or not
	chmod 755 "$RR_TMP" 2>/dev/null
	if rr_is_root; then
		chown postgres:postgres "$dir" || return 1
	fi
	chmod 700 "$dir"
	rr_as_pg "$RR_PGBIN/initdb" -D "$dir/data" --auth=trust -U postgres \
		--no-sync -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 || {
		rr_log "initdb failed for cluster $name:"
		cat "$dir/initdb.log" >&2
		return 1
	}
	rr_as_pg tee -a "$dir/data/postgresql.conf" >/dev/null <<-EOF

		# refund_rules throwaway cluster
		listen_addresses = ''
		unix_socket_directories = '$dir'
		port = $port
		fsync = off
		synchronous_commit = off
		full_page_writes = off
		max_prepared_transactions = 10
		log_min_messages = warning
		log_line_prefix = '%m [%p] '
	EOF
	if ! rr_as_pg "$RR_PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" \
		-w -t 60 start >/dev/null; then
		rr_log "cluster $name did not start; server log $dir/server.log:"
		cat "$dir/server.log" >&2
		return 1
	fi
	export PGHOST=$dir PGPORT=$port PGUSER=postgres PGDATABASE=postgres
	rr_log "cluster $name: socket $dir port $port, log $dir/server.log"
}

# rr_cluster_log NAME: path of the server log of cluster NAME.
rr_cluster_log() { printf '%s/server.log\n' "$(rr_cluster_dir "$1")"; }

# rr_restart_cluster NAME: restart (e.g. to load a freshly installed library).
rr_restart_cluster() {
	local dir
	dir=$(rr_cluster_dir "${1:?rr_restart_cluster NAME}")
	rr_as_pg "$RR_PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" \
		-m fast -w -t 60 restart >/dev/null || {
		rr_log "cluster $1 did not restart; server log:"
		cat "$dir/server.log" >&2
		return 1
	}
}

# rr_stop_cluster NAME: stop cluster NAME (if running) and remove its folder.
rr_stop_cluster() {
	local name=${1:?rr_stop_cluster NAME} dir
	dir=$(rr_cluster_dir "$name")
	if [ -f "$dir/data/postmaster.pid" ]; then
		rr_as_pg "$RR_PGBIN/pg_ctl" -D "$dir/data" -m immediate -w -t 60 stop >/dev/null 2>&1 ||
			rr_log "could not stop cluster $name"
	fi
	rm -rf "$dir"
	local n keep=
	for n in $RR_CLUSTERS; do
		[ "$n" = "$name" ] || keep="$keep $n"
	done
	RR_CLUSTERS=$keep
	return 0
}

# rr_stop_all: stop every cluster started by this shell; quiet, never fails.
rr_stop_all() {
	local name
	for name in $RR_CLUSTERS; do
		rr_stop_cluster "$name" >/dev/null 2>&1
	done
	return 0
}
