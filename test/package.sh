#!/usr/bin/env bash
# shellcheck disable=SC2015 # ok and bad always succeed
# test/package.sh - the Debian package builds, installs and ships every file.
#
#   1. dpkg-buildpackage -us -uc -b in a scratch copy of the tree, with
#      debian/control made from debian/control.in for the versions
#      debian/pgversions names and this machine has (pg_buildext
#      updatecontrol); one .deb per version, in $RR_TMP/pkg/, one of them
#      for RR_PG_MAJOR. Its tests (dh_pgxs_test) are left to scripts/test.sh
#      (DEB_BUILD_OPTIONS=nocheck), which runs them as postgres;
#   2. dpkg -i every package built;
#   3. dpkg -L lists refund_rules.so, refund_rules.control and every install
#      script, for each version, and the files are there.
#
# Run as root from scripts/test.sh (step b). Exit status 0 when all pass.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

fails=0
ok() { printf '  ok    %s\n' "$*"; }
bad() { printf '  FAIL  %s\n' "$*" && fails=$((fails + 1)); }
pkgdir=$RR_TMP/pkg
src=$pkgdir/refund-rules

# --- 1. build --------------------------------------------------------------
rm -rf "$pkgdir" && rr_copy_tree "$src" || exit 1
if ! (cd "$src" && pg_buildext updatecontrol) >"$pkgdir/build.log" 2>&1; then
	bad "pg_buildext updatecontrol" && rr_indent <"$pkgdir/build.log" && exit 1
fi
versions=$(grep -oP '^Package: postgresql-\K[0-9]+(?=-refund-rules$)' "$src/debian/control" | xargs)
ok "debian/control from debian/control.in: packages for PostgreSQL $versions"
[[ " $versions " == *" $RR_PG_MAJOR "* ]] || bad "no package for PostgreSQL $RR_PG_MAJOR"
echo "  dpkg-buildpackage in $src (log: $pkgdir/build.log)"
if ! (cd "$src" && DEB_BUILD_OPTIONS="nocheck noddebs" dpkg-buildpackage -us -uc -b) >>"$pkgdir/build.log" 2>&1; then
	bad "dpkg-buildpackage" && tail -n 60 "$pkgdir/build.log" | rr_indent && exit 1
fi

for v in $versions; do
	pkg=postgresql-$v-refund-rules
	deb=$(find "$pkgdir" -maxdepth 1 -name "${pkg}_*.deb" | head -n 1)
	[ -n "$deb" ] || { bad "no ${pkg}_*.deb built" && continue; }
	# --- 2. install ------------------------------------------------------
	if out=$(dpkg -i "$deb" 2>&1); then ok "dpkg -i ${deb##*/}"; else bad "dpkg -i ${deb##*/}: $out"; fi
	# --- 3. contents -----------------------------------------------------
	pgc=/usr/lib/postgresql/$v/bin/pg_config
	want=("$("$pgc" --pkglibdir)/refund_rules.so" "$("$pgc" --sharedir)/extension/refund_rules.control")
	for f in refund_rules--*.sql; do want+=("$("$pgc" --sharedir)/extension/$f"); done
	for f in "${want[@]}"; do
		if dpkg -L "$pkg" | grep -qxF -- "$f" && [ -f "$f" ]; then ok "$pkg ships $f"; else bad "$pkg does not ship $f"; fi
	done
done
[ "$fails" -eq 0 ] && echo "  package checks passed" || { echo "  $fails package check(s) failed" && exit 1; }
