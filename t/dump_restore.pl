# t/dump_restore.pl - a database that enforces refunds survives pg_dump and
# pg_restore: the check constraint, the triggers and their companions (the
# constraint trigger FROM the request table, the moment guard) are restored, the accepted
# refunds (some of them years old: no now() in the checks) load again without
# an error, every row is identical, and the restored database still refuses
# what the policy forbids.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use RefundRulesTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = rr_node('dump_restore');
my ($src, $dst) = ('rr_dump_src', 'rr_dump_dst');
my $work = PostgreSQL::Test::Utils::tempdir;

# --- 1. the source database -------------------------------------------------
$node->safe_psql('postgres', "CREATE DATABASE $src TEMPLATE template0");
my $setup = <<'SQL'
SET TimeZone = 'UTC';
CREATE EXTENSION refund_rules;
CREATE SCHEMA shop;
CREATE SCHEMA billing;

-- Purchases that record their own refund: the check constraint.
CREATE TABLE shop.memberships (
    id                          integer PRIMARY KEY,
    offer                       refund_rules.mpn_offer NOT NULL,
    purchased_at                timestamptz NOT NULL,
    benefits_activated          boolean NOT NULL DEFAULT false,
    product_keys_viewed         boolean NOT NULL DEFAULT false,
    upgraded_with_gold_discount boolean NOT NULL DEFAULT false,
    tax_exempt                  boolean NOT NULL DEFAULT false,
    refunded_at                 timestamptz,
    CONSTRAINT refund_allowed
      CHECK (refunded_at IS NULL OR refund_rules.check_refund(memberships, refunded_at))
);
-- Tax refunds recorded on a table with text offers and timestamp columns.
CREATE TABLE shop.tax_refunds (
    id           integer PRIMARY KEY,
    offer        text,
    purchased_at timestamp,
    tax_exempt   boolean,
    kind         text NOT NULL DEFAULT 'tax',
    refunded_at  timestamp,
    CONSTRAINT tax_refund_allowed
      CHECK (refunded_at IS NULL
             OR refund_rules.check_refund(tax_refunds, refunded_at, kind::refund_rules.refund_kind))
);
-- Purchases and refund requests: the trigger, unqualified and qualified.
CREATE TABLE shop.purchases (
    id                          bigint PRIMARY KEY,
    offer                       refund_rules.mpn_offer,
    purchased_at                timestamptz,
    benefits_activated          boolean,
    product_keys_viewed         boolean,
    upgraded_with_gold_discount boolean,
    tax_exempt                  boolean
);
CREATE TABLE shop.refund_requests (
    id                bigserial PRIMARY KEY,
    purchase_id       bigint NOT NULL REFERENCES shop.purchases,
    requested_at      timestamptz NOT NULL,
    kind              refund_rules.refund_kind NOT NULL DEFAULT 'purchase',
    requested_by_role text NOT NULL,
    note              text
);
CREATE UNIQUE INDEX refund_requests_once ON shop.refund_requests (purchase_id, kind);
SQL
  . enforcement_trigger(name => 'refund_policy', table => 'shop.refund_requests',
	purchases => 'purchases', column => 'purchase_id')
  . <<'SQL'
CREATE TABLE billing.requests (
    purchase_ref      bigint REFERENCES shop.purchases,
    requested_at      timestamptz,
    requested_by_role text
);
SQL
  . enforcement_trigger(name => 'refund_policy', table => 'billing.requests',
	purchases => 'shop.purchases', column => 'purchase_ref', key => 'id')
  . <<'SQL';

-- Data: refunds accepted in 2001, 2024 and 2026 (all long before or after
-- whatever now() is when this runs).
INSERT INTO shop.memberships
SELECT g, (ARRAY['action_pack', 'silver', 'gold'])[1 + g % 3]::refund_rules.mpn_offer,
       timestamptz '2001-01-01 00:00+00' + g * interval '7 hours 13 minutes',
       false, false, (g % 3 = 2) AND (g % 2 = 0), g % 5 = 0,
       CASE WHEN g % 4 = 0
            THEN timestamptz '2001-01-01 00:00+00' + g * interval '7 hours 13 minutes'
                 + (g % 720) * interval '1 hour' END
FROM generate_series(1, 2000) g;
UPDATE shop.memberships SET benefits_activated = true WHERE refunded_at IS NULL AND id % 3 = 0;
INSERT INTO shop.tax_refunds VALUES
  (1, 'gold', '2036-02-29 12:00', true, 'tax', '2037-02-28 12:00'),
  (2, 'silver', '2038-11-20 09:00', true, 'tax', '2038-11-20 09:00'),
  (3, 'action_pack', '2038-11-20 09:00', false, 'tax', NULL);
-- Purchases of the last 20 days (the trigger judges at the database's
-- clock, so requests are made now), and one whose window closed (1001).
INSERT INTO shop.purchases
SELECT g, (ARRAY['action_pack', 'silver', 'gold'])[1 + g % 3]::refund_rules.mpn_offer,
       now() - interval '20 days' + g * interval '20 minutes',
       g % 7 = 0, g % 11 = 0, g % 13 = 0, g % 2 = 0
