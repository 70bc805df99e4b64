# t/fdw_shards.pl - scaling out with postgres_fdw: a purchases table
# partitioned by partner whose partitions are foreign tables on two shards.
#
#   1. three nodes: a coordinator and two shards, refund_rules on each;
#   2. on the coordinator: purchases PARTITION BY LIST (partner), each
#      partition a postgres_fdw foreign table on one shard, through a server
#      with  extensions 'refund_rules'  so that our functions may be shipped;
#      the same randomized rows (NULLs, window edges, infinities, a NULL
#      partner) go into the shards (through the partitioned table) and into
#      a plain local table;
#   3. checks that
#      a. WHERE refund_rules.refund_eligible(p, <constant>) (and
#         tax_refund_eligible, refund_ineligibility_reasons(...) IS NULL) is
#         evaluated on the shards: each Foreign Scan's "Remote SQL:" holds
#         the plain conditions or the function's column form; a now() as_of
#         must not be shipped;
#      b. the answers through the shards (counts, and every row's
#         eligibility and reasons as an ordered digest) equal the local
#         table's, and each shard computing on its own rows agrees too;
#      and reports (notes, not checks) whether a target-list call, a
#      comparison of the reasons array and count(*) itself are shipped.
# (Was test/fdw_shards.sh: the same checks.)
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use RefundRulesTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $AS_OF = '2024-03-15 12:00+00';
my $user = getpwuid($<);
my ($coord_db, $shard_db) = ('regress_rr_fdw', 'rr_shard');

# --- 1. the clusters --------------------------------------------------------------
my $coord = rr_node('coordinator');
my @shard = (undef, rr_node('shard1'), rr_node('shard2'));
for my $n (1, 2)
{
	$shard[$n]->safe_psql('postgres', "CREATE DATABASE $shard_db");
	$shard[$n]->safe_psql($shard_db, <<'SQL');
CREATE EXTENSION refund_rules;
CREATE TABLE public.purchases (
    id integer PRIMARY KEY,
    partner text,
    offer refund_rules.mpn_offer,
    purchased_at timestamptz,
    benefits_activated boolean,
    product_keys_viewed boolean,
    upgraded_with_gold_discount boolean,
    tax_exempt boolean);
SQL
	my $v = $shard[$n]->safe_psql($shard_db, "SELECT extversion FROM pg_extension WHERE extname = 'refund_rules'");
	ok($v ne '', "shard$n: a node of its own, refund_rules $v, table purchases");
}
$coord->safe_psql('postgres', "CREATE DATABASE $coord_db");
sub coord { return $coord->safe_psql($coord_db, $_[0]); }
sub shard { return $shard[ $_[0] ]->safe_psql($shard_db, $_[1]); }

# --- 2. the coordinator -----------------------------------------------------------
my ($rc, $out, $err) = $coord->psql($coord_db, <<"SQL", on_error_stop => 1);
CREATE EXTENSION refund_rules;
CREATE EXTENSION postgres_fdw;
CREATE SERVER shard1 FOREIGN DATA WRAPPER postgres_fdw
  OPTIONS (host '@{[$shard[1]->host]}', port '@{[$shard[1]->port]}', dbname '$shard_db', extensions 'refund_rules');
CREATE SERVER shard2 FOREIGN DATA WRAPPER postgres_fdw
  OPTIONS (host '@{[$shard[2]->host]}', port '@{[$shard[2]->port]}', dbname '$shard_db', extensions 'refund_rules');
CREATE USER MAPPING FOR CURRENT_USER SERVER shard1 OPTIONS (user '$user');
CREATE USER MAPPING FOR CURRENT_USER SERVER shard2 OPTIONS (user '$user');

CREATE TABLE purchases (
    id integer NOT NULL,
    partner text,
    offer refund_rules.mpn_offer,
    purchased_at timestamptz,
    benefits_activated boolean,
    product_keys_viewed boolean,
    upgraded_with_gold_discount boolean,
    tax_exempt boolean
) PARTITION BY LIST (partner);
CREATE FOREIGN TABLE purchases_shard1 PARTITION OF purchases
  FOR VALUES IN ('alpha', 'bravo', 'charlie')
  SERVER shard1 OPTIONS (schema_name 'public', table_name 'purchases');
CREATE FOREIGN TABLE purchases_shard2 PARTITION OF purchases
  FOR VALUES IN ('delta', 'echo', NULL)
  SERVER shard2 OPTIONS (schema_name 'public', table_name 'purchases');
CREATE TABLE purchases_local (LIKE purchases);

