-- 31_rewrite_equivalence: the planner's rewrite never changes an answer.
--
-- On a randomized table (NULLs in every column, +-infinity, the extreme
-- timestamps, window edges +- 1 microsecond) every call is evaluated twice:
-- on the table's whole row, which the planner rewrites into the column form
-- plus a range on purchased_at, and on the RECORD row of a subquery kept
-- apart with OFFSET 0, which it leaves alone.  Compared: in WHERE (the sets
-- of rows selected), under NOT and IS NULL, and in the target list; with a
-- constant as_of, with now(), and with a per-row as_of from a join; with an
-- index scan on purchased_at and with a sequential scan.  Every mismatch
-- count must be 0.

SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
SET max_parallel_workers_per_gather = 0;
CREATE SCHEMA eq;

-- The moments purchases are placed around, and the as_of of the join.
CREATE TABLE eq.moments (k int PRIMARY KEY, as_of timestamptz);
INSERT INTO eq.moments VALUES
  (1, '2026-06-01 00:00+00'),
  (2, '2024-02-29 12:00+00'),			-- leap day
  (3, '2025-02-28 12:00+00'),			-- tax deadline of the leap day
  (4, '2025-03-01 00:00+00'),
  (5, 'infinity'),
  (6, '-infinity'),
  (7, NULL),
  (8, '294276-12-31 23:59:59.999999+00'),	-- the largest timestamptz
  (9, '4714-11-24 00:00:00+00 BC');			-- the smallest

-- The purchase times to pick from: each finite moment (and now()) with
-- the window edges +- 1 microsecond and random spreads, plus the extremes.
CREATE TABLE eq.times (n int GENERATED ALWAYS AS IDENTITY, t timestamptz, near_now boolean);
INSERT INTO eq.times (t, near_now)
SELECT m + o, m = now()
FROM unnest(ARRAY['2026-06-01 00:00+00', '2024-02-29 12:00+00', '2025-02-28 12:00+00',
                  '2025-03-01 00:00+00', now()]::timestamptz[]) m,
     unnest(ARRAY['0', '1 microsecond', '-1 microsecond',
                  '-720 hours', '-720 hours 1 microsecond', '-720 hours -1 microsecond',
                  '-1 year', '-1 year 1 microsecond', '-1 year -1 microsecond',
                  '-365 days', '-366 days', '-366 days -1 microsecond',
                  '-29 days', '-31 days', '1 day']::interval[]) o;
INSERT INTO eq.times (t) VALUES
  ('infinity'), ('-infinity'),
  ('294276-12-31 23:59:59.999999+00'), ('294276-12-31 23:59:59.999998+00'),
  ('294276-12-01 23:59:59.999999+00'), ('294276-12-01 23:59:59.999998+00'),
  ('294276-12-02 00:00:00+00'), ('294275-12-31 23:59:59.999999+00'),
  ('294275-12-31 23:59:59.999998+00'), ('294275-12-31 00:00:00+00'),
  ('4714-11-24 00:00:00+00 BC'), ('4714-11-24 00:00:00.000001+00 BC'),
  ('4714-12-24 00:00:00+00 BC'), ('4713-11-24 00:00:00+00 BC');

SELECT setseed(0.31);
CREATE TABLE eq.purchases (
    id                          int PRIMARY KEY,
    offer                       refund_rules.mpn_offer,
    purchased_at                timestamptz,
    benefits_activated          boolean,
    product_keys_viewed         boolean,
    upgraded_with_gold_discount boolean,
    tax_exempt                  boolean,
    partner                     text,
    near_now                    boolean NOT NULL	-- placed around now()
);
-- a random boolean: NULL 8 %, true with probability pt
CREATE FUNCTION eq.rb(pt float8) RETURNS boolean LANGUAGE sql VOLATILE
  AS $$ SELECT CASE WHEN random() < 0.08 THEN NULL ELSE random() < pt END $$;
-- Every random() is drawn in the LATERAL, once per g and in g's order.
WITH pool AS (SELECT array_agg(n ORDER BY n) AS ns FROM eq.times)
INSERT INTO eq.purchases
SELECT g,
       CASE WHEN x.r_offer < 0.08 THEN NULL
            ELSE (ARRAY['action_pack', 'silver', 'gold']::refund_rules.mpn_offer[])
                 [1 + floor(x.r_offer_pick * 3)::int] END,
       CASE WHEN x.r_at < 0.06 THEN NULL
            WHEN x.r_at < 0.60 THEN t.t
            ELSE timestamptz '2025-01-01 00:00+00' + x.r_spread * interval '600 days' END,
       x.b, x.k, x.u, x.te,
       'partner ' || g % 101,
       x.r_at >= 0.06 AND x.r_at < 0.60 AND coalesce(t.near_now, false)
