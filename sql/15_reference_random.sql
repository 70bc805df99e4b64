-- Randomized comparison of the query functions with a plain-SQL reference of
-- the policy page, written here independently of the C: 100 000+ purchases
-- with NULLs in every field, infinite and extreme timestamps, both ends of
-- the windows +/- 1 microsecond, all offers, as_of varied per row and
-- constant.  Run on table rows (the planner rewrite applies) and on subquery
-- rows (it does not), and through the index range the rewrite adds.
-- Prints only mismatch counts (all must be 0), the row counts, and how many
-- rows hit each reason (so a change in coverage shows).
SET TimeZone = 'UTC';
CREATE SCHEMA t15;
SET search_path = t15, public;
SET work_mem = '64MB';
SELECT setseed(0.2026);

-- Random draws, one row per purchase.
CREATE TABLE draws AS
SELECT i AS id, random() AS r_p, random() AS r_p2, random() AS r_p3, random() AS r_a, random() AS r_a2,
       random() AS r_a3, random() AS r_o, random() AS r_b, random() AS r_k, random() AS r_u,
       random() AS r_t, random() AS r_kind
  FROM generate_series(1, 100000) i;

-- Special instants.
CREATE TABLE extremes (at timestamptz);
INSERT INTO extremes VALUES
 ('4714-11-24 00:00:00+00 BC'), ('4714-11-24 00:00:00.000001+00 BC'), ('4714-12-24 00:00:00+00 BC'),
 ('4714-12-24 00:00:00.000001+00 BC'), ('4713-11-24 00:00:00+00 BC'), ('4713-11-24 00:00:00.000001+00 BC'),
 ('294276-12-31 23:59:59.999999+00'), ('294276-12-31 23:59:59.999998+00'),
 ('294276-12-01 23:59:59.999999+00'), ('294276-12-01 23:59:59.999998+00'), ('294276-12-02 00:00:00+00'),
 ('294275-12-31 23:59:59.999999+00'), ('294275-12-31 23:59:59.999998+00'), ('294276-01-01 00:00:00+00'),
 ('294275-02-28 12:00+00'), ('294276-02-29 12:00+00'),
 ('infinity'), ('-infinity');

CREATE TABLE cases (
    id int PRIMARY KEY,
    offer refund_rules.mpn_offer,
    purchased_at timestamptz,
    benefits_activated boolean,
    product_keys_viewed boolean,
    upgraded_with_gold_discount boolean,
    tax_exempt boolean,
    as_of timestamptz,
    kind refund_rules.refund_kind);

-- The reference deadlines (policy page: 720 hours; one calendar year in UTC;
-- infinite purchases keep their infinity; beyond the largest timestamp is
-- infinity).  Interval arithmetic would overflow near the end of the range,
-- so those are decided first.
CREATE FUNCTION ref_deadline(p timestamptz) RETURNS timestamptz LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN p IS NULL THEN NULL
              WHEN p IN ('infinity', '-infinity') THEN p
              WHEN p > timestamptz '294276-12-31 23:59:59.999999+00' - interval '720 hours' THEN 'infinity'
              ELSE p + interval '720 hours' END $$;
CREATE FUNCTION ref_tax_deadline(p timestamptz) RETURNS timestamptz LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN p IS NULL THEN NULL
              WHEN p IN ('infinity', '-infinity') THEN p
              WHEN p >= timestamptz '294276-01-01 00:00:00+00' THEN 'infinity'   -- + 1 year is past 294276
              ELSE ((p AT TIME ZONE 'UTC') + interval '1 year') AT TIME ZONE 'UTC' END $$;

