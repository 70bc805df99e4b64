-- 32_nulled_rows: rows that the plan nulls above the scan.
--
-- An outer join nulls the row of its nullable side; grouping sets (ROLLUP,
-- CUBE, GROUPING SETS) null a grouped row in the sets that leave it out.
-- The rewrite replaces the whole row by its columns, so it must only
-- happen where the columns are nulled with the row: on PostgreSQL 16 and
-- later the column Vars carry the row's nulling outer joins; a row that
-- grouping sets can null is not rewritten at all (the grouping step nulls
-- the row, not its columns).  Every query is run twice: on the row itself
-- (rewritten where safe) and on (SELECT row), which is never rewritten;
-- the answers must be the same, three-valued logic and reasons included.
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
CREATE SCHEMA nulled;
SET search_path = nulled, public;

CREATE TABLE purchases (
    id int PRIMARY KEY,
    offer refund_rules.mpn_offer, purchased_at timestamptz, benefits_activated boolean,
    product_keys_viewed boolean, upgraded_with_gold_discount boolean, tax_exempt boolean);
-- at 2026-11-25 12:00 UTC: 1 allowed, 2 expired, 3 keys viewed, 4 undecided
INSERT INTO purchases VALUES
 (1, 'gold',        '2026-11-20 09:00+00', false, false, false, true),
 (2, 'silver',      '2026-10-26 11:59:59+00', false, false, false, false),
 (3, 'action_pack', '2026-11-01 00:00+00', false, true,  false, true),
 (4, 'silver',      '2026-11-20 00:00+00', false, NULL,  false, NULL);
CREATE INDEX ON purchases (purchased_at);
-- orders 2 and 5 have no purchase; 6 has none either (NULL reference)
CREATE TABLE orders (order_id int PRIMARY KEY, purchase_id int, region text);
INSERT INTO orders VALUES (1, 1, 'north'), (2, 99, 'north'), (3, 3, 'south'),
                          (4, 4, 'south'), (5, 98, 'south'), (6, NULL, 'east');
-- the same purchases with columns named otherwise, for ROW(...)::purchase
CREATE TABLE sales AS
SELECT id AS sale_id, offer AS sku, purchased_at AS paid_at, benefits_activated AS used,
       product_keys_viewed AS keys_seen, upgraded_with_gold_discount AS upgraded,
       tax_exempt AS exempt
  FROM purchases;
ANALYZE purchases, orders, sales;

-- compare(q, rowarg, plain): q with {p} where the row argument goes.  Run
-- with rowarg itself and with plain (default (SELECT rowarg)), which the
-- planner does not rewrite.  rewritten: the first plan calls no whole-row
-- function (a column form or plain conditions); kept: the second does;
-- rows: rows of the answer; mismatches: rows in one answer and not in the
-- other (EXCEPT ALL, both ways).
CREATE FUNCTION plan_text(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  l text;
  plan text := '';
BEGIN
  FOR l IN EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF) ' || q LOOP
    plan := plan || l || E'\n';
  END LOOP;
  RETURN plan;
END $$;
CREATE FUNCTION compare(q text, rowarg text DEFAULT 'p', plain text DEFAULT '(SELECT %s)',
                        OUT rewritten boolean, OUT kept boolean,
                        OUT rows bigint, OUT mismatches bigint)
LANGUAGE plpgsql AS $$
DECLARE
  rw text := replace(q, '{p}', rowarg);
  pl text := replace(q, '{p}', format(plain, rowarg));
