#!/usr/bin/python3
"""test/meta.py - META.json (PGXN) holds every field PGXN's meta-spec 1.0.0
requires, and its versions match default_version in refund_rules.control.
Exit status 0 when it does."""
import json
import os
import re
import sys

os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
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