FROM generate_series(1, 1000) g;
INSERT INTO shop.purchases VALUES (1001, 'gold', now() - interval '31 days', false, false, false, true);
-- Every request that the policy allows goes in (one per purchase and kind).
INSERT INTO shop.refund_requests (purchase_id, requested_at, kind, requested_by_role)
SELECT p.id, now(), 'purchase',
       CASE WHEN p.id % 2 = 0 THEN 'account_admin' ELSE 'mpn_partner_admin' END
FROM shop.purchases p
WHERE refund_rules.refund_eligible(p, now());
INSERT INTO shop.refund_requests (purchase_id, requested_at, kind, requested_by_role)
SELECT p.id, now(), 'tax', 'account_admin'
FROM shop.purchases p
WHERE refund_rules.tax_refund_eligible(p, now());
INSERT INTO billing.requests
SELECT id, now(), 'mpn_partner_admin' FROM shop.purchases
WHERE NOT benefits_activated AND NOT product_keys_viewed
  AND NOT (offer = 'silver' AND upgraded_with_gold_discount) AND id <> 1001;
-- The companions, after the rows (the moment guard would refuse 2001's moments
-- as they are written): an accepted request keeps its purchase; a refund
-- recorded on a membership must be written at the transaction's start.
CREATE CONSTRAINT TRIGGER refunded_purchase AFTER INSERT OR UPDATE ON shop.purchases
    FROM shop.refund_requests FOR EACH ROW
    EXECUTE FUNCTION refund_rules.protect_refunded_purchase('shop.refund_requests', 'purchase_id');
CREATE TRIGGER refund_moment AFTER INSERT OR UPDATE ON shop.memberships
    FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_moment();
SQL

my ($rc, $out, $err) = $node->psql($src, $setup, on_error_stop => 1);
is($rc, 0, 'schema and data created') or diag($err);
note $node->safe_psql($src, q{
  SELECT 'memberships refunded: ' || count(*) FILTER (WHERE refunded_at IS NOT NULL)
         || ' of ' || count(*) FROM shop.memberships
  UNION ALL SELECT 'refund requests: ' || count(*) FILTER (WHERE kind = 'purchase') || ' purchase, '
         || count(*) FILTER (WHERE kind = 'tax') || ' tax' FROM shop.refund_requests
  UNION ALL SELECT 'billing requests: ' || count(*) FROM billing.requests
  UNION ALL SELECT 'tax refunds: ' || count(*) FROM shop.tax_refunds});

# --- 2. pg_dump -Fc, pg_restore --exit-on-error -----------------------------
my $connstr = sub { $node->connstr($_[0]) };
my ($stdout, $stderr);
my $ok = IPC::Run::run([ 'pg_dump', '-Fc', '-d', $connstr->($src), '-f', "$work/src.dump" ],
	'>', \$stdout, '2>', \$stderr);
ok($ok && $stderr eq '', 'pg_dump -Fc: exit status 0, no message') or diag($stderr);
$node->safe_psql('postgres', "CREATE DATABASE $dst TEMPLATE template0");
$ok = IPC::Run::run([ 'pg_restore', '--exit-on-error', '-d', $connstr->($dst), "$work/src.dump" ],
	'>', \$stdout, '2>', \$stderr);
ok($ok && $stderr eq '', 'pg_restore --exit-on-error: exit status 0, no message') or diag($stderr);