INSERT INTO cases
SELECT id,
       CASE WHEN r_o < 0.08 THEN NULL WHEN r_o < 0.38 THEN 'action_pack' WHEN r_o < 0.70 THEN 'silver' ELSE 'gold' END::refund_rules.mpn_offer,
       p,
       CASE WHEN r_b < 0.08 THEN NULL ELSE r_b < 0.30 END,
       CASE WHEN r_k < 0.08 THEN NULL ELSE r_k < 0.30 END,
       CASE WHEN r_u < 0.08 THEN NULL ELSE r_u < 0.45 END,
       CASE WHEN r_t < 0.08 THEN NULL ELSE r_t < 0.65 END,
       CASE WHEN r_a < 0.03 THEN NULL
            WHEN r_a < 0.05 THEN CASE WHEN r_a2 < 0.5 THEN 'infinity' ELSE '-infinity' END::timestamptz
            WHEN r_a < 0.09 THEN (SELECT at FROM t15.extremes ORDER BY at OFFSET floor(r_a2 * 18)::int LIMIT 1)
            WHEN p IS NULL OR p NOT BETWEEN '1000-01-01+00' AND '294000-01-01+00'
              THEN timestamptz '2024-01-01+00' + r_a2 * interval '2000 days'
            -- the purchase window's ends, +/- 1 microsecond
            WHEN r_a < 0.45 THEN p + (ARRAY[interval '-1 microsecond', '0', '1 microsecond', '720:00:00', '719:59:59.999999',
                                             '720:00:00.000001', '1 day', '29 days 23:00', '30 days 01:00',
                                             '-1 day', '45 days'])[1 + floor(r_a2 * 11)::int]
            -- the tax window's end, +/- 1 microsecond
            WHEN r_a < 0.65 THEN t15.ref_tax_deadline(p) + (ARRAY[interval '-1 microsecond', '0', '1 microsecond', '-1 day', '1 day', '-1 hour', '1 hour'])[1 + floor(r_a2 * 7)::int]
            ELSE timestamptz '2024-01-01+00' + r_a2 * interval '2000 days' END,
       CASE WHEN r_kind < 0.08 THEN NULL WHEN r_kind < 0.55 THEN 'purchase' ELSE 'tax' END::refund_rules.refund_kind
  FROM (SELECT d.*,
               CASE WHEN r_p < 0.04 THEN NULL
                    WHEN r_p < 0.06 THEN CASE WHEN r_p2 < 0.5 THEN 'infinity' ELSE '-infinity' END::timestamptz
                    WHEN r_p < 0.10 THEN (SELECT at FROM t15.extremes ORDER BY at OFFSET floor(r_p2 * 18)::int LIMIT 1)
                    -- around leap days and month ends, any time of day
                    WHEN r_p < 0.30 THEN (ARRAY[timestamptz '2023-02-28+00', '2024-02-28+00', '2024-02-29+00', '2024-03-01+00',
                                                '2023-03-01+00', '2028-02-29+00', '2100-02-28+00', '2099-02-28+00',
                                                '2025-12-31+00', '2026-01-31+00'])[1 + floor(r_p2 * 10)::int]
                                         + floor(r_p3 * 86400000000) * interval '1 microsecond'
                    ELSE timestamptz '2024-01-01+00' + floor(r_p2 * 1800 * 86400) * interval '1 second'
                                                      + floor(r_p3 * 1000000) * interval '1 microsecond'
               END AS p
          FROM draws d) x;
-- Every extreme purchase against every extreme as_of, with nothing else in
-- the way.
INSERT INTO cases
SELECT 1000000 + row_number() OVER (ORDER BY p.at, a.at), 'gold', p.at, false, false, false, true, a.at, 'tax'
  FROM extremes p CROSS JOIN extremes a;
CREATE INDEX ON cases (purchased_at);
ANALYZE cases;

