# shellcheck shell=bash
# scripts/lib.sh - shared helpers for the refund_rules scripts and shell tests.
#
# Source it, do not run it:   . scripts/lib.sh
#
# It sets no shell options of its own (the caller decides on set -e etc.);
# every function returns non-zero on failure instead.
#
#   rr_need_root WHAT          fail early (with why) unless root or sudo -n works
#   rr_install_deps            install the Debian packages the project needs
#                              (apt's output to $RR_TMP/logs/apt.log)
#   rr_build_install           make clean, make, make install (PostgreSQL RR_PG_MAJOR)
#   rr_so_installed_is FILE    is the installed refund_rules.so FILE's copy?
#   rr_run_logged LOG CMD...   CMD's output to LOG, a progress line every 8 s
#   rr_indent                  indent stdin; "[still running, N s]" after 8 s idle
#
# Throwaway clusters come from pg_virtualenv (postgresql-common) and, for the
# TAP tests, from PostgreSQL::Test::Cluster: there is no cluster manager here.
#
# Environment: RR_TMP is where logs, packages and the test copy go (default
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
	libipc-run-perl
	postgresql-common
	postgresql-server-dev-all
	python3
	python3-psycopg2
	sudo
)
# Debian's Python, the one python3-psycopg2 installs into (a python3 of
# pyenv or a virtualenv earlier on PATH has not got it).
RR_PYTHON=/usr/bin/python3
export RR_PYTHON RR_PG_MAJOR RR_PGBIN RR_PG_CONFIG RR_TMP

rr_log() { printf '%s\n' "$*" >&2; }

rr_is_root() { [ "$(id -u)" -eq 0 ]; }

# rr_need_root WHAT: return 0 when we are root or may use sudo without a
# password; with a terminal, sudo may ask for the password once, here. Else
# say why WHAT cannot run and return 1. Call it before the first rr_as_root.
rr_need_root() {
	local what=${1:-this script}
	rr_is_root && return 0
	if command -v sudo >/dev/null 2>&1; then
		sudo -n true 2>/dev/null && return 0
		if [ -t 0 ] && [ -t 2 ]; then
			rr_log "refund_rules: $what needs root; sudo asks for the password of $(id -un) once, now:"
			sudo -v && return 0
		fi
		rr_log "refund_rules: $what needs root, and sudo needs a password (\"sudo -n true\" fails for $(id -un))."
	else
		rr_log "refund_rules: $what needs root, and sudo is not installed."
	fi
	rr_log "refund_rules: run it as root, or as a user with passwordless sudo (or from a terminal, where sudo can ask)."
	return 1
}

# rr_as_root CMD...: run CMD as root (directly when we are root, else with
# sudo -n, which never asks: rr_need_root has made sure it works). CMD runs
# once; its exit status is returned.
rr_as_root() {
	if rr_is_root; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo -n -- "$@"
	else
		rr_log "refund_rules: need root for: $*  (not root and no sudo)"
		return 1
	fi
}

# rr_run_logged LOG CMD...: run CMD with its output (stdout and stderr) added to LOG;
# while it runs, print "... N s: <last line of LOG>" every RR_TICK (8) seconds
# to stderr, so a long step is never silent. Returns CMD's exit status.
rr_run_logged() {
	local log=${1:?rr_run_logged LOG CMD...} pid rc t0=$SECONDS next last
	shift
	"$@" >>"$log" 2>&1 </dev/null &
	pid=$!
	next=$((SECONDS + ${RR_TICK:-8}))
	while kill -0 "$pid" 2>/dev/null; do
		sleep 1
		if [ "$SECONDS" -ge "$next" ] && kill -0 "$pid" 2>/dev/null; then
			last=$(tail -n 1 "$log" 2>/dev/null | tr -d '\r' | cut -c1-72)
			printf '      ... %d s%s\n' $((SECONDS - t0)) "${last:+: $last}" >&2
			next=$((SECONDS + ${RR_TICK:-8}))
		fi
	done
	rc=0
	wait "$pid" || rc=$?
	return "$rc"
}