# --- 3. same objects, same rows ---------------------------------------------
my $tables_sql = q{SELECT format('%I.%I', n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  ORDER BY 1};
my $src_tables = $node->safe_psql($src, $tables_sql);
my $dst_tables = $node->safe_psql($dst, $tables_sql);
ok($src_tables ne '' && $src_tables eq $dst_tables, 'same tables: ' . join(' ', split /\n/, $src_tables))
  or diag("source:\n$src_tables\nrestored:\n$dst_tables");
# One line per table: name, row count, md5 of the ordered row texts.
my ($src_sums, $dst_sums) = ('', '');
for my $t (split /\n/, $src_tables)
{
	my $q = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO';
	  SELECT '$t', count(*), md5(coalesce(string_agg(x.r, E'\\n' ORDER BY x.r), ''))
	  FROM (SELECT t::text AS r FROM $t t) x";
	$src_sums .= $node->safe_psql($src, $q) . "\n";
	$dst_sums .= $node->safe_psql($dst, $q) . "\n";
}
is($dst_sums, $src_sums, 'every table\'s rows identical (count and md5 of the ordered row text)');
note $src_sums;
# The definitions of both databases, dumped again, are the same (but for the
# version comments and the random key of pg_dump's \restrict lines).
my %schema;
for my $db ($src, $dst)
{
	IPC::Run::run([ 'pg_dump', '-s', '-d', $connstr->($db) ], '>', \$stdout, '2>', \$stderr)
	  or die "pg_dump -s $db: $stderr";
	$schema{$db} = join "\n", grep { !/^-- Dumped (from|by)|^\\(un)?restrict / } split /\n/, $stdout;
}
is($schema{$dst}, $schema{$src}, 'pg_dump --schema-only of both databases identical');
is($node->safe_psql($dst, q{SELECT count(*) FROM pg_trigger t
  WHERE NOT t.tgisinternal AND t.tgfoid = 'refund_rules.enforce_refund_policy()'::regprocedure
    AND t.tgenabled = 'O'}), '2', 'both triggers restored and enabled');
is($node->safe_psql($dst, q{SELECT count(*) FROM pg_constraint
  WHERE contype = 'c' AND convalidated AND conname IN ('refund_allowed', 'tax_refund_allowed')}),
	'2', 'both check constraints restored and validated');
is($node->safe_psql($dst, q{SELECT string_agg(t.tgname || ':' || t.tgrelid::regclass
    || ':' || t.tgconstrrelid::regclass || ':' || (t.tgconstraint <> 0), ',' ORDER BY t.tgname)
  FROM pg_trigger t
  WHERE NOT t.tgisinternal AND t.tgenabled = 'O' AND t.tgfoid IN
    ('refund_rules.protect_refunded_purchase()'::regprocedure, 'refund_rules.enforce_refund_moment()'::regprocedure)}),
	'refund_moment:shop.memberships:-:false,refunded_purchase:shop.purchases:shop.refund_requests:true',
	'the companions restored: the constraint trigger FROM the request table, the moment guard');

# --- 4. the restored database still enforces the policy ---------------------
# Purchase 7 has its benefits activated, 11 its keys viewed; 2 is allowed.
expect_error($node, $dst, '23514', 'trigger: refund of a purchase with benefits activated',
	q{INSERT INTO shop.refund_requests (purchase_id, requested_at, requested_by_role)
	  SELECT id, now(), 'account_admin' FROM shop.purchases WHERE id = 7});
expect_error($node, $dst, '23514', 'trigger: refund after the window',
	q{INSERT INTO billing.requests VALUES (1001, now(), 'account_admin')});
expect_error($node, $dst, '23514', 'trigger: requester not authorized',
	q{INSERT INTO billing.requests VALUES (2, now(), 'billing_clerk')});
expect_error($node, $dst, '23503', 'trigger: purchase that does not exist',
	q{INSERT INTO billing.requests VALUES (424242, now(), 'account_admin')});
expect_error($node, $dst, '23514',
	'trigger: re-check on UPDATE of requested_at (a moment of another transaction)',
	q{UPDATE shop.refund_requests SET requested_at = requested_at - interval '1 second'
	  WHERE purchase_id = 2 AND kind = 'purchase'});
expect_error($node, $dst, '23505', 'unique index: a second refund of the same purchase',
	q{INSERT INTO shop.refund_requests (purchase_id, requested_at, requested_by_role)
	  VALUES (2, now(), 'account_admin')});
expect_ok($node, $dst, 'trigger: an allowed request is accepted',
	q{INSERT INTO billing.requests VALUES (2, now(), 'account_admin')});
expect_error($node, $dst, '23514', 'companion: activating benefits of a purchase with an accepted request',
	q{UPDATE shop.purchases SET benefits_activated = true WHERE id = 2});
expect_ok($node, $dst, 'companion: a purchase without a request may change',
	q{UPDATE shop.purchases SET product_keys_viewed = true WHERE id = 7});
expect_error($node, $dst, '23514', 'moment guard: a refund written an hour back (the CHECK alone allows it)',
	q{INSERT INTO shop.memberships (id, offer, purchased_at, refunded_at)
	  VALUES (9001, 'gold', now() - interval '1 day', now() - interval '1 hour')});
expect_ok($node, $dst, 'moment guard: a refund written at the transaction\'s start is accepted',
	q{INSERT INTO shop.memberships (id, offer, purchased_at, refunded_at)
	  VALUES (9002, 'gold', now() - interval '1 day', now())});
expect_error($node, $dst, '23514', 'check constraint: activating benefits of a refunded membership',
	q{UPDATE shop.memberships SET benefits_activated = true
	  WHERE id = (SELECT min(id) FROM shop.memberships WHERE refunded_at IS NOT NULL)});
expect_error($node, $dst, '23514', 'check constraint: refunding a membership with benefits activated',
	q{UPDATE shop.memberships SET refunded_at = purchased_at
	  WHERE id = (SELECT min(id) FROM shop.memberships WHERE benefits_activated)});
expect_error($node, $dst, '23514', 'check constraint: tax refund of a purchase not tax exempt',
	q{UPDATE shop.tax_refunds SET refunded_at = purchased_at WHERE id = 3});
expect_ok($node, $dst, 'check constraint: rows accepted in 2001 pass again (UPDATE of every refunded row)',
	q{UPDATE shop.memberships SET refunded_at = refunded_at WHERE refunded_at IS NOT NULL});
expect_ok($node, $dst, 'check constraint: re-validating the restored constraint passes',
	q{ALTER TABLE shop.memberships DROP CONSTRAINT refund_allowed;
	  ALTER TABLE shop.memberships ADD CONSTRAINT refund_allowed
	    CHECK (refunded_at IS NULL OR refund_rules.check_refund(memberships, refunded_at))});

$node->stop;
done_testing();
