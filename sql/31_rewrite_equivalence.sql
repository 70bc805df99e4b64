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

-- EXPLAIN (COSTS OFF) of a query, VERBOSE when asked, without the
-- "Disabled: true" lines PostgreSQL 18 adds under the nodes an enable_*
-- setting disables: the plans are the same from 15 to 18, that note is not.
CREATE FUNCTION eq.explain(query text, verbose_plan boolean DEFAULT false)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
  line text;
BEGIN
  FOR line IN EXECUTE format('EXPLAIN (COSTS OFF, VERBOSE %s) %s', verbose_plan::text, query) LOOP
    IF line !~ '^\s*Disabled: true$' THEN
      RETURN NEXT line;
    END IF;
  END LOOP;
END $$;

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
SELECT * FROM eq.explain($$
SELECT p.id FROM eq.purchases p
WHERE refund_rules.refund_eligible(p, '2026-06-01 00:00+00')$$);
SELECT * FROM eq.explain($$
SELECT p.id FROM (SELECT * FROM eq.purchases OFFSET 0) p
WHERE refund_rules.refund_eligible(p, '2026-06-01 00:00+00')$$);
SELECT * FROM eq.explain($$
SELECT p.id, m.k FROM eq.purchases p, eq.moments m
WHERE refund_rules.tax_refund_eligible(p, m.as_of)$$);
SELECT * FROM eq.explain($$
SELECT p.id, m.k FROM (SELECT * FROM eq.purchases OFFSET 0) p, eq.moments m
WHERE refund_rules.tax_refund_eligible(p, m.as_of)$$);
SELECT * FROM eq.explain($$
SELECT refund_rules.refund_ineligibility_reasons(p, now(), 'tax')
FROM (SELECT * FROM eq.purchases OFFSET 0) p$$, true);

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
SELECT * FROM eq.explain($$
SELECT p.id FROM eq.purchases p
WHERE refund_rules.refund_eligible(p, '2026-06-01 00:00+00')$$);
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
-- Every extreme moment as a constant: refund_eligible becomes plain
-- conditions (the window an exact range), in WHERE and in the target list
------------------------------------------------------------------------
SELECT count(DISTINCT m.k) AS moments, count(*) AS compared, sum(c.mismatches) AS mismatches
FROM eq.moments m, eq.predicates f,
     LATERAL eq.compare_where('eq.purchases', f.pred, m.as_of::text) c
WHERE m.as_of IS NOT NULL AND f.n IN (1, 2, 3, 12, 13);
SELECT count(DISTINCT m.k) AS moments, sum(t.compared) AS compared, sum(t.mismatches) AS mismatches
FROM eq.moments m,
     LATERAL eq.compare_targets('eq.purchases', (SELECT array_agg(expr ORDER BY n) FROM eq.exprs WHERE n <= 3), m.as_of::text) t
WHERE m.as_of IS NOT NULL;

------------------------------------------------------------------------
-- A text offer and a timestamp purchased_at: column form, no range
------------------------------------------------------------------------
SELECT * FROM eq.explain($$
SELECT p.id FROM eq.purchases_text p
WHERE refund_rules.refund_eligible(p, '2026-06-01 00:00+00')$$);
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

------------------------------------------------------------------------
-- Every other query shape the rewrite applies to
------------------------------------------------------------------------
-- compare_shape(q, rowarg, plain): q with {p} where the row argument goes,
-- run with rowarg (rewritten) and with plain (default (SELECT rowarg), not
-- rewritten), each in a subtransaction that is rolled back (so UPDATE and
-- DELETE run on the same rows).  rewritten: the first plan calls no
-- whole-row function (a column form or plain conditions); kept: the second
-- does; rows: rows of the answer; mismatches: rows in one answer and not in
-- the other.
CREATE FUNCTION eq.plan_text(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  l text;
  plan text := '';
BEGIN
  FOR l IN EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF) ' || q LOOP
    plan := plan || l || E'\n';
  END LOOP;
  RETURN plan;
END $$;
CREATE FUNCTION eq.answer(q text) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
  a text[];
BEGIN
  BEGIN
    EXECUTE format('WITH x AS (%s) SELECT coalesce(array_agg(x::text), ''{}'') FROM x', q) INTO a;
    RAISE EXCEPTION 'undo';
  EXCEPTION WHEN raise_exception THEN
    NULL;	-- changes undone, the answer kept
  END;
  RETURN a;
