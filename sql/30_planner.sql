-- 30_planner: the planner support function.
--
-- A whole-row call refund_eligible(p, as_of) becomes the column form
-- _refund_eligible(offer, purchased_at, ..., as_of) plus the window as a
-- plain range on purchased_at, so btree and BRIN indexes on purchased_at
-- are used.  The rewrite is left out when as_of is volatile, when the row
-- is a RECORD whose origin cannot be proven (a subquery), and when the row
-- type lacks a needed column (the call then raises at run time).
-- The answers themselves are compared with the unrewritten calls in
-- 31_rewrite_equivalence; here a few counts make sure each plan is right.

SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
CREATE SCHEMA planner;
SET search_path = planner, public;

-- EXPLAIN (COSTS OFF) of a query, VERBOSE when asked, without the
-- "Disabled: true" lines PostgreSQL 18 adds under the nodes an enable_*
-- setting disables: the plans are the same from 15 to 18, that note is not.
CREATE FUNCTION planner.explain(query text, verbose_plan boolean DEFAULT false)
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

-- 10 000 purchases, one an hour from 2026-01-01, so a 30-day window holds
-- 720 of them.  Flags cycle with different periods.
CREATE TABLE purchases (
    id                          int PRIMARY KEY,
    offer                       refund_rules.mpn_offer,
    purchased_at                timestamptz,
    benefits_activated          boolean,
    product_keys_viewed         boolean,
    upgraded_with_gold_discount boolean,
    tax_exempt                  boolean,
    partner                     text
);
INSERT INTO purchases
SELECT g,
       (ARRAY['action_pack', 'silver', 'gold']::refund_rules.mpn_offer[])[1 + g % 3],
       timestamptz '2026-01-01 00:00+00' + g * interval '1 hour',
       g % 20 = 0, g % 30 = 0, g % 10 = 0, g % 2 = 0,
       'partner ' || g % 97
FROM generate_series(1, 10000) g;
CREATE INDEX purchases_purchased_at ON purchases (purchased_at);
ANALYZE purchases;

-- Plans are pinned: no sequential scans when anything else is possible,
-- plain index scans rather than bitmaps on the btree, nested loops only,
-- grouping by sorting (18 would hash where 15 sorts).
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SET enable_hashjoin = off;
SET enable_mergejoin = off;
SET enable_hashagg = off;
SET max_parallel_workers_per_gather = 0;

------------------------------------------------------------------------
-- The rewrite on a table's whole row, with a constant as_of
------------------------------------------------------------------------
SELECT * FROM planner.explain($$
SELECT count(*) FROM purchases p
WHERE refund_rules.refund_eligible(p, '2026-06-01 00:00+00')$$);
SELECT count(*) FROM purchases p
WHERE refund_rules.refund_eligible(p, '2026-06-01 00:00+00');

-- the same count without the rewrite (the row of a subquery kept apart)
SELECT count(*) FROM (SELECT * FROM purchases OFFSET 0) p
WHERE refund_rules.refund_eligible(p, '2026-06-01 00:00+00');

-- tax refunds: a window of up to 366 days
SELECT * FROM planner.explain($$
SELECT count(*) FROM purchases p
WHERE refund_rules.tax_refund_eligible(p, '2026-06-01 00:00+00')$$);
SELECT count(*) FROM purchases p
WHERE refund_rules.tax_refund_eligible(p, '2026-06-01 00:00+00');
SELECT count(*) FROM (SELECT * FROM purchases OFFSET 0) p
WHERE refund_rules.tax_refund_eligible(p, '2026-06-01 00:00+00');

-- reasons: the column form only (no range: every row has an answer)
SELECT * FROM planner.explain($$
SELECT refund_rules.refund_ineligibility_reasons(p, '2026-06-01 00:00+00')
FROM purchases p$$, true);
SELECT * FROM planner.explain($$
SELECT refund_rules.refund_ineligibility_reasons(p, '2026-06-01 00:00+00', 'tax')
FROM purchases p$$, true);
SELECT * FROM planner.explain($$
SELECT count(*) FROM purchases p
WHERE refund_rules.refund_ineligibility_reasons(p, '2026-06-01 00:00+00') = '{}'$$);

