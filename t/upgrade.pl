# t/upgrade.pl - every released version of refund_rules, installed from its
# released install script with the current library, still answers before
# ALTER EXTENSION UPDATE (every function of that version called, its
# triggers fired), and after the update the catalog is exactly that of a
# fresh install of the default version, with the same answers and uses.
#
# The versions come from the refund_rules--*.sql files of the source tree
# (install scripts and both ends of every update script) and the default
# from refund_rules.control; the server must have installed the same files.
# Released install scripts are frozen: their sha256 is written below, and
# both the tree's and the installed copy must have it.
#
# Compared: every member function (pg_get_functiondef: arguments, defaults,
# result, language, volatility, strictness, parallel safety, cost, rows,
# support function, security, settings, body/symbol; plus its ACL and
# comment), every member type (kind, attributes in order, enum labels in
# order, ACL, comment), pg_describe_object of every pg_depend member, the
# extension row and the schema's ACL.  Each of 12 deliberate changes must
# show in that comparison.  (Was test/upgrade.sh; its checks are all here.)
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use RefundRulesTest;
use Digest::SHA qw(sha256_hex);
use PostgreSQL::Test::Utils;
use Test::More;

# Released install scripts, as they shipped (1.0: commit d79c190; 1.1:
# commit 9959306).
my %released_sha256 = (
	'refund_rules--1.0.sql' => '2a10caec58db4f196ccbb17686d21dae033884ebe6f592aa89408a0869e78c63',
	'refund_rules--1.1.sql' => '60a263360970ddd800bb69f19cfed5a3716d7687d8c5c294224b16c16b93b172',
	'refund_rules--1.0--1.1.sql' => '1498d67d01b6622455e98151995d3021d22b3ca31930727309a469eabe17ae41',
);

my $node = rr_node('upgrade');
my $T0 = $node->safe_psql('postgres',
	"SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00'");
sub q_ { my ($db, $sql) = @_; return $node->safe_psql($db, $sql); }

# --- the versions, from the source tree ---------------------------------------
sub slurp { open my $f, '<', $_[0] or die "$_[0]: $!"; local $/; return scalar <$f>; }
my ($default) = slurp('refund_rules.control') =~ /^\s*default_version\s*=\s*'([^']+)'/m;
my (%versions, @edges);
for my $f (glob 'refund_rules--*.sql')
{
	if ($f =~ /^refund_rules--([^-]+)--([^-]+)\.sql$/) { push @edges, [ $1, $2, $f ]; $versions{$1} = $versions{$2} = 1; }
	elsif ($f =~ /^refund_rules--([^-]+)\.sql$/) { $versions{$1} = 1; }
}
my @old = sort grep { $_ ne $default } keys %versions;
note "default $default; older versions: @old; update scripts: " . join ' ', map { $_->[2] } @edges;

is(q_('postgres', "SELECT default_version FROM pg_available_extensions WHERE name = 'refund_rules'"),
	$default, "default_version $default (server) = refund_rules.control");
my $sharedir = $node->config_data('--sharedir') . '/extension';
for my $f (sort keys %released_sha256)
{
	is(sha256_hex(slurp($f)), $released_sha256{$f}, "$f in the tree is the released file");
	my $installed = -e "$sharedir/$f" ? "$sharedir/$f" : "$ENV{DESTDIR}$sharedir/$f";
	is(sha256_hex(slurp($installed)), $released_sha256{$f}, "$f installed is the released file");
}
my %available = map { $_ => 1 } split /\n/, q_('postgres',
	"SELECT version FROM pg_available_extension_versions WHERE name = 'refund_rules'");
ok($available{$_}, "version $_ of the tree is installable") for sort keys %versions;
for my $e (@edges)
{
	my ($from, $to, $f) = @$e;
	is(q_('postgres', "SELECT path FROM pg_extension_update_paths('refund_rules') WHERE source = '$from' AND target = '$to'"),
		"$from--$to", "update script $f is installed ($from -> $to)");
}
for my $v (@old)
{
	isnt(q_('postgres', "SELECT path FROM pg_extension_update_paths('refund_rules') WHERE source = '$v' AND target = '$default'"),
		'', "version $v has an update path to $default");
}