END $$;
CREATE FUNCTION eq.compare_shape(q text, rowarg text DEFAULT 'p', plain text DEFAULT '(SELECT %s)',
                                 OUT rewritten boolean, OUT kept boolean,
                                 OUT rows bigint, OUT mismatches bigint)
LANGUAGE plpgsql AS $$
DECLARE
  rw text := replace(q, '{p}', rowarg);
  pl text := replace(q, '{p}', format(plain, rowarg));
  a text[];
  b text[];
BEGIN
  rewritten := eq.plan_text(rw) !~ 'refund_rules\.(refund_eligible|tax_refund_eligible|refund_ineligibility_reasons|refund_status)\(';
  kept := eq.plan_text(pl) ~ 'refund_rules\.(refund_eligible|tax_refund_eligible|refund_ineligibility_reasons|refund_status)\(';
  a := eq.answer(rw);
  b := eq.answer(pl);
  rows := cardinality(a);
  SELECT count(*) INTO mismatches
    FROM ((SELECT unnest(a) EXCEPT ALL SELECT unnest(b))
          UNION ALL (SELECT unnest(b) EXCEPT ALL SELECT unnest(a))) d;
END $$;
-- an identity function the planner cannot see through
CREATE FUNCTION eq.same(r anyelement) RETURNS anyelement LANGUAGE plpgsql IMMUTABLE
  AS $$ BEGIN RETURN r; END $$;

-- the row sources: a view (its row is a typed ROW()), a partitioned copy,
-- and a SQL function that the planner inlines
CREATE VIEW eq.purchases_view AS
SELECT id, offer, purchased_at, benefits_activated, product_keys_viewed,
       upgraded_with_gold_discount, tax_exempt, partner
  FROM eq.purchases WHERE id % 3 <> 0;
CREATE TABLE eq.purchases_parted (LIKE eq.purchases) PARTITION BY HASH (id);
CREATE TABLE eq.purchases_parted_0 PARTITION OF eq.purchases_parted
  FOR VALUES WITH (MODULUS 3, REMAINDER 0);
CREATE TABLE eq.purchases_parted_1 PARTITION OF eq.purchases_parted
  FOR VALUES WITH (MODULUS 3, REMAINDER 1);
-- a partition whose columns are in another order (attribute numbers differ)
CREATE TABLE eq.purchases_parted_2 (
    near_now boolean NOT NULL, partner text, tax_exempt boolean, id int NOT NULL,
    upgraded_with_gold_discount boolean, product_keys_viewed boolean,
    benefits_activated boolean, purchased_at timestamptz, offer refund_rules.mpn_offer);
ALTER TABLE eq.purchases_parted ATTACH PARTITION eq.purchases_parted_2
  FOR VALUES WITH (MODULUS 3, REMAINDER 2);
INSERT INTO eq.purchases_parted SELECT * FROM eq.purchases;
CREATE INDEX ON eq.purchases_parted (purchased_at);
ANALYZE eq.purchases_parted;
CREATE FUNCTION eq.eligible_sql(r eq.purchases, t timestamptz) RETURNS boolean
  LANGUAGE sql IMMUTABLE AS $$ SELECT refund_rules.refund_eligible(r, t) $$;

CREATE TABLE eq.shapes (n int PRIMARY KEY, shape text, q text,
                        rowarg text DEFAULT 'p', plain text DEFAULT '(SELECT %s)');