-- What the policy page says, for each row, at its own as_of ('varied') and
-- at a constant as_of ('constant').
CREATE TABLE expect AS
SELECT c.id, a.run, a.as_of, c.kind,
       -- three-valued: false when a criterion is false, NULL when one is
       -- unknown; NULL when as_of is
       CASE WHEN a.as_of IS NOT NULL THEN
         (c.purchased_at <= a.as_of AND a.as_of <= t15.ref_deadline(c.purchased_at))
         AND NOT c.benefits_activated AND NOT c.product_keys_viewed
         AND NOT (c.offer = 'silver' AND c.upgraded_with_gold_discount) END AS refund,
       CASE WHEN a.as_of IS NOT NULL THEN
         (c.purchased_at <= a.as_of AND a.as_of <= t15.ref_tax_deadline(c.purchased_at))
         AND c.tax_exempt END AS tax,
       CASE WHEN a.as_of IS NOT NULL THEN array_remove(ARRAY[
         CASE WHEN c.purchased_at IS NULL THEN 'missing_purchased_at'
              WHEN a.as_of < c.purchased_at THEN 'not_yet_purchased'
              WHEN a.as_of > t15.ref_deadline(c.purchased_at) THEN 'refund_window_expired' END,
         CASE WHEN c.benefits_activated IS NULL THEN 'missing_benefits_activated'
              WHEN c.benefits_activated THEN 'benefits_activated' END,
         CASE WHEN c.product_keys_viewed IS NULL THEN 'missing_product_keys_viewed'
              WHEN c.product_keys_viewed THEN 'product_keys_viewed' END,
         CASE WHEN c.offer = 'silver' AND c.upgraded_with_gold_discount THEN 'upgraded_with_gold_discount'
              WHEN c.offer IS NULL AND c.upgraded_with_gold_discount IS NOT FALSE THEN 'missing_offer' END,
         CASE WHEN c.upgraded_with_gold_discount IS NULL AND c.offer IS NOT DISTINCT FROM NULL THEN 'missing_upgraded_with_gold_discount'
              WHEN c.upgraded_with_gold_discount IS NULL AND c.offer = 'silver' THEN 'missing_upgraded_with_gold_discount' END
       ], NULL) END AS refund_reasons,
       CASE WHEN a.as_of IS NOT NULL THEN array_remove(ARRAY[
         CASE WHEN c.purchased_at IS NULL THEN 'missing_purchased_at'
              WHEN a.as_of < c.purchased_at THEN 'not_yet_purchased'
              WHEN a.as_of > t15.ref_tax_deadline(c.purchased_at) THEN 'tax_refund_window_expired' END,
         CASE WHEN c.tax_exempt IS NULL THEN 'missing_tax_exempt'
              WHEN NOT c.tax_exempt THEN 'not_tax_exempt' END
       ], NULL) END AS tax_reasons,
       t15.ref_deadline(c.purchased_at) AS refund_deadline,
       t15.ref_tax_deadline(c.purchased_at) AS tax_refund_deadline
  FROM cases c
 CROSS JOIN LATERAL (VALUES ('varied', c.as_of), ('constant', timestamptz '2026-11-25 12:00+00')) a(run, as_of);
CREATE UNIQUE INDEX ON expect (run, id);
ANALYZE expect;

-- The calls to compare, for a row expression and an as_of expression.
CREATE FUNCTION compare(label text, from_clause text, row_expr text, as_of_expr text, run text)
RETURNS TABLE (path text, refund bigint, tax bigint, reasons bigint, tax_reasons bigint, kind_reasons bigint,
               deadlines bigint, status bigint, rows bigint)
LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY EXECUTE format($q$
    SELECT %1$L::text,
      count(*) FILTER (WHERE refund_rules.refund_eligible(%3$s, %4$s) IS DISTINCT FROM e.refund),
      count(*) FILTER (WHERE refund_rules.tax_refund_eligible(%3$s, %4$s) IS DISTINCT FROM e.tax),
      count(*) FILTER (WHERE refund_rules.refund_ineligibility_reasons(%3$s, %4$s) IS DISTINCT FROM e.refund_reasons
                          OR refund_rules.refund_ineligibility_reasons(%3$s, %4$s, 'purchase') IS DISTINCT FROM e.refund_reasons),
      count(*) FILTER (WHERE refund_rules.refund_ineligibility_reasons(%3$s, %4$s, 'tax') IS DISTINCT FROM e.tax_reasons),
      count(*) FILTER (WHERE refund_rules.refund_ineligibility_reasons(%3$s, %4$s, e.kind)
                             IS DISTINCT FROM CASE e.kind WHEN 'purchase' THEN e.refund_reasons WHEN 'tax' THEN e.tax_reasons END),
      count(*) FILTER (WHERE refund_rules.refund_deadline(x.purchased_at) IS DISTINCT FROM e.refund_deadline
                          OR refund_rules.tax_refund_deadline(x.purchased_at) IS DISTINCT FROM e.tax_refund_deadline),
      count(*) FILTER (WHERE (st.refund_eligible, st.refund_reasons, st.refund_deadline,
                              st.tax_refund_eligible, st.tax_refund_reasons, st.tax_refund_deadline)
                             IS DISTINCT FROM (e.refund, e.refund_reasons, e.refund_deadline,
                                               e.tax, e.tax_reasons, e.tax_refund_deadline)),
      count(*)
      FROM %2$s JOIN t15.expect e ON e.id = x.id AND e.run = %5$L
      CROSS JOIN LATERAL refund_rules.refund_status(%3$s, %4$s) st$q$,
    label, from_clause, row_expr, as_of_expr, run);
