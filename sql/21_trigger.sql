--
-- 21_trigger: the trigger enforce_refund_policy() on a table of refund requests
--
-- Every reason through the trigger, compared with a reference written in SQL
-- from refund-policy.md (the requester's role included); the exact error
-- text, SQLSTATE, DETAIL and HINT; NULLs fail closed; a missing purchase is a
-- foreign key violation; the kind column present or absent, text or enum;
-- schema-qualified and quoted names and a key column other than id; on
-- UPDATE only a change of a column the check reads re-checks.
--
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET client_min_messages = warning;
CREATE SCHEMA enf_trig;
RESET client_min_messages;
SET search_path = enf_trig, public;
\set VERBOSITY default
\set SHOW_CONTEXT never

-- The reference: the reasons of refund-policy.md, in its order, written in
-- SQL; kind NULL: the refund cannot be judged, only missing_kind, then the
-- requester.
CREATE FUNCTION ref_reasons(offer text, purchased_at timestamptz, benefits boolean,
                            keys boolean, upgraded boolean, tax_exempt boolean,
                            as_of timestamptz, kind text, role text)
RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
  SELECT array_remove(ARRAY[
      CASE WHEN kind IS NULL THEN 'missing_kind' END,
      CASE WHEN kind IS NOT NULL AND purchased_at IS NULL THEN 'missing_purchased_at' END,
      CASE WHEN kind IS NOT NULL AND as_of IS NULL THEN 'missing_requested_at' END,
      CASE WHEN kind IS NOT NULL AND purchased_at IS NOT NULL AND as_of IS NOT NULL THEN
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
             WHEN NOT tax_exempt THEN 'not_tax_exempt' END END,
      CASE WHEN role NOT IN ('mpn_partner_admin', 'account_admin') THEN 'requester_not_authorized' END,
      CASE WHEN role IS NULL THEN 'missing_requested_by_role' END
    ], NULL)
$$;

-- The error a refused request must raise, as (code, message, detail, hint).
CREATE FUNCTION ref_error(reasons text[], purchased_at timestamptz, kind text, purchase_key text,
                          OUT code text, OUT message text, OUT detail text, OUT hint text)
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN cardinality(reasons) = 0 THEN '00000' ELSE '23514' END,
         CASE WHEN cardinality(reasons) > 0 THEN
           CASE WHEN kind = 'tax' THEN 'tax refund' ELSE 'refund' END
           || ' of purchase "' || purchase_key || '" is not allowed' END,
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
CREATE TABLE purchases (
    id                          integer PRIMARY KEY,
    offer                       refund_rules.mpn_offer,
    purchased_at                timestamptz,
    benefits_activated          boolean,
    product_keys_viewed         boolean,
    upgraded_with_gold_discount boolean,
    tax_exempt                  boolean
);
INSERT INTO purchases
SELECT row_number() OVER (ORDER BY o, t, b, k, u, te), o, t, b, k, u, te
FROM unnest(ARRAY['action_pack', 'silver', 'gold', NULL]::refund_rules.mpn_offer[]) o,
     unnest(ARRAY['2038-11-20 09:00:00+00', NULL]::timestamptz[]) t,
     unnest(ARRAY[false, true, NULL]) b,
     unnest(ARRAY[false, true, NULL]) k,
     unnest(ARRAY[false, true, NULL]) u,
     unnest(ARRAY[true, false, NULL]) te;
CREATE TABLE moments (m integer, as_of timestamptz);
INSERT INTO moments VALUES
  (0, '2038-11-20 08:59:59.999999+00'), (1, '2038-11-20 09:00:00+00'),
  (2, '2038-12-20 09:00:00+00'), (3, '2038-12-20 09:00:00.000001+00'),
  (4, '2039-11-20 09:00:00+00'), (5, '2039-11-20 09:00:00.000001+00'), (6, NULL);
CREATE TABLE kinds (n integer, kind refund_rules.refund_kind);
INSERT INTO kinds VALUES (0, 'purchase'), (1, 'tax'), (2, NULL);
CREATE TABLE roles (n integer, role text);
INSERT INTO roles VALUES (0, 'mpn_partner_admin'), (1, 'account_admin'), (2, NULL), (3, 'billing_admin');

CREATE TABLE refund_requests (
    id                serial PRIMARY KEY,
    purchase_id       integer,
    requested_at      timestamptz,
    kind              refund_rules.refund_kind,
    requested_by_role text,
    note              text
);
CREATE TRIGGER refund_policy
  BEFORE INSERT OR UPDATE ON refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');

-- Insert one request; what it got.
CREATE FUNCTION try_request(purchase_id integer, as_of timestamptz,
                            kind refund_rules.refund_kind, role text,
                            OUT code text, OUT message text, OUT detail text, OUT hint text)
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
  VALUES (purchase_id, as_of, kind, role);
  code := '00000';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                          detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
  detail := nullif(detail, '');
  hint := nullif(hint, '');
END $$;

------------------------------------------------------------------------
-- 1. Every purchase at every moment, each kind; the four roles in turn
------------------------------------------------------------------------
CREATE TABLE results AS
SELECT p.id, mo.as_of, k.kind, ro.role, r.*,
       e.code AS e_code, e.message AS e_message, e.detail AS e_detail, e.hint AS e_hint,
       x.reasons
FROM purchases p CROSS JOIN moments mo CROSS JOIN kinds k
JOIN roles ro ON ro.n = (p.id + mo.m + k.n) % 4
CROSS JOIN LATERAL ref_reasons(p.offer::text, p.purchased_at, p.benefits_activated,
                               p.product_keys_viewed, p.upgraded_with_gold_discount,
                               p.tax_exempt, mo.as_of, k.kind::text, ro.role) x(reasons)
CROSS JOIN LATERAL ref_error(x.reasons, p.purchased_at, k.kind::text, p.id::text) e
CROSS JOIN LATERAL try_request(p.id, mo.as_of, k.kind, ro.role) r;

-- Verdict: every request got exactly what the reference says (0 mismatches),
-- and exactly the allowed ones are in the table.
SELECT count(*) AS cases,
       count(*) FILTER (WHERE code = '00000') AS allowed,
       count(*) FILTER (WHERE code = '23514') AS refused,
       count(*) FILTER (WHERE (code, message, detail, hint)
                              IS DISTINCT FROM (e_code, e_message, e_detail, e_hint)) AS mismatches,
       (SELECT count(*) FROM refund_requests) AS rows_stored
FROM results;
SELECT reason, count(*) AS cases, count(*) FILTER (WHERE cardinality(reasons) = 1) AS alone
FROM results, unnest(reasons) reason
GROUP BY reason ORDER BY reason;
SELECT id, as_of, kind, role, code, detail, e_detail, hint, e_hint
FROM results
WHERE (code, message, detail, hint) IS DISTINCT FROM (e_code, e_message, e_detail, e_hint)
ORDER BY id, as_of, kind LIMIT 5;
-- Only the two roles of the policy ever got a refund in.
SELECT requested_by_role, count(*) AS accepted FROM refund_requests
GROUP BY requested_by_role ORDER BY requested_by_role;
-- Nothing NULL ever got in.
SELECT count(*) AS accepted_with_a_null
FROM refund_requests q JOIN purchases p ON p.id = q.purchase_id
WHERE q.requested_at IS NULL OR q.kind IS NULL OR q.requested_by_role IS NULL
   OR p.purchased_at IS NULL
   OR (q.kind = 'purchase' AND (p.benefits_activated IS NULL OR p.product_keys_viewed IS NULL))
   OR (q.kind = 'tax' AND p.tax_exempt IS NULL);
TRUNCATE refund_requests;

------------------------------------------------------------------------
-- 2. The errors as a user sees them
------------------------------------------------------------------------
INSERT INTO purchases VALUES
  (1001, 'gold', '2038-11-20 09:00+00', false, false, false, true),
  (1002, 'silver', '2038-10-26 11:59:59+00', true, true, true, false),
  (1003, 'silver', '2038-11-20 00:00+00', false, false, true, NULL),
  (1004, 'action_pack', '2038-11-01 00:00+00', false, NULL, false, false),
  (1005, 'gold', '2036-02-29 12:00+00', true, true, false, true);
-- The two roles of the policy may request; a refund in the window is accepted.
INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role) VALUES
  (1001, '2038-11-25 12:00+00', 'purchase', 'mpn_partner_admin'),
  (1001, '2038-11-25 12:00+00', 'purchase', 'account_admin'),
  (1001, '2039-11-20 09:00+00', 'tax', 'account_admin'),
  (1005, '2037-02-28 12:00+00', 'tax', 'mpn_partner_admin');
