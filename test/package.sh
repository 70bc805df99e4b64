#!/usr/bin/env bash
# test/package.sh - build the Debian package, install it, and check what it ships.
#
#   1. META.json parses and has every field PGXN's meta-spec 1.0.0 requires,
#      and its version matches default_version in refund_rules.control;
#   2. dpkg-buildpackage -us -uc -b in a scratch copy of the tree (so neither the
#      repo nor its parent directory gets build products), old artefacts removed
#      first, with debian/control generated from debian/control.in for the
#      versions debian/pgversions (15+) names and this machine builds
#      (pg_buildext updatecontrol); one .deb per version, in $RR_TMP/pkg/;
#   3. dpkg -i every package built;
#   4. dpkg -L lists refund_rules.so, refund_rules.control and every install
#      script of each version; the one of RR_PG_MAJOR must be among them.
#
# Run from the repository root (scripts/test.sh does); exits 0 when all pass.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

fails=0
ok() { printf '  ok    %s\n' "$*"; }
bad() { printf '  FAIL  %s\n' "$*"; fails=$((fails + 1)); }

# --- 1. META.json ----------------------------------------------------------
if out=$(python3 - <<'PY' 2>&1
import json, re, sys
with open("META.json") as f:
    meta = json.load(f)
problems = []
for field in ("name", "abstract", "version", "maintainer", "license", "provides", "meta-spec"):
    if not meta.get(field):
        problems.append("missing required field %r" % field)
spec = meta.get("meta-spec") or {}
if spec.get("version") != "1.0.0":
    problems.append("meta-spec.version is %r, expected '1.0.0'" % spec.get("version"))
if meta.get("name") != "refund_rules":
    problems.append("name is %r" % meta.get("name"))
prov = (meta.get("provides") or {}).get("refund_rules") or {}
for field in ("file", "version"):
    if not prov.get(field):
        problems.append("provides.refund_rules.%s missing" % field)
ctl = open("refund_rules.control").read()
m = re.search(r"^\s*default_version\s*=\s*'([^']*)'", ctl, re.M)
if not m:
    problems.append("no default_version in refund_rules.control")
else:
    def semver(v):
        parts = v.split(".")
        return ".".join((parts + ["0", "0"])[:3])
    want = semver(m.group(1))
    for where, v in (("version", meta.get("version")), ("provides.refund_rules.version", prov.get("version"))):
        if v != want:
            problems.append("%s %r does not match default_version %r (%s)" % (where, v, m.group(1), want))
    if prov.get("file") and prov["file"] != "refund_rules--%s.sql" % m.group(1):
        problems.append("provides.refund_rules.file %r is not the default version's install script" % prov["file"])
print("\n".join(problems) if problems else "META.json %s, version %s" % (meta["name"], meta["version"]))
sys.exit(1 if problems else 0)
PY
); then
	ok "$out"
else
	bad "META.json:"
	printf '%s\n' "$out" | sed 's/^/        /'
fi

# --- 2. build the package --------------------------------------------------
pkgdir=$RR_TMP/pkg
src=$pkgdir/refund-rules
version=$(dpkg-parsechangelog -S Version 2>/dev/null)
arch=$(dpkg-architecture -qDEB_HOST_ARCH 2>/dev/null)
deb_of() { printf '%s/postgresql-%s-refund-rules_%s_%s.deb\n' "$pkgdir" "$1" "$version" "$arch"; }
deb=$(deb_of "$RR_PG_MAJOR")

rm -rf "$pkgdir" && mkdir -p "$src" || exit 1
# Every file of the project (tracked or new, not ignored build products).
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
		tar --null -T - -cf - | tar -xf - -C "$src"
else
	tar --exclude=.git -cf - . | tar -xf - -C "$src"
fi

# debian/control for the versions built here, as the Debian packages of
# extensions do it (debian/control.in has PGVERSION where the version goes)
if out=$(cd "$src" && pg_buildext updatecontrol 2>&1) &&
	versions=$(cd "$src" && grep -oP '^Package: postgresql-\K[0-9]+(?=-refund-rules$)' debian/control | xargs) &&
	[ -n "$versions" ]; then
	ok "debian/control generated from debian/control.in: packages for PostgreSQL $versions"
else
	bad "pg_buildext updatecontrol:"
	printf '%s\n' "$out" | sed 's/^/        /'
	echo "$fails check(s) failed"
	exit 1
fi
case " $versions " in
*" $RR_PG_MAJOR "*) ;;
*) bad "no package for PostgreSQL $RR_PG_MAJOR among $versions (debian/pgversions: $(xargs <debian/pgversions))" ;;
esac

echo "  building $(for v in $versions; do basename "$(deb_of "$v")"; done | xargs) in $pkgdir"
# shellcheck disable=SC2317 # run by rr_run_logged
build_package() {
	cd "$src" && DEB_BUILD_OPTIONS="nocheck noddebs${DEB_BUILD_OPTIONS:+ $DEB_BUILD_OPTIONS}" \
		dpkg-buildpackage -us -uc -b
}
# (a progress line every 8 s while it builds)
if rr_run_logged "$pkgdir/build.log" build_package && [ -f "$deb" ]; then
	for v in $versions; do
		if [ -f "$(deb_of "$v")" ]; then ok "dpkg-buildpackage built $(deb_of "$v")"; else bad "no $(deb_of "$v")"; fi
	done
else
	bad "dpkg-buildpackage (log follows)"
	tail -n 60 "$pkgdir/build.log" | sed 's/^/        /'
	echo "$fails check(s) failed"
	exit 1
fi

# --- 3. install them -------------------------------------------------------
for v in $versions; do
	if out=$(rr_as_root dpkg -i "$(deb_of "$v")" 2>&1); then
		ok "dpkg -i $(basename "$(deb_of "$v")")"
	else
		bad "dpkg -i $(basename "$(deb_of "$v")"):"
		printf '%s\n' "$out" | sed 's/^/        /'
	fi
done

# --- 4. contents -----------------------------------------------------------
for v in $versions; do
	pkg=postgresql-$v-refund-rules
	pgc=/usr/lib/postgresql/$v/bin/pg_config
	listing=$(dpkg -L "$pkg" 2>/dev/null)
	pkglib=$("$pgc" --pkglibdir)
	sharedir=$("$pgc" --sharedir)/extension
	want=("$pkglib/refund_rules.so" "$sharedir/refund_rules.control")
	for f in refund_rules--*.sql; do
		[ -e "$f" ] && want+=("$sharedir/$f")
	done
	for f in "${want[@]}"; do
		if grep -qxF -- "$f" <<<"$listing" && [ -f "$f" ]; then
			ok "$pkg ships $f"
		else
			bad "$pkg does not ship $f"
		fi
	done
done

if [ "$fails" -eq 0 ]; then
	echo "  package checks passed"
	exit 0
fi
echo "  $fails package check(s) failed"
exit 1
