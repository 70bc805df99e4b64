-- 33_pg18_rows: row references that PostgreSQL 18 added.
--
-- In RETURNING, old and new are the row before and after the change; the
-- rewrite's column Vars must read the same one (varreturningtype).  A
-- virtual generated column has no stored value: its expression stands in
-- for it.  Every rewritten call is compared with (SELECT row), which is not
-- rewritten.  Before 18 neither exists: the test is skipped (the expected
-- output 33_pg18_rows_1.out holds the skip).
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SELECT current_setting('server_version_num')::int >= 180000 AS pg18 \gset
\if :pg18
\else
\echo skipped: needs PostgreSQL 18 (old and new in RETURNING, virtual generated columns)
\quit
\endif
CREATE SCHEMA pg18;
SET search_path = pg18, public;

CREATE TABLE purchases (
    id int PRIMARY KEY,
    offer refund_rules.mpn_offer, purchased_at timestamptz, benefits_activated boolean,
    product_keys_viewed boolean, upgraded_with_gold_discount boolean, tax_exempt boolean);
-- at 2026-11-25 12:00 UTC: 1 and 2 allowed, 3 keys viewed
INSERT INTO purchases VALUES
 (1, 'gold',        '2026-11-20 09:00+00', false, false, false, true),
 (2, 'silver',      '2026-11-01 00:00+00', false, false, false, false),
 (3, 'action_pack', '2026-11-01 00:00+00', false, true,  false, true);

------------------------------------------------------------------------
-- old and new in RETURNING
------------------------------------------------------------------------
-- The column form reads old.* for old and new.* for new.
EXPLAIN (VERBOSE, COSTS OFF)
UPDATE purchases p SET benefits_activated = true WHERE id = 1
RETURNING refund_rules.refund_eligible(old, '2026-11-25 12:00+00'),
          refund_rules.refund_eligible(new, '2026-11-25 12:00+00');

-- Activating the benefits of 1 and 2: allowed before, refused after.
BEGIN;
UPDATE purchases p SET benefits_activated = true WHERE id IN (1, 2)
RETURNING id,
          refund_rules.refund_eligible(old, '2026-11-25 12:00+00') AS old_refund,
          refund_rules.refund_eligible((SELECT old), '2026-11-25 12:00+00') AS old_unrewritten,
          refund_rules.refund_eligible(new, '2026-11-25 12:00+00') AS new_refund,
          refund_rules.refund_eligible((SELECT new), '2026-11-25 12:00+00') AS new_unrewritten,
          refund_rules.refund_eligible(p, '2026-11-25 12:00+00') AS p_refund,
          refund_rules.refund_ineligibility_reasons(old, '2026-11-25 12:00+00') AS old_reasons,
          refund_rules.refund_ineligibility_reasons(new, '2026-11-25 12:00+00') AS new_reasons;
ROLLBACK;

-- Each statement kind, every call compared with its unrewritten twin.
CREATE FUNCTION twins(stmt text, OUT rows bigint, OUT mismatches bigint)
LANGUAGE plpgsql AS $$
DECLARE
  r record;
BEGIN
  rows := 0;
  mismatches := 0;
  FOR r IN EXECUTE stmt || $r$
    RETURNING refund_rules.refund_eligible(old, '2026-11-25 12:00+00') AS a,
              refund_rules.refund_eligible((SELECT old), '2026-11-25 12:00+00') AS a2,
              refund_rules.refund_eligible(new, '2026-11-25 12:00+00') AS b,
              refund_rules.refund_eligible((SELECT new), '2026-11-25 12:00+00') AS b2,
              refund_rules.tax_refund_eligible(old, '2026-11-25 12:00+00') AS c,
              refund_rules.tax_refund_eligible((SELECT old), '2026-11-25 12:00+00') AS c2,
              refund_rules.refund_ineligibility_reasons(old, '2026-11-25 12:00+00', 'tax') AS d,
              refund_rules.refund_ineligibility_reasons((SELECT old), '2026-11-25 12:00+00', 'tax') AS d2,
              refund_rules.refund_ineligibility_reasons(new, '2026-11-25 12:00+00') AS e,
              refund_rules.refund_ineligibility_reasons((SELECT new), '2026-11-25 12:00+00') AS e2,
              (refund_rules.refund_status(old, '2026-11-25 12:00+00')).refund_reasons AS f,
              (refund_rules.refund_status((SELECT old), '2026-11-25 12:00+00')).refund_reasons AS f2$r$
  LOOP
    rows := rows + 1;
    IF (r.a, r.b, r.c, r.d, r.e, r.f) IS DISTINCT FROM (r.a2, r.b2, r.c2, r.d2, r.e2, r.f2) THEN
      mismatches := mismatches + 1;
    END IF;
  END LOOP;
