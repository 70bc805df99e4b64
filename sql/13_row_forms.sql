-- The forms a purchase can come in: a typed ROW(), a table's whole row,
-- varchar/text offers, a timestamp (without time zone) column read as UTC,
-- domains, dropped and extra columns in another order, a view's row, a
-- subquery's row, PL/pgSQL record and rowtype variables, refund_status in
-- CROSS JOIN LATERAL.  Every form gives the answers of the policy.
SET TimeZone = 'UTC';
CREATE SCHEMA t13;
SET search_path = t13, public;

-- The reference answers at 2026-11-25 12:00 UTC, one row per purchase.
CREATE TABLE want (id int PRIMARY KEY, refund boolean, refund_reasons text[],
                   tax boolean, tax_reasons text[]);
INSERT INTO want VALUES
 (1, true,  '{}',                              true,  '{}'),
 (2, false, '{upgraded_with_gold_discount}',   true,  '{}'),
 (3, true,  '{}',                              false, '{not_tax_exempt}'),
 (4, false, '{refund_window_expired,benefits_activated}', false, '{tax_refund_window_expired}'),
 (5, NULL,  '{missing_product_keys_viewed}',   NULL,  '{missing_tax_exempt}'),
 (6, false, '{not_yet_purchased}',             false, '{not_yet_purchased}'),
 (7, false, '{refund_window_expired}',         true,  '{}');
-- The purchases, as plain values (purchased_at in UTC).
CREATE TABLE src (id int, offer text, purchased_at timestamp, benefits_activated boolean,
                  product_keys_viewed boolean, upgraded_with_gold_discount boolean, tax_exempt boolean);
INSERT INTO src VALUES
 (1, 'silver',      '2026-10-26 12:00:00', false, false, false, true),
 (2, 'silver',      '2026-11-20 00:00:00', false, false, true,  true),
 (3, 'gold',        '2026-11-20 00:00:00', false, false, true,  false),
 (4, 'action_pack', '2025-11-25 11:59:59.999999', true, false, false, true),
 (5, 'action_pack', '2026-11-01 00:00:00', false, NULL, false, NULL),
 (6, 'gold',        '2026-11-25 12:00:00.000001', false, false, false, true),
 (7, 'gold',        '2025-11-25 12:00:00', false, false, true, true);

-- A verdict per form: rows whose answers differ from want (must be 0).
CREATE FUNCTION verdict(form_name text, query text) RETURNS TABLE (form text, wrong bigint, rows bigint)
LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY EXECUTE format($q$
    SELECT %L::text, count(*) FILTER (WHERE (r.refund, r.refund_reasons, r.tax, r.tax_reasons)
                                        IS DISTINCT FROM (w.refund, w.refund_reasons, w.tax, w.tax_reasons)),
           count(*)
      FROM (%s) r(id, refund, refund_reasons, tax, tax_reasons) JOIN t13.want w USING (id)$q$, form_name, query);
