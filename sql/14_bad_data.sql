-- Bad data is an error, not a reason: a missing column (42703), a column of
-- the wrong type (42804), an offer that is not a label (22023, a long one
-- clipped), on table rows (planner rewrite) and on subquery rows alike.
SET TimeZone = 'UTC';
CREATE SCHEMA t14;
SET search_path = t14, public;
\set VERBOSITY default
\set SHOW_CONTEXT never

-- Run one statement; return its SQLSTATE, message and detail, or 'ok'.
CREATE FUNCTION try(q text) RETURNS TABLE (sqlstate text, message text, detail text)
LANGUAGE plpgsql AS $$
DECLARE
  st text; msg text; det text;
BEGIN
  EXECUTE q;
  RETURN QUERY SELECT 'ok'::text, NULL::text, NULL::text;
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
  RETURN QUERY SELECT st, msg, det;
END $$;

-- Missing columns.
CREATE TABLE no_offer (purchased_at timestamptz, benefits_activated boolean,
    product_keys_viewed boolean, upgraded_with_gold_discount boolean, tax_exempt boolean);
INSERT INTO no_offer VALUES ('2026-11-20', false, false, false, true);
CREATE TABLE no_tax_exempt (offer refund_rules.mpn_offer, purchased_at timestamptz, benefits_activated boolean,
    product_keys_viewed boolean, upgraded_with_gold_discount boolean);
INSERT INTO no_tax_exempt VALUES ('gold', '2026-11-20', false, false, false);
CREATE TABLE dropped (offer refund_rules.mpn_offer, purchased_at timestamptz, benefits_activated boolean,
    product_keys_viewed boolean, upgraded_with_gold_discount boolean, tax_exempt boolean);
INSERT INTO dropped VALUES ('gold', '2026-11-20', false, false, false, true);
ALTER TABLE dropped DROP COLUMN product_keys_viewed;

SELECT refund_rules.refund_eligible(t, '2026-11-25 12:00+00') FROM no_offer t;
\echo :LAST_ERROR_SQLSTATE
SELECT refund_rules.refund_ineligibility_reasons(s, '2026-11-25 12:00+00') FROM (SELECT * FROM no_offer OFFSET 0) s;
\echo :LAST_ERROR_SQLSTATE
SELECT refund_rules.refund_eligible(ROW('gold', '2026-11-20'::timestamptz, false, false, false, true), '2026-11-25 12:00+00');
\echo :LAST_ERROR_SQLSTATE

SELECT q, (try(q)).* FROM (VALUES
  ('SELECT refund_rules.refund_eligible(t, ''2026-11-25 12:00+00'') FROM t14.no_offer t'),
  ('SELECT refund_rules.refund_eligible(s, ''2026-11-25 12:00+00'') FROM (SELECT * FROM t14.no_offer OFFSET 0) s'),
  ('SELECT refund_rules.refund_ineligibility_reasons(t, ''2026-11-25 12:00+00'') FROM t14.no_offer t'),
  ('SELECT * FROM t14.no_offer t CROSS JOIN LATERAL refund_rules.refund_status(t, ''2026-11-25 12:00+00'')'),
  ('SELECT refund_rules.refund_eligible(NULL::t14.no_offer, ''2026-11-25 12:00+00'')'),
  ('SELECT refund_rules.refund_eligible(t, NULL) FROM t14.no_offer t'),
  ('SELECT refund_rules.tax_refund_eligible(t, ''2026-11-25 12:00+00'') FROM t14.no_offer t'),
  ('SELECT refund_rules.refund_ineligibility_reasons(t, ''2026-11-25 12:00+00'', ''tax'') FROM t14.no_offer t'),
  ('SELECT refund_rules.tax_refund_eligible(t, ''2026-11-25 12:00+00'') FROM t14.no_tax_exempt t'),
  ('SELECT refund_rules.tax_refund_eligible(s, ''2026-11-25 12:00+00'') FROM (SELECT * FROM t14.no_tax_exempt OFFSET 0) s'),
  ('SELECT refund_rules.refund_ineligibility_reasons(t, ''2026-11-25 12:00+00'', ''tax'') FROM t14.no_tax_exempt t'),
  ('SELECT * FROM t14.no_tax_exempt t CROSS JOIN LATERAL refund_rules.refund_status(t, ''2026-11-25 12:00+00'')'),
  ('SELECT refund_rules.refund_eligible(t, ''2026-11-25 12:00+00'') FROM t14.no_tax_exempt t'),
  ('SELECT refund_rules.refund_ineligibility_reasons(t, ''2026-11-25 12:00+00'') FROM t14.no_tax_exempt t'),
  ('SELECT refund_rules.refund_eligible(t, ''2026-11-25 12:00+00'') FROM t14.dropped t'),
  ('SELECT refund_rules.refund_eligible(s, ''2026-11-25 12:00+00'') FROM (SELECT * FROM t14.dropped OFFSET 0) s'),
  ('SELECT refund_rules.tax_refund_eligible(t, ''2026-11-25 12:00+00'') FROM t14.dropped t'),
  ('SELECT refund_rules.refund_eligible(ROW(''gold'', now(), false, false, false, true), now())'),
  ('SELECT refund_rules.refund_eligible(ROW(1, 2), now())')
) v(q);
-- The answers where nothing needed is missing.
SELECT refund_rules.tax_refund_eligible(t, '2026-11-25 12:00+00') AS tax_without_offer FROM no_offer t;
SELECT refund_rules.refund_ineligibility_reasons(t, '2026-11-25 12:00+00') AS refund_without_tax_exempt FROM no_tax_exempt t;

