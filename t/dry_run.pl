# t/dry_run.pl - the dry run during a rollout: with mode=dry_run the request
# trigger and the companion accept the row and write, in the server log
# (log_min_messages = warning), the refusal they would have raised: its
# SQLSTATE, message, DETAIL and HINT; nothing else changes.  Then one
# CREATE OR REPLACE TRIGGER switches to enforcement.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use RefundRulesTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = rr_node('dry_run', "log_min_messages = warning\nlog_error_verbosity = verbose\n");
$node->safe_psql('postgres', <<'SQL');
CREATE EXTENSION refund_rules;
CREATE TABLE purchases (id bigint PRIMARY KEY, offer refund_rules.mpn_offer, purchased_at timestamptz,
  benefits_activated boolean, product_keys_viewed boolean, upgraded_with_gold_discount boolean);
INSERT INTO purchases VALUES (1, 'gold', '2020-01-01 00:00+00', false, false, false),
                             (2, 'gold', now() - interval '1 day', false, false, false);
CREATE TABLE refund_requests (purchase_id bigint REFERENCES purchases,
  requested_at timestamptz DEFAULT now(), requested_by_role text);
CREATE TRIGGER refund_policy AFTER INSERT OR UPDATE ON refund_requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id', 'mode=dry_run');
CREATE CONSTRAINT TRIGGER protect AFTER INSERT OR UPDATE ON purchases FROM refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.protect_refunded_purchase('refund_requests', 'purchase_id', 'mode=dry_run');
SQL

my $offset = -s $node->logfile;
my ($rc, $out, $err) = $node->psql('postgres',
	"INSERT INTO refund_requests (purchase_id, requested_by_role) VALUES (1, 'account_admin'), (2, 'account_admin');
	 UPDATE purchases SET benefits_activated = true WHERE id = 2;");
is($rc, 0, 'dry run: the statements succeed');
like($err, qr/WARNING:  refund of purchase "1" is not allowed/, 'the client gets the refusal as a WARNING');
is($node->safe_psql('postgres', 'SELECT count(*) FROM refund_requests'), '2', 'both requests are stored');
is($node->safe_psql('postgres', 'SELECT benefits_activated FROM purchases WHERE id = 2'), 't',
	'the activation of a refunded purchase is stored');

my $log = slurp_file($node->logfile, $offset);
like($log, qr/WARNING:  23514: refund of purchase "1" is not allowed\n.*DETAIL:  Reasons: refund_window_expired\.\n.*HINT:  Refunds of this purchase are allowed from 2020-01-01 00:00:00\+00 until 2020-01-31 00:00:00\+00\./,
	'the server log has the request refusal: SQLSTATE, message, DETAIL, HINT');
like($log, qr/WARNING:  23514: purchase "2" has an accepted refund request\n.*DETAIL:  Reasons: purchase_refunded\. Column "benefits_activated" cannot change once a refund of the purchase is accepted\.\n.*HINT:  A refund request in table "public\.refund_requests" names this purchase\./,
	'the server log has the companion refusal: SQLSTATE, message, DETAIL, HINT');
unlike($log, qr/refund of purchase "2" is not allowed/, 'the allowed request is not logged');

# Switching to enforcement is one statement.
$node->safe_psql('postgres', "CREATE OR REPLACE TRIGGER refund_policy AFTER INSERT OR UPDATE ON refund_requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id')");
my ($code) = sql_error($node, 'postgres', "INSERT INTO refund_requests (purchase_id, requested_by_role) VALUES (1, 'account_admin')");
is($code, '23514', 'after CREATE OR REPLACE TRIGGER without the option, the refusal is an error');
is($node->safe_psql('postgres', 'SELECT count(*) FROM refund_requests'), '2', 'and the row is not stored');

$node->stop;
done_testing();