END $$;

-- Both C paths, at each row's as_of and at a constant one.
SELECT * FROM compare('table row, as_of per row', 't15.cases x', 'x', 'x.as_of', 'varied')
UNION ALL
SELECT * FROM compare('table row, constant as_of', 't15.cases x', 'x', '''2026-11-25 12:00+00''', 'constant')
UNION ALL
SELECT * FROM compare('subquery row, as_of per row', '(SELECT * FROM t15.cases OFFSET 0) x', 'x', 'x.as_of', 'varied')
UNION ALL
SELECT * FROM compare('subquery row, constant as_of', '(SELECT * FROM t15.cases OFFSET 0) x', 'x', '''2026-11-25 12:00+00''', 'constant')
UNION ALL
SELECT * FROM compare('(SELECT p), as_of per row', '(SELECT c.id, c.purchased_at, c.as_of, (SELECT c) AS p FROM t15.cases c OFFSET 0) x', 'x.p', 'x.as_of', 'varied');

-- The planner rewrote the table-row calls and not the subquery-row ones.
CREATE FUNCTION plan_of(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE l text; plan text := '';
BEGIN
  FOR l IN EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF) ' || q LOOP plan := plan || l || E'\n'; END LOOP;
  RETURN plan;
END $$;
SELECT strpos(plan_of('SELECT refund_rules.refund_eligible(x, x.as_of) FROM t15.cases x'), '._refund_eligible(') > 0 AS table_row_rewritten,
       strpos(plan_of('SELECT refund_rules.refund_eligible(x, x.as_of) FROM (SELECT * FROM t15.cases OFFSET 0) x'), '._refund_eligible(') = 0 AS subquery_row_not_rewritten;

-- In WHERE, where the rewrite adds a range on purchased_at: the same rows as
-- the reference, by sequential scan and by index scan.
CREATE FUNCTION where_ids(fn text, neg boolean, as_of text) RETURNS SETOF int LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY EXECUTE format('SELECT id FROM t15.cases x WHERE %s refund_rules.%s(x, %s)',
                              CASE WHEN neg THEN 'NOT' ELSE '' END, fn, as_of);