# --- the catalog of the extension, one sorted line per fact, no OIDs -----------
my $catalog_sql = <<'SQL';
SET search_path = '';
WITH ext AS (SELECT * FROM pg_catalog.pg_extension WHERE extname = 'refund_rules'),
members AS (
  SELECT d.classid, d.objid FROM pg_catalog.pg_depend d, ext
   WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
     AND d.refobjid = ext.oid AND d.deptype = 'e'),
facts AS (
  SELECT 'extension ' || e.extname || ' version=' || e.extversion
         || ' schema=' || e.extnamespace::pg_catalog.regnamespace::pg_catalog.text
         || ' relocatable=' || e.extrelocatable
         || ' config=' || COALESCE(e.extconfig::pg_catalog.regclass[]::pg_catalog.text, '-')
         || ' condition=' || COALESCE(e.extcondition::pg_catalog.text, '-')
         || ' comment=' || COALESCE(pg_catalog.obj_description(e.oid, 'pg_extension'), '-') AS fact
    FROM ext e
  UNION ALL
  SELECT 'schema ' || n.nspname || ' acl=' || COALESCE(n.nspacl::pg_catalog.text, 'default')
    FROM pg_catalog.pg_namespace n, ext WHERE n.oid = ext.extnamespace
  UNION ALL
  SELECT 'member ' || pg_catalog.pg_describe_object(m.classid, m.objid, 0) FROM members m
  UNION ALL
  SELECT 'function ' || p.oid::pg_catalog.regprocedure::pg_catalog.text
         || ' acl=' || COALESCE(p.proacl::pg_catalog.text, 'default')
         || ' leakproof=' || p.proleakproof
         || ' comment=' || COALESCE(pg_catalog.obj_description(p.oid, 'pg_proc'), '-')
         || E'\n' || pg_catalog.pg_get_functiondef(p.oid)
    FROM members m JOIN pg_catalog.pg_proc p ON p.oid = m.objid
   WHERE m.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
  UNION ALL
  SELECT 'type ' || t.oid::pg_catalog.regtype::pg_catalog.text
         || ' typtype=' || t.typtype::pg_catalog.text || ' category=' || t.typcategory::pg_catalog.text
         || ' len=' || t.typlen || ' byval=' || t.typbyval || ' align=' || t.typalign::pg_catalog.text
         || ' storage=' || t.typstorage::pg_catalog.text || ' notnull=' || t.typnotnull
         || ' base=' || pg_catalog.format_type(t.typbasetype, t.typtypmod)
         || ' collation=' || COALESCE(NULLIF(t.typcollation, 0)::pg_catalog.regcollation::pg_catalog.text, '-')
         || ' default=' || COALESCE(t.typdefault, '-')
         || ' acl=' || COALESCE(t.typacl::pg_catalog.text, 'default')
         || ' comment=' || COALESCE(pg_catalog.obj_description(t.oid, 'pg_type'), '-')
         || ' labels=' || COALESCE((
              SELECT pg_catalog.string_agg(e.enumlabel::pg_catalog.text, ',' ORDER BY e.enumsortorder)
                FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid), '-')
         || ' attributes=' || COALESCE((
              SELECT pg_catalog.string_agg(a.attname::pg_catalog.text || ' '
                       || pg_catalog.format_type(a.atttypid, a.atttypmod)
                       || COALESCE(' collate ' || NULLIF(a.attcollation, 0)::pg_catalog.regcollation::pg_catalog.text, '')
                       || COALESCE(' comment=' || pg_catalog.col_description(t.typrelid, a.attnum), ''),
                       ', ' ORDER BY a.attnum)
                FROM pg_catalog.pg_attribute a
               WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped), '-')
    FROM members m JOIN pg_catalog.pg_type t ON t.oid = m.objid
   WHERE m.classid = 'pg_catalog.pg_type'::pg_catalog.regclass
  UNION ALL
  SELECT 'operator ' || o.oid::pg_catalog.regoperator::pg_catalog.text
         || ' proc=' || o.oprcode::pg_catalog.regproc::pg_catalog.text
         || ' commutator=' || o.oprcom::pg_catalog.regoper::pg_catalog.text
         || ' negator=' || o.oprnegate::pg_catalog.regoper::pg_catalog.text
         || ' restrict=' || o.oprrest::pg_catalog.regproc::pg_catalog.text
         || ' join=' || o.oprjoin::pg_catalog.regproc::pg_catalog.text
         || ' comment=' || COALESCE(pg_catalog.obj_description(o.oid, 'pg_operator'), '-')
    FROM members m JOIN pg_catalog.pg_operator o ON o.oid = m.objid
   WHERE m.classid = 'pg_catalog.pg_operator'::pg_catalog.regclass
  UNION ALL
  -- What every member depends on (types, the support function, the schema;
  -- for members of other kinds, such as casts or tables, the only check).
  SELECT 'depends ' || pg_catalog.pg_describe_object(m.classid, m.objid, 0) || ' -> '
         || pg_catalog.pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid) || ' (' || d.deptype::pg_catalog.text || ')'
    FROM members m JOIN pg_catalog.pg_depend d ON d.classid = m.classid AND d.objid = m.objid
   WHERE d.deptype <> 'e')