FROM pool, generate_series(1, 20000) g,
     LATERAL (SELECT random() + g * 0 AS r_offer, random() AS r_offer_pick,
                     random() AS r_at, random() AS r_spread,
                     ns[1 + floor(random() * cardinality(ns))::int] AS pick,
                     eq.rb(0.2) AS b, eq.rb(0.15) AS k, eq.rb(0.4) AS u,
                     eq.rb(0.5) AS te) x
     LEFT JOIN eq.times t ON t.n = x.pick;
CREATE INDEX ON eq.purchases (purchased_at);
ANALYZE eq.purchases;

-- The same rows with a text offer and a timestamp (read as UTC): the
-- column form then gets no range (it only pays off on timestamptz).
CREATE TABLE eq.purchases_text AS
SELECT id, offer::text AS offer, purchased_at AT TIME ZONE 'UTC' AS purchased_at,
       benefits_activated, product_keys_viewed, upgraded_with_gold_discount, tax_exempt,
       near_now
FROM eq.purchases;
ALTER TABLE eq.purchases_text ADD PRIMARY KEY (id);
ANALYZE eq.purchases_text;

-- What the data holds: NULLs everywhere, the extremes.
SELECT count(*) AS rows,
       count(*) FILTER (WHERE offer IS NULL) > 0 AS offer_null,
       count(*) FILTER (WHERE purchased_at IS NULL) > 0 AS at_null,
       count(*) FILTER (WHERE benefits_activated IS NULL) > 0 AS b_null,
       count(*) FILTER (WHERE product_keys_viewed IS NULL) > 0 AS k_null,
       count(*) FILTER (WHERE upgraded_with_gold_discount IS NULL) > 0 AS u_null,
       count(*) FILTER (WHERE tax_exempt IS NULL) > 0 AS te_null,
       count(*) FILTER (WHERE purchased_at = 'infinity') > 0 AS inf,
       count(*) FILTER (WHERE purchased_at = '-infinity') > 0 AS neg_inf,
       count(*) FILTER (WHERE purchased_at = '294276-12-31 23:59:59.999999+00') > 0 AS max,
       count(*) FILTER (WHERE purchased_at = '4714-11-24 00:00:00+00 BC') > 0 AS min,
       count(*) FILTER (WHERE purchased_at = '2026-06-01 00:00+00'::timestamptz
                                             - interval '720 hours 1 microsecond') > 0 AS edge
FROM eq.purchases;

------------------------------------------------------------------------
-- The comparison helpers
------------------------------------------------------------------------
-- The as_of of a source: a constant, 'now' or 'join' (eq.moments m).
CREATE FUNCTION eq.as_of_sql(src text, OUT from_sql text, OUT key_sql text, OUT t_sql text)
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF src = 'join' THEN
    from_sql := ', eq.moments m'; key_sql := 'm.k'; t_sql := 'm.as_of';
  ELSIF src = 'now' THEN
    from_sql := ''; key_sql := '0'; t_sql := 'now()';
  ELSE
    from_sql := ''; key_sql := '0'; t_sql := format('%L::timestamptz', src);
  END IF;
END $$;

-- The rows a predicate selects, rewritten (tbl p) and not ((SELECT * FROM
-- tbl OFFSET 0) p): how many (of those not placed around now(), so that
-- the count does not depend on the day the test runs), and the size of
-- the symmetric difference.  now() is the same in every query of a call.
CREATE FUNCTION eq.compare_where(tbl text, pred text, src text,
                                 OUT selected bigint, OUT mismatches bigint)
LANGUAGE plpgsql AS $$
DECLARE
  s record := eq.as_of_sql(src);
  rw text;
  pl text;
BEGIN
  pred := replace(pred, '$t', s.t_sql);
  rw := format('SELECT p.id, %s AS k, p.near_now FROM %s p%s WHERE %s',
               s.key_sql, tbl, s.from_sql, pred);
  pl := format('SELECT p.id, %s AS k, p.near_now FROM (SELECT * FROM %s OFFSET 0) p%s WHERE %s',
               s.key_sql, tbl, s.from_sql, pred);
  EXECUTE format('WITH r AS MATERIALIZED (%s), u AS MATERIALIZED (%s)
                  SELECT (SELECT count(*) FILTER (WHERE NOT near_now) FROM r),
                         (SELECT count(*) FROM (TABLE r EXCEPT ALL TABLE u) d)
                       + (SELECT count(*) FROM (TABLE u EXCEPT ALL TABLE r) d)',
                 rw, pl)
    INTO selected, mismatches;
