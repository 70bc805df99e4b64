--
-- 20_check_refund: the check-constraint helper check_refund(p, requested_at, kind)
--
-- Every reason through the function and through a CHECK constraint, compared
-- with a reference written in SQL from refund-policy.md; the exact error text,
-- SQLSTATE, DETAIL and HINT; NULLs fail closed; the constraint also stops a
-- benefit being activated on a refunded purchase; a row accepted once is
-- accepted again (nothing depends on now()).
--
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET client_min_messages = warning;
CREATE SCHEMA enf_check;
RESET client_min_messages;
SET search_path = enf_check, public;
\set VERBOSITY default
\set SHOW_CONTEXT never

-- The reference: the reasons of refund-policy.md, in its order, written in SQL.
-- kind NULL: the request cannot be judged at all, only missing_kind.
CREATE FUNCTION ref_reasons(offer text, purchased_at timestamptz, benefits boolean,
                            keys boolean, upgraded boolean, tax_exempt boolean,
                            as_of timestamptz, kind text)
RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN kind IS NULL THEN ARRAY['missing_kind'] ELSE
    array_remove(ARRAY[
      CASE WHEN purchased_at IS NULL THEN 'missing_purchased_at' END,
      CASE WHEN as_of IS NULL THEN 'missing_requested_at' END,
      CASE WHEN purchased_at IS NOT NULL AND as_of IS NOT NULL THEN
        CASE WHEN as_of < purchased_at THEN 'not_yet_purchased'
             WHEN kind = 'purchase' AND as_of > purchased_at + interval '720 hours'
               THEN 'refund_window_expired'
             WHEN kind = 'tax' AND as_of > ((purchased_at AT TIME ZONE 'UTC')
                                            + interval '1 year') AT TIME ZONE 'UTC'
               THEN 'tax_refund_window_expired'
        END
      END,
      CASE WHEN kind = 'purchase' THEN
        CASE WHEN benefits IS NULL THEN 'missing_benefits_activated'
             WHEN benefits THEN 'benefits_activated' END END,
      CASE WHEN kind = 'purchase' THEN
        CASE WHEN keys IS NULL THEN 'missing_product_keys_viewed'
             WHEN keys THEN 'product_keys_viewed' END END,
      CASE WHEN kind = 'purchase' AND offer = 'silver' AND upgraded
        THEN 'upgraded_with_gold_discount' END,
      CASE WHEN kind = 'purchase' AND offer IS NULL AND upgraded IS NOT FALSE
        THEN 'missing_offer' END,
      CASE WHEN kind = 'purchase' AND upgraded IS NULL AND offer IS DISTINCT FROM 'action_pack'
                AND offer IS DISTINCT FROM 'gold'
        THEN 'missing_upgraded_with_gold_discount' END,
      CASE WHEN kind = 'tax' THEN
        CASE WHEN tax_exempt IS NULL THEN 'missing_tax_exempt'
             WHEN NOT tax_exempt THEN 'not_tax_exempt' END END
    ], NULL)
  END
$$;

