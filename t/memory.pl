# t/memory.pl - the backend's memory does not grow with the number of rows.
#
#   1. a separate session builds two purchase tables, 200k and 2M rows;
#   2. ONE backend (no parallel workers, no JIT) warms up on a few rows,
#      reads its own peak memory, runs every path over the 200k rows, reads
#      it again, runs the same over the 2M rows, reads it again.  Its own:
#      the peak resident memory (VmHWM) less the shared memory it has mapped
#      (RssShmem), which grows as the backend touches shared buffers, not
#      with what it allocates.  The paths: a table's whole row, rewritten by
#      the planner support (refund_ineligibility_reasons, refund_status,
#      WHERE refund_eligible / tax_refund_eligible); the row of a subquery
#      (RECORD, not rewritten); check_refund (both kinds) on both;
#      ROW(...)::refund_rules.purchase, and a subquery's record with a text
#      offer;
#   3. fails when the 2M run raised its own peak by more than SLACK_KB over
#      the 200k run's;
#   4. control: an array_agg of 3M integers in the same backend must raise
#      the peak (so the method does see growth).
# (Was test/memory.sh: the same checks.)  MEMORY_SMALL_ROWS, MEMORY_BIG_ROWS
# and MEMORY_SLACK_KB change the sizes.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use RefundRulesTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $small = $ENV{MEMORY_SMALL_ROWS} // 200000;
my $big = $ENV{MEMORY_BIG_ROWS} // 2000000;
my $slack_kb = $ENV{MEMORY_SLACK_KB} // 8192;
my $control_n = 3000000;    # array_agg of this many integers: tens of MB

my $node = rr_node('memory');
note "memory: $small and $big rows, slack $slack_kb kB";

