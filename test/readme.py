#!/usr/bin/python3
"""test/readme.py - every SQL block of README.md and docs/*.md runs as written
and gives what the text shows.

For each file, in a fresh database of its own (the extension created first
unless the file's first statement does), every ```sql block runs in order, one
psql session per block, fed on stdin as a user would paste it. Checks:
  - a statement with "-- fails (SQLSTATE)" in it fails with that SQLSTATE,
    every other statement succeeds (psql's :SQLSTATE after each);
  - a ```text block right after "<!-- output of the block above -->" equals
    what psql printed for the block above (timestamps, runs of blanks and
    table rules are normalised, since the data is dated from now(), and
    VERBOSITY verbose's LOCATION lines are left out);
  - a ```python block after "<!-- run: python, output below -->" runs
    with /usr/bin/python3 against the same database (exit status 0), and
    its output is compared the same way.
A block a user would not run here is marked "<!-- not run: reason -->"
right before it. Roles and databases the blocks create are dropped at the
end. Runs against the cluster of PGHOST/PGPORT/PGUSER (a superuser; the
extension must be installed); scripts/test.sh provides one. Exit status 0
when every check passes.

Usage: python3 test/readme.py [FILE.md ...]   (default: README.md and docs/*.md)
"""
import glob
import os
import re
import subprocess
import sys

os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.update(PGTZ="UTC", PGDATESTYLE="ISO")
files = sys.argv[1:] or ["README.md"] + sorted(glob.glob("docs/*.md"))

fails = 0
summary = []


def check(ok, what):
    global fails
    print("  %s %s" % ("ok   " if ok else "FAIL ", what))
    fails += not ok


def psql(db, script, *opts):
    return subprocess.run(["psql", "-X", "-d", db, *opts], input=script, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout


def blocks(path):
    """(lang, lines, mark, line number) of each fenced block; mark: the HTML comment before it."""
    lines, out, i = open(path).read().split("\n"), [], 0
    while i < len(lines):
        m = re.match(r"^```(\w*)$", lines[i])
        if m:
            j = lines.index("```", i + 1)
            prev = lines[i - 1].strip() if i else ""
            out.append((m.group(1), lines[i + 1:j], prev if prev.startswith("<!--") else "", i + 1))
            i = j
        i += 1
    return out


def statements(lines):
    """SQL statements and meta-commands: a statement ends at a line whose code ends with ';'."""
    out, cur, dollar = [], [], False
    for line in lines:
        if not cur and (not line.strip() or line.lstrip().startswith("--")):
            continue
        if not cur and line.lstrip().startswith("\\"):
            out.append((line, None, True))
            continue
        cur.append(line)
        if line.count("$$") % 2:
            dollar = not dollar
        if not dollar and line.split("--")[0].rstrip().endswith(";"):
            text = "\n".join(cur)
            m = re.search(r"--\s*fails \((\w{5})\)", text)
            out.append((text, m.group(1) if m else None, False))
            cur = []
    return out, cur


def normal(text):
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\+00", "T", text)
    out = []
    for line in text.strip("\n").split("\n"):
        if line.startswith("LOCATION:  "):
            continue  # the C source line of an error: not shown in the docs
        line = re.sub(r"\s+", " ", line).strip()
        out.append("---" if re.fullmatch(r"[-+]+", line) else line)
    return out


def objects():
    q = ("SELECT 'r ' || rolname FROM pg_roles UNION ALL "
         "SELECT 'd ' || datname FROM pg_database")
    return set(psql("postgres", q, "-At").split("\n"))


before = objects()
for path in files:
    all_blocks = blocks(path)
    if not any(b[0] == "sql" and "not run" not in b[2] for b in all_blocks) and \
            not any("run: python" in b[2] for b in all_blocks):
        continue
    print("%s:" % path)
    db = "regress_rr_readme_" + re.sub(r"\W", "_", os.path.basename(path).lower())
    psql("postgres", "DROP DATABASE IF EXISTS %s;\nCREATE DATABASE %s;" % (db, db), "-q")
    first = next((statements(b[1])[0] for b in all_blocks if b[0] == "sql" and "not run" not in b[2]), [])
    if not (first and re.match(r"CREATE EXTENSION refund_rules", first[0][0])):
        psql(db, "CREATE EXTENSION refund_rules;", "-q")
    ran = skipped = 0
    last_output = None
    for lang, lines, mark, lineno in all_blocks:
        where = "%s:%d" % (path, lineno)
        if "not run" in mark:
            skipped += lang == "sql"
            continue
        if lang == "text" and "output of the block above" in mark:
            got, want = normal(last_output or ""), normal("\n".join(lines))
            check(got == want, "%s: the output shown is the output" % where)
            if got != want:
                print("        shown:\n          " + "\n          ".join(want))
                print("        got:\n          " + "\n          ".join(got))
            continue
        if lang == "python" and "run: python" in mark:
            r = subprocess.run(["/usr/bin/python3", "-"], input="\n".join(lines), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=dict(os.environ, PGDATABASE=db))
            last_output = r.stdout
            check(r.returncode == 0, "%s: python block runs (exit %d)" % (where, r.returncode))
            if r.returncode:
                print("        " + r.stdout.replace("\n", "\n        "))
            ran += 1
            continue
        if lang != "sql":
            continue
        stmts, rest = statements(lines)
        script = []
        for n, (text, _, meta) in enumerate(stmts):
            script.append(text)
            if not meta:
                script.append("\\echo @@rr %d :SQLSTATE" % n)
        out = psql(db, "\n".join(script) + "\n")
        states = dict(re.findall(r"^@@rr (\d+) (\w+)$", out, re.M))
        last_output = re.sub(r"^@@rr .*\n?", "", out, flags=re.M)
        bad = []
        for n, (text, want, meta) in enumerate(stmts):
            if meta:
                continue
            got = states.get(str(n), "none")
            if got != (want or "00000"):
                bad.append("%s (want %s): %s" % (got, want or "success", text.split("\n")[0][:70]))
        if rest:
            bad.append("a statement does not end with ';': " + rest[0][:70])
        check(not bad, "%s: %d statements, each succeeds or fails as marked" % (where, len(stmts)))
        for b in bad:
            print("        " + b)
        if bad:
            print("        psql said:\n          " + last_output.strip().replace("\n", "\n          "))
        ran += 1
    summary.append("%s: %d blocks run, %d marked not run" % (path, ran, skipped))
    psql("postgres", "DROP DATABASE IF EXISTS %s;" % db, "-q")

# What the blocks created in the cluster: their databases, then their roles.
new = sorted(objects() - before)
drops = ["DROP DATABASE IF EXISTS %s;" % o[2:] for o in new if o.startswith("d ")]
roles = [o[2:] for o in new if o.startswith("r ")]
psql("postgres", "\n".join(drops), "-q")
for role in roles:
    for (db,) in [(d,) for d in psql("postgres", "SELECT datname FROM pg_database WHERE datallowconn",
                                     "-At").split()]:
        psql(db, "DROP OWNED BY %s;" % role, "-q")
psql("postgres", "\n".join("DROP ROLE IF EXISTS %s;" % r for r in roles), "-q")
print("\n".join(summary))
print("readme: %d failure(s)" % fails)
sys.exit(1 if fails else 0)