-- Wrong types.
CREATE TABLE int_offer (offer int, purchased_at timestamptz, benefits_activated boolean,
    product_keys_viewed boolean, upgraded_with_gold_discount boolean, tax_exempt boolean);
INSERT INTO int_offer VALUES (2, '2026-11-20', false, false, false, true);
CREATE TABLE text_time (offer text, purchased_at text, benefits_activated boolean,
    product_keys_viewed boolean, upgraded_with_gold_discount boolean, tax_exempt boolean);
INSERT INTO text_time VALUES ('gold', '2026-11-20', false, false, false, true);
CREATE TABLE date_time (offer text, purchased_at date, benefits_activated boolean,
    product_keys_viewed boolean, upgraded_with_gold_discount boolean, tax_exempt boolean);
INSERT INTO date_time VALUES ('gold', '2026-11-20', false, false, false, true);
CREATE TABLE int_flag (offer text, purchased_at timestamptz, benefits_activated int,
    product_keys_viewed boolean, upgraded_with_gold_discount boolean, tax_exempt text);
INSERT INTO int_flag VALUES ('gold', '2026-11-20', 0, false, false, 'true');

SELECT refund_rules.refund_eligible(t, '2026-11-25 12:00+00') FROM int_offer t;
\echo :LAST_ERROR_SQLSTATE
SELECT refund_rules.tax_refund_eligible(t, '2026-11-25 12:00+00') FROM text_time t;
\echo :LAST_ERROR_SQLSTATE
SELECT refund_rules.refund_eligible(s, '2026-11-25 12:00+00') FROM (SELECT * FROM int_flag OFFSET 0) s;
\echo :LAST_ERROR_SQLSTATE

SELECT q, (try(q)).* FROM (VALUES
  ('SELECT refund_rules.refund_eligible(t, ''2026-11-25 12:00+00'') FROM t14.int_offer t'),
  ('SELECT refund_rules.refund_eligible(s, ''2026-11-25 12:00+00'') FROM (SELECT * FROM t14.int_offer OFFSET 0) s'),
  ('SELECT refund_rules.refund_ineligibility_reasons(t, ''2026-11-25 12:00+00'') FROM t14.int_offer t'),
  ('SELECT refund_rules.refund_eligible(NULL::t14.int_offer, ''2026-11-25 12:00+00'')'),
  ('SELECT refund_rules.refund_eligible(t, ''2026-11-25 12:00+00'') FROM t14.text_time t'),
  ('SELECT refund_rules.tax_refund_eligible(s, ''2026-11-25 12:00+00'') FROM (SELECT * FROM t14.text_time OFFSET 0) s'),
  ('SELECT refund_rules.refund_eligible(t, ''2026-11-25 12:00+00'') FROM t14.date_time t'),
  ('SELECT * FROM t14.date_time t CROSS JOIN LATERAL refund_rules.refund_status(t, ''2026-11-25 12:00+00'')'),
  ('SELECT refund_rules.refund_eligible(t, ''2026-11-25 12:00+00'') FROM t14.int_flag t'),
  ('SELECT refund_rules.refund_ineligibility_reasons(s, ''2026-11-25 12:00+00'') FROM (SELECT * FROM t14.int_flag OFFSET 0) s'),
  ('SELECT refund_rules.tax_refund_eligible(t, ''2026-11-25 12:00+00'') FROM t14.int_flag t'),
  ('SELECT refund_rules.refund_ineligibility_reasons(t, ''2026-11-25 12:00+00'', ''tax'') FROM t14.int_flag t')
) v(q);
-- A wrong type in a column this kind does not read is not an error.
SELECT refund_rules.tax_refund_eligible(t, '2026-11-25 12:00+00') AS tax_with_int_offer FROM int_offer t;

-- Offers that are not labels: 22023 with the value in the message.
CREATE TABLE bad_offer (id int, offer text, purchased_at timestamptz, benefits_activated boolean,
    product_keys_viewed boolean, upgraded_with_gold_discount boolean, tax_exempt boolean);
INSERT INTO bad_offer VALUES (1, 'platinum', '2026-11-20', false, false, false, true);
SELECT refund_rules.refund_eligible(t, '2026-11-25 12:00+00') FROM bad_offer t;
\echo :LAST_ERROR_SQLSTATE
SELECT refund_rules.refund_eligible(ROW(1, v, '2026-11-20', false, false, false, true)::t14.bad_offer, '2026-11-25 12:00+00')
  FROM (VALUES ('Silver')) x(v);