-- Any other role, spelled however closely, is not authorized.
INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
VALUES (1001, '2038-11-25 12:00+00', 'purchase', 'billing_admin');
\echo SQLSTATE :SQLSTATE
INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
VALUES (1001, '2038-11-25 12:00+00', 'purchase', 'Account_Admin');
\echo SQLSTATE :SQLSTATE
INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
VALUES (1001, '2038-11-25 12:00+00', 'purchase', 'account_admin ');
\echo SQLSTATE :SQLSTATE
INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
VALUES (1001, '2038-11-25 12:00+00', 'purchase', '');
\echo SQLSTATE :SQLSTATE
-- Every reason of a purchase refund at once, and the requester's.
INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
VALUES (1002, '2038-11-25 12:00+00', 'purchase', 'partner');
\echo SQLSTATE :SQLSTATE
INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
VALUES (1003, '2038-11-25 12:00+00', 'purchase', 'account_admin');
\echo SQLSTATE :SQLSTATE
-- Tax refunds: the other window and tax_exempt.
INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
VALUES (1005, '2037-02-28 12:00:00.000001+00', 'tax', 'account_admin');
\echo SQLSTATE :SQLSTATE
INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
VALUES (1002, '2038-11-25 12:00+00', 'tax', 'account_admin');
\echo SQLSTATE :SQLSTATE
INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
VALUES (1001, '2038-11-20 08:59:59+00', 'tax', 'account_admin');
\echo SQLSTATE :SQLSTATE
-- NULLs fail closed: a field of the purchase, requested_at, kind, the role.
INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
VALUES (1004, '2038-11-25 12:00+00', 'purchase', 'account_admin');
\echo SQLSTATE :SQLSTATE
INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
VALUES (1003, '2038-11-25 12:00+00', 'tax', 'account_admin');
\echo SQLSTATE :SQLSTATE
INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
VALUES (1001, NULL, 'purchase', 'account_admin');
\echo SQLSTATE :SQLSTATE
INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
VALUES (1001, '2038-11-25 12:00+00', NULL, 'account_admin');
\echo SQLSTATE :SQLSTATE
INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
VALUES (1001, '2038-11-25 12:00+00', 'purchase', NULL);
\echo SQLSTATE :SQLSTATE
-- A request that names no purchase, or one that does not exist: 23503.
INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
VALUES (NULL, '2038-11-25 12:00+00', 'purchase', 'account_admin');
\echo SQLSTATE :SQLSTATE
INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
VALUES (999999, '2038-11-25 12:00+00', 'purchase', 'account_admin');
\echo SQLSTATE :SQLSTATE
-- One refused row stops the whole statement.
INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role) VALUES
  (1001, '2038-11-26 12:00+00', 'purchase', 'account_admin'),
  (1002, '2038-11-26 12:00+00', 'purchase', 'account_admin');