# rr_indent [PREFIX [SKIP]]: copy stdin to stdout, each line after PREFIX
# (four spaces), as it comes, except lines that match the extended regular
# expression SKIP; after RR_TICK (8) seconds without a line, print the line so
# far (pg_regress's "test foo ... ") and "[still running, N s]", so that a
# long test is never silent. (A filter before it, like grep, would hold back
# the partial line: give it SKIP instead.)
rr_indent() {
	local prefix=${1-    } skip=${2:-} t_line=$SECONDS buf='' line rc
	while :; do
		line=''
		rc=0
		IFS= read -r -t "${RR_TICK:-8}" line || rc=$?
		if [ "$rc" -eq 0 ]; then
			line=$buf$line
			buf=''
			t_line=$SECONDS
			if [ -n "$skip" ] && [[ $line =~ $skip ]]; then continue; fi
			printf '%s%s\n' "$prefix" "$line"
		elif [ "$rc" -gt 128 ]; then
			buf+=$line # a partial line so far
			printf '%s%s[still running, %d s]\n' "$prefix" "${buf:+${buf% } }" $((SECONDS - t_line))
		else
			[ -z "$buf$line" ] || printf '%s%s\n' "$prefix" "$buf$line"
			return 0
		fi
	done
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
# and only when something is missing). apt's output goes to $RR_TMP/logs/apt.log;
# the screen gets one line per apt run (and the log's path on failure).
rr_install_deps() {
	local missing=() pkg log=$RR_TMP/logs/apt.log t0=$SECONDS
	for pkg in "${RR_DEPS[@]}"; do
		rr_pkg_present "$pkg" || missing+=("$pkg")
	done
	if [ "${#missing[@]}" -eq 0 ]; then
		rr_log "deps: all present (${RR_DEPS[*]})"
		return 0
	fi
	mkdir -p "${log%/*}" && : >"$log" || return 1
	rr_log "deps: installing ${missing[*]} (apt's output: $log)"
	if ! rr_run_logged "$log" rr_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q; then
		rr_log "deps: apt-get update failed; its output: $log"
		tail -n 5 "$log" >&2
		return 1
	fi
	if ! rr_run_logged "$log" rr_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends -o Dpkg::Options::=--force-confdef \
		-o Dpkg::Options::=--force-confold "${missing[@]}"; then
		rr_log "deps: apt-get install failed; its output: $log"
		tail -n 5 "$log" >&2
		return 1
	fi
	for pkg in "${missing[@]}"; do
		rr_pkg_present "$pkg" || { rr_log "deps: $pkg still missing; apt's output: $log"; return 1; }
	done
	rr_log "deps: installed ${missing[*]} ($(grep -c '^Setting up ' "$log") packages set up) in $((SECONDS - t0)) s; apt's output: $log"
}

# rr_make ARGS...: make with the pg_config of PostgreSQL RR_PG_MAJOR.
rr_make() { make PG_CONFIG="$RR_PG_CONFIG" "$@"; }

# rr_build_install: clean build of the extension and install it.
rr_build_install() {
	rr_make clean &&
		rr_make &&
		rr_as_root make PG_CONFIG="$RR_PG_CONFIG" install
}

# rr_installed_so: path of the installed refund_rules.so (what the server loads).
rr_installed_so() { printf '%s/refund_rules.so\n' "$("$RR_PG_CONFIG" --pkglibdir)"; }

# rr_so_installed_is FILE: true when the installed refund_rules.so has FILE's
# content (sha256); says which on stdout, and loudly on stderr when not.
rr_so_installed_is() {
	local built=${1:?rr_so_installed_is FILE} inst want got
	inst=$(rr_installed_so)
	want=$(sha256sum <"$built" 2>/dev/null | cut -c1-64) || want=
	got=$(sha256sum <"$inst" 2>/dev/null | cut -c1-64) || got=
	if [ -n "$want" ] && [ "$want" = "$got" ]; then
		printf 'installed %s is %s (sha256 %.12s)\n' "$inst" "$built" "$got"
		return 0
	fi
	rr_log "refund_rules: the installed library is NOT the one just built:"
	rr_log "    installed $inst: sha256 ${got:-(missing)}"
	rr_log "    built     $built: sha256 ${want:-(missing)}"
	return 1
}
