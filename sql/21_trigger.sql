--
-- 21_trigger: the trigger enforce_refund_policy() on a table of refund requests
--
-- Every reason through the trigger, compared with a reference written in SQL
-- from refund-policy.md (the requester's role and the moment written
-- included); the exact error text, SQLSTATE, DETAIL and HINT; NULLs fail
-- closed; a missing purchase is a foreign key violation; the kind column
-- present or absent, text or enum; schema-qualified and quoted names and a
-- key column other than id; on UPDATE only a change of a column the check
-- reads re-checks.  The trigger judges at the database's clock, so the
-- purchases are placed relative to now(), at least an hour from any edge
-- of a window (the edges to the microsecond are 11_windows' and
-- 20_check_refund's), and the moments in HINT are written as T.
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
-- SQL, for a request written with the moment written_at and judged now
-- (the clock, at least an hour from every edge here); kind NULL: the refund
-- cannot be judged, only missing_kind, then the requester.
CREATE FUNCTION ref_reasons(offer text, purchased_at timestamptz, benefits boolean,
                            keys boolean, upgraded boolean, tax_exempt boolean,
                            written_at timestamptz, kind text, role text)
RETURNS text[] LANGUAGE sql STABLE AS $$
  SELECT array_remove(ARRAY[
      CASE WHEN kind IS NULL THEN 'missing_kind' END,
      CASE WHEN kind IS NOT NULL AND written_at < now() THEN 'backdated_request' END,
      CASE WHEN kind IS NOT NULL AND written_at > now() THEN 'postdated_request' END,
      CASE WHEN kind IS NOT NULL AND purchased_at IS NOT NULL THEN
        CASE WHEN now() < purchased_at THEN 'not_yet_purchased'
             WHEN kind = 'purchase' AND now() > purchased_at + interval '720 hours'
               THEN 'refund_window_expired'
             WHEN kind = 'tax' AND now() > ((purchased_at AT TIME ZONE 'UTC')
                                            + interval '1 year') AT TIME ZONE 'UTC'
               THEN 'tax_refund_window_expired'
        END
      END,
      CASE WHEN kind IS NOT NULL AND purchased_at IS NULL THEN 'missing_purchased_at' END,
      CASE WHEN kind IS NOT NULL AND written_at IS NULL THEN 'missing_requested_at' END,
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
         nullif(concat_ws(' ',
           CASE WHEN reasons && ARRAY['backdated_request', 'postdated_request'] THEN
             'Leave column "requested_at" to its default, now(): a moment written must be the start of the transaction.' END,
           CASE WHEN cardinality(reasons) > 0 AND kind IS NOT NULL AND purchased_at IS NOT NULL THEN
             CASE WHEN kind = 'tax' THEN 'Tax refunds' ELSE 'Refunds' END
             || ' of this purchase are allowed from '
             || to_char(purchased_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00 until '
             || to_char(CASE WHEN kind = 'tax'
                          THEN ((purchased_at AT TIME ZONE 'UTC') + interval '1 year')
                          ELSE (purchased_at AT TIME ZONE 'UTC') + interval '720 hours' END,
                        'YYYY-MM-DD HH24:MI:SS') || '+00.' END), '')
$$;

-- The purchases: every offer and flag value, at each place relative to the
-- windows (1 day ago: both open; 31 days ago: only the tax window; 400 days
-- ago: neither; tomorrow: not yet purchased) and NULL, in whole seconds.
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
SELECT row_number() OVER (ORDER BY o, t, b, k, u, te), o,
       date_trunc('second', now()) + t, b, k, u, te
FROM unnest(ARRAY['action_pack', 'silver', 'gold', NULL]::refund_rules.mpn_offer[]) o,
     unnest(ARRAY['-1 day', '-31 days', '-400 days', '1 day', NULL]::interval[]) t,
     unnest(ARRAY[false, true, NULL]) b,
     unnest(ARRAY[false, true, NULL]) k,
     unnest(ARRAY[false, true, NULL]) u,
     unnest(ARRAY[true, false, NULL]) te;
-- The moments written, relative to the statement's now(): its default,
-- NULL, an hour before (backdated), an hour after (postdated).
CREATE TABLE moments (m integer, written interval);
INSERT INTO moments VALUES (0, '0'), (1, NULL), (2, '-1 hour'), (3, '1 hour');
CREATE TABLE kinds (n integer, kind refund_rules.refund_kind);
INSERT INTO kinds VALUES (0, 'purchase'), (1, 'tax'), (2, NULL);
CREATE TABLE roles (n integer, role text);
INSERT INTO roles VALUES (0, 'mpn_partner_admin'), (1, 'account_admin'), (2, NULL), (3, 'billing_admin');

CREATE TABLE refund_requests (
    id                serial PRIMARY KEY,
    purchase_id       integer REFERENCES purchases,
    requested_at      timestamptz,
    kind              refund_rules.refund_kind,
    requested_by_role text,
    note              text
);
CREATE TRIGGER refund_policy
  AFTER INSERT OR UPDATE ON refund_requests
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
SELECT p.id, mo.m, now() + mo.written AS as_of, k.kind, ro.role, r.*,
       e.code AS e_code, e.message AS e_message, e.detail AS e_detail, e.hint AS e_hint,
       x.reasons
FROM purchases p CROSS JOIN moments mo CROSS JOIN kinds k
JOIN roles ro ON ro.n = (p.id + mo.m + k.n) % 4
CROSS JOIN LATERAL ref_reasons(p.offer::text, p.purchased_at, p.benefits_activated,
                               p.product_keys_viewed, p.upgraded_with_gold_discount,
                               p.tax_exempt, now() + mo.written, k.kind::text, ro.role) x(reasons)
CROSS JOIN LATERAL ref_error(x.reasons, p.purchased_at, k.kind::text, p.id::text) e
CROSS JOIN LATERAL try_request(p.id, now() + mo.written, k.kind, ro.role) r;

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
SELECT id, m, kind, role, code, detail, e_detail, hint, e_hint
FROM results
WHERE (code, message, detail, hint) IS DISTINCT FROM (e_code, e_message, e_detail, e_hint)
ORDER BY id, m, kind LIMIT 5;
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
-- What a statement got, with the moments in the HINT written as T.
CREATE FUNCTION attempt(stmt text, OUT code text, OUT message text, OUT detail text, OUT hint text)
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  code := '00000';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                          detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
  detail := nullif(detail, '');
  hint := nullif(regexp_replace(hint, '\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\+00', 'T', 'g'), '');
END $$;
INSERT INTO purchases VALUES
  (9001, 'gold', date_trunc('second', now()) - interval '5 days 3 hours', false, false, false, true),
  (9002, 'silver', date_trunc('second', now()) - interval '30 days 1 second', true, true, true, false),
  (9003, 'silver', date_trunc('second', now()) - interval '5 days 12 hours', false, false, true, NULL),
  (9004, 'action_pack', date_trunc('second', now()) - interval '24 days 12 hours', false, NULL, false, false),
  (9005, 'gold', date_trunc('second', now()) - interval '200 days', true, true, false, true),
  (9006, 'gold', date_trunc('second', now()) - interval '400 days', true, true, false, true),
  (9007, 'gold', date_trunc('second', now()) + interval '1 day', false, false, false, true),
  (9008, 'gold', date_trunc('second', now()) - interval '31 days', false, false, false, true);
-- The two roles of the policy may request; a refund in the window is accepted.
SELECT * FROM attempt($$INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role) VALUES
  (9001, now(), 'purchase', 'mpn_partner_admin'),
  (9001, now(), 'purchase', 'account_admin'),
  (9001, now(), 'tax', 'account_admin'),
  (9005, now(), 'tax', 'mpn_partner_admin')$$);
-- Any other role, spelled however closely, is not authorized.
SELECT * FROM attempt($$INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
                        VALUES (9001, now(), 'purchase', 'billing_admin')$$);
SELECT * FROM attempt($$INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
                        VALUES (9001, now(), 'purchase', 'Account_Admin')$$);
SELECT * FROM attempt($$INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
                        VALUES (9001, now(), 'purchase', 'account_admin ')$$);
SELECT * FROM attempt($$INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
                        VALUES (9001, now(), 'purchase', '')$$);
-- Every reason of a purchase refund at once, and the requester's.
SELECT * FROM attempt($$INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
                        VALUES (9002, now(), 'purchase', 'partner')$$);
SELECT * FROM attempt($$INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
                        VALUES (9003, now(), 'purchase', 'account_admin')$$);
-- Tax refunds: the other window (past, not yet begun) and tax_exempt.
SELECT * FROM attempt($$INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
                        VALUES (9006, now(), 'tax', 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
                        VALUES (9002, now(), 'tax', 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
                        VALUES (9007, now(), 'tax', 'account_admin')$$);
-- NULLs fail closed: a field of the purchase, requested_at, kind, the role.
SELECT * FROM attempt($$INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
                        VALUES (9004, now(), 'purchase', 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
                        VALUES (9003, now(), 'tax', 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
                        VALUES (9001, NULL, 'purchase', 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
                        VALUES (9001, now(), NULL, 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
                        VALUES (9001, now(), 'purchase', NULL)$$);
-- A request that names no purchase, or one that does not exist: 23503.
SELECT * FROM attempt($$INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
                        VALUES (NULL, now(), 'purchase', 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
                        VALUES (999999, now(), 'purchase', 'account_admin')$$);
-- One refused row stops the whole statement.
SELECT * FROM attempt($$INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role) VALUES
  (9001, now(), 'purchase', 'account_admin'),
  (9002, now(), 'purchase', 'account_admin')$$);
-- The HINT is in UTC whatever the session's TimeZone and DateStyle (the
-- moments, as the purchase has them).
SET TimeZone = 'America/St_Johns';
SET DateStyle = 'German';
SELECT e.hint = 'Refunds of this purchase are allowed from '
                || to_char(p.purchased_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00 until '
                || to_char((p.purchased_at + interval '720 hours') AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')
                || '+00.' AS hint_in_utc
FROM purchases p,
     LATERAL try_request(p.id, now(), 'purchase', 'account_admin') e
WHERE p.id = 9003;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SELECT purchase_id, kind, requested_by_role FROM refund_requests ORDER BY id;

------------------------------------------------------------------------
-- 3. UPDATE: re-checked only when a column the check reads changes
------------------------------------------------------------------------
-- Purchase 9001 has a purchase refund accepted; now its benefits are
-- activated (nothing on this purchases table stops that).
UPDATE purchases SET benefits_activated = true WHERE id = 9001;
-- Changing an unrelated column, or setting a checked one to its own value,
-- does not re-check: the request accepted before stays.
UPDATE refund_requests SET note = 'approved by finance' WHERE purchase_id = 9001 AND kind = 'purchase';
UPDATE refund_requests SET requested_at = requested_at, requested_by_role = requested_by_role,
                           kind = kind, purchase_id = purchase_id
WHERE purchase_id = 9001 AND kind = 'purchase';
SELECT purchase_id, kind, requested_by_role, note FROM refund_requests
WHERE purchase_id = 9001 ORDER BY id;
-- Changing any checked column re-checks against the purchase as it is now.
SELECT * FROM attempt($$UPDATE refund_requests SET requested_at = now()
                        WHERE purchase_id = 9001 AND requested_by_role = 'account_admin' AND kind = 'purchase'$$);
SELECT * FROM attempt($$UPDATE refund_requests SET requested_by_role = 'account_admin'
                        WHERE purchase_id = 9001 AND requested_by_role = 'mpn_partner_admin'$$);
SELECT * FROM attempt($$UPDATE refund_requests SET requested_by_role = NULL
                        WHERE purchase_id = 9001 AND kind = 'tax'$$);
SELECT * FROM attempt($$UPDATE refund_requests SET kind = 'purchase'
                        WHERE purchase_id = 9001 AND kind = 'tax'$$);
SELECT * FROM attempt($$UPDATE refund_requests SET purchase_id = 9002
                        WHERE purchase_id = 9005$$);
SELECT * FROM attempt($$UPDATE refund_requests SET purchase_id = NULL
                        WHERE purchase_id = 9005$$);
-- A moment of another transaction is backdated for this one.
SELECT * FROM attempt($$UPDATE refund_requests SET requested_at = requested_at - interval '1 second'
                        WHERE purchase_id = 9001 AND kind = 'tax'$$);
-- A re-check that passes: the tax request written again at now().
SELECT * FROM attempt($$UPDATE refund_requests SET requested_at = now(), note = 'again'
                        WHERE purchase_id = 9001 AND kind = 'tax'$$);
SELECT purchase_id, kind, requested_by_role, note FROM refund_requests ORDER BY id;
UPDATE purchases SET benefits_activated = false WHERE id = 9001;

------------------------------------------------------------------------
-- 4. The shapes of the request table
------------------------------------------------------------------------
-- No kind column: every request is a purchase refund; compared on the grid.
CREATE TABLE purchase_refund_requests (
    purchase_id       integer REFERENCES purchases,
    requested_at      timestamptz,
    requested_by_role text
);
CREATE TRIGGER refund_policy
  AFTER INSERT OR UPDATE ON purchase_refund_requests
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
-- (the grid's moments were relative to its own statement: written again
-- relative to this one)
SELECT count(*) AS cases, count(*) FILTER (WHERE r.code = '00000') AS allowed,
       count(*) FILTER (WHERE (r.code, r.message, r.detail, r.hint)
                              IS DISTINCT FROM (s.code, s.message, s.detail, s.hint)) AS mismatches
FROM results s JOIN moments mo ON mo.m = s.m
CROSS JOIN LATERAL try_purchase_request(s.id, now() + mo.written, s.role) r
WHERE s.kind = 'purchase';
SELECT count(*) AS rows_stored FROM purchase_refund_requests;
SELECT * FROM attempt($$INSERT INTO purchase_refund_requests VALUES (9002, now(), 'account_admin')$$);

-- kind as text and the role as an enum; a label that is not a kind is bad
-- data (22023), not a reason.
CREATE TYPE partner_role AS ENUM ('mpn_partner_admin', 'account_admin', 'billing_admin');
CREATE TABLE text_kind_requests (
    purchase_id       integer REFERENCES purchases,
    requested_at      timestamptz,
    kind              text,
    requested_by_role partner_role
);
CREATE TRIGGER refund_policy
  AFTER INSERT OR UPDATE ON text_kind_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
SELECT * FROM attempt($$INSERT INTO text_kind_requests VALUES
  (9001, now(), 'purchase', 'account_admin'),
  (9001, now(), 'tax', 'mpn_partner_admin')$$);
SELECT * FROM attempt($$INSERT INTO text_kind_requests VALUES (9002, now(), 'tax', 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO text_kind_requests VALUES (9001, now(), 'purchase', 'billing_admin')$$);
SELECT * FROM attempt($$INSERT INTO text_kind_requests VALUES (9001, now(), NULL, 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO text_kind_requests VALUES (9001, now(), 'Tax', 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO text_kind_requests VALUES (9001, now(), '', 'account_admin')$$);
SELECT purchase_id, kind, requested_by_role FROM text_kind_requests ORDER BY kind;

-- Domains over the accepted types, varchar, and requested_at as a domain
-- over timestamptz, in another TimeZone.  (A timestamp column is refused:
-- 25_trusted_enforcement.)
CREATE DOMAIN role_name AS varchar(40);
CREATE DOMAIN kind_name AS refund_rules.refund_kind;
CREATE DOMAIN moment AS timestamptz;
CREATE TABLE domain_requests (
    purchase_id       integer REFERENCES purchases,
    requested_at      moment DEFAULT now(),
    kind              kind_name,
    requested_by_role role_name
);
CREATE TRIGGER refund_policy
  AFTER INSERT OR UPDATE ON domain_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
SET TimeZone = 'Asia/Kolkata';
SELECT * FROM attempt($$INSERT INTO domain_requests (purchase_id, kind, requested_by_role) VALUES (9003, 'tax', 'account_admin')$$);
UPDATE purchases SET tax_exempt = true WHERE id = 9003;
SELECT * FROM attempt($$INSERT INTO domain_requests (purchase_id, kind, requested_by_role) VALUES (9003, 'tax', 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO domain_requests (purchase_id, kind, requested_by_role) VALUES (9001, 'purchase', 'mpn_partner_admin')$$);
SELECT * FROM attempt($$INSERT INTO domain_requests (purchase_id, kind, requested_by_role) VALUES (9008, 'purchase', 'mpn_partner_admin')$$);
SET TimeZone = 'UTC';
SELECT purchase_id, kind, requested_by_role FROM domain_requests ORDER BY purchase_id;

------------------------------------------------------------------------
-- 5. Naming the purchases table and its key
------------------------------------------------------------------------
-- Requests in another schema: the purchases table named with its schema.
CREATE SCHEMA enf_trig_requests;
CREATE TABLE enf_trig_requests.refund_requests (
    id                serial PRIMARY KEY,
    purchase_ref      bigint REFERENCES enf_trig.purchases,
    requested_at      timestamptz DEFAULT now(),
    requested_by_role text
);
CREATE TRIGGER refund_policy
  AFTER INSERT OR UPDATE ON enf_trig_requests.refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('enf_trig.purchases', 'purchase_ref');
SELECT * FROM attempt($$INSERT INTO enf_trig_requests.refund_requests (purchase_ref, requested_by_role)
                        VALUES (9001, 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO enf_trig_requests.refund_requests (purchase_ref, requested_by_role)
                        VALUES (9002, 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO enf_trig_requests.refund_requests (purchase_ref, requested_by_role)
                        VALUES (5000000000, 'account_admin')$$);
SELECT purchase_ref FROM enf_trig_requests.refund_requests;

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
  ('GOLD-7', 'gold', date_trunc('second', now()) - interval '5 days', false, false, false, true),
  ('SILVER-8', 'silver', date_trunc('second', now()) - interval '5 days', false, true, false, true);
CREATE TABLE sku_requests (
    sku_ref           text REFERENCES purchases_by_sku,
    requested_at      timestamptz DEFAULT now(),
    kind              refund_rules.refund_kind,
    requested_by_role text
);
CREATE TRIGGER refund_policy
  AFTER INSERT OR UPDATE ON sku_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases_by_sku', 'sku_ref', 'sku');
SELECT * FROM attempt($$INSERT INTO sku_requests (sku_ref, kind, requested_by_role) VALUES ('GOLD-7', 'purchase', 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO sku_requests (sku_ref, kind, requested_by_role) VALUES ('SILVER-8', 'tax', 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO sku_requests (sku_ref, kind, requested_by_role) VALUES ('SILVER-8', 'purchase', 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO sku_requests (sku_ref, kind, requested_by_role) VALUES ('gold-7', 'purchase', 'account_admin')$$);
SELECT sku_ref, kind, requested_by_role FROM sku_requests ORDER BY sku_ref;

-- A text key column named by the third argument; quoted mixed-case names.
-- The first argument is parsed like a table name in SQL (quotes keep case),
-- the second and third are column names as they are.  purchased_at is a
-- timestamp, read as UTC.
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
  ('A-1', 'silver', (now() - interval '29 days') AT TIME ZONE 'UTC', false, false, false, false),
  ('A-2', 'silver', (now() - interval '5 days') AT TIME ZONE 'UTC', false, false, true, false),
  ('A-3', 'silver', (now() - interval '31 days') AT TIME ZONE 'UTC', false, false, false, false);
CREATE TABLE "Enf Sales"."Refund Requests" (
    "Purchase Ref"    text REFERENCES "Enf Sales"."Purchase List",
    requested_at      timestamptz DEFAULT now(),
    requested_by_role text
);
CREATE TRIGGER refund_policy
  AFTER INSERT OR UPDATE ON "Enf Sales"."Refund Requests"
  FOR EACH ROW EXECUTE FUNCTION
  refund_rules.enforce_refund_policy('"Purchase List"', 'Purchase Ref', 'Purchase No');
SELECT * FROM attempt($$INSERT INTO "Enf Sales"."Refund Requests" ("Purchase Ref", requested_by_role) VALUES ('A-1', 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO "Enf Sales"."Refund Requests" ("Purchase Ref", requested_by_role) VALUES ('A-3', 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO "Enf Sales"."Refund Requests" ("Purchase Ref", requested_by_role) VALUES ('A-2', 'account_admin')$$);
-- Keys are compared as they are (text: case matters).
SELECT * FROM attempt($$INSERT INTO "Enf Sales"."Refund Requests" ("Purchase Ref", requested_by_role) VALUES ('a-1', 'account_admin')$$);
-- The same table named with its schema.
CREATE TRIGGER refund_policy_qualified
  AFTER INSERT OR UPDATE ON "Enf Sales"."Refund Requests"
  FOR EACH ROW EXECUTE FUNCTION
  refund_rules.enforce_refund_policy('"Enf Sales"."Purchase List"', 'Purchase Ref', 'Purchase No');
SELECT * FROM attempt($$INSERT INTO "Enf Sales"."Refund Requests" ("Purchase Ref", requested_by_role) VALUES ('A-1', 'mpn_partner_admin')$$);
SELECT * FROM attempt($$INSERT INTO "Enf Sales"."Refund Requests" ("Purchase Ref", requested_by_role) VALUES ('A-2', 'mpn_partner_admin')$$);
SELECT "Purchase Ref", requested_by_role FROM "Enf Sales"."Refund Requests" ORDER BY 2, 1;

-- The trigger keeps working after the purchases table changes shape
-- (a column added in front, one dropped) in the same session.
ALTER TABLE purchases ADD COLUMN region text DEFAULT 'emea';
ALTER TABLE purchases DROP COLUMN tax_exempt;
SELECT * FROM attempt($$INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
                        VALUES (9001, now(), 'purchase', 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
                        VALUES (9002, now(), 'purchase', 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO refund_requests (purchase_id, requested_at, kind, requested_by_role)
                        VALUES (9001, now(), 'tax', 'account_admin')$$);

RESET search_path;
RESET TimeZone;
RESET DateStyle;
SET client_min_messages = warning;
DROP SCHEMA enf_trig, enf_trig_requests, "Enf Sales" CASCADE;
RESET client_min_messages;