\echo SQLSTATE :SQLSTATE
-- The HINT is in UTC whatever the session's TimeZone and DateStyle.
SET TimeZone = 'America/St_Johns';
SET DateStyle = 'German';
INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
VALUES (1003, '2038-11-25 12:00+00', 'purchase', 'account_admin');
\echo SQLSTATE :SQLSTATE
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SELECT purchase_id, requested_at, kind, requested_by_role FROM refund_requests ORDER BY id;

------------------------------------------------------------------------
-- 3. UPDATE: re-checked only when a column the check reads changes
------------------------------------------------------------------------
-- Purchase 1001 has a purchase refund accepted; now its benefits are
-- activated (nothing on this purchases table stops that).
UPDATE purchases SET benefits_activated = true WHERE id = 1001;
-- Changing an unrelated column, or setting a checked one to its own value,
-- does not re-check: the request accepted before stays.
UPDATE refund_requests SET note = 'approved by finance' WHERE purchase_id = 1001 AND kind = 'purchase';
UPDATE refund_requests SET requested_at = requested_at, requested_by_role = requested_by_role,
                           kind = kind, purchase_id = purchase_id
WHERE purchase_id = 1001 AND kind = 'purchase';
SELECT purchase_id, kind, requested_by_role, note FROM refund_requests
WHERE purchase_id = 1001 ORDER BY id;
-- Changing any checked column re-checks against the purchase as it is now.
UPDATE refund_requests SET requested_at = requested_at + interval '1 second'
WHERE purchase_id = 1001 AND requested_by_role = 'account_admin' AND kind = 'purchase';
\echo SQLSTATE :SQLSTATE
UPDATE refund_requests SET requested_by_role = 'account_admin'
WHERE purchase_id = 1001 AND requested_by_role = 'mpn_partner_admin';
\echo SQLSTATE :SQLSTATE
UPDATE refund_requests SET requested_by_role = NULL
WHERE purchase_id = 1001 AND kind = 'tax';
\echo SQLSTATE :SQLSTATE
UPDATE refund_requests SET kind = 'purchase'
WHERE purchase_id = 1001 AND kind = 'tax';
\echo SQLSTATE :SQLSTATE
UPDATE refund_requests SET purchase_id = 1002
WHERE purchase_id = 1005;
\echo SQLSTATE :SQLSTATE
UPDATE refund_requests SET purchase_id = NULL
WHERE purchase_id = 1005;
\echo SQLSTATE :SQLSTATE
-- A re-check that passes: a tax request moved to another tax-exempt moment.
UPDATE refund_requests SET requested_at = '2039-01-01 00:00+00'
WHERE purchase_id = 1001 AND kind = 'tax';
SELECT purchase_id, requested_at, kind, requested_by_role, note FROM refund_requests ORDER BY id;
UPDATE purchases SET benefits_activated = false WHERE id = 1001;