\echo :LAST_ERROR_SQLSTATE
CREATE FUNCTION offer_error(v text) RETURNS TABLE (sqlstate text, message text, detail text)
LANGUAGE sql AS $$
  SELECT * FROM t14.try(format('SELECT refund_rules.refund_ineligibility_reasons(s, ''2026-11-25 12:00+00'')
                                  FROM (SELECT %L::varchar AS offer, ''2026-11-20''::timestamptz AS purchased_at,
                                               false AS benefits_activated, false AS product_keys_viewed,
                                               false AS upgraded_with_gold_discount) s', v)) $$;
SELECT left(format('%L', v), 24) AS offer, length(v) AS length, e.*
  FROM unnest(ARRAY['platinum', 'Silver', 'GOLD', '', ' gold', 'gold ', 'action pack', 'sílver',
                    repeat('x', 64), repeat('x', 65), repeat('ab', 200), repeat('é', 40),
                    'silver'::text]) v
 CROSS JOIN LATERAL offer_error(v) e;
-- A bad offer inside the window (ids 1 and 4) is an error on every path:
-- table row (rewritten, in the select list and in WHERE), subquery row,
-- reasons, status.
INSERT INTO bad_offer VALUES
 (2, 'platinum', '2020-01-01', false, false, false, true),
 (3, 'platinum', NULL, NULL, NULL, NULL, NULL),
 (4, repeat('Z', 1000), '2026-11-20', true, true, true, true);
SELECT id, f, (try(format(q, id))).*
  FROM unnest(ARRAY[1, 4]) id,
       (VALUES ('table row', 'SELECT refund_rules.refund_eligible(t, ''2026-11-25 12:00+00'') FROM t14.bad_offer t WHERE id = %s'),
               ('table row in WHERE', 'SELECT count(*) FROM t14.bad_offer t WHERE id = %s AND refund_rules.refund_eligible(t, ''2026-11-25 12:00+00'')'),
               ('subquery row', 'SELECT refund_rules.refund_eligible(s, ''2026-11-25 12:00+00'') FROM (SELECT * FROM t14.bad_offer WHERE id = %s OFFSET 0) s'),
               ('reasons', 'SELECT refund_rules.refund_ineligibility_reasons(t, ''2026-11-25 12:00+00'') FROM t14.bad_offer t WHERE id = %s'),
               ('status', 'SELECT * FROM t14.bad_offer t CROSS JOIN LATERAL refund_rules.refund_status(t, ''2026-11-25 12:00+00'') WHERE id = %s')) v(f, q)
 ORDER BY id, f;
-- Outside the window (id 2): in a select list the rewritten call reads the
-- row first and raises like the unrewritten path (a RECORD), the reasons
-- and the status.  In WHERE the planner tests the cheap range first, so
-- the row is rejected unread (documented: PostgreSQL promises no order of
-- evaluation, and an index scan never visits the row).
SELECT refund_rules.refund_eligible(t, '2026-11-25 12:00+00') AS rewritten FROM bad_offer t WHERE id = 2;
SELECT count(*) AS rewritten_in_where FROM bad_offer t WHERE id = 2 AND refund_rules.refund_eligible(t, '2026-11-25 12:00+00');
SELECT refund_rules.refund_eligible(s, '2026-11-25 12:00+00') FROM (SELECT * FROM bad_offer WHERE id = 2 OFFSET 0) s;
\echo :LAST_ERROR_SQLSTATE
SELECT f, (try(q)).*
  FROM (VALUES ('subquery row', 'SELECT refund_rules.refund_eligible(s, ''2026-11-25 12:00+00'') FROM (SELECT * FROM t14.bad_offer WHERE id = 2 OFFSET 0) s'),
               ('reasons', 'SELECT refund_rules.refund_ineligibility_reasons(t, ''2026-11-25 12:00+00'') FROM t14.bad_offer t WHERE id = 2'),
               ('status', 'SELECT * FROM t14.bad_offer t CROSS JOIN LATERAL refund_rules.refund_status(t, ''2026-11-25 12:00+00'') WHERE id = 2')) v(f, q);
-- With every other field NULL (id 3) the offer is still read and refused.
SELECT f, (try(q)).*
  FROM (VALUES ('table row', 'SELECT refund_rules.refund_eligible(t, ''2026-11-25 12:00+00'') FROM t14.bad_offer t WHERE id = 3'),
               ('subquery row', 'SELECT refund_rules.refund_eligible(s, ''2026-11-25 12:00+00'') FROM (SELECT * FROM t14.bad_offer WHERE id = 3 OFFSET 0) s'),
               ('reasons', 'SELECT refund_rules.refund_ineligibility_reasons(t, ''2026-11-25 12:00+00'') FROM t14.bad_offer t WHERE id = 3'),
               ('status', 'SELECT * FROM t14.bad_offer t CROSS JOIN LATERAL refund_rules.refund_status(t, ''2026-11-25 12:00+00'') WHERE id = 3')) v(f, q);
-- The tax refund does not read the offer.
SELECT id, refund_rules.tax_refund_eligible(t, '2026-11-25 12:00+00') AS tax FROM bad_offer t ORDER BY id;

RESET search_path;
DROP SCHEMA t14 CASCADE;