-- in the target list too
SELECT * FROM planner.explain($$
SELECT id, refund_rules.refund_eligible(p, '2026-06-01 00:00+00'),
       refund_rules.tax_refund_eligible(p, '2026-06-01 00:00+00')
FROM purchases p WHERE id = 3000$$, true);
SELECT id, refund_rules.refund_eligible(p, '2026-06-01 00:00+00'),
       refund_rules.tax_refund_eligible(p, '2026-06-01 00:00+00'),
       refund_rules.refund_ineligibility_reasons(p, '2026-06-01 00:00+00')
FROM purchases p WHERE id IN (3000, 3001, 3600, 3601, 3602, 3620) ORDER BY id;

------------------------------------------------------------------------
-- ROW(...)::refund_rules.purchase, for columns named otherwise
------------------------------------------------------------------------
CREATE TABLE orders (
    order_no  int PRIMARY KEY,
    sku       refund_rules.mpn_offer,
    paid_at   timestamptz,
    used      boolean,
    keys_seen boolean,
    upgraded  boolean,
    exempt    boolean
);
INSERT INTO orders
SELECT id, offer, purchased_at, benefits_activated, product_keys_viewed,
       upgraded_with_gold_discount, tax_exempt
FROM purchases;
CREATE INDEX orders_paid_at ON orders (paid_at);
ANALYZE orders;

SELECT * FROM planner.explain($$
SELECT count(*) FROM orders o
WHERE refund_rules.refund_eligible(
        ROW(sku, paid_at, used, keys_seen, upgraded, exempt)::refund_rules.purchase,
        '2026-06-01 00:00+00')$$);
SELECT count(*) FROM orders o
WHERE refund_rules.refund_eligible(
        ROW(sku, paid_at, used, keys_seen, upgraded, exempt)::refund_rules.purchase,
        '2026-06-01 00:00+00');
SELECT * FROM planner.explain($$
SELECT count(*) FROM orders o
WHERE refund_rules.tax_refund_eligible(
        ROW(sku, paid_at, used, keys_seen, upgraded, exempt)::refund_rules.purchase,
        '2026-06-01 00:00+00')$$);
SELECT * FROM planner.explain($$
SELECT refund_rules.refund_ineligibility_reasons(
        ROW(sku, paid_at, used, keys_seen, upgraded, exempt)::refund_rules.purchase,
        '2026-06-01 00:00+00', 'tax')
FROM orders o$$, true);

------------------------------------------------------------------------
-- Index conditions: now(), a parameter, a join column
------------------------------------------------------------------------
-- as_of defaults to now(): stable, so usable as an index bound
SELECT * FROM planner.explain($$SELECT count(*) FROM purchases p WHERE refund_rules.refund_eligible(p)$$);
SELECT * FROM planner.explain($$
SELECT count(*) FROM purchases p
WHERE refund_rules.refund_eligible(p, now() - interval '1 day')$$);

-- a prepared statement's parameter, in a generic plan
SET plan_cache_mode = force_generic_plan;
PREPARE eligible_at(timestamptz) AS
SELECT count(*) FROM purchases p WHERE refund_rules.refund_eligible(p, $1);
SELECT * FROM planner.explain($$EXECUTE eligible_at('2026-06-01 00:00+00')$$);
EXECUTE eligible_at('2026-06-01 00:00+00');
EXECUTE eligible_at('2026-01-15 00:00+00');
EXECUTE eligible_at(NULL);
DEALLOCATE eligible_at;
RESET plan_cache_mode;

-- as_of from another table: a parameterized index scan in a nested loop
CREATE TABLE moments (as_of timestamptz);
INSERT INTO moments VALUES
  ('2026-01-15 00:00+00'), ('2026-06-01 00:00+00'), ('2027-03-01 00:00+00'), (NULL);
ANALYZE moments;
SELECT * FROM planner.explain($$
SELECT m.as_of, count(*) FROM moments m
JOIN purchases p ON refund_rules.refund_eligible(p, m.as_of)
GROUP BY m.as_of$$);
SELECT m.as_of, count(*) FROM moments m
JOIN purchases p ON refund_rules.refund_eligible(p, m.as_of)
GROUP BY m.as_of ORDER BY m.as_of;

------------------------------------------------------------------------
-- BRIN on purchased_at: a bitmap scan
------------------------------------------------------------------------
DROP INDEX purchases_purchased_at;
CREATE INDEX purchases_purchased_at_brin ON purchases USING brin (purchased_at)
  WITH (pages_per_range = 4);