BEGIN
  rewritten := plan_text(rw) !~ 'refund_rules\.(refund_eligible|tax_refund_eligible|refund_ineligibility_reasons|refund_status)\(';
  kept := plan_text(pl) ~ 'refund_rules\.(refund_eligible|tax_refund_eligible|refund_ineligibility_reasons|refund_status)\(';
  EXECUTE format('WITH r AS MATERIALIZED (%s), u AS MATERIALIZED (%s)
                  SELECT (SELECT count(*) FROM r),
                         (SELECT count(*) FROM (TABLE r EXCEPT ALL TABLE u) d)
                       + (SELECT count(*) FROM (TABLE u EXCEPT ALL TABLE r) d)', rw, pl)
    INTO rows, mismatches;
END $$;

------------------------------------------------------------------------
-- Outer joins: the purchase on the nullable side
------------------------------------------------------------------------
-- The missing purchases (orders 2, 5, 6) are neither allowed nor refused,
-- like the undecided one (order 4): the call is NULL for all four.
SELECT o.order_id FROM orders o LEFT JOIN purchases p ON p.id = o.purchase_id
 WHERE refund_rules.refund_eligible(p, '2026-11-25 12:00+00') IS NULL ORDER BY 1;
SELECT o.order_id FROM orders o LEFT JOIN purchases p ON p.id = o.purchase_id
 WHERE refund_rules.refund_eligible((SELECT p), '2026-11-25 12:00+00') IS NULL ORDER BY 1;
SELECT o.order_id, p.id,
       refund_rules.refund_eligible(p, '2026-11-25 12:00+00') AS refund,
       refund_rules.refund_ineligibility_reasons(p, '2026-11-25 12:00+00') AS reasons,
       refund_rules.refund_ineligibility_reasons((SELECT p), '2026-11-25 12:00+00') AS reasons_unrewritten
  FROM orders o LEFT JOIN purchases p ON p.id = o.purchase_id ORDER BY 1;

CREATE TABLE outer_join_queries (n int PRIMARY KEY, q text);
INSERT INTO outer_join_queries VALUES
 (1, $q$SELECT o.order_id FROM orders o LEFT JOIN purchases p ON p.id = o.purchase_id
        WHERE refund_rules.refund_eligible({p}, '2026-11-25 12:00+00') IS NULL$q$),
 (2, $q$SELECT o.order_id FROM orders o LEFT JOIN purchases p ON p.id = o.purchase_id
        WHERE NOT refund_rules.refund_eligible({p}, '2026-11-25 12:00+00')$q$),
 (3, $q$SELECT o.order_id FROM orders o LEFT JOIN purchases p ON p.id = o.purchase_id
        WHERE refund_rules.refund_eligible({p}, '2026-11-25 12:00+00') IS NOT TRUE$q$),
 (4, $q$SELECT o.order_id FROM orders o LEFT JOIN purchases p ON p.id = o.purchase_id
        WHERE refund_rules.tax_refund_eligible({p}, '2026-11-25 12:00+00') IS NULL$q$),
 (5, $q$SELECT o.order_id FROM orders o LEFT JOIN purchases p ON p.id = o.purchase_id
        WHERE refund_rules.refund_ineligibility_reasons({p}, '2026-11-25 12:00+00') IS NULL$q$),
 (6, $q$SELECT o.order_id FROM orders o LEFT JOIN purchases p ON p.id = o.purchase_id
        WHERE coalesce(refund_rules.refund_eligible({p}, '2026-11-25 12:00+00'), false) = false$q$),
 (7, $q$SELECT o.order_id, p.id FROM orders o LEFT JOIN purchases p
        ON p.id = o.purchase_id AND refund_rules.refund_eligible({p}, '2026-11-25 12:00+00')$q$),
 (8, $q$SELECT o.order_id, refund_rules.refund_eligible({p}, '2026-11-25 12:00+00'),
               refund_rules.refund_ineligibility_reasons({p}, '2026-11-25 12:00+00', 'tax')
          FROM orders o LEFT JOIN purchases p ON p.id = o.purchase_id$q$),
 (9, $q$SELECT o.order_id, p.id FROM purchases p RIGHT JOIN orders o ON p.id = o.purchase_id
        WHERE refund_rules.refund_eligible({p}, '2026-11-25 12:00+00') IS NULL$q$),
 (10, $q$SELECT o.order_id, p.id FROM orders o FULL JOIN purchases p ON p.id = o.purchase_id
         WHERE refund_rules.refund_eligible({p}, '2026-11-25 12:00+00') IS NOT FALSE$q$),
 (11, $q$SELECT o.order_id FROM orders o
          LEFT JOIN (orders o2 JOIN purchases p ON p.id = o2.purchase_id) ON o2.order_id = o.order_id
         WHERE refund_rules.refund_eligible({p}, '2026-11-25 12:00+00') IS NULL$q$),
 (12, $q$SELECT o.order_id, st.* FROM orders o LEFT JOIN purchases p ON p.id = o.purchase_id
         CROSS JOIN LATERAL refund_rules.refund_status({p}, '2026-11-25 12:00+00') st$q$),
 (13, $q$SELECT o.order_id, count(*) FROM orders o LEFT JOIN purchases p ON p.id = o.purchase_id
         GROUP BY o.order_id
        HAVING bool_and(refund_rules.refund_eligible({p}, '2026-11-25 12:00+00')) IS NULL$q$);

-- Every one of them is rewritten on the row and not on (SELECT p), on
-- every supported PostgreSQL version, with the same answers.
SELECT n, c.* FROM outer_join_queries, LATERAL compare(q) c ORDER BY n;
-- with index scans on purchased_at and nested loops
SET enable_seqscan = off;
SET enable_hashjoin = off;
SET enable_mergejoin = off;
SELECT n, c.* FROM outer_join_queries, LATERAL compare(q) c ORDER BY n;
RESET enable_seqscan;
RESET enable_hashjoin;
RESET enable_mergejoin;

-- ROW(...)::refund_rules.purchase on the nullable side
SELECT c.* FROM compare(
  $q$SELECT o.order_id FROM orders o LEFT JOIN sales s ON s.sale_id = o.purchase_id
      WHERE refund_rules.refund_eligible({p}, '2026-11-25 12:00+00') IS NULL$q$,
  'ROW(s.sku, s.paid_at, s.used, s.keys_seen, s.upgraded, s.exempt)::refund_rules.purchase') c;

------------------------------------------------------------------------
-- Grouping sets over the whole row
------------------------------------------------------------------------
-- The grand-total row of ROLLUP (p) has p NULL: the calls on it are NULL
-- and report every needed column missing, as for any NULL row.
SELECT p, p IS NULL AS total,
       refund_rules.refund_eligible(p, '2026-11-25 12:00+00') AS refund,
       refund_rules.refund_ineligibility_reasons(p, '2026-11-25 12:00+00') AS reasons,
       refund_rules.refund_eligible((SELECT p), '2026-11-25 12:00+00') AS refund_unrewritten,
       count(*)
  FROM purchases p GROUP BY ROLLUP (p) ORDER BY p NULLS LAST;
SELECT p, (refund_rules.refund_status(p, '2026-11-25 12:00+00')).*
  FROM purchases p GROUP BY ROLLUP (p) ORDER BY p NULLS LAST;

-- A row argument inside a subquery must be grouped on its own, so a
-- grouped ROW() or call goes through a PL/pgSQL identity function
-- instead: the planner cannot see through it either.
CREATE FUNCTION same(r anyelement) RETURNS anyelement LANGUAGE plpgsql IMMUTABLE
  AS $$ BEGIN RETURN r; END $$;
CREATE TABLE grouping_queries (n int PRIMARY KEY, q text, rowarg text DEFAULT 'p',
                               plain text DEFAULT '(SELECT %s)');
INSERT INTO grouping_queries (n, q) VALUES
 (1, $q$SELECT p, refund_rules.refund_eligible({p}, '2026-11-25 12:00+00'),
               refund_rules.refund_ineligibility_reasons({p}, '2026-11-25 12:00+00'),
               refund_rules.refund_ineligibility_reasons({p}, '2026-11-25 12:00+00', 'tax'),
               refund_rules.tax_refund_eligible({p}, '2026-11-25 12:00+00')
          FROM purchases p GROUP BY ROLLUP (p)$q$),
 (2, $q$SELECT p, (refund_rules.refund_status({p}, '2026-11-25 12:00+00')).*
          FROM purchases p GROUP BY ROLLUP (p)$q$),
 (3, $q$SELECT p, o.region, refund_rules.refund_eligible({p}, '2026-11-25 12:00+00'),
               refund_rules.refund_ineligibility_reasons({p}, '2026-11-25 12:00+00'), count(*)
          FROM orders o JOIN purchases p ON p.id = o.purchase_id GROUP BY CUBE (p, o.region)$q$),
 (4, $q$SELECT p, o.region, refund_rules.refund_eligible({p}, '2026-11-25 12:00+00'), count(*)
          FROM orders o JOIN purchases p ON p.id = o.purchase_id
         GROUP BY GROUPING SETS ((p), (o.region), ())$q$),
 (5, $q$SELECT p, o.region, refund_rules.refund_ineligibility_reasons({p}, '2026-11-25 12:00+00')
          FROM orders o JOIN purchases p ON p.id = o.purchase_id
         GROUP BY GROUPING SETS ((p, o.region), (o.region))$q$),
 (6, $q$SELECT p, count(*) FROM purchases p GROUP BY ROLLUP (p)
        HAVING refund_rules.refund_eligible({p}, '2026-11-25 12:00+00') IS NULL$q$),
 (7, $q$SELECT p, count(*) FROM purchases p GROUP BY ROLLUP (p)
        HAVING NOT refund_rules.refund_eligible({p}, '2026-11-25 12:00+00')$q$),
 (8, $q$SELECT p FROM purchases p GROUP BY ROLLUP (p)
         ORDER BY refund_rules.refund_ineligibility_reasons({p}, '2026-11-25 12:00+00'), 1$q$),
 -- grouped in every set: never nulled
 (9, $q$SELECT p, o.region, refund_rules.refund_eligible({p}, '2026-11-25 12:00+00')
          FROM orders o JOIN purchases p ON p.id = o.purchase_id GROUP BY p, ROLLUP (o.region)$q$),
 -- a call below the grouping step, with the row grouped above it
 (12, $q$SELECT p, count(*) FILTER (WHERE refund_rules.refund_eligible({p}, '2026-11-25 12:00+00'))
           FROM purchases p GROUP BY ROLLUP (p)$q$),
 (13, $q$SELECT p, count(*) FROM purchases p
          WHERE refund_rules.refund_eligible({p}, '2026-11-25 12:00+00') IS NOT FALSE
          GROUP BY ROLLUP (p)$q$);
INSERT INTO grouping_queries VALUES
 -- the call itself is grouped: it is nulled as a whole (before 18,
 -- PostgreSQL evaluates (SELECT p) there wrongly: a SubPlan in a grouping
 -- expression is planned twice)
 (10, $q$SELECT refund_rules.refund_eligible({p}, '2026-11-25 12:00+00'), count(*)
           FROM purchases p GROUP BY ROLLUP (refund_rules.refund_eligible({p}, '2026-11-25 12:00+00'))$q$,
      'p', 'nulled.same(%s)'),
 (11, $q$SELECT refund_rules.refund_ineligibility_reasons({p}, '2026-11-25 12:00+00') IS NULL, count(*)
           FROM purchases p
          GROUP BY CUBE (refund_rules.refund_ineligibility_reasons({p}, '2026-11-25 12:00+00'))$q$,
      'p', 'nulled.same(%s)'),
 -- a typed ROW() grouped as a whole
 (14, $q$SELECT refund_rules.refund_eligible({p}, '2026-11-25 12:00+00'),
                refund_rules.refund_ineligibility_reasons({p}, '2026-11-25 12:00+00'), count(*)
           FROM sales s
          GROUP BY ROLLUP (ROW(s.sku, s.paid_at, s.used, s.keys_seen, s.upgraded, s.exempt)::refund_rules.purchase)$q$,
      'ROW(s.sku, s.paid_at, s.used, s.keys_seen, s.upgraded, s.exempt)::refund_rules.purchase',
      'nulled.same(%s)'),
 -- its columns grouped one by one: nulled one by one, in both forms
 (15, $q$SELECT refund_rules.refund_ineligibility_reasons({p}, '2026-11-25 12:00+00'), count(*)
           FROM sales s
          GROUP BY ROLLUP (s.sku, s.paid_at, s.used, s.keys_seen, s.upgraded, s.exempt)$q$,
      'ROW(s.sku, s.paid_at, s.used, s.keys_seen, s.upgraded, s.exempt)::refund_rules.purchase',
      'nulled.same(%s)');

-- Same answers everywhere.  Which calls are rewritten depends on the
-- version: before 18 nothing marks what grouping sets null, so no call on
-- a grouped row is rewritten anywhere in the query; 18 still rewrites the
-- calls below the grouping step (WHERE, aggregate arguments).  Never a
-- call on a row that grouping sets null.
SELECT n, c.kept, c.rows, c.mismatches
  FROM grouping_queries, LATERAL compare(q, rowarg, plain) c ORDER BY n;
-- a call on a row that grouping sets can null stays as written
SELECT n, c.rewritten
  FROM grouping_queries, LATERAL compare(q, rowarg, plain) c WHERE n IN (1, 2, 3, 4, 5, 6, 7, 8, 14) ORDER BY n;

-- Plain GROUP BY nulls nothing.
SELECT c.kept, c.rows, c.mismatches FROM compare(
  $q$SELECT p, refund_rules.refund_eligible({p}, '2026-11-25 12:00+00'),
            refund_rules.refund_ineligibility_reasons({p}, '2026-11-25 12:00+00')
       FROM purchases p GROUP BY p$q$) c;

RESET search_path;
DROP SCHEMA nulled CASCADE;

------------------------------------------------------------------------
-- The planner support looks the extension's functions up once per
-- session, and again when the catalogs change: after DROP and CREATE
-- EXTENSION (new OIDs) in this session, calls are rewritten again.
------------------------------------------------------------------------
CREATE TEMP TABLE plain_purchases (offer text, purchased_at timestamp,
    benefits_activated boolean, product_keys_viewed boolean,
    upgraded_with_gold_discount boolean, tax_exempt boolean);
EXPLAIN (COSTS OFF)
SELECT * FROM plain_purchases p WHERE refund_rules.refund_eligible(p, '2026-11-25 12:00+00');
DROP EXTENSION refund_rules;
CREATE EXTENSION refund_rules;
EXPLAIN (COSTS OFF)
SELECT * FROM plain_purchases p WHERE refund_rules.refund_eligible(p, '2026-11-25 12:00+00');
DROP TABLE plain_purchases;