-- Random rows, plus rows on the edges of the windows at the test's as_of.
SELECT setseed(0.25);
INSERT INTO purchases_local
SELECT i,
       (ARRAY['alpha', 'bravo', 'charlie', 'delta', 'echo', NULL])[1 + floor(random() * 6)::int],
       (ARRAY['action_pack', 'silver', 'gold', NULL])[1 + floor(random() * 4)::int]::refund_rules.mpn_offer,
       CASE WHEN random() < 0.05 THEN NULL
            ELSE timestamptz '$AS_OF' - random() * interval '420 days' + interval '5 days' END,
       CASE WHEN random() < 0.1 THEN NULL ELSE random() < 0.3 END,
       CASE WHEN random() < 0.1 THEN NULL ELSE random() < 0.3 END,
       CASE WHEN random() < 0.1 THEN NULL ELSE random() < 0.5 END,
       CASE WHEN random() < 0.1 THEN NULL ELSE random() < 0.5 END
  FROM generate_series(1, 5000) i;
INSERT INTO purchases_local
SELECT 100000 + row_number() OVER (), partner, offer, t, false, false, false, true
  FROM unnest(ARRAY['alpha', 'delta', NULL]) partner,
       unnest(ARRAY['action_pack', 'silver', 'gold']::refund_rules.mpn_offer[]) offer,
       unnest(ARRAY[timestamptz '$AS_OF',
                    timestamptz '$AS_OF' + interval '1 microsecond',
                    timestamptz '$AS_OF' - interval '30 days',
                    timestamptz '$AS_OF' - interval '30 days 1 microsecond',
                    timestamptz '$AS_OF' - interval '1 year',
                    timestamptz '$AS_OF' - interval '1 year 1 microsecond',
                    '-infinity', 'infinity', NULL]) t;
INSERT INTO purchases SELECT * FROM purchases_local;
ANALYZE purchases_local;
SQL
is($rc, 0, "coordinator: servers (extensions 'refund_rules'), partitioned purchases on two foreign tables, rows loaded")
  or diag($err);
my $n_local = coord('SELECT count(*) FROM purchases_local');
my ($n1, $n2) = map { shard($_, 'SELECT count(*) FROM purchases') } 1, 2;
ok($n1 > 0 && $n2 > 0 && $n1 + $n2 == $n_local, "rows: $n_local local = $n1 on shard1 + $n2 on shard2");
shard($_, 'ANALYZE purchases') for 1, 2;

# --- 3a. what runs on the shards -------------------------------------------------
sub explain_plan { return coord("EXPLAIN (VERBOSE, COSTS OFF) $_[0]"); }
# pushed(require|report, NAME, PATTERN, QUERY): whether every Foreign Scan's
# Remote SQL has PATTERN in its WHERE; "require" is a check, "report" a note.
sub pushed
{
	my ($mode, $name, $pattern, $query) = @_;
	my $plan = explain_plan($query);
	my $nscan = () = $plan =~ /Foreign Scan on/g;
	my @remote = grep { /Remote SQL:/ } split /\n/, $plan;
	my $nhit = grep { / WHERE .*$pattern/ } @remote;
	my $shipped = $nscan == 2 && @remote == 2 && $nhit == 2;
	if ($mode eq 'require')
	{
		ok($shipped, "$name: runs on both shards") or diag($plan);
	}
	else
	{
		note "$name: " . ($shipped ? 'runs on both shards' : 'filtered on the coordinator, not shipped');
	}
	note $remote[0] if @remote;
}
# refund_eligible on the offer enum and boolean flags becomes plain
# conditions: every one of them is shipped.
pushed(require => 'WHERE refund_eligible(p, constant)', qr/NOT benefits_activated\b.*purchased_at >= .*offer <> 'silver'/,
	"SELECT count(*) FROM purchases p WHERE refund_rules.refund_eligible(p, '$AS_OF')");