SET enable_bitmapscan = on;
SELECT * FROM planner.explain($$
SELECT count(*) FROM purchases p
WHERE refund_rules.refund_eligible(p, '2026-06-01 00:00+00')$$);
SELECT count(*) FROM purchases p
WHERE refund_rules.refund_eligible(p, '2026-06-01 00:00+00');
DROP INDEX purchases_purchased_at_brin;
SET enable_bitmapscan = off;
CREATE INDEX purchases_purchased_at ON purchases (purchased_at);

------------------------------------------------------------------------
-- No rewrite
------------------------------------------------------------------------
-- a volatile as_of: evaluated once per row, as written
SELECT * FROM planner.explain($$
SELECT count(*) FROM purchases p
WHERE refund_rules.refund_eligible(p, clock_timestamp())$$);
SELECT * FROM planner.explain($$
SELECT count(*) FROM purchases p
WHERE refund_rules.refund_eligible(p, now() + random() * interval '1 day')$$);

-- the RECORD row of a subquery, kept apart or pulled up
SELECT * FROM planner.explain($$
SELECT count(*) FROM (SELECT * FROM purchases OFFSET 0) p
WHERE refund_rules.refund_eligible(p, '2026-06-01 00:00+00')$$);
SELECT * FROM planner.explain($$
SELECT count(*) FROM (SELECT offer, purchased_at, benefits_activated,
                             product_keys_viewed, upgraded_with_gold_discount
                      FROM purchases) p
WHERE refund_rules.refund_eligible(p, '2026-06-01 00:00+00')$$);

-- a row type without a needed column: the call stays, and raises
CREATE TABLE partial_purchases (
    id                 int,
    offer              text,
    purchased_at       timestamptz,
    benefits_activated boolean
);
INSERT INTO partial_purchases VALUES (1, 'gold', '2026-05-20 00:00+00', false);
SELECT * FROM planner.explain($$
SELECT * FROM partial_purchases q
WHERE refund_rules.refund_eligible(q, '2026-06-01 00:00+00')$$);
SELECT * FROM planner.explain($$
SELECT * FROM partial_purchases q
WHERE refund_rules.tax_refund_eligible(q, '2026-06-01 00:00+00')$$);
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT * FROM partial_purchases q
WHERE refund_rules.refund_eligible(q, '2026-06-01 00:00+00');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM partial_purchases q
WHERE refund_rules.tax_refund_eligible(q, '2026-06-01 00:00+00');
\echo :LAST_ERROR_SQLSTATE

------------------------------------------------------------------------
-- NOT and outer joins keep three-valued logic
------------------------------------------------------------------------
-- NOT (range AND call): outside the window, or the call is false
SELECT * FROM planner.explain($$
SELECT count(*) FROM purchases p
WHERE NOT refund_rules.refund_eligible(p, '2026-06-01 00:00+00')$$);
SELECT count(*) FROM purchases p
WHERE NOT refund_rules.refund_eligible(p, '2026-06-01 00:00+00');
SELECT count(*) FROM (SELECT * FROM purchases OFFSET 0) p
WHERE NOT refund_rules.refund_eligible(p, '2026-06-01 00:00+00');

-- purchases on the nullable side: in ON, in WHERE and in the target list
SELECT * FROM planner.explain($$
SELECT m.as_of, count(p.id) FROM moments m
LEFT JOIN purchases p ON refund_rules.refund_eligible(p, m.as_of)
GROUP BY m.as_of$$);
SELECT m.as_of, count(p.id) FROM moments m
LEFT JOIN purchases p ON refund_rules.refund_eligible(p, m.as_of)
GROUP BY m.as_of ORDER BY m.as_of;
SELECT * FROM planner.explain($$
SELECT m.as_of, p.id, refund_rules.refund_eligible(p, m.as_of)
FROM moments m LEFT JOIN purchases p ON p.id = 3000 AND m.as_of < '2026-03-01'$$, true);
SELECT m.as_of, p.id, refund_rules.refund_eligible(p, m.as_of),
       refund_rules.refund_ineligibility_reasons(p, m.as_of)
FROM moments m LEFT JOIN purchases p ON p.id = 3000 AND m.as_of < '2026-03-01'
ORDER BY m.as_of;
SELECT * FROM planner.explain($$
SELECT m.as_of FROM moments m LEFT JOIN purchases p ON p.id = 3000 AND m.as_of < '2026-03-01'
WHERE refund_rules.refund_eligible(p, m.as_of) IS NULL$$);
SELECT m.as_of FROM moments m LEFT JOIN purchases p ON p.id = 3000 AND m.as_of < '2026-03-01'
WHERE refund_rules.refund_eligible(p, m.as_of) IS NULL
ORDER BY m.as_of;