------------------------------------------------------------------------
-- 4. The shapes of the request table
------------------------------------------------------------------------
-- No kind column: every request is a purchase refund; compared on the grid.
CREATE TABLE purchase_refund_requests (
    purchase_id       integer,
    requested_at      timestamptz,
    requested_by_role text
);
CREATE TRIGGER refund_policy
  BEFORE INSERT OR UPDATE ON purchase_refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
CREATE FUNCTION try_purchase_request(purchase_id integer, as_of timestamptz, role text,
                                     OUT code text, OUT message text, OUT detail text, OUT hint text)
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO purchase_refund_requests VALUES (purchase_id, as_of, role);
  code := '00000';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                          detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
  detail := nullif(detail, '');
  hint := nullif(hint, '');
END $$;
SELECT count(*) AS cases, count(*) FILTER (WHERE r.code = '00000') AS allowed,
       count(*) FILTER (WHERE (r.code, r.message, r.detail, r.hint)
                              IS DISTINCT FROM (s.code, s.message, s.detail, s.hint)) AS mismatches
FROM results s
CROSS JOIN LATERAL try_purchase_request(s.id, s.as_of, s.role) r
WHERE s.kind = 'purchase';
SELECT count(*) AS rows_stored FROM purchase_refund_requests;
INSERT INTO purchase_refund_requests VALUES (1002, '2038-11-25 12:00+00', 'account_admin');
\echo SQLSTATE :SQLSTATE

-- kind as text and the role as an enum; a label that is not a kind is bad
-- data (22023), not a reason.
CREATE TYPE partner_role AS ENUM ('mpn_partner_admin', 'account_admin', 'billing_admin');
CREATE TABLE text_kind_requests (
    purchase_id       integer,
    requested_at      timestamptz,
    kind              text,
    requested_by_role partner_role
);
CREATE TRIGGER refund_policy
  BEFORE INSERT OR UPDATE ON text_kind_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
INSERT INTO text_kind_requests VALUES
  (1001, '2038-11-25 12:00+00', 'purchase', 'account_admin'),
  (1001, '2038-11-25 12:00+00', 'tax', 'mpn_partner_admin');