SELECT fact FROM facts ORDER BY fact COLLATE "C";
SQL

# --- uses of the extension that an update must keep working --------------------
# A CHECK constraint, the enforcement trigger, columns of its types.  The
# trigger judges requests at the database's clock: the purchases are placed
# relative to T0, the same moment (this run's start) in every database.
sub uses_sql
{
	my ($version) = @_;
	return <<"SQL"
SET TimeZone = 'UTC';
CREATE TABLE public.purchases (
    id integer PRIMARY KEY,
    offer refund_rules.mpn_offer,
    purchased_at timestamptz,
    benefits_activated boolean,
    product_keys_viewed boolean,
    upgraded_with_gold_discount boolean,
    tax_exempt boolean,
    refunded_at timestamptz,
    CHECK (refunded_at IS NULL OR refund_rules.check_refund(purchases, refunded_at)));
CREATE TABLE public.refund_requests (
    id integer PRIMARY KEY,
    purchase_id integer NOT NULL REFERENCES public.purchases,
    requested_at timestamptz NOT NULL,
    kind refund_rules.refund_kind NOT NULL,
    requested_by_role text NOT NULL);
SQL
  . enforcement_trigger(name => 'refund_requests_policy', table => 'public.refund_requests',
	purchases => 'purchases', column => 'purchase_id', version => $version)
  . <<"SQL";
INSERT INTO public.purchases VALUES
  (1, 'gold', timestamptz '$T0' - interval '10 days', false, false, false, true, timestamptz '$T0' - interval '1 day'),
  (2, 'silver', timestamptz '$T0' - interval '10 days', false, false, true, true, NULL),
  (3, 'gold', timestamptz '$T0' - interval '5 days', false, false, false, true, NULL),
  (4, 'action_pack', timestamptz '$T0' - interval '40 days', true, true, false, false, NULL),
  (5, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
-- a request accepted earlier (by whichever library was installed then)
ALTER TABLE public.refund_requests DISABLE TRIGGER refund_requests_policy;
INSERT INTO public.refund_requests VALUES (1, 1, now(), 'purchase', 'account_admin');
ALTER TABLE public.refund_requests ENABLE TRIGGER refund_requests_policy;
SQL
}

# Every function of a version, called: one query per call, over every row.
# A function of the extension that is not here fails the test: add its call.
my $cols = 'p.offer, p.purchased_at, p.benefits_activated, p.product_keys_viewed, p.upgraded_with_gold_discount';
my @calls = (
	[ refund_window_start => "refund_rules.refund_window_start('$T0', 'purchase') || ' ' || refund_rules.refund_window_start('$T0', 'tax')" ],
	[ _refund_eligible => "refund_rules._refund_eligible($cols, '$T0')" ],
	[ _tax_refund_eligible => "refund_rules._tax_refund_eligible(p.purchased_at, p.tax_exempt, '$T0')" ],
	[ _refund_ineligibility_reasons => "refund_rules._refund_ineligibility_reasons($cols, p.tax_exempt, '$T0', 'purchase')" ],
	[ _refund_ineligibility_reasons => "refund_rules._refund_ineligibility_reasons($cols, p.tax_exempt, '$T0', 'tax')" ],
	[ _refund_status => "(refund_rules._refund_status($cols, p.tax_exempt, '$T0'))::text" ],
	[ refund_deadline => "refund_rules.refund_deadline(p.purchased_at)" ],
	[ tax_refund_deadline => "refund_rules.tax_refund_deadline(p.purchased_at)" ],
	[ refund_eligible => "refund_rules.refund_eligible(p, '$T0')" ],
	[ tax_refund_eligible => "refund_rules.tax_refund_eligible(p, '$T0')" ],
	[ refund_ineligibility_reasons => "refund_rules.refund_ineligibility_reasons(p, '$T0')" ],
	[ refund_ineligibility_reasons => "refund_rules.refund_ineligibility_reasons(p, '$T0', 'tax')" ],
	[ refund_status => "(SELECT s::text FROM refund_rules.refund_status(p, '$T0') s)" ],
	[ check_refund => "CASE WHEN p.id = 3 THEN refund_rules.check_refund(p, timestamptz '$T0' - interval '1 day') END" ],
	[ reason_codes => "(SELECT string_agg(\"position\" || ':' || code, ',' ORDER BY \"position\") FROM refund_rules.reason_codes())" ],
	[ refund_request_status => "(SELECT s::text FROM public.refund_requests r, refund_rules.refund_request_status(r) s WHERE r.purchase_id = p.id)" ],
	[ forbidden_refunds => "(SELECT string_agg(f::text, ',') FROM refund_rules.forbidden_refunds('public.refund_requests') f WHERE f.purchase_key = p.id::text)" ],
);
# Called by the planner: its rewrite (or not) must give the same answers.
my $support_sql = "SET TimeZone = 'UTC'; SELECT string_agg(p.id::text, ',' ORDER BY p.id) FROM public.purchases p
  WHERE refund_rules.refund_eligible(p, '$T0') OR refund_rules.tax_refund_eligible(p, '$T0')";
# The trigger functions fire in check_uses and check_companions.
my %fired = map { $_ => 1 } qw(refund_rules_support enforce_refund_policy protect_refunded_purchase enforce_refund_moment);

sub functions_of
{
	my ($db) = @_;
	return split /\n/, q_($db, "SELECT DISTINCT p.proname FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
	  WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
	    AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'refund_rules') ORDER BY 1");
}

# answers DB: every call of a function DB's version has, one line each.
sub answers
{
	my ($db, $without) = @_;
	my %has = map { $_ => 1 } functions_of($db);
	delete $has{$without} if $without;
	my $out = '';
	for my $c (grep { $has{ $_->[0] } } @calls)
	{
		$out .= "$c->[0]: " . q_($db, "SET TimeZone = 'UTC'; SELECT string_agg(p.id || '=' || coalesce(($c->[1])::text, 'NULL'), ' ' ORDER BY p.id) FROM public.purchases p") . "\n";
	}
	return $out . 'support: ' . q_($db, $support_sql) . "\n";
}

# every function of DB's version has a call or fires
sub all_called
{
	my ($db, $label) = @_;
	my %called = map { $_->[0] => 1 } @calls;
	my @missing = grep { !$called{$_} && !$fired{$_} } functions_of($db);
	is("@missing", '', "$label: every function of the extension is called by this test");
}

# After the update: the valid uses still pass, the invalid ones still fail.
sub check_uses
{
	my ($db, $label) = @_;
	is(q_($db, "UPDATE public.purchases SET refunded_at = now() WHERE id = 1 RETURNING id"), '1',
		"$label: CHECK constraint accepts an allowed refund");
	expect_error($node, $db, '23514', "$label: CHECK constraint rejects a forbidden refund",
		"UPDATE public.purchases SET refunded_at = now() WHERE id = 2");
	expect_error($node, $db, '23514', "$label: trigger rejects a forbidden refund request",
		"INSERT INTO public.refund_requests VALUES (2, 2, now(), 'purchase', 'account_admin')");
	is(q_($db, "INSERT INTO public.refund_requests VALUES (3, 1, now(), 'tax', 'mpn_partner_admin') RETURNING id"), '3',
		"$label: trigger accepts an allowed refund request");
}

# The companion triggers, in a version that has them (1.1 on).
sub check_companions
{
	my ($db, $label) = @_;
	my %has = map { $_ => 1 } functions_of($db);
	return unless $has{protect_refunded_purchase};
	q_($db, companion_triggers());
	q_($db, "INSERT INTO public.refund_requests VALUES (4, 3, now(), 'purchase', 'account_admin')");
	expect_error($node, $db, '23514', "$label: protect_refunded_purchase refuses activating a refunded purchase's benefits",
		"UPDATE public.purchases SET benefits_activated = true WHERE id = 3");
	expect_error($node, $db, '23514', "$label: enforce_refund_moment refuses a backdated refunded_at",
		"UPDATE public.purchases SET refunded_at = now() - interval '1 day' WHERE id = 3");
	q_($db, "DROP TRIGGER protect_refunded_purchase ON public.purchases; DROP TRIGGER refund_moment ON public.purchases;
	  DELETE FROM public.refund_requests WHERE id = 4");
}

# ---------------------------------------------------------------------------
# THE COMPANION TRIGGERS' DDL: the purchases table's triggers, as the
# current release declares them (1.2: AFTER INSERT OR UPDATE; the companion
# of the request trigger a constraint trigger FROM the request table), or as
# an older one did (1.1: BEFORE).
sub companion_triggers
{
	my ($version) = @_;
	return <<'SQL' if defined $version && $version lt '1.2';
CREATE TRIGGER protect_refunded_purchase BEFORE UPDATE ON public.purchases
  FOR EACH ROW EXECUTE FUNCTION refund_rules.protect_refunded_purchase('refund_requests', 'purchase_id');
CREATE TRIGGER refund_moment BEFORE INSERT OR UPDATE ON public.purchases
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_moment();
SQL
	return <<'SQL';
CREATE CONSTRAINT TRIGGER protect_refunded_purchase AFTER INSERT OR UPDATE ON public.purchases
  FROM public.refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.protect_refunded_purchase('refund_requests', 'purchase_id');
CREATE TRIGGER refund_moment AFTER INSERT OR UPDATE ON public.purchases
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_moment();
SQL
}
# ---------------------------------------------------------------------------

# --- the fresh install ----------------------------------------------------------
q_('postgres', 'CREATE DATABASE rr_fresh');
q_('rr_fresh', 'CREATE EXTENSION refund_rules');
my $fresh = q_('rr_fresh', $catalog_sql);
q_('rr_fresh', uses_sql());
all_called('rr_fresh', "fresh $default");
my $fresh_answers = answers('rr_fresh');
like($fresh_answers, qr/^refund_eligible: 1=true 2=false 3=true 4=false 5=NULL$/m,
	"fresh $default: the answers are the policy's (purchases 1 and 3 refundable)")
  or diag($fresh_answers);
my $nfunc = () = $fresh =~ /^function /mg;
my $ntype = () = $fresh =~ /^type /mg;
ok($nfunc > 0 && $ntype > 0, "the catalog query finds $nfunc functions and $ntype types");

# --- the comparison can fail: each change, rolled back, shows in the catalog -----
for my $m (
	"ALTER FUNCTION refund_rules.refund_deadline(timestamptz) VOLATILE",
	"ALTER FUNCTION refund_rules.refund_deadline(timestamptz) CALLED ON NULL INPUT",
	"ALTER FUNCTION refund_rules.refund_eligible(record, timestamptz) PARALLEL RESTRICTED",
	"ALTER FUNCTION refund_rules.refund_eligible(record, timestamptz) COST 7",
	"COMMENT ON FUNCTION refund_rules.refund_eligible(record, timestamptz) IS 'changed'",
	"REVOKE EXECUTE ON FUNCTION refund_rules.refund_deadline(timestamptz) FROM PUBLIC",
	"REVOKE USAGE ON SCHEMA refund_rules FROM PUBLIC",
	"COMMENT ON TYPE refund_rules.mpn_offer IS 'changed'",
	"ALTER TYPE refund_rules.mpn_offer ADD VALUE 'platinum'",
	"ALTER TYPE refund_rules.refund_kind RENAME VALUE 'tax' TO 'taxes'",
	"ALTER TYPE refund_rules.purchase ADD ATTRIBUTE extra integer",
	"ALTER EXTENSION refund_rules DROP FUNCTION refund_rules.refund_deadline(timestamptz)")
{
	my $mutated = q_('rr_fresh', "BEGIN; $m; $catalog_sql; ROLLBACK");
	ok($mutated ne '' && $mutated ne $fresh, "the catalog comparison sees: $m");
}
is(q_('rr_fresh', $catalog_sql), $fresh, 'the fresh database is unchanged by trying the changes');
check_companions('rr_fresh', "fresh $default");
check_uses('rr_fresh', "fresh $default");

# --- each older version: installed, used, updated, compared -----------------------
my $n = 0;
for my $v (@old)
{
	my $db = 'rr_old_' . ++$n;
	q_('postgres', "CREATE DATABASE $db");
	q_($db, "CREATE EXTENSION refund_rules VERSION '$v'");
	is(q_($db, "SELECT extversion FROM pg_extension WHERE extname = 'refund_rules'"), $v,
		"$v: installed from its install script with the current library");
	q_($db, uses_sql($v));
	all_called($db, $v);
	# Before the update, with the current library: every function of $v
	# answers as the fresh install does; a trigger declared as $v declared it
	# is refused, saying how to recreate it, when that changed since.
	my $old_triggers = ($v lt '1.2' && $default ge '1.2');
	my $old_answers = answers($db, $old_triggers ? 'refund_request_status' : undef);
	my %fresh_line = map { /^([^:]+: .*)$/ ? ($1 => 1) : () } split /\n/, $fresh_answers;
	my @differ = grep { !$fresh_line{$_} } split /\n/, $old_answers;
	ok($old_answers ne '' && !@differ, "$v, before the update: every function answers as a fresh $default does")
	  or diag(join "\n", @differ);
	expect_error($node, $db, '23514', "$v, before the update: check_refund refuses a forbidden refund",
		"SELECT refund_rules.check_refund(p, now()) FROM public.purchases p WHERE id = 4");
	if ($old_triggers)
	{
		my ($code, $msg) = sql_error($node, $db,
			"INSERT INTO public.refund_requests VALUES (9, 3, now(), 'purchase', 'account_admin')");
		is("$code $msg", '39P01 trigger "refund_requests_policy" must be declared AFTER INSERT OR UPDATE ... FOR EACH ROW',
			"$v, before the update: its BEFORE trigger refuses every row, saying how it must be declared");
	}
	else
	{
		check_companions($db, "$v, before the update");
	}
	my ($got) = sql_error($node, $db, 'ALTER EXTENSION refund_rules UPDATE');
	is($got, '', "$v: ALTER EXTENSION refund_rules UPDATE");
	is(q_($db, "SELECT extversion FROM pg_extension WHERE extname = 'refund_rules'"), $default,
		"$v: now at version $default");
	my $updated = q_($db, $catalog_sql);
	is($updated, $fresh, "$v -> $default: catalog identical to a fresh $default");
	if ($old_triggers)
	{
		# recreated as the README's Upgrading section says
		q_($db, "DROP TRIGGER refund_requests_policy ON public.refund_requests;\n"
			  . enforcement_trigger(name => 'refund_requests_policy', table => 'public.refund_requests',
				purchases => 'purchases', column => 'purchase_id'));
	}
	is(answers($db), $fresh_answers, "$v -> $default: same answers on the same rows");
	check_companions($db, "$v -> $default");
	check_uses($db, "$v -> $default");
}
ok($n > 0, "at least one older version was updated ($n)");

$node->stop;
done_testing();