# 1. The tables, in a session of their own (its memory is not measured).
# Even ids are refundable at the as_of used below (both kinds); odd ids
# fail for various reasons, some with NULLs.
$node->safe_psql('postgres', <<'SQL');
CREATE EXTENSION refund_rules;
CREATE FUNCTION make_purchases(name text, n int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format($q$
    CREATE TABLE %I AS
    SELECT i AS id,
           (ARRAY['action_pack', 'silver', 'gold'])[1 + i %% 3]::refund_rules.mpn_offer AS offer,
           CASE WHEN i %% 2 = 0 THEN timestamptz '2026-11-25 12:00+00' - (i %% 29) * interval '1 day'
                WHEN i %% 97 = 1 THEN NULL
                ELSE timestamptz '2026-11-25 12:00+00' - (i %% 700) * interval '1 day' END AS purchased_at,
           CASE WHEN i %% 2 = 0 THEN false WHEN i %% 89 = 1 THEN NULL ELSE i %% 5 = 1 END AS benefits_activated,
           CASE WHEN i %% 2 = 0 THEN false ELSE i %% 7 = 1 END AS product_keys_viewed,
           CASE WHEN i %% 2 = 0 THEN false ELSE i %% 11 = 1 END AS upgraded_with_gold_discount,
           CASE WHEN i %% 2 = 0 THEN true ELSE i %% 3 = 1 END AS tax_exempt,
           'note ' || i AS note
      FROM generate_series(1, %s) i$q$, name, n);
    EXECUTE format('ANALYZE %I', name);
END $$;
SQL
$node->safe_psql('postgres', "SELECT make_purchases('p_small', $small); SELECT make_purchases('p_big', $big);
  SELECT make_purchases('p_warm', 100)");

# 2. The measuring backend.  :n and :t are set before each \ir of the run.
my $run = PostgreSQL::Test::Utils::tempdir() . '/run.sql';
open my $f, '>', $run or die "$run: $!";
print $f <<'SQL';
-- every path over table :t (and generate_series(1, :n))
SELECT 'rows ' || :'t' || ' ' ||
       (SELECT sum(cardinality(refund_rules.refund_ineligibility_reasons(p, :'a')))
          FROM :t p) || ' ' ||
       (SELECT count(*) FILTER (WHERE s.refund_eligible) || '/' || sum(cardinality(s.tax_refund_reasons))
          FROM :t p CROSS JOIN LATERAL refund_rules.refund_status(p, :'a') s) || ' ' ||
       (SELECT count(*) FROM :t p
         WHERE refund_rules.refund_eligible(p, :'a') OR refund_rules.tax_refund_eligible(p, :'a')) || ' ' ||
       (SELECT sum(cardinality(refund_rules.refund_ineligibility_reasons(p, :'a', 'tax')))
          FROM (SELECT * FROM :t OFFSET 0) p) || ' ' ||
       (SELECT count(*) FILTER (WHERE s.refund_eligible) || '/' || sum(cardinality(s.tax_refund_reasons))
          FROM (SELECT * FROM :t OFFSET 0) p CROSS JOIN LATERAL refund_rules.refund_status(p, :'a') s) || ' ' ||
       (SELECT count(*) FROM (SELECT * FROM :t OFFSET 0) p
         WHERE refund_rules.refund_eligible(p, :'a') OR refund_rules.tax_refund_eligible(p, :'a')) || ' ' ||
       (SELECT count(CASE WHEN p.id % 2 = 0 THEN refund_rules.check_refund(p, :'a', 'purchase') END) || '/' ||
               count(CASE WHEN p.id % 2 = 0 THEN refund_rules.check_refund(p, :'a', 'tax') END)
          FROM :t p) || ' ' ||
       (SELECT count(CASE WHEN p.id % 2 = 0 THEN refund_rules.check_refund(p, :'a', 'purchase') END)
          FROM (SELECT * FROM :t OFFSET 0) p) || ' ' ||
       (SELECT sum(cardinality(refund_rules.refund_ineligibility_reasons(
                   ROW((ARRAY['action_pack', 'silver', 'gold'])[1 + i % 3], :'a'::timestamptz - (i % 40) * interval '1 day',
                       i % 5 = 1, i % 7 = 1, i % 11 = 1, i % 2 = 0)::refund_rules.purchase, :'a')))
          FROM (SELECT generate_series(1, :n) AS i) g) || ' ' ||
       (SELECT count(*) FILTER (WHERE s.refund_eligible) || '/' || count(*) FILTER (WHERE s.tax_refund_eligible)
          FROM (SELECT generate_series(1, :n) AS i) g
          CROSS JOIN LATERAL refund_rules.refund_status(
                   ROW((ARRAY['action_pack', 'silver', 'gold'])[1 + i % 3], :'a'::timestamptz - (i % 40) * interval '1 day',
                       i % 5 = 1, i % 7 = 1, i % 11 = 1, i % 2 = 0)::refund_rules.purchase, :'a') s) || ' ' ||
       (SELECT sum(cardinality(refund_rules.refund_ineligibility_reasons(g, :'a')))
          FROM (SELECT i, (ARRAY['action_pack', 'silver', 'gold', NULL])[1 + i % 4] AS offer,
                       (:'a'::timestamptz - (i % 40) * interval '1 day')::timestamp AS purchased_at,
                       i % 5 = 1 AS benefits_activated, i % 7 = 1 AS product_keys_viewed,
                       i % 11 = 1 AS upgraded_with_gold_discount, i % 2 = 0 AS tax_exempt
                  FROM generate_series(1, :n) i OFFSET 0) g);
SELECT 'hwm ' || :'t' || ' ' ||
       substring(s FROM 'VmHWM:\s*(\d+) kB') || ' ' || substring(s FROM 'RssShmem:\s*(\d+) kB')
  FROM pg_read_file('/proc/' || pg_backend_pid() || '/status') s;
SQL
close $f;
chmod 0644, $run;

my ($rc, $out, $err) = $node->psql('postgres', <<"SQL", on_error_stop => 1);
SET max_parallel_workers_per_gather = 0;
SET jit = off;
\\set a '2026-11-25 12:00:00+00'
-- warm up: caches, plans, the library; every page of the tables touched
-- once, so that shared buffers count in the baseline
SELECT count(*) FROM p_small;
SELECT count(*) FROM p_big;
\\set t p_warm
\\set n 100
\\ir $run
\\set t p_small
\\set n $small
\\ir $run
\\set t p_big
\\set n $big
\\ir $run
-- control: this must raise the peak
SELECT 'control ' || count(*) FROM (SELECT array_agg(i) AS a FROM generate_series(1, $control_n) i) x
 WHERE cardinality(a) > 0;
SELECT 'hwm control ' ||
       substring(s FROM 'VmHWM:\\s*(\\d+) kB') || ' ' || substring(s FROM 'RssShmem:\\s*(\\d+) kB')
  FROM pg_read_file('/proc/' || pg_backend_pid() || '/status') s;
SQL
is($rc, 0, 'the measuring session ran every path (one backend)') or diag($err);

my (%hwm, %shmem);
for (split /\n/, $out)
{
	($hwm{$1}, $shmem{$1}) = ($2, $3) if /^hwm (\S+) (\d+) (\d+)$/;
}
ok((grep { defined $hwm{$_} } qw(p_warm p_small p_big control)) == 4, 'VmHWM and RssShmem read at each step')
  or diag($out);
my %own = map { $_ => ($hwm{$_} // 0) - ($shmem{$_} // 0) } keys %hwm;
note "results: $_" for grep { /^rows / } split /\n/, $out;
my $grow_small = $own{p_small} - $own{p_warm};
my $grow_big = $own{p_big} - $own{p_warm};
my $grow_control = $own{control} - $own{p_big};
note "own peak (VmHWM - RssShmem): warm-up $own{p_warm} kB; $small rows +$grow_small kB; "
  . "$big rows +$grow_big kB; control +$grow_control kB";

ok($grow_big <= $grow_small + $slack_kb,
	"memory flat: +$grow_big kB for $big rows <= +$grow_small kB for $small rows + $slack_kb kB");
ok($grow_control > $slack_kb,
	"the control query raised the peak by $grow_control kB > $slack_kb kB (the measurement works)");

$node->stop;
done_testing();