INSERT INTO text_kind_requests VALUES (1002, '2038-11-25 12:00+00', 'tax', 'account_admin');
\echo SQLSTATE :SQLSTATE
INSERT INTO text_kind_requests VALUES (1001, '2038-11-25 12:00+00', 'purchase', 'billing_admin');
\echo SQLSTATE :SQLSTATE
INSERT INTO text_kind_requests VALUES (1001, '2038-11-25 12:00+00', NULL, 'account_admin');
\echo SQLSTATE :SQLSTATE
INSERT INTO text_kind_requests VALUES (1001, '2038-11-25 12:00+00', 'Tax', 'account_admin');
\echo SQLSTATE :SQLSTATE
INSERT INTO text_kind_requests VALUES (1001, '2038-11-25 12:00+00', '', 'account_admin');
\echo SQLSTATE :SQLSTATE
SELECT * FROM text_kind_requests ORDER BY kind;

-- Domains over the accepted types, varchar, and requested_at as a domain
-- over timestamptz: the deadline is the same instant whatever the TimeZone.
-- (A timestamp column is refused: 25_moment.)
CREATE DOMAIN role_name AS varchar(40);
CREATE DOMAIN kind_name AS refund_rules.refund_kind;
CREATE DOMAIN moment AS timestamptz;
CREATE TABLE domain_requests (
    purchase_id       integer,
    requested_at      moment,
    kind              kind_name,
    requested_by_role role_name
);
CREATE TRIGGER refund_policy
  BEFORE INSERT OR UPDATE ON domain_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
SET TimeZone = 'Asia/Kolkata';
INSERT INTO domain_requests VALUES (1003, '2038-11-20 00:00+00', 'tax', 'account_admin');
\echo SQLSTATE :SQLSTATE
UPDATE purchases SET tax_exempt = true WHERE id = 1003;
INSERT INTO domain_requests VALUES (1003, '2038-11-20 00:00+00', 'tax', 'account_admin');
INSERT INTO domain_requests VALUES (1001, '2038-12-20 09:00+00', 'purchase', 'mpn_partner_admin');
INSERT INTO domain_requests VALUES (1001, '2038-12-20 09:00:00.000001+00', 'purchase', 'mpn_partner_admin');
\echo SQLSTATE :SQLSTATE
SET TimeZone = 'UTC';
SELECT * FROM domain_requests ORDER BY purchase_id;

------------------------------------------------------------------------
-- 5. Naming the purchases table and its key
------------------------------------------------------------------------
-- Requests in another schema: the purchases table named with its schema.
CREATE SCHEMA enf_trig_requests;
CREATE TABLE enf_trig_requests.refund_requests (
    id                serial PRIMARY KEY,
    purchase_ref      bigint,
    requested_at      timestamptz,
    requested_by_role text
);
CREATE TRIGGER refund_policy
  BEFORE INSERT OR UPDATE ON enf_trig_requests.refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('enf_trig.purchases', 'purchase_ref');
INSERT INTO enf_trig_requests.refund_requests (purchase_ref, requested_at, requested_by_role)
VALUES (1001, '2038-11-25 12:00+00', 'account_admin');
INSERT INTO enf_trig_requests.refund_requests (purchase_ref, requested_at, requested_by_role)
VALUES (1002, '2038-11-25 12:00+00', 'account_admin');
\echo SQLSTATE :SQLSTATE
INSERT INTO enf_trig_requests.refund_requests (purchase_ref, requested_at, requested_by_role)
VALUES (5000000000, '2038-11-25 12:00+00', 'account_admin');
\echo SQLSTATE :SQLSTATE
SELECT purchase_ref, requested_at FROM enf_trig_requests.refund_requests;

-- A key column other than id, named by the third argument.
CREATE TABLE purchases_by_sku (
    sku                         text PRIMARY KEY,
    offer                       text,
    purchased_at                timestamptz,
    benefits_activated          boolean,
    product_keys_viewed         boolean,
    upgraded_with_gold_discount boolean,
    tax_exempt                  boolean
);
INSERT INTO purchases_by_sku VALUES
  ('GOLD-7', 'gold', '2038-11-20 09:00+00', false, false, false, true),
  ('SILVER-8', 'silver', '2038-11-20 09:00+00', false, true, false, true);
CREATE TABLE sku_requests (
    sku_ref           text,
    requested_at      timestamptz,
    kind              refund_rules.refund_kind,
    requested_by_role text
);
CREATE TRIGGER refund_policy
  BEFORE INSERT OR UPDATE ON sku_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases_by_sku', 'sku_ref', 'sku');