INSERT INTO eq.shapes (n, shape, q) VALUES
 (1, 'inner join, as_of from the other side',
  $q$SELECT p.id, m.k FROM eq.moments m
       JOIN eq.purchases p ON refund_rules.refund_eligible({p}, m.as_of)$q$),
 (2, 'left join, call in ON',
  $q$SELECT m.k, p.id FROM eq.moments m
       LEFT JOIN eq.purchases p ON refund_rules.refund_eligible({p}, m.as_of) AND p.id % 50 = 0$q$),
 (3, 'left join, nullable row, IS NULL in WHERE',
  $q$SELECT m.k, p.id FROM eq.moments m LEFT JOIN eq.purchases p ON p.id = m.k * 1000 + m.k
      WHERE refund_rules.refund_eligible({p}, '2026-06-01 00:00+00') IS NULL$q$),
 (4, 'left join, nullable row, NOT in WHERE',
  $q$SELECT m.k, p.id FROM eq.moments m LEFT JOIN eq.purchases p ON p.id BETWEEN m.k * 100 AND m.k * 100 + 40
      WHERE NOT refund_rules.tax_refund_eligible({p}, m.as_of)$q$),
 (5, 'left join, nullable row, target list',
  $q$SELECT m.k, p.id, refund_rules.refund_ineligibility_reasons({p}, m.as_of),
            refund_rules.refund_eligible({p}, '2026-06-01 00:00+00')
       FROM eq.moments m LEFT JOIN eq.purchases p ON p.id BETWEEN m.k * 100 AND m.k * 100 + 40$q$),
 (6, 'full join',
  $q$SELECT m.k, p.id FROM eq.moments m FULL JOIN (SELECT * FROM eq.purchases WHERE id < 200) p0 ON true
       FULL JOIN eq.purchases p ON p.id = p0.id AND p.id = m.k
      WHERE refund_rules.refund_eligible({p}, '2026-06-01 00:00+00') IS NOT TRUE AND coalesce(p.id, 0) < 300$q$),
 (7, 'right join and an outer join nested in another',
  $q$SELECT m.k, p.id FROM eq.purchases p
       RIGHT JOIN (eq.moments m LEFT JOIN eq.moments m2 ON m2.k = m.k + 1) ON p.id = m2.k * 7
      WHERE refund_rules.refund_ineligibility_reasons({p}, m.as_of, 'tax') IS DISTINCT FROM '{}'$q$),
 (8, 'LATERAL refund_status',
  $q$SELECT p.id, s.* FROM eq.purchases p
      CROSS JOIN LATERAL refund_rules.refund_status({p}, '2026-06-01 00:00+00') s$q$),
 (9, 'LATERAL refund_status on a nullable row',
  $q$SELECT m.k, s.* FROM eq.moments m LEFT JOIN eq.purchases p ON p.id = m.k * 3
      CROSS JOIN LATERAL refund_rules.refund_status({p}, m.as_of) s$q$),
 (10, 'a view',
  $q$SELECT p.id, refund_rules.refund_ineligibility_reasons({p}, '2026-06-01 00:00+00')
       FROM eq.purchases_view p WHERE refund_rules.refund_eligible({p}, '2026-06-01 00:00+00') IS NOT TRUE$q$),
 (11, 'a partitioned table (one partition in another column order)',
  $q$SELECT p.id, refund_rules.refund_ineligibility_reasons({p}, '2026-06-01 00:00+00', 'tax')
       FROM eq.purchases_parted p WHERE refund_rules.refund_eligible({p}, '2026-06-01 00:00+00')
                                      OR refund_rules.tax_refund_eligible({p}, '2025-03-01 00:00+00') IS NULL$q$),
 (12, 'an inlined SQL function',
  $q$SELECT p.id FROM eq.purchases p WHERE eq.eligible_sql({p}, '2026-06-01 00:00+00')$q$),
 (13, 'GROUP BY the call',
  $q$SELECT refund_rules.refund_ineligibility_reasons({p}, '2026-06-01 00:00+00'), count(*)
       FROM eq.purchases p GROUP BY 1$q$),
 (14, 'ORDER BY the call, LIMIT',
  $q$SELECT p.id FROM eq.purchases p
      ORDER BY refund_rules.refund_ineligibility_reasons({p}, '2025-03-01 00:00+00'), p.id LIMIT 700$q$),
 (15, 'DISTINCT',
  $q$SELECT DISTINCT refund_rules.refund_eligible({p}, '2026-06-01 00:00+00'),
                     refund_rules.tax_refund_eligible({p}, '2026-06-01 00:00+00')
       FROM eq.purchases p$q$),
 (16, 'aggregate FILTER and HAVING',
  $q$SELECT p.partner, count(*) FILTER (WHERE refund_rules.refund_eligible({p}, '2025-03-01 00:00+00'))
       FROM eq.purchases p GROUP BY p.partner
     HAVING bool_or(refund_rules.tax_refund_eligible({p}, '2025-03-01 00:00+00')) IS NOT FALSE$q$),
 (17, 'window PARTITION BY the call',
  $q$SELECT p.id, count(*) OVER (PARTITION BY refund_rules.refund_eligible({p}, '2026-06-01 00:00+00'))
       FROM eq.purchases p$q$),
 (18, 'inside a CTE, filtered outside',
  $q$WITH c AS NOT MATERIALIZED (
        SELECT p.id, refund_rules.refund_eligible({p}, '2026-06-01 00:00+00') AS e FROM eq.purchases p)
     SELECT id FROM c WHERE e IS NOT TRUE$q$),
 (19, 'as_of from a subquery (no range)',
  $q$SELECT p.id FROM eq.purchases p
      WHERE refund_rules.refund_eligible({p}, (SELECT max(as_of) FROM eq.moments WHERE k < 3))$q$),
 (20, 'in a correlated EXISTS',
  $q$SELECT m.k FROM eq.moments m WHERE EXISTS (
        SELECT 1 FROM eq.purchases p WHERE p.id % 100 = 0 AND refund_rules.refund_eligible({p}, m.as_of))$q$),
 (21, 'UPDATE ... WHERE the call',
  $q$UPDATE eq.purchases p SET partner = 'refunded'
      WHERE refund_rules.refund_eligible({p}, '2026-06-01 00:00+00') RETURNING p.id$q$),
 (22, 'UPDATE ... RETURNING the call (the new row)',
  $q$UPDATE eq.purchases p SET benefits_activated = NOT benefits_activated,
      purchased_at = purchased_at + CASE WHEN purchased_at BETWEEN '2000-01-01' AND '2100-01-01'
                                         THEN interval '1 day' ELSE interval '0' END
      WHERE p.id % 10 = 0
  RETURNING p.id, refund_rules.refund_eligible({p}, '2026-06-01 00:00+00'),
            refund_rules.refund_ineligibility_reasons({p}, '2026-06-01 00:00+00')$q$),
 (23, 'UPDATE ... FROM, as_of from the joined table',
  $q$UPDATE eq.purchases p SET partner = 'checked' FROM eq.moments m
      WHERE m.k IN (1, 2) AND refund_rules.tax_refund_eligible({p}, m.as_of) RETURNING p.id, m.k$q$),
 (24, 'DELETE ... WHERE the call',
  $q$DELETE FROM eq.purchases p
      WHERE refund_rules.tax_refund_eligible({p}, '2025-03-01 00:00+00') IS NULL RETURNING p.id$q$),
 (25, 'grouping sets over the row (not rewritten above the grouping)',
  $q$SELECT p, refund_rules.refund_ineligibility_reasons({p}, '2026-06-01 00:00+00'),
            refund_rules.refund_eligible({p}, '2026-06-01 00:00+00'), count(*)
       FROM eq.purchases p WHERE p.id <= 400 GROUP BY CUBE (p, p.near_now)$q$),
 (26, 'grouping sets, a call below the grouping',
  $q$SELECT p, count(*) FROM eq.purchases p
      WHERE p.id <= 400 AND refund_rules.refund_eligible({p}, '2026-06-01 00:00+00') IS NOT FALSE
      GROUP BY ROLLUP (p)$q$);