------------------------------------------------------------------------
-- Indexes on the functions: they are IMMUTABLE
------------------------------------------------------------------------
-- PostgreSQL accepts whole-row references in index predicates and
-- expressions; the builds below prove the functions are IMMUTABLE.  The
-- predicate and the expression are rewritten like the query (without a
-- planner, the whole row is the indexed table's), so the planner matches
-- them: the query implies the predicate, the expression is the query's.
CREATE INDEX purchases_eligible_wholerow ON purchases (id)
  WHERE refund_rules.refund_eligible(purchases, '2026-06-01 00:00+00');
CREATE INDEX purchases_reasons_wholerow
  ON purchases (refund_rules.refund_ineligibility_reasons(purchases, '2026-06-01 00:00+00'));
SELECT * FROM planner.explain($$SELECT id FROM purchases p WHERE refund_rules.refund_eligible(p, '2026-06-01 00:00+00')$$);
SELECT count(*) FROM purchases p WHERE refund_rules.refund_eligible(p, '2026-06-01 00:00+00');
SELECT * FROM planner.explain($$
SELECT count(*) FROM purchases p
WHERE refund_rules.refund_ineligibility_reasons(p, '2026-06-01 00:00+00') = '{benefits_activated}'$$);
SELECT count(*) FROM purchases p
WHERE refund_rules.refund_ineligibility_reasons(p, '2026-06-01 00:00+00') = '{benefits_activated}';
SELECT count(*) FROM (SELECT * FROM purchases OFFSET 0) p
WHERE refund_rules.refund_ineligibility_reasons(p, '2026-06-01 00:00+00') = '{benefits_activated}';
DROP INDEX purchases_eligible_wholerow, purchases_reasons_wholerow;

-- Written with ROW(...)::refund_rules.purchase, the index predicate is
-- rewritten like the query, so the planner proves the query implies it.
CREATE INDEX orders_eligible ON orders (order_no)
  WHERE refund_rules.refund_eligible(
          ROW(sku, paid_at, used, keys_seen, upgraded, exempt)::refund_rules.purchase,
          '2026-06-01 00:00+00');
SELECT * FROM planner.explain($$
SELECT order_no FROM orders
WHERE refund_rules.refund_eligible(
        ROW(sku, paid_at, used, keys_seen, upgraded, exempt)::refund_rules.purchase,
        '2026-06-01 00:00+00')$$);
SELECT count(*) FROM orders
WHERE refund_rules.refund_eligible(
        ROW(sku, paid_at, used, keys_seen, upgraded, exempt)::refund_rules.purchase,
        '2026-06-01 00:00+00');
DROP INDEX orders_eligible;

-- an expression index on the reasons
CREATE INDEX orders_reasons ON orders (refund_rules.refund_ineligibility_reasons(
          ROW(sku, paid_at, used, keys_seen, upgraded, exempt)::refund_rules.purchase,
          '2026-06-01 00:00+00'));
ANALYZE orders;
SET enable_bitmapscan = on;
SELECT * FROM planner.explain($$
SELECT count(*) FROM orders
WHERE refund_rules.refund_ineligibility_reasons(
        ROW(sku, paid_at, used, keys_seen, upgraded, exempt)::refund_rules.purchase,
        '2026-06-01 00:00+00') = '{upgraded_with_gold_discount}'$$);
SELECT count(*) FROM orders
WHERE refund_rules.refund_ineligibility_reasons(
        ROW(sku, paid_at, used, keys_seen, upgraded, exempt)::refund_rules.purchase,
        '2026-06-01 00:00+00') = '{upgraded_with_gold_discount}';
SELECT count(*) FROM (SELECT * FROM purchases OFFSET 0) p
WHERE refund_rules.refund_ineligibility_reasons(p, '2026-06-01 00:00+00')
      = '{upgraded_with_gold_discount}';

------------------------------------------------------------------------
RESET enable_seqscan;
RESET enable_bitmapscan;
RESET enable_hashjoin;
RESET enable_mergejoin;
RESET enable_hashagg;
RESET max_parallel_workers_per_gather;
RESET search_path;
DROP SCHEMA planner CASCADE;