END $$;

-- Values in the target list, rewritten and not, per row (and moment):
-- the number of rows where each expression differs.
CREATE FUNCTION eq.compare_targets(tbl text, exprs text[], src text)
RETURNS TABLE (expr text, compared bigint, mismatches bigint)
LANGUAGE plpgsql AS $$
DECLARE
  s record := eq.as_of_sql(src);
  cols text;
  cmp text;
  counts bigint[];
  n bigint;
BEGIN
  SELECT string_agg(format('%s AS c%s', replace(e, '$t', s.t_sql), i), ', '),
         string_agg(format('count(*) FILTER (WHERE r.c%s IS DISTINCT FROM u.c%s)', i, i), ', ')
    INTO cols, cmp
    FROM unnest(exprs) WITH ORDINALITY AS x(e, i);
  EXECUTE format('SELECT count(*), ARRAY[%s]
                  FROM (SELECT p.id, %s AS k, %s FROM %s p%s) r
                  FULL JOIN (SELECT p.id, %s AS k, %s FROM (SELECT * FROM %s OFFSET 0) p%s) u
                    USING (id, k)',
                 cmp, s.key_sql, cols, tbl, s.from_sql, s.key_sql, cols, tbl, s.from_sql)
    INTO n, counts;
  RETURN QUERY SELECT x.e, n, counts[x.i] FROM unnest(exprs) WITH ORDINALITY AS x(e, i);
END $$;