INSERT INTO eq.shapes VALUES
 (27, 'ROW(...)::refund_rules.purchase in WHERE',
  $q$SELECT p.id FROM eq.purchases p WHERE refund_rules.refund_eligible({p}, '2026-06-01 00:00+00')$q$,
  'ROW(p.offer, p.purchased_at, p.benefits_activated, p.product_keys_viewed, p.upgraded_with_gold_discount, p.tax_exempt)::refund_rules.purchase',
  'eq.same(%s)'),
 (28, 'ROW(...)::refund_rules.purchase in the target list, nullable',
  $q$SELECT m.k, p.id, refund_rules.refund_ineligibility_reasons({p}, m.as_of, 'tax')
       FROM eq.moments m LEFT JOIN eq.purchases p ON p.id BETWEEN m.k * 100 AND m.k * 100 + 40$q$,
  'ROW(p.offer, p.purchased_at, p.benefits_activated, p.product_keys_viewed, p.upgraded_with_gold_discount, p.tax_exempt)::refund_rules.purchase',
  'eq.same(%s)'),
 (29, 'ROW(...)::refund_rules.purchase grouped as a whole',
  $q$SELECT refund_rules.refund_ineligibility_reasons({p}, '2026-06-01 00:00+00'), count(*)
       FROM eq.purchases p WHERE p.id <= 400
      GROUP BY ROLLUP (ROW(p.offer, p.purchased_at, p.benefits_activated, p.product_keys_viewed,
                           p.upgraded_with_gold_discount, p.tax_exempt)::refund_rules.purchase)$q$,
  'ROW(p.offer, p.purchased_at, p.benefits_activated, p.product_keys_viewed, p.upgraded_with_gold_discount, p.tax_exempt)::refund_rules.purchase',
  'eq.same(%s)');