pushed(require => 'WHERE tax_refund_eligible(p, constant)', qr/refund_rules\._tax_refund_eligible\(/,
	"SELECT count(*) FROM purchases p WHERE refund_rules.tax_refund_eligible(p, '$AS_OF')");
pushed(require => 'WHERE refund_ineligibility_reasons(p, constant) IS NULL',
	qr/refund_rules\._refund_ineligibility_reasons\(/,
	"SELECT count(*) FROM purchases p WHERE refund_rules.refund_ineligibility_reasons(p, '$AS_OF') IS NULL");
# Reported, not required. A comparison of the text[] of reasons is collation
# sensitive, and postgres_fdw ships such a comparison only when the text
# comes from a column of the foreign table (the same holds for built-ins).
pushed(report => "WHERE refund_ineligibility_reasons(p, constant) = '{}'",
	qr/refund_rules\._refund_ineligibility_reasons\(/,
	"SELECT count(*) FROM purchases p WHERE refund_rules.refund_ineligibility_reasons(p, '$AS_OF') = '{}'");
pushed(report => "WHERE refund_ineligibility_reasons(p, constant, 'tax') && ARRAY[...]",
	qr/refund_rules\._refund_ineligibility_reasons\(/,
	"SELECT count(*) FROM purchases p WHERE refund_rules.refund_ineligibility_reasons(p, '$AS_OF', 'tax') && ARRAY['not_tax_exempt']");
# The window's range on purchased_at goes along (a shard can use its index).
pushed(require => 'the window range on purchased_at', qr/purchased_at <= /,
	"SELECT count(*) FROM purchases p WHERE refund_rules.refund_eligible(p, '$AS_OF')");

my $plan = explain_plan("SELECT p.id, refund_rules.refund_ineligibility_reasons(p, '$AS_OF') FROM purchases p");
note 'target list refund_ineligibility_reasons(p, constant): '
  . ($plan =~ /Remote SQL:.*_refund_ineligibility_reasons\(/
	? 'computed on the shards'
	: 'the shards send the columns, the coordinator computes it');
$plan = explain_plan('SELECT count(*) FROM purchases p WHERE refund_rules.refund_eligible(p)');
unlike($plan, qr/Remote SQL:.*(_refund_eligible\(|purchased_at [<>]=)/,
	'WHERE refund_eligible(p) with the default now(): the window not shipped (the shard\'s clock would decide)');
for my $q ("SELECT count(*) FROM purchases p WHERE refund_rules.refund_eligible(p, '$AS_OF')",
	"SELECT partner, count(*) FROM purchases p WHERE refund_rules.refund_eligible(p, '$AS_OF') GROUP BY partner")
{
	$plan = coord("SET enable_partitionwise_aggregate = on; EXPLAIN (VERBOSE, COSTS OFF) $q");
	note "enable_partitionwise_aggregate = on, $q: counted on the "
	  . ($plan =~ /Remote SQL: SELECT .*count\(\*\) FROM .*(_refund_eligible\(|offer <> 'silver')/ ? 'shards' : 'coordinator');
}

# --- 3b. the answers --------------------------------------------------------------
# One line per as_of: counts and an ordered digest of every row's answers.
sub answers
{
	my ($table) = @_;
	return coord("SET TimeZone = 'UTC';
	SELECT a.as_of,
	       (SELECT count(*) FROM $table p WHERE refund_rules.refund_eligible(p, a.as_of)),
	       (SELECT count(*) FROM $table p WHERE refund_rules.tax_refund_eligible(p, a.as_of)),
	       (SELECT count(*) FROM $table p WHERE refund_rules.refund_ineligibility_reasons(p, a.as_of) = '{}'),
	       (SELECT md5(string_agg(concat_ws('|', p.id, refund_rules.refund_eligible(p, a.as_of),
	                                        refund_rules.tax_refund_eligible(p, a.as_of),
	                                        refund_rules.refund_ineligibility_reasons(p, a.as_of),
	                                        refund_rules.refund_ineligibility_reasons(p, a.as_of, 'tax')),
	                              ',' ORDER BY p.id)) FROM $table p)
	  FROM (VALUES (timestamptz '$AS_OF'), ('2023-11-01 00:00+00'), ('2024-03-20 08:30+00')) a(as_of)
	 ORDER BY a.as_of");
}
# The same with literal constants, the form whose shipping 3a checked.
sub counts_literal
{
	my ($table) = @_;
	return join ' ', map { coord("SELECT count(*) FROM $table p WHERE $_") }
	  "refund_rules.refund_eligible(p, '$AS_OF')",
	  "refund_rules.tax_refund_eligible(p, '$AS_OF')",
	  "refund_rules.refund_ineligibility_reasons(p, '$AS_OF', 'tax') && ARRAY['not_tax_exempt']",
	  "refund_rules.refund_eligible(p, '$AS_OF') IS NULL";
}
my $local_answers = answers('purchases_local');
ok($local_answers ne '' && $local_answers eq answers('purchases'),
	'same answers through the shards as on the local table, at 3 as_of values');
note $local_answers;
my $local_counts = counts_literal('purchases_local');
is(counts_literal('purchases'), $local_counts,
	"counts with the WHERE shipped: $local_counts (eligible, tax eligible, not tax exempt, unknown) = local");

# Each shard, queried directly, agrees with the local table on its rows.
my $rows_sql = "SET TimeZone = 'UTC';
	SELECT concat_ws('|', p.id, refund_rules.refund_eligible(p, '$AS_OF'),
	                 refund_rules.refund_ineligibility_reasons(p, '$AS_OF'),
	                 refund_rules.refund_ineligibility_reasons(p, '$AS_OF', 'tax'))";
my @local_rows = sort split /\n/, coord("$rows_sql FROM purchases_local p");
my @shard_rows = sort map { split /\n/, shard($_, "$rows_sql FROM public.purchases p") } 1, 2;
ok(@local_rows > 0 && "@local_rows" eq "@shard_rows",
	'each shard computing on its own rows: ' . scalar(@shard_rows) . ' rows, same as local');

$_->stop for $coord, @shard[ 1, 2 ];
done_testing();