INSERT INTO sku_requests VALUES ('GOLD-7', '2038-11-25 12:00+00', 'purchase', 'account_admin');
INSERT INTO sku_requests VALUES ('SILVER-8', '2038-11-25 12:00+00', 'tax', 'account_admin');
INSERT INTO sku_requests VALUES ('SILVER-8', '2038-11-25 12:00+00', 'purchase', 'account_admin');
\echo SQLSTATE :SQLSTATE
INSERT INTO sku_requests VALUES ('gold-7', '2038-11-25 12:00+00', 'purchase', 'account_admin');
\echo SQLSTATE :SQLSTATE
SELECT * FROM sku_requests ORDER BY sku_ref;

-- A text key column named by the third argument; quoted mixed-case names.
-- The first argument is parsed like a table name in SQL (quotes keep case),
-- the second and third are column names as they are.
CREATE SCHEMA "Enf Sales";
CREATE TABLE "Enf Sales"."Purchase List" (
    "Purchase No"               text PRIMARY KEY,
    offer                       varchar(20),
    purchased_at                timestamp,
    benefits_activated          boolean,
    product_keys_viewed         boolean,
    upgraded_with_gold_discount boolean,
    tax_exempt                  boolean
);
INSERT INTO "Enf Sales"."Purchase List" VALUES
  ('A-1', 'silver', '2038-11-20 09:00', false, false, false, false),
  ('A-2', 'silver', '2038-11-20 09:00', false, false, true, false);
CREATE TABLE "Enf Sales"."Refund Requests" (
    "Purchase Ref"    text,
    requested_at      timestamptz,
    requested_by_role text
);
CREATE TRIGGER refund_policy
  BEFORE INSERT OR UPDATE ON "Enf Sales"."Refund Requests"
  FOR EACH ROW EXECUTE FUNCTION
  refund_rules.enforce_refund_policy('"Purchase List"', 'Purchase Ref', 'Purchase No');
INSERT INTO "Enf Sales"."Refund Requests" VALUES ('A-1', '2038-12-20 09:00+00', 'account_admin');
INSERT INTO "Enf Sales"."Refund Requests" VALUES ('A-1', '2038-12-20 09:00:00.000001+00', 'account_admin');
\echo SQLSTATE :SQLSTATE
INSERT INTO "Enf Sales"."Refund Requests" VALUES ('A-2', '2038-11-25 12:00+00', 'account_admin');
\echo SQLSTATE :SQLSTATE
-- Keys are compared as they are (text: case matters).
INSERT INTO "Enf Sales"."Refund Requests" VALUES ('a-1', '2038-11-25 12:00+00', 'account_admin');
\echo SQLSTATE :SQLSTATE
-- The same table named with its schema.
CREATE TRIGGER refund_policy_qualified
  BEFORE INSERT OR UPDATE ON "Enf Sales"."Refund Requests"
  FOR EACH ROW EXECUTE FUNCTION
  refund_rules.enforce_refund_policy('"Enf Sales"."Purchase List"', 'Purchase Ref', 'Purchase No');
INSERT INTO "Enf Sales"."Refund Requests" VALUES ('A-1', '2038-11-21 00:00+00', 'mpn_partner_admin');
INSERT INTO "Enf Sales"."Refund Requests" VALUES ('A-2', '2038-11-21 00:00+00', 'mpn_partner_admin');
\echo SQLSTATE :SQLSTATE
SELECT * FROM "Enf Sales"."Refund Requests" ORDER BY requested_at;

-- The trigger keeps working after the purchases table changes shape
-- (a column added in front, one dropped) in the same session.
ALTER TABLE purchases ADD COLUMN region text DEFAULT 'emea';
ALTER TABLE purchases DROP COLUMN tax_exempt;
INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
VALUES (1001, '2038-11-27 12:00+00', 'purchase', 'account_admin');
INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
VALUES (1002, '2038-11-27 12:00+00', 'purchase', 'account_admin');
\echo SQLSTATE :SQLSTATE
INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
VALUES (1001, '2038-11-27 12:00+00', 'tax', 'account_admin');
\echo SQLSTATE :SQLSTATE

RESET search_path;
RESET TimeZone;
RESET DateStyle;
SET client_min_messages = warning;
DROP SCHEMA enf_trig, enf_trig_requests, "Enf Sales" CASCADE;
RESET client_min_messages;