END $$;
CREATE TABLE where_results (scan text, fn text, neg boolean, run text, id int);
CREATE FUNCTION collect_where(scan text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE fn text; neg boolean; run text;
BEGIN
  FOREACH fn IN ARRAY ARRAY['refund_eligible', 'tax_refund_eligible'] LOOP
    FOREACH neg IN ARRAY ARRAY[false, true] LOOP
      FOREACH run IN ARRAY ARRAY['varied', 'constant'] LOOP
        INSERT INTO t15.where_results
        SELECT scan, fn, neg, run, w FROM t15.where_ids(fn, neg, CASE run WHEN 'varied' THEN 'x.as_of' ELSE '''2026-11-25 12:00+00''' END) w;
      END LOOP;
    END LOOP;
  END LOOP;
END $$;
SET enable_indexscan = off; SET enable_bitmapscan = off;
SELECT collect_where('seqscan');
RESET enable_indexscan; RESET enable_bitmapscan;
SET enable_seqscan = off;
SELECT collect_where('index');
SELECT plan_of('SELECT id FROM t15.cases x WHERE refund_rules.refund_eligible(x, ''2026-11-25 12:00+00'')') ~ 'Index' AS index_used;
RESET enable_seqscan;
SELECT s.scan, s.fn, s.neg,
       count(*) FILTER (WHERE s.run = 'varied') AS varied_rows,
       count(*) FILTER (WHERE s.run = 'constant') AS constant_rows
  FROM where_results s GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
CREATE TABLE where_expect AS
SELECT f.fn, n.neg, e.run, e.id
  FROM expect e, (VALUES ('refund_eligible'), ('tax_refund_eligible')) f(fn), (VALUES (false), (true)) n(neg)
 WHERE CASE f.fn WHEN 'refund_eligible' THEN e.refund ELSE e.tax END = NOT n.neg;
SELECT s.scan,
       (SELECT count(*) FROM (SELECT fn, neg, run, id FROM where_results w WHERE w.scan = s.scan
                              EXCEPT ALL SELECT * FROM where_expect) m) AS unexpected_rows,
       (SELECT count(*) FROM (SELECT * FROM where_expect
                              EXCEPT ALL SELECT fn, neg, run, id FROM where_results w WHERE w.scan = s.scan) m) AS missing_rows
  FROM (VALUES ('index'), ('seqscan')) s(scan);

-- Coverage: how many rows the reference puts in each case.
SELECT e.run, count(*) AS rows,
       count(*) FILTER (WHERE e.refund) AS refund_t, count(*) FILTER (WHERE NOT e.refund) AS refund_f,
       count(*) FILTER (WHERE e.refund IS NULL) AS refund_null,
       count(*) FILTER (WHERE e.tax) AS tax_t, count(*) FILTER (WHERE NOT e.tax) AS tax_f,
       count(*) FILTER (WHERE e.tax IS NULL) AS tax_null
  FROM expect e GROUP BY e.run ORDER BY e.run;
SELECT reason, count(*) FILTER (WHERE run = 'varied') AS varied, count(*) FILTER (WHERE run = 'constant') AS constant
  FROM (SELECT run, unnest(refund_reasons || tax_reasons) AS reason FROM expect) r
 GROUP BY reason ORDER BY reason;
SELECT count(*) FILTER (WHERE c.as_of = e.refund_deadline AND isfinite(c.as_of)) AS at_refund_deadline,
       count(*) FILTER (WHERE CASE WHEN isfinite(e.refund_deadline) AND e.refund_deadline < '294276-12-31 23:59:59.999999+00'
                                   THEN c.as_of = e.refund_deadline + interval '1 microsecond' END) AS just_after_refund_deadline,
       count(*) FILTER (WHERE c.as_of = e.tax_refund_deadline AND isfinite(c.as_of)) AS at_tax_deadline,
       count(*) FILTER (WHERE CASE WHEN isfinite(e.tax_refund_deadline) AND e.tax_refund_deadline < '294276-12-31 23:59:59.999999+00'
                                   THEN c.as_of = e.tax_refund_deadline + interval '1 microsecond' END) AS just_after_tax_deadline,
       count(*) FILTER (WHERE c.as_of = c.purchased_at) AS at_purchase,
       count(*) FILTER (WHERE CASE WHEN isfinite(c.purchased_at) AND c.purchased_at > '4714-11-24 00:00:00+00 BC'
                                   THEN c.as_of = c.purchased_at - interval '1 microsecond' END) AS just_before_purchase,
       count(*) FILTER (WHERE to_char(c.purchased_at AT TIME ZONE 'UTC', 'MM-DD') = '02-29') AS leap_day_purchases,
       count(*) FILTER (WHERE e.tax_refund_deadline = 'infinity' AND isfinite(c.purchased_at)) AS deadline_beyond_range
  FROM cases c JOIN expect e ON e.id = c.id AND e.run = 'varied';

RESET search_path;
RESET work_mem;
DROP SCHEMA t15 CASCADE;