-- rewritten: f only where no call may be rewritten on any version (25, 29:
-- the row is nulled by grouping sets); 26 is rewritten from 18 on only.
SELECT n, shape, CASE WHEN n = 26 THEN NULL ELSE c.rewritten END AS rewritten,
       c.kept, c.rows, c.mismatches
  FROM eq.shapes, LATERAL eq.compare_shape(q, rowarg, plain) c ORDER BY n;

-- the same with index scans wherever possible, nested loops
SET enable_seqscan = off;
SET enable_hashjoin = off;
SET enable_mergejoin = off;
SELECT sum(c.mismatches) AS mismatches, count(*) FILTER (WHERE c.rows > 0) AS shapes_with_rows
  FROM eq.shapes, LATERAL eq.compare_shape(q, rowarg, plain) c;

-- partial and expression indexes on the whole row, matched by the
-- rewritten query
CREATE INDEX purchases_eligible ON eq.purchases (id)
  WHERE refund_rules.refund_eligible(purchases, '2026-06-01 00:00+00');
CREATE INDEX purchases_reasons ON eq.purchases
  (refund_rules.refund_ineligibility_reasons(purchases, '2026-06-01 00:00+00'));
ANALYZE eq.purchases;
SELECT c.* FROM eq.compare_shape(
  $q$SELECT p.id FROM eq.purchases p WHERE refund_rules.refund_eligible({p}, '2026-06-01 00:00+00')$q$) c;
SELECT c.* FROM eq.compare_shape(
  $q$SELECT p.id FROM eq.purchases p
      WHERE refund_rules.refund_ineligibility_reasons({p}, '2026-06-01 00:00+00') = '{product_keys_viewed}'$q$) c;
SELECT count(*) AS uses_the_indexes FROM (VALUES
  (eq.plan_text($q$SELECT p.id FROM eq.purchases p
                   WHERE refund_rules.refund_eligible(p, '2026-06-01 00:00+00')$q$)),
  (eq.plan_text($q$SELECT p.id FROM eq.purchases p
                   WHERE refund_rules.refund_ineligibility_reasons(p, '2026-06-01 00:00+00') = '{product_keys_viewed}'$q$))) v(plan)
 WHERE plan ~ 'Index (Only )?Scan using purchases_(eligible|reasons)|Bitmap Index Scan on purchases_(eligible|reasons)';
DROP INDEX eq.purchases_eligible, eq.purchases_reasons;
RESET enable_seqscan;
RESET enable_hashjoin;
RESET enable_mergejoin;

-- as_of a parameter, in generic plans: PL/pgSQL's, and a prepared
-- statement's (whose plan shows the rewrite on $1)
CREATE FUNCTION eq.generic(t timestamptz, rewritten boolean)
RETURNS TABLE (id int, reasons text[]) LANGUAGE plpgsql AS $$
BEGIN
  IF rewritten THEN
    RETURN QUERY SELECT p.id, refund_rules.refund_ineligibility_reasons(p, t)
                   FROM eq.purchases p
                  WHERE p.id % 4 = 0 AND refund_rules.refund_eligible(p, t) IS NOT TRUE;
  ELSE
    RETURN QUERY SELECT p.id, refund_rules.refund_ineligibility_reasons((SELECT p), t)
                   FROM eq.purchases p
                  WHERE p.id % 4 = 0 AND refund_rules.refund_eligible((SELECT p), t) IS NOT TRUE;
  END IF;
END $$;
SET plan_cache_mode = force_generic_plan;
PREPARE eligible_at(timestamptz) AS
  SELECT p.id FROM eq.purchases p WHERE refund_rules.refund_eligible(p, $1);
SELECT eq.plan_text('EXECUTE eligible_at(''2026-06-01 00:00+00'')')
       ~ 'refund_rules\._refund_eligible\([^)]*\$1\)' AS generic_plan_rewritten;
DEALLOCATE eligible_at;
SELECT m.k, r.*
  FROM eq.moments m,
       LATERAL (SELECT array_agg(g ORDER BY g.id) AS a FROM eq.generic(m.as_of, true) g) rw,
       LATERAL (SELECT array_agg(g ORDER BY g.id) AS a FROM eq.generic(m.as_of, false) g) pl,
       LATERAL (SELECT cardinality(rw.a) AS rows, rw.a IS DISTINCT FROM pl.a AS differ) r
 ORDER BY m.k;
RESET plan_cache_mode;

RESET max_parallel_workers_per_gather;
DROP SCHEMA eq CASCADE;