CREATE TABLE eq.predicates (n int PRIMARY KEY, pred text);
INSERT INTO eq.predicates VALUES
  (1, 'refund_rules.refund_eligible(p, $t)'),
  (2, 'NOT refund_rules.refund_eligible(p, $t)'),
  (3, 'refund_rules.refund_eligible(p, $t) IS NULL'),
  (4, 'refund_rules.tax_refund_eligible(p, $t)'),
  (5, 'NOT refund_rules.tax_refund_eligible(p, $t)'),
  (6, 'refund_rules.tax_refund_eligible(p, $t) IS NULL'),
  (7, 'refund_rules.refund_ineligibility_reasons(p, $t) = ''{}'''),
  (8, 'refund_rules.refund_ineligibility_reasons(p, $t) IS NULL'),
  (9, '''refund_window_expired'' = ANY (refund_rules.refund_ineligibility_reasons(p, $t))'),
  (10, 'refund_rules.refund_ineligibility_reasons(p, $t, ''tax'') = ''{}'''),
  (11, '''not_yet_purchased'' = ANY (refund_rules.refund_ineligibility_reasons(p, $t, ''tax''))'),
  (12, 'refund_rules.refund_eligible(p, $t) OR refund_rules.tax_refund_eligible(p, $t)'),
  (13, 'NOT (refund_rules.refund_eligible(p, $t) AND p.id % 2 = 0)');

CREATE TABLE eq.exprs (n int PRIMARY KEY, expr text);
INSERT INTO eq.exprs VALUES
  (1, 'refund_rules.refund_eligible(p, $t)'),
  (2, 'NOT refund_rules.refund_eligible(p, $t)'),
  (3, 'refund_rules.refund_eligible(p, $t) IS NULL'),
  (4, 'refund_rules.tax_refund_eligible(p, $t)'),
  (5, 'NOT refund_rules.tax_refund_eligible(p, $t)'),
  (6, 'refund_rules.tax_refund_eligible(p, $t) IS NULL'),
  (7, 'refund_rules.refund_ineligibility_reasons(p, $t)'),
  (8, 'refund_rules.refund_ineligibility_reasons(p, $t, ''tax'')'),
  (9, 'refund_rules.refund_ineligibility_reasons(p, $t, ''purchase'') IS NULL');

------------------------------------------------------------------------
-- The two forms: rewritten on the table, left alone on the subquery
------------------------------------------------------------------------
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF)
SELECT p.id FROM eq.purchases p
WHERE refund_rules.refund_eligible(p, '2026-06-01 00:00+00');
EXPLAIN (COSTS OFF)
SELECT p.id FROM (SELECT * FROM eq.purchases OFFSET 0) p
WHERE refund_rules.refund_eligible(p, '2026-06-01 00:00+00');
EXPLAIN (COSTS OFF)
SELECT p.id, m.k FROM eq.purchases p, eq.moments m
WHERE refund_rules.tax_refund_eligible(p, m.as_of);
EXPLAIN (COSTS OFF)
SELECT p.id, m.k FROM (SELECT * FROM eq.purchases OFFSET 0) p, eq.moments m
WHERE refund_rules.tax_refund_eligible(p, m.as_of);
EXPLAIN (COSTS OFF, VERBOSE)
SELECT refund_rules.refund_ineligibility_reasons(p, now(), 'tax')
FROM (SELECT * FROM eq.purchases OFFSET 0) p;

------------------------------------------------------------------------
-- WHERE, with index scans on purchased_at where possible
------------------------------------------------------------------------
-- rows: selected with the constant as_of and over the join; mm_*: mismatches
SELECT f.n, f.pred,
       c.selected AS rows_const, j.selected AS rows_join,
       c.mismatches AS mm_const, w.mismatches AS mm_now, j.mismatches AS mm_join
FROM eq.predicates f,
     LATERAL eq.compare_where('eq.purchases', f.pred, '2026-06-01 00:00+00') c,
     LATERAL eq.compare_where('eq.purchases', f.pred, 'now') w,
     LATERAL eq.compare_where('eq.purchases', f.pred, 'join') j
ORDER BY f.n;

------------------------------------------------------------------------
-- WHERE, with sequential scans only
------------------------------------------------------------------------
SET enable_seqscan = on;
SET enable_indexscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF)
SELECT p.id FROM eq.purchases p
WHERE refund_rules.refund_eligible(p, '2026-06-01 00:00+00');
SELECT f.n,
       c.selected AS rows_const, j.selected AS rows_join,
       c.mismatches AS mm_const, w.mismatches AS mm_now, j.mismatches AS mm_join
FROM eq.predicates f,
     LATERAL eq.compare_where('eq.purchases', f.pred, '2026-06-01 00:00+00') c,
     LATERAL eq.compare_where('eq.purchases', f.pred, 'now') w,
     LATERAL eq.compare_where('eq.purchases', f.pred, 'join') j
ORDER BY f.n;
RESET enable_indexscan;
RESET enable_bitmapscan;

-- the default as_of, now(), rewritten and not, in one transaction
BEGIN;
SELECT (SELECT count(*) FROM eq.purchases p WHERE refund_rules.refund_eligible(p))
     = (SELECT count(*) FROM (SELECT * FROM eq.purchases OFFSET 0) p
        WHERE refund_rules.refund_eligible(p)) AS same_count_default_now;
COMMIT;

------------------------------------------------------------------------
-- The target list
------------------------------------------------------------------------
SELECT e.n, t.expr, t.compared, t.mismatches
FROM (SELECT array_agg(expr ORDER BY n) AS exprs FROM eq.exprs) a,
     LATERAL eq.compare_targets('eq.purchases', a.exprs, '2026-06-01 00:00+00') t
JOIN eq.exprs e ON e.expr = t.expr
ORDER BY e.n;
SELECT src, sum(t.mismatches) AS mismatches, min(t.compared) AS compared
FROM (SELECT array_agg(expr ORDER BY n) AS exprs FROM eq.exprs) a,
     unnest(ARRAY['now', 'join']) src,
     LATERAL eq.compare_targets('eq.purchases', a.exprs, src) t
GROUP BY src ORDER BY src;

------------------------------------------------------------------------
-- A text offer and a timestamp purchased_at: column form, no range
------------------------------------------------------------------------
EXPLAIN (COSTS OFF)
SELECT p.id FROM eq.purchases_text p
WHERE refund_rules.refund_eligible(p, '2026-06-01 00:00+00');
SELECT src, CASE WHEN src <> 'now' THEN sum(c.selected) END AS selected,
       sum(c.mismatches) AS mismatches
FROM eq.predicates f,
     unnest(ARRAY['2026-06-01 00:00+00', 'now', 'join']) src,
     LATERAL eq.compare_where('eq.purchases_text', f.pred, src) c
WHERE f.n IN (1, 2, 3, 4, 7, 10)
GROUP BY src ORDER BY src;
SELECT src, sum(t.mismatches) AS mismatches
FROM (SELECT array_agg(expr ORDER BY n) AS exprs FROM eq.exprs) a,
     unnest(ARRAY['2026-06-01 00:00+00', 'now', 'join']) src,
     LATERAL eq.compare_targets('eq.purchases_text', a.exprs, src) t
GROUP BY src ORDER BY src;

------------------------------------------------------------------------
-- Both tables give the same answers
------------------------------------------------------------------------
SELECT count(*) AS compared,
       count(*) FILTER (WHERE refund_rules.refund_ineligibility_reasons(p, m.as_of)
                        IS DISTINCT FROM refund_rules.refund_ineligibility_reasons(q, m.as_of))
         AS mismatches
FROM eq.purchases p JOIN eq.purchases_text q USING (id), eq.moments m;

RESET enable_seqscan;
RESET max_parallel_workers_per_gather;
DROP SCHEMA eq CASCADE;