END $$;
CREATE TABLE statements (n int PRIMARY KEY, stmt text);
INSERT INTO statements VALUES
 (1, $s$UPDATE purchases SET benefits_activated = true, tax_exempt = NOT tax_exempt$s$),
 (2, $s$UPDATE purchases SET purchased_at = purchased_at - interval '1 month' WHERE id <> 2$s$),
 (3, $s$INSERT INTO purchases VALUES (4, 'gold', '2026-11-24', false, false, false, true)$s$),
 (4, $s$INSERT INTO purchases AS p VALUES (1, 'gold', '2026-11-24', false, false, false, true)
        ON CONFLICT (id) DO UPDATE SET product_keys_viewed = true$s$),
 (5, $s$DELETE FROM purchases WHERE id IN (1, 3)$s$),
 (6, $s$MERGE INTO purchases p USING (VALUES (1), (3), (5)) v(id) ON p.id = v.id
        WHEN MATCHED AND p.id = 1 THEN UPDATE SET upgraded_with_gold_discount = true, offer = 'silver'
        WHEN MATCHED THEN DELETE
        WHEN NOT MATCHED THEN INSERT VALUES (v.id, 'silver', '2026-11-25', false, false, true, true)$s$);
-- each statement undone when done (a subtransaction rolled back)
CREATE FUNCTION run_undone(stmt text, OUT rows bigint, OUT mismatches bigint)
LANGUAGE plpgsql AS $$
BEGIN
  SELECT t.rows, t.mismatches INTO rows, mismatches FROM twins(stmt) t;
  RAISE EXCEPTION 'undo';
EXCEPTION WHEN raise_exception THEN
  NULL;		-- the changes are undone, the counts kept
END $$;
SELECT n, t.* FROM statements, LATERAL run_undone(stmt) t ORDER BY n;
-- the table is as it was
SELECT id, benefits_activated, product_keys_viewed FROM purchases ORDER BY id;

------------------------------------------------------------------------
-- A virtual generated purchased_at
------------------------------------------------------------------------
CREATE TABLE dated (
    id int PRIMARY KEY,
    offer refund_rules.mpn_offer,
    paid_on date,
    purchased_at timestamptz GENERATED ALWAYS AS (paid_on::timestamp AT TIME ZONE 'UTC') VIRTUAL,
    benefits_activated boolean, product_keys_viewed boolean,
    upgraded_with_gold_discount boolean, tax_exempt boolean,
    CHECK (refund_rules.refund_ineligibility_reasons(dated, '2026-11-25 12:00+00')
           <> '{refund_window_expired}'));
INSERT INTO dated (id, offer, paid_on, benefits_activated, product_keys_viewed,
                   upgraded_with_gold_discount, tax_exempt)
VALUES (1, 'gold', '2026-11-20', false, false, false, true),
       (2, 'silver', '2026-11-01', false, true, false, false);
-- the constraint sees the generated value: expired is refused
INSERT INTO dated (id, offer, paid_on, benefits_activated, product_keys_viewed,
                   upgraded_with_gold_discount, tax_exempt)
VALUES (3, 'gold', '2026-10-01', false, false, false, true);
SELECT id, purchased_at,
       refund_rules.refund_eligible(p, '2026-11-25 12:00+00') AS refund,
       refund_rules.refund_eligible((SELECT p), '2026-11-25 12:00+00') AS refund_unrewritten,
       refund_rules.refund_ineligibility_reasons(p, '2026-11-25 12:00+00') AS reasons,
       refund_rules.refund_ineligibility_reasons((SELECT p), '2026-11-25 12:00+00') AS reasons_unrewritten
  FROM dated p ORDER BY id;
SELECT id FROM dated p WHERE refund_rules.refund_eligible(p, '2026-11-25 12:00+00');
-- an index on the whole row: never a column Var on the virtual column
-- (PostgreSQL would stop with an internal error)
DO $$
BEGIN
  CREATE INDEX dated_eligible ON pg18.dated (id)
    WHERE refund_rules.refund_eligible(dated, '2026-11-25 12:00+00');
  RAISE NOTICE 'index built';
EXCEPTION WHEN internal_error THEN
  RAISE NOTICE 'internal error: %', SQLERRM;
WHEN OTHERS THEN
  RAISE NOTICE 'refused (%)', SQLSTATE;
END $$;

------------------------------------------------------------------------
-- Grouping sets: the calls below the grouping step are still rewritten
------------------------------------------------------------------------
EXPLAIN (VERBOSE, COSTS OFF)
SELECT p, refund_rules.refund_eligible(p, '2026-11-25 12:00+00')
  FROM purchases p
 WHERE refund_rules.refund_eligible(p, '2026-11-25 12:00+00') IS NOT FALSE
 GROUP BY ROLLUP (p);

RESET search_path;
DROP SCHEMA pg18 CASCADE;
