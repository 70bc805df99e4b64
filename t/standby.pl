# t/standby.pl - the pre-check refund_request_status() and the validation
# forbidden_refunds() on a hot standby and in a read-only transaction: the
# pre-check answers exactly as the trigger decides on the primary, and
# writes nothing (1.1 wrote pg_depend on first use, which a standby
# refuses: "cannot assign TransactionIds during recovery").
# Also: the request trigger itself writes no catalog on first use.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use RefundRulesTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1, extra => [ '--encoding=UTF8', '--locale=C' ]);
$primary->append_conf('postgresql.conf', "fsync = off\n");
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION refund_rules');
my $setup = <<'SQL';
CREATE TABLE purchases (id bigint PRIMARY KEY, offer refund_rules.mpn_offer, purchased_at timestamptz,
  benefits_activated boolean, product_keys_viewed boolean, upgraded_with_gold_discount boolean);
INSERT INTO purchases VALUES
  (1, 'gold', now() - interval '1 day', false, false, false),
  (2, 'gold', now() - interval '60 days', false, false, false),
  (3, 'silver', now() - interval '1 day', false, false, true);
CREATE TABLE refund_requests (purchase_id bigint REFERENCES purchases,
  requested_at timestamptz DEFAULT now(), requested_by_role text);
CREATE ROLE clerk;
GRANT INSERT ON refund_requests TO clerk;
SQL
$primary->safe_psql('postgres', $setup . enforcement_trigger(name => 'enforce',
	table => 'refund_requests', purchases => 'purchases', column => 'purchase_id'));
# Recorded requests, validated by forbidden_refunds() through a dry-run trigger.
$primary->safe_psql('postgres', <<'SQL');
CREATE TABLE history (id integer PRIMARY KEY, purchase_id bigint REFERENCES purchases,
  requested_at timestamptz, requested_by_role text);
INSERT INTO history SELECT id, id, now() - interval '1 hour', 'account_admin' FROM purchases;
CREATE TRIGGER history_policy AFTER INSERT OR UPDATE ON history FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id', 'mode=dry_run');
GRANT SELECT, INSERT ON history TO clerk;
SQL

my $backup = 'standby_backup';
$primary->backup($backup);
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, $backup, has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

my $status = "SELECT string_agg(v.id || ': ' || s.allowed || ' ' || s.reasons::text, '; ' ORDER BY v.id)
  FROM (VALUES (1), (2), (3)) v(id),
       refund_rules.refund_request_status(jsonb_populate_record(NULL::refund_requests,
         jsonb_build_object('purchase_id', v.id, 'requested_by_role', 'account_admin'))) s";
my $expected = '1: true {}; 2: false {refund_window_expired}; 3: false {upgraded_with_gold_discount}';

# On the standby, first use in a new backend, as superuser and as the clerk.
is($standby->safe_psql('postgres', $status), $expected,
	'standby: refund_request_status answers (first use in the backend)');
is($standby->safe_psql('postgres', "SET ROLE clerk; $status"),
	'1: true {}; 2: false {purchase_not_eligible}; 3: false {purchase_not_eligible}',
	'standby: as a clerk without SELECT on purchases, the purchase\'s reasons hidden');
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'it is a standby');
my $forbidden = "SELECT string_agg(row_key || ' ' || reasons::text, '; ' ORDER BY row_key)
  FROM refund_rules.forbidden_refunds('history')";
is($standby->safe_psql('postgres', "$forbidden; $forbidden; SET ROLE clerk; $forbidden"),
	"2 {refund_window_expired}; 3 {upgraded_with_gold_discount}\n" x 2
	  . '2 {purchase_not_eligible}; 3 {purchase_not_eligible}',
	'standby: forbidden_refunds answers, twice in a backend, and to the clerk with the reasons hidden');

# On the primary, in a READ ONLY transaction of a new backend.
is($primary->safe_psql('postgres', "BEGIN READ ONLY; $status; COMMIT"), $expected,
	'primary: refund_request_status answers in a read-only transaction');

# The trigger decides as the pre-check said, and its first use writes no catalog.
my $depend = "SELECT count(*) FROM pg_depend";
my $depend_before = $primary->safe_psql('postgres', $depend);
is(join(' ', map { (sql_error($primary, 'postgres',
	"INSERT INTO refund_requests (purchase_id, requested_by_role) VALUES ($_, 'account_admin')"))[0] || 'ok' } 1 .. 3),
	'ok 23514 23514', 'primary: the trigger accepts and refuses as the pre-check said');
is($primary->safe_psql('postgres', $depend), $depend_before, 'the trigger wrote nothing to pg_depend');

# What the primary accepted reaches the standby; the pre-check there still answers.
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', 'SELECT count(*) FROM refund_requests'), '1',
	'standby: the accepted request replicated');
is($standby->safe_psql('postgres', $status), $expected, 'standby: still answers after replay');

$standby->stop;
$primary->stop;
done_testing();