END $$;
-- The four answers of one row expression x, at the examples' as_of.
CREATE FUNCTION answers(x text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT format('refund_rules.refund_eligible(%1$s, ''2026-11-25 12:00+00''),
                 refund_rules.refund_ineligibility_reasons(%1$s, ''2026-11-25 12:00+00''),
                 refund_rules.tax_refund_eligible(%1$s, ''2026-11-25 12:00+00''),
                 refund_rules.refund_ineligibility_reasons(%1$s, ''2026-11-25 12:00+00'', ''tax'')', x) $$;

-- Typed ROW() and the refund_rules.purchase type.
CREATE TABLE typed (id int, p refund_rules.purchase);
INSERT INTO typed SELECT id, ROW(offer, purchased_at AT TIME ZONE 'UTC', benefits_activated, product_keys_viewed,
                                 upgraded_with_gold_discount, tax_exempt)::refund_rules.purchase FROM src;
SELECT * FROM verdict('ROW()::refund_rules.purchase',
  'SELECT id, ' || answers('ROW(offer, purchased_at AT TIME ZONE ''UTC'', benefits_activated, product_keys_viewed, upgraded_with_gold_discount, tax_exempt)::refund_rules.purchase') || ' FROM t13.src');
SELECT * FROM verdict('purchase column', 'SELECT id, ' || answers('p') || ' FROM t13.typed');

-- A table's whole row, enum offer and timestamptz (planner rewrite), and the
-- same row from a subquery (RECORD, no rewrite).
CREATE TABLE enum_tz AS SELECT id, offer::refund_rules.mpn_offer AS offer, purchased_at AT TIME ZONE 'UTC' AS purchased_at,
    benefits_activated, product_keys_viewed, upgraded_with_gold_discount, tax_exempt FROM src;
SELECT * FROM verdict('table row', 'SELECT id, ' || answers('t') || ' FROM t13.enum_tz t');
SELECT * FROM verdict('subquery row', 'SELECT id, ' || answers('s') || ' FROM (SELECT * FROM t13.enum_tz OFFSET 0) s');
SELECT * FROM verdict('subquery row with fewer columns', 'SELECT id, ' || answers('s') || ' FROM (SELECT id, tax_exempt, upgraded_with_gold_discount, product_keys_viewed, benefits_activated, purchased_at, offer FROM t13.enum_tz OFFSET 0) s');
SELECT * FROM verdict('CTE row', 'WITH c AS MATERIALIZED (SELECT * FROM t13.enum_tz) SELECT id, ' || answers('c') || ' FROM c');

-- text and varchar offers.
CREATE TABLE text_offer AS SELECT id, offer::text AS offer, purchased_at AT TIME ZONE 'UTC' AS purchased_at,
    benefits_activated, product_keys_viewed, upgraded_with_gold_discount, tax_exempt FROM src;
CREATE TABLE varchar_offer AS SELECT id, offer::varchar(20) AS offer, purchased_at AT TIME ZONE 'UTC' AS purchased_at,
    benefits_activated, product_keys_viewed, upgraded_with_gold_discount, tax_exempt FROM src;
SELECT * FROM verdict('text offer', 'SELECT id, ' || answers('t') || ' FROM t13.text_offer t');
SELECT * FROM verdict('text offer, subquery', 'SELECT id, ' || answers('s') || ' FROM (SELECT * FROM t13.text_offer OFFSET 0) s');
SELECT * FROM verdict('varchar offer', 'SELECT id, ' || answers('t') || ' FROM t13.varchar_offer t');
SELECT * FROM verdict('varchar offer, subquery', 'SELECT id, ' || answers('s') || ' FROM (SELECT * FROM t13.varchar_offer OFFSET 0) s');

-- purchased_at of type timestamp (without time zone) is read as UTC: the same
-- answers whatever the session's TimeZone, table row or subquery row.
SET TimeZone = 'America/Los_Angeles';
SELECT * FROM verdict('timestamp column, Los Angeles', 'SELECT id, ' || answers('t') || ' FROM t13.src t');
SELECT * FROM verdict('timestamp column, subquery, Los Angeles', 'SELECT id, ' || answers('s') || ' FROM (SELECT * FROM t13.src OFFSET 0) s');
SET TimeZone = 'Asia/Kolkata';
SELECT * FROM verdict('timestamp column, Kolkata', 'SELECT id, ' || answers('t') || ' FROM t13.src t');
SET TimeZone = 'Pacific/Chatham';
SELECT * FROM verdict('timestamp column, Chatham', 'SELECT id, ' || answers('t') || ' FROM t13.src t');
SELECT * FROM verdict('timestamp column, subquery, Chatham', 'SELECT id, ' || answers('s') || ' FROM (SELECT * FROM t13.src OFFSET 0) s');
-- The deadlines of refund_status are the UTC ones too.
SELECT id, st.refund_deadline AT TIME ZONE 'UTC' AS refund_deadline_utc,
       st.tax_refund_deadline AT TIME ZONE 'UTC' AS tax_refund_deadline_utc
  FROM src t CROSS JOIN LATERAL refund_rules.refund_status(t, '2026-11-25 12:00+00') st ORDER BY id;
SET TimeZone = 'UTC';
SELECT id, st.refund_deadline, st.tax_refund_deadline
  FROM src t CROSS JOIN LATERAL refund_rules.refund_status(t, '2026-11-25 12:00+00') st ORDER BY id;

-- Domains over boolean, over text (offer) and over timestamptz.
CREATE DOMAIN flag AS boolean;
CREATE DOMAIN offer_label AS text CHECK (VALUE <> '');
CREATE DOMAIN moment AS timestamptz;
CREATE TABLE domains (id int, offer offer_label, purchased_at moment, benefits_activated flag,
    product_keys_viewed flag, upgraded_with_gold_discount flag, tax_exempt flag);
INSERT INTO domains SELECT id, offer, purchased_at AT TIME ZONE 'UTC', benefits_activated, product_keys_viewed,
    upgraded_with_gold_discount, tax_exempt FROM src;
SELECT * FROM verdict('domains', 'SELECT id, ' || answers('t') || ' FROM t13.domains t');
SELECT * FROM verdict('domains, subquery', 'SELECT id, ' || answers('s') || ' FROM (SELECT * FROM t13.domains OFFSET 0) s');

-- Dropped and extra columns, in another order.
CREATE TABLE reshaped (tax_exempt boolean, junk text, id int, upgraded_with_gold_discount boolean,
    product_keys_viewed int, offer refund_rules.mpn_offer, purchased_at timestamptz,
    benefits_activated boolean, notes text);
ALTER TABLE reshaped DROP COLUMN junk;
ALTER TABLE reshaped DROP COLUMN product_keys_viewed;      -- of the wrong type: gone
ALTER TABLE reshaped ADD COLUMN product_keys_viewed boolean;
ALTER TABLE reshaped ADD COLUMN amount numeric DEFAULT 49.90;
INSERT INTO reshaped (id, offer, purchased_at, benefits_activated, product_keys_viewed,
                      upgraded_with_gold_discount, tax_exempt, notes)
SELECT id, offer::refund_rules.mpn_offer, purchased_at AT TIME ZONE 'UTC', benefits_activated,
       product_keys_viewed, upgraded_with_gold_discount, tax_exempt, 'note ' || id FROM src;
SELECT * FROM verdict('dropped and extra columns', 'SELECT id, ' || answers('t') || ' FROM t13.reshaped t');
SELECT * FROM verdict('dropped and extra columns, subquery', 'SELECT id, ' || answers('s') || ' FROM (SELECT * FROM t13.reshaped OFFSET 0) s');
SELECT * FROM verdict('dropped and extra columns, status',
  'SELECT id, st.refund_eligible, st.refund_reasons, st.tax_refund_eligible, st.tax_refund_reasons
     FROM t13.reshaped t CROSS JOIN LATERAL refund_rules.refund_status(t, ''2026-11-25 12:00+00'') st');

-- A view's row, and a partitioned table's row.
CREATE VIEW purchases_v AS
SELECT id, offer, purchased_at, benefits_activated, product_keys_viewed,
       upgraded_with_gold_discount, tax_exempt, 'extra' AS extra FROM reshaped;
SELECT * FROM verdict('view row', 'SELECT id, ' || answers('v') || ' FROM t13.purchases_v v');
CREATE TABLE parted (id int, offer refund_rules.mpn_offer, purchased_at timestamptz, benefits_activated boolean,
    product_keys_viewed boolean, upgraded_with_gold_discount boolean, tax_exempt boolean) PARTITION BY RANGE (id);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (1) TO (4);
CREATE TABLE parted_2 (tax_exempt boolean, id int, offer refund_rules.mpn_offer, purchased_at timestamptz,
    benefits_activated boolean, product_keys_viewed boolean, upgraded_with_gold_discount boolean);
ALTER TABLE parted ATTACH PARTITION parted_2 FOR VALUES FROM (4) TO (100);
INSERT INTO parted SELECT id, offer, purchased_at, benefits_activated, product_keys_viewed,
       upgraded_with_gold_discount, tax_exempt FROM enum_tz;
SELECT * FROM verdict('partitioned table row', 'SELECT id, ' || answers('t') || ' FROM t13.parted t');
SELECT * FROM verdict('partition row (other column order)', 'SELECT id, ' || answers('t') || ' FROM t13.parted_2 t');

-- refund_status in CROSS JOIN LATERAL.
SELECT id, st.*
  FROM reshaped t CROSS JOIN LATERAL refund_rules.refund_status(t, '2026-11-25 12:00+00') st ORDER BY id;

-- PL/pgSQL: a record variable, a rowtype variable, and one record variable
-- holding rows of two different types in turn (one call site).
CREATE TABLE plpgsql_results (form text, id int, refund boolean, refund_reasons text[], tax boolean, tax_reasons text[]);
DO $$
DECLARE
  r record;
  t t13.enum_tz%ROWTYPE;
  i int;
BEGIN
  FOR r IN SELECT * FROM t13.text_offer ORDER BY id LOOP
    INSERT INTO t13.plpgsql_results VALUES ('record', r.id,
      refund_rules.refund_eligible(r, '2026-11-25 12:00+00'),
      refund_rules.refund_ineligibility_reasons(r, '2026-11-25 12:00+00'),
      refund_rules.tax_refund_eligible(r, '2026-11-25 12:00+00'),
      refund_rules.refund_ineligibility_reasons(r, '2026-11-25 12:00+00', 'tax'));
  END LOOP;
  FOR t IN SELECT * FROM t13.enum_tz ORDER BY id LOOP
    INSERT INTO t13.plpgsql_results VALUES ('rowtype', t.id,
      refund_rules.refund_eligible(t, '2026-11-25 12:00+00'),
      refund_rules.refund_ineligibility_reasons(t, '2026-11-25 12:00+00'),
      refund_rules.tax_refund_eligible(t, '2026-11-25 12:00+00'),
      refund_rules.refund_ineligibility_reasons(t, '2026-11-25 12:00+00', 'tax'));
  END LOOP;
  FOR i IN 2..15 LOOP
    IF i % 2 = 0 THEN
      SELECT * INTO r FROM t13.reshaped WHERE id = i / 2;
    ELSE
      SELECT * INTO r FROM t13.varchar_offer WHERE id = i / 2;
    END IF;
    INSERT INTO t13.plpgsql_results VALUES ('record of changing type', r.id,
      refund_rules.refund_eligible(r, '2026-11-25 12:00+00'),
      refund_rules.refund_ineligibility_reasons(r, '2026-11-25 12:00+00'),
      refund_rules.tax_refund_eligible(r, '2026-11-25 12:00+00'),
      refund_rules.refund_ineligibility_reasons(r, '2026-11-25 12:00+00', 'tax'));
  END LOOP;
END $$;
SELECT r.form, count(*) FILTER (WHERE (r.refund, r.refund_reasons, r.tax, r.tax_reasons)
                                  IS DISTINCT FROM (w.refund, w.refund_reasons, w.tax, w.tax_reasons)) AS wrong,
       count(*) AS rows
  FROM plpgsql_results r JOIN want w USING (id) GROUP BY r.form ORDER BY r.form;
-- A PL/pgSQL function taking a rowtype argument.
CREATE FUNCTION refundable(p t13.reshaped, at timestamptz) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  RETURN format('%s %s', refund_rules.refund_eligible(p, at), refund_rules.refund_ineligibility_reasons(p, at));
END $$;
SELECT id, refundable(t, '2026-11-25 12:00+00') FROM reshaped t ORDER BY id;

-- The readable answers themselves (the table row of reshaped).
SELECT id, refund_rules.refund_eligible(t, '2026-11-25 12:00+00') AS refund,
       refund_rules.refund_ineligibility_reasons(t, '2026-11-25 12:00+00') AS refund_reasons,
       refund_rules.tax_refund_eligible(t, '2026-11-25 12:00+00') AS tax,
       refund_rules.refund_ineligibility_reasons(t, '2026-11-25 12:00+00', 'tax') AS tax_reasons
  FROM reshaped t ORDER BY id;

RESET search_path;
DROP SCHEMA t13 CASCADE;