-- The error a refused refund must raise, as (code, message, detail, hint).
CREATE FUNCTION ref_error(reasons text[], purchased_at timestamptz, kind text,
                          purchase_key text DEFAULT NULL,
                          OUT code text, OUT message text, OUT detail text, OUT hint text)
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN cardinality(reasons) = 0 THEN '00000' ELSE '23514' END,
         CASE WHEN cardinality(reasons) > 0 THEN
           CASE WHEN kind = 'tax' THEN 'tax refund' ELSE 'refund' END
           || CASE WHEN purchase_key IS NOT NULL THEN ' of purchase "' || purchase_key || '"' ELSE '' END
           || ' is not allowed' END,
         CASE WHEN cardinality(reasons) > 0 THEN
           'Reasons: ' || array_to_string(reasons, ', ') || '.' END,
         CASE WHEN cardinality(reasons) > 0 AND kind IS NOT NULL AND purchased_at IS NOT NULL THEN
           CASE WHEN kind = 'tax' THEN 'Tax refunds' ELSE 'Refunds' END
           || ' of this purchase are allowed from '
           || to_char(purchased_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00 until '
           || to_char(CASE WHEN kind = 'tax'
                        THEN ((purchased_at AT TIME ZONE 'UTC') + interval '1 year')
                        ELSE (purchased_at AT TIME ZONE 'UTC') + interval '720 hours' END,
                      'YYYY-MM-DD HH24:MI:SS') || '+00.' END
$$;

-- The purchases: every offer and flag value, a known and a NULL purchase time.
CREATE TABLE grid (
    id                          serial PRIMARY KEY,
    offer                       refund_rules.mpn_offer,
    purchased_at                timestamptz,
    benefits_activated          boolean,
    product_keys_viewed         boolean,
    upgraded_with_gold_discount boolean,
    tax_exempt                  boolean
);
INSERT INTO grid (offer, purchased_at, benefits_activated, product_keys_viewed,
                  upgraded_with_gold_discount, tax_exempt)
SELECT o, t, b, k, u, te
FROM unnest(ARRAY['action_pack', 'silver', 'gold', NULL]::refund_rules.mpn_offer[]) o,
     unnest(ARRAY['2026-11-20 09:00:00+00', NULL]::timestamptz[]) t,
     unnest(ARRAY[false, true, NULL]) b,
     unnest(ARRAY[false, true, NULL]) k,
     unnest(ARRAY[false, true, NULL]) u,
     unnest(ARRAY[true, false, NULL]) te
ORDER BY 1, 2, 3, 4, 5, 6;
-- The moments of the requests: before, at the start, at both deadlines and
-- one microsecond after each, and NULL.
CREATE TABLE moments (as_of timestamptz);
INSERT INTO moments VALUES
  ('2026-11-20 08:59:59.999999+00'), ('2026-11-20 09:00:00+00'),
  ('2026-12-20 09:00:00+00'), ('2026-12-20 09:00:00.000001+00'),
  ('2027-11-20 09:00:00+00'), ('2027-11-20 09:00:00.000001+00'), (NULL);
CREATE TABLE kinds (kind refund_rules.refund_kind);
INSERT INTO kinds VALUES ('purchase'), ('tax'), (NULL);
SELECT count(*) AS purchases, (SELECT count(*) FROM moments) AS moments,
       (SELECT count(*) FROM kinds) AS kinds
FROM grid;

------------------------------------------------------------------------
-- 1. The function itself, on every purchase, moment and kind
------------------------------------------------------------------------

-- check_refund on one case: what it returned or raised.
CREATE FUNCTION try_check(g grid, as_of timestamptz, kind refund_rules.refund_kind,
                          OUT code text, OUT message text, OUT detail text, OUT hint text)
LANGUAGE plpgsql AS $$
DECLARE
  ok boolean;
BEGIN
  ok := refund_rules.check_refund(g, as_of, kind);
  code := CASE WHEN ok THEN '00000' ELSE 'returned ' || coalesce(ok::text, 'NULL') END;
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                          detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
  detail := nullif(detail, '');
  hint := nullif(hint, '');
END $$;

CREATE TABLE fn_results AS
SELECT g.id, m.as_of, k.kind, r.*,
       e.code AS e_code, e.message AS e_message, e.detail AS e_detail, e.hint AS e_hint,
       ref_reasons(g.offer::text, g.purchased_at, g.benefits_activated, g.product_keys_viewed,
                   g.upgraded_with_gold_discount, g.tax_exempt, m.as_of, k.kind::text) AS reasons
FROM grid g CROSS JOIN moments m CROSS JOIN kinds k
CROSS JOIN LATERAL try_check(g, m.as_of, k.kind) r
CROSS JOIN LATERAL ref_error(ref_reasons(g.offer::text, g.purchased_at, g.benefits_activated,
                                         g.product_keys_viewed, g.upgraded_with_gold_discount,
                                         g.tax_exempt, m.as_of, k.kind::text),
                             g.purchased_at, k.kind::text) e;

-- Verdict: every case raised exactly what the reference says (0 mismatches).
SELECT count(*) AS cases,
       count(*) FILTER (WHERE code = '00000') AS allowed,
       count(*) FILTER (WHERE code = '23514') AS refused,
       count(*) FILTER (WHERE (code, message, detail, hint)
                              IS DISTINCT FROM (e_code, e_message, e_detail, e_hint)) AS mismatches
FROM fn_results;
-- Each reason code was met, and how often it was the only reason.
SELECT reason, count(*) AS cases, count(*) FILTER (WHERE cardinality(reasons) = 1) AS alone
FROM fn_results, unnest(reasons) reason
GROUP BY reason ORDER BY reason;
-- A few mismatches, if any (none expected).
SELECT id, as_of, kind, code, detail, e_detail, hint, e_hint
FROM fn_results
WHERE (code, message, detail, hint) IS DISTINCT FROM (e_code, e_message, e_detail, e_hint)
ORDER BY id, as_of, kind LIMIT 5;
-- Nothing NULL ever passes: every allowed case has all its fields known.
SELECT count(*) AS allowed_with_a_null
FROM fn_results f JOIN grid g USING (id)
WHERE f.code = '00000'
  AND (f.as_of IS NULL OR f.kind IS NULL OR g.purchased_at IS NULL
       OR (f.kind = 'purchase' AND (g.benefits_activated IS NULL OR g.product_keys_viewed IS NULL))
       OR (f.kind = 'tax' AND g.tax_exempt IS NULL));

-- The errors as a user sees them.
SELECT refund_rules.check_refund(ROW('gold', '2026-11-20 09:00+00', false, false, false, false)::refund_rules.purchase,
                                 '2026-11-25 12:00+00');
SELECT refund_rules.check_refund(ROW('silver', '2026-10-26 11:59:59+00', true, true, true, false)::refund_rules.purchase,
                                 '2026-11-25 12:00+00');
\echo SQLSTATE :SQLSTATE
SELECT refund_rules.check_refund(ROW('gold', '2026-12-01 00:00+00', false, false, false, false)::refund_rules.purchase,
                                 '2026-11-25 12:00+00', 'purchase');
\echo SQLSTATE :SQLSTATE
SELECT refund_rules.check_refund(ROW('gold', '2024-02-29 12:00+00', false, false, false, false)::refund_rules.purchase,
                                 '2025-02-28 12:00:00.000001+00', 'tax');
\echo SQLSTATE :SQLSTATE
SELECT refund_rules.check_refund(ROW('gold', '2024-02-29 12:00+00', false, false, false, true)::refund_rules.purchase,
                                 '2025-02-28 12:00+00', 'tax');
-- NULLs fail closed: requested_at, kind, a field, the whole row.
SELECT refund_rules.check_refund(ROW('gold', '2026-11-20 09:00+00', false, false, false, false)::refund_rules.purchase,
                                 NULL);
\echo SQLSTATE :SQLSTATE
SELECT refund_rules.check_refund(ROW('gold', '2026-11-20 09:00+00', false, false, false, false)::refund_rules.purchase,
                                 '2026-11-25 12:00+00', NULL);
\echo SQLSTATE :SQLSTATE
SELECT refund_rules.check_refund(ROW('action_pack', '2026-11-01 00:00+00', false, NULL, false, false)::refund_rules.purchase,
                                 '2026-11-25 12:00+00');
\echo SQLSTATE :SQLSTATE
SELECT refund_rules.check_refund(NULL::refund_rules.purchase, '2026-11-25 12:00+00');
\echo SQLSTATE :SQLSTATE
SELECT refund_rules.check_refund(NULL::refund_rules.purchase, '2026-11-25 12:00+00', 'tax');
\echo SQLSTATE :SQLSTATE
-- The HINT is in UTC whatever the session's TimeZone and DateStyle.
SET TimeZone = 'Pacific/Kiritimati';
SET DateStyle = 'SQL, DMY';
SELECT refund_rules.check_refund(ROW('silver', '2026-11-20 09:00:00.25+00', false, false, true, false)::refund_rules.purchase,
                                 '2026-11-25 12:00+00');
\echo SQLSTATE :SQLSTATE
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';

------------------------------------------------------------------------
-- 2. The same cases through a CHECK constraint
------------------------------------------------------------------------

CREATE TABLE memberships (
    id                          integer PRIMARY KEY,
    offer                       refund_rules.mpn_offer,
    purchased_at                timestamptz,
    benefits_activated          boolean,
    product_keys_viewed         boolean,
    upgraded_with_gold_discount boolean,
    tax_exempt                  boolean,
    refunded_at                 timestamptz,
    CONSTRAINT refund_allowed
      CHECK (refunded_at IS NULL OR refund_rules.check_refund(memberships, refunded_at))
);
-- Tax refunds: the kind is a column of the table, text here.
CREATE TABLE tax_refunds (
    id           integer PRIMARY KEY,
    purchased_at timestamptz,
    tax_exempt   boolean,
    refund_kind  text NOT NULL DEFAULT 'tax',
    refunded_at  timestamptz,
    CONSTRAINT refund_allowed
      CHECK (refunded_at IS NULL
             OR refund_rules.check_refund(tax_refunds, refunded_at, refund_kind::refund_rules.refund_kind))
);

-- Insert one case, return the sqlstate/message/detail/hint it got.
CREATE FUNCTION try_insert(g grid, as_of timestamptz,
                           OUT code text, OUT message text, OUT detail text, OUT hint text)
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO memberships VALUES (g.id, g.offer, g.purchased_at, g.benefits_activated,
                                  g.product_keys_viewed, g.upgraded_with_gold_discount,
                                  g.tax_exempt, as_of);
  DELETE FROM memberships WHERE id = g.id;
  code := '00000';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                          detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
  detail := nullif(detail, '');
  hint := nullif(hint, '');
END $$;

CREATE FUNCTION try_insert_tax(g grid, as_of timestamptz,
                               OUT code text, OUT message text, OUT detail text, OUT hint text)
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO tax_refunds (id, purchased_at, tax_exempt, refunded_at)
  VALUES (g.id, g.purchased_at, g.tax_exempt, as_of);
  DELETE FROM tax_refunds WHERE id = g.id;
  code := '00000';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                          detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
  detail := nullif(detail, '');
  hint := nullif(hint, '');
END $$;

-- A refunded_at of NULL is "not refunded": always accepted, whatever the row.
-- So the constraint path is compared on the non-NULL moments.
SELECT count(*) AS cases,
       count(*) FILTER (WHERE r.code = '00000') AS allowed,
       count(*) FILTER (WHERE (r.code, r.message, r.detail, r.hint)
                              IS DISTINCT FROM (f.code, f.message, f.detail, f.hint)) AS mismatches
FROM fn_results f JOIN grid g USING (id)
CROSS JOIN LATERAL try_insert(g, f.as_of) r
WHERE f.kind = 'purchase' AND f.as_of IS NOT NULL;
SELECT count(*) AS cases,
       count(*) FILTER (WHERE r.code = '00000') AS allowed,
       count(*) FILTER (WHERE (r.code, r.message, r.detail, r.hint)
                              IS DISTINCT FROM (f.code, f.message, f.detail, f.hint)) AS mismatches
FROM fn_results f JOIN grid g USING (id)
CROSS JOIN LATERAL try_insert_tax(g, f.as_of) r
WHERE f.kind = 'tax' AND f.as_of IS NOT NULL
  AND g.offer IS NULL AND g.benefits_activated IS NULL AND g.product_keys_viewed IS NULL
  AND g.upgraded_with_gold_discount IS NULL;
SELECT count(*) AS rows_left FROM memberships;

-- Readable cases.
INSERT INTO memberships VALUES
  (1, 'gold', '2026-11-20 09:00+00', false, false, false, false, '2026-11-25 12:00+00'),
  (2, 'silver', '2026-10-26 12:00+00', false, false, false, false, '2026-11-25 12:00+00'),
  (3, 'gold', '2026-11-20 09:00+00', false, false, true, false, '2026-11-25 12:00+00'),
  (4, 'action_pack', '2026-11-01 00:00+00', false, false, false, false, NULL),
  (5, 'silver', '2026-11-20 00:00+00', NULL, NULL, NULL, NULL, NULL);
INSERT INTO memberships VALUES
  (6, 'silver', '2026-10-26 11:59:59+00', false, false, false, false, '2026-11-25 12:00+00');
\echo SQLSTATE :SQLSTATE
INSERT INTO memberships VALUES
  (6, 'silver', '2026-11-20 00:00+00', false, false, true, false, '2026-11-25 12:00+00');
\echo SQLSTATE :SQLSTATE
INSERT INTO memberships VALUES
  (6, 'action_pack', '2026-11-01 00:00+00', true, true, false, false, '2026-11-25 12:00+00');
\echo SQLSTATE :SQLSTATE
INSERT INTO memberships VALUES
  (6, 'gold', '2026-12-01 00:00+00', false, false, false, false, '2026-11-25 12:00+00');
\echo SQLSTATE :SQLSTATE
-- NULLs fail closed in the constraint too (a NULL check would pass).
INSERT INTO memberships VALUES
  (6, 'action_pack', '2026-11-01 00:00+00', false, NULL, false, false, '2026-11-25 12:00+00');
\echo SQLSTATE :SQLSTATE
INSERT INTO memberships VALUES
  (6, NULL, '2026-11-01 00:00+00', false, false, NULL, false, '2026-11-25 12:00+00');
\echo SQLSTATE :SQLSTATE
INSERT INTO memberships VALUES
  (6, 'gold', NULL, false, false, false, false, '2026-11-25 12:00+00');
\echo SQLSTATE :SQLSTATE
-- Refunding a stored purchase: allowed for 4, refused for 5 (unknown flags).
UPDATE memberships SET refunded_at = '2026-11-25 12:00+00' WHERE id = 4;
UPDATE memberships SET refunded_at = '2026-11-25 12:00+00' WHERE id = 5;
\echo SQLSTATE :SQLSTATE
-- A refunded purchase cannot have its benefits activated or keys viewed later,
-- nor be marked as upgraded (Silver), nor moved out of its window.
UPDATE memberships SET benefits_activated = true WHERE id = 1;
\echo SQLSTATE :SQLSTATE
UPDATE memberships SET product_keys_viewed = true WHERE id = 4;
\echo SQLSTATE :SQLSTATE
UPDATE memberships SET upgraded_with_gold_discount = true WHERE id = 2;
\echo SQLSTATE :SQLSTATE
UPDATE memberships SET benefits_activated = NULL WHERE id = 1;
\echo SQLSTATE :SQLSTATE
UPDATE memberships SET purchased_at = '2026-10-01 00:00+00' WHERE id = 1;
\echo SQLSTATE :SQLSTATE
-- Gold upgraded with the discount is no reason (the rule is about Silver).
UPDATE memberships SET upgraded_with_gold_discount = true WHERE id = 1;
-- Benefits of a purchase not refunded can be activated.
UPDATE memberships SET benefits_activated = true WHERE id = 5;
SELECT id, offer, purchased_at, benefits_activated, product_keys_viewed,
       upgraded_with_gold_discount, refunded_at
FROM memberships ORDER BY id;

-- Once refunded, always refunded: the constraint reads only stored values,
-- never now(), so rows accepted in 2026 pass every later check.
SELECT count(*) AS refunded_rows FROM memberships WHERE refunded_at IS NOT NULL;
UPDATE memberships SET refunded_at = refunded_at WHERE refunded_at IS NOT NULL;
ALTER TABLE memberships DROP CONSTRAINT refund_allowed;
ALTER TABLE memberships ADD CONSTRAINT refund_allowed
  CHECK (refunded_at IS NULL OR refund_rules.check_refund(memberships, refunded_at)) NOT VALID;
ALTER TABLE memberships VALIDATE CONSTRAINT refund_allowed;
INSERT INTO memberships VALUES
  (7, 'silver', '2001-01-01 00:00+00', false, false, false, false, '2001-01-31 00:00+00'),
  (8, 'gold', '3001-01-01 00:00+00', false, false, false, false, '3001-01-01 00:00+00');
-- Adding the constraint to a table that already holds a forbidden refund
-- fails, naming the reason.
ALTER TABLE memberships DROP CONSTRAINT refund_allowed;
INSERT INTO memberships VALUES
  (9, 'gold', '2001-01-01 00:00+00', true, false, false, false, '2001-01-02 00:00+00');
ALTER TABLE memberships ADD CONSTRAINT refund_allowed
  CHECK (refunded_at IS NULL OR refund_rules.check_refund(memberships, refunded_at));
\echo SQLSTATE :SQLSTATE

-- Tax refunds through the constraint.
INSERT INTO tax_refunds VALUES (1, '2024-02-29 12:00+00', true, 'tax', '2025-02-28 12:00+00');
INSERT INTO tax_refunds VALUES (2, '2024-02-29 12:00+00', true, 'tax', '2025-02-28 12:00:00.000001+00');
\echo SQLSTATE :SQLSTATE
INSERT INTO tax_refunds VALUES (2, '2024-02-29 12:00+00', false, 'tax', '2024-03-01 00:00+00');
\echo SQLSTATE :SQLSTATE
INSERT INTO tax_refunds VALUES (2, '2024-02-29 12:00+00', NULL, 'tax', '2024-03-01 00:00+00');
\echo SQLSTATE :SQLSTATE
-- A purchase refund on this table needs columns it does not have.
INSERT INTO tax_refunds VALUES (2, '2024-02-29 12:00+00', true, 'purchase', '2024-03-01 00:00+00');
\echo SQLSTATE :SQLSTATE
UPDATE tax_refunds SET tax_exempt = false WHERE id = 1;
\echo SQLSTATE :SQLSTATE
SELECT * FROM tax_refunds ORDER BY id;

RESET search_path;
RESET TimeZone;
RESET DateStyle;
SET client_min_messages = warning;
DROP SCHEMA enf_check CASCADE;
RESET client_min_messages;
