# shellcheck shell=bash
# scripts/lib.sh - what the refund_rules scripts share. Source it: . scripts/lib.sh
#
#   rr_need_root WHAT       say why WHAT stops, unless this is root
#   rr_install_deps         apt-get install the Debian packages the project needs,
#                           when any is missing (apt's output: $RR_TMP/logs/apt.log)
#   rr_build_install        make clean, make, make install
#   rr_so_installed_is F    true when the installed refund_rules.so is a copy of F
#   rr_copy_tree DEST       the project's files (git's list: tracked or new, not
#                           ignored; without git, all but .git) into DEST
#   rr_indent               four spaces before each line of stdin, as it comes
#
# The scripts install packages and the extension: they run as root (sudo bash
# scripts/...), and run PostgreSQL as the postgres OS user. Throwaway clusters
# come from pg_virtualenv and PostgreSQL::Test::Cluster.
#
# Environment: RR_PG_MAJOR, the PostgreSQL major version (default: the newest
# server installed, else the one Debian's "postgresql" package or this Debian
# release gives); RR_TMP, where logs, packages and the test copy go
# (default /tmp/refund_rules).

rr_detect_pg_major() {
	local v
	v=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' 2>/dev/null |
		cut -d/ -f5 | sort -n | tail -n 1)
	[ -n "$v" ] || v=$(apt-cache depends postgresql 2>/dev/null |
		sed -n 's/^ *Depends: postgresql-\([0-9]*\)$/\1/p' | sort -n | tail -n 1)
	[ -n "$v" ] || case $(. /etc/os-release 2>/dev/null && echo "${VERSION_ID:-}") in
	12) v=15 ;;
	13) v=17 ;;
	esac
	printf '%s\n' "$v"
}

RR_PG_MAJOR=${RR_PG_MAJOR:-$(rr_detect_pg_major)}
RR_PGBIN=/usr/lib/postgresql/$RR_PG_MAJOR/bin
RR_PG_CONFIG=$RR_PGBIN/pg_config
RR_TMP=${RR_TMP:-/tmp/refund_rules}
# Debian's Python, the one python3-psycopg2 installs into.
RR_PYTHON=/usr/bin/python3
export RR_PG_MAJOR RR_PGBIN RR_PG_CONFIG RR_TMP RR_PYTHON
# (postgresql-NN provides postgresql-contrib-NN)
RR_DEPS=("postgresql-$RR_PG_MAJOR" "postgresql-server-dev-$RR_PG_MAJOR" build-essential
	cppcheck debhelper dpkg-dev libipc-run-perl postgresql-common postgresql-server-dev-all
	python3 python3-psycopg2 sudo)

rr_need_root() {
	[ "$(id -u)" -eq 0 ] && return 0
	echo "refund_rules: $1 installs packages and the extension: run it as root (sudo bash $1)" >&2
	return 1
}

rr_install_deps() {
	local missing=() pkg log=$RR_TMP/logs/apt.log
	for pkg in "${RR_DEPS[@]}"; do
		dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q ' installed$' || missing+=("$pkg")
	done
	[ "${#missing[@]}" -gt 0 ] || { echo "    deps: all present (${RR_DEPS[*]})"; return 0; }
	echo "    deps: installing ${missing[*]} (apt's output: $log)"
	mkdir -p "${log%/*}"
	if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends -o Dpkg::Options::=--force-confold "${missing[@]}"; } >"$log" 2>&1; then
		tail -n 20 "$log"
		return 1
	fi
}

rr_build_install() {
	make PG_CONFIG="$RR_PG_CONFIG" clean && make PG_CONFIG="$RR_PG_CONFIG" &&
		make PG_CONFIG="$RR_PG_CONFIG" install
}

rr_so_installed_is() {
	local inst want got
	inst=$("$RR_PG_CONFIG" --pkglibdir)/refund_rules.so
	want=$(sha256sum <"$1" 2>/dev/null | cut -c1-64)
	got=$(sha256sum <"$inst" 2>/dev/null | cut -c1-64)
	if [ -n "$want" ] && [ "$want" = "$got" ]; then
		echo "installed $inst is $1 (sha256 ${got:0:12})"
	else
		echo "installed $inst (sha256 ${got:-missing}) is NOT $1 (sha256 ${want:-missing})"
		return 1
	fi
}

rr_copy_tree() {
	mkdir -p "$1" || return 1
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git ls-files -z --cached --others --exclude-standard |
			while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
			tar --null -T - -cf - | tar -xf - -C "$1"
	else
		tar --exclude=.git -cf - . | tar -xf - -C "$1"
	fi
}

rr_indent() { sed -u 's/^/    /'; }
