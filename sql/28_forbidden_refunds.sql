-- 28_forbidden_refunds: validating the refunds already recorded.
-- forbidden_refunds(table) returns the rows the policy forbids at the moment
-- each records, in the order of the primary key: allowed rows are not
-- returned, refused ones with their reasons, a missing purchase with NULL
-- reasons; as the owner and as a role that may not read the purchases
-- (their own reasons hidden); on a partitioned request table; in a READ
-- ONLY transaction; for a purchases table checked by check_refund; and the
-- same answer as judging each row one by one with the query functions.
SET TimeZone = 'UTC';
CREATE ROLE regress_rr_support NOLOGIN;
CREATE ROLE regress_rr_clerk NOLOGIN;
CREATE SCHEMA shop;
GRANT USAGE ON SCHEMA shop TO regress_rr_support, regress_rr_clerk;

CREATE TABLE shop.purchases (
    id integer PRIMARY KEY,
    offer refund_rules.mpn_offer,
    purchased_at timestamptz,
    benefits_activated boolean,
    product_keys_viewed boolean,
    upgraded_with_gold_discount boolean,
    tax_exempt boolean
);
INSERT INTO shop.purchases VALUES
  (1, 'silver',      '2026-01-01 00:00+00', false, false, false, true),   -- allowed in January
  (2, 'gold',        '2026-01-01 00:00+00', true,  false, false, false),  -- benefits activated
  (3, 'action_pack', '2026-01-01 00:00+00', false, true,  false, true),   -- keys viewed
  (4, 'silver',      '2026-01-01 00:00+00', false, false, true,  true),   -- upgraded with the discount
  (5, 'gold',        NULL,                  false, false, false, NULL),   -- no purchase date
  (6, 'gold',        '2026-03-01 00:00+00', false, false, false, true);   -- after some requests

-- Years of requests, written before enforcement (no trigger yet).
CREATE TABLE shop.refund_requests (
    id bigint PRIMARY KEY,
    purchase_id integer,
    kind refund_rules.refund_kind,
    requested_at timestamptz,
    requested_by_role text
);
INSERT INTO shop.refund_requests VALUES
  (10, 1, 'purchase', '2026-01-15 00:00+00', 'mpn_partner_admin'),  -- allowed
  (11, 1, 'purchase', '2026-03-15 00:00+00', 'account_admin'),      -- window expired
  (12, 2, 'purchase', '2026-01-02 00:00+00', 'mpn_partner_admin'),  -- benefits activated
  (13, 3, 'purchase', '2026-01-02 00:00+00', 'partner_user'),       -- keys viewed, not authorized
  (14, 4, 'purchase', '2026-01-02 00:00+00', NULL),                 -- upgraded, no role
  (15, 5, 'purchase', '2026-01-02 00:00+00', 'account_admin'),      -- no purchase date
  (16, 6, 'purchase', '2026-02-01 00:00+00', 'account_admin'),      -- not yet purchased
  (17, 1, NULL,       '2026-01-15 00:00+00', 'account_admin'),      -- no kind
  (18, 1, 'tax',      '2026-06-01 00:00+00', 'account_admin'),      -- tax: allowed within the year
  (19, 2, 'tax',      '2026-06-01 00:00+00', 'account_admin'),      -- tax: not exempt
  (20, 1, 'purchase', NULL,                  'account_admin'),      -- no moment
  (21, 99, 'purchase', '2026-01-15 00:00+00', 'account_admin'),     -- no such purchase
  (22, NULL, 'purchase', '2026-01-15 00:00+00', 'account_admin');   -- names no purchase
-- a missing purchase, as old data may have
ALTER TABLE shop.refund_requests ADD FOREIGN KEY (purchase_id) REFERENCES shop.purchases (id) NOT VALID;

-- Without a trigger there is nothing to validate against.
SELECT * FROM refund_rules.forbidden_refunds('shop.refund_requests');

-- The rollout's first step: the trigger in dry-run mode, then validation.
CREATE CONSTRAINT TRIGGER refund_policy AFTER INSERT OR UPDATE ON shop.refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('shop.purchases', 'purchase_id', 'mode=dry_run');
SELECT * FROM refund_rules.forbidden_refunds('shop.refund_requests');

-- The same answer as the query functions row by row (the reference), and
-- no row of those it does not return is refused by them.
WITH v AS (SELECT * FROM refund_rules.forbidden_refunds('shop.refund_requests')),
ref AS (
  SELECT r.id::text AS row_key,
         CASE WHEN p.id IS NULL THEN NULL
              WHEN r.kind IS NULL THEN '{missing_kind}'::text[]
              WHEN r.requested_at IS NULL THEN '{missing_requested_at}'
              ELSE refund_rules.refund_ineligibility_reasons(p, r.requested_at, r.kind) END
         || CASE WHEN p.id IS NULL THEN NULL
                 WHEN r.requested_by_role IS NULL THEN '{missing_requested_by_role}'::text[]
                 WHEN r.requested_by_role IN ('mpn_partner_admin', 'account_admin') THEN '{}'
                 ELSE '{requester_not_authorized}' END AS reasons
    FROM shop.refund_requests r LEFT JOIN shop.purchases p ON p.id = r.purchase_id)
SELECT count(*) FILTER (WHERE v.row_key IS NULL AND ref.reasons <> '{}') AS missed,
       count(*) FILTER (WHERE v.row_key IS NOT NULL AND ref.reasons = '{}') AS wrongly_returned,
       count(*) FILTER (WHERE v.reasons IS DISTINCT FROM ref.reasons AND v.row_key IS NOT NULL) AS other_reasons
  FROM ref FULL JOIN v USING (row_key);

-- It streams: in the select list a LIMIT stops it early, and a cursor over
-- it is read in steps.
SELECT (refund_rules.forbidden_refunds('shop.refund_requests')).row_key LIMIT 2;
BEGIN;
DECLARE c CURSOR FOR SELECT row_key FROM refund_rules.forbidden_refunds('shop.refund_requests');
FETCH 2 FROM c;
FETCH 2 FROM c;
CLOSE c;
COMMIT;

-- In a READ ONLY transaction (a standby's case): it writes nothing.
BEGIN TRANSACTION READ ONLY;
SELECT count(*) AS forbidden FROM refund_rules.forbidden_refunds('shop.refund_requests');
COMMIT;

-- A support role without SELECT on the purchases, with INSERT on the
-- requests (as refund_request_status() needs): the purchase's own reasons
-- are one code, the request's own are shown; row-level security on the
-- requests decides which rows it sees.
GRANT SELECT, INSERT ON shop.refund_requests TO regress_rr_support;
SET ROLE regress_rr_support;
SELECT * FROM refund_rules.forbidden_refunds('shop.refund_requests');
RESET ROLE;
ALTER TABLE shop.refund_requests ENABLE ROW LEVEL SECURITY;
CREATE POLICY first_ones ON shop.refund_requests FOR SELECT USING (id < 14);
SET ROLE regress_rr_support;
SELECT row_key, reasons FROM refund_rules.forbidden_refunds('shop.refund_requests');
RESET ROLE;
ALTER TABLE shop.refund_requests DISABLE ROW LEVEL SECURITY;
-- A role with SELECT on the requests only may not learn about the purchases.
GRANT SELECT ON shop.refund_requests TO regress_rr_clerk;
SET ROLE regress_rr_clerk;
SELECT * FROM refund_rules.forbidden_refunds('shop.refund_requests');
RESET ROLE;
-- Nor without SELECT on the requests.
REVOKE SELECT ON shop.refund_requests FROM regress_rr_clerk;
GRANT SELECT ON shop.purchases TO regress_rr_clerk;
SET ROLE regress_rr_clerk;
SELECT * FROM refund_rules.forbidden_refunds('shop.refund_requests');
RESET ROLE;

-- Randomized: 3,000 requests over 1,000 purchases with every NULL case, as
-- the owner (the purchases read by the query) and as the support role (the
-- purchases looked up as their owner), each against the reference.
SELECT setseed(0.28);
CREATE FUNCTION pick(anyarray) RETURNS anyelement LANGUAGE sql VOLATILE
  AS $$ SELECT $1[1 + floor(random() * cardinality($1))] $$;
CREATE TABLE shop.random_purchases AS
SELECT i AS id, pick(ARRAY['action_pack', 'silver', 'gold', 'gold', 'silver', NULL]::refund_rules.mpn_offer[]) AS offer,
       CASE WHEN random() < 0.03 THEN NULL
            ELSE '2025-01-01 00:00+00'::timestamptz + random() * interval '400 days' END AS purchased_at,
       pick(ARRAY[false, false, false, true, NULL]) AS benefits_activated,
       pick(ARRAY[false, false, false, false, true, NULL]) AS product_keys_viewed,
       pick(ARRAY[false, false, false, false, true, NULL]) AS upgraded_with_gold_discount,
       pick(ARRAY[true, true, false, NULL]) AS tax_exempt
  FROM generate_series(1, 1000) i;
ALTER TABLE shop.random_purchases ADD PRIMARY KEY (id);
CREATE TABLE shop.random_requests (
    id integer PRIMARY KEY,
    purchase_id integer REFERENCES shop.random_purchases (id),
    kind refund_rules.refund_kind,
    requested_at timestamptz,
    requested_by_role text);
INSERT INTO shop.random_requests
SELECT i, p.id, pick(ARRAY['purchase', 'purchase', 'purchase', 'tax', NULL]::refund_rules.refund_kind[]),
       CASE WHEN random() < 0.03 THEN NULL
            ELSE coalesce(p.purchased_at, '2025-06-01 00:00+00') + (random() * 60 - 5) * interval '1 day' END,
       pick(ARRAY['mpn_partner_admin', 'account_admin', 'account_admin', 'partner_user', NULL])
  FROM (SELECT i, 1 + floor(random() * 1000)::integer AS pid FROM generate_series(1, 3000) i) g
  JOIN shop.random_purchases p ON p.id = g.pid;
CREATE TRIGGER refund_policy AFTER INSERT OR UPDATE ON shop.random_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('shop.random_purchases', 'purchase_id');
-- The reference: the query functions' reasons (an unknown moment: the
-- reasons no moment changes, and missing_requested_at), the requester's,
-- in the order of refund_rules.reasons; hidden: the purchase's own as one.
CREATE TEMP TABLE reference AS
WITH codes AS (
  SELECT r.id::text AS row_key,
         CASE WHEN r.kind IS NULL THEN '{missing_kind}'::text[]
              WHEN r.requested_at IS NULL THEN
                array(SELECT c FROM unnest(refund_rules.refund_ineligibility_reasons(p, coalesce(p.purchased_at, now()), r.kind)) c
                       WHERE c NOT IN ('not_yet_purchased', 'refund_window_expired', 'tax_refund_window_expired'))
                || '{missing_requested_at}'::text[]
              ELSE refund_rules.refund_ineligibility_reasons(p, r.requested_at, r.kind) END
         || CASE WHEN r.requested_by_role IS NULL THEN '{missing_requested_by_role}'::text[]
                 WHEN r.requested_by_role IN ('mpn_partner_admin', 'account_admin') THEN '{}'
                 ELSE '{requester_not_authorized}' END AS codes
    FROM shop.random_requests r JOIN shop.random_purchases p ON p.id = r.purchase_id)
SELECT row_key,
       array(SELECT code FROM refund_rules.reasons WHERE code = ANY (codes) ORDER BY "position") AS reasons,
       array(SELECT code FROM refund_rules.reasons
              WHERE code = ANY (codes) AND 'request' = ANY (kinds)
                 OR code = 'purchase_not_eligible' AND EXISTS (
                    SELECT FROM refund_rules.reasons o WHERE o.code = ANY (codes) AND NOT 'request' = ANY (o.kinds))
              ORDER BY "position") AS hidden
  FROM codes;
SELECT count(*) AS requests, count(*) FILTER (WHERE reasons <> '{}') AS forbidden,
       count(DISTINCT reasons) AS distinct_reason_sets FROM reference;
SELECT count(*) FILTER (WHERE v.row_key IS NULL AND ref.reasons <> '{}') AS missed,
       count(*) FILTER (WHERE v.row_key IS NOT NULL AND (ref.row_key IS NULL OR ref.reasons = '{}')) AS wrongly_returned,
       count(*) FILTER (WHERE v.reasons IS DISTINCT FROM ref.reasons AND v.row_key IS NOT NULL) AS other_reasons,
       bool_and(v.row_key IS NULL OR v.purchase_key = r.purchase_id::text) AS keys_right
  FROM reference ref FULL JOIN refund_rules.forbidden_refunds('shop.random_requests') v USING (row_key)
  LEFT JOIN shop.random_requests r ON r.id::text = v.row_key;
SELECT array_agg(row_key::integer ORDER BY o) = array_agg(row_key::integer ORDER BY row_key::integer) AS in_key_order
  FROM refund_rules.forbidden_refunds('shop.random_requests') WITH ORDINALITY v(row_key, pk, at, reasons, o);
GRANT USAGE ON SCHEMA shop TO regress_rr_support;
GRANT SELECT, INSERT ON shop.random_requests TO regress_rr_support;
CREATE TEMP TABLE hidden_result (row_key text, purchase_key text, requested_at timestamptz, reasons text[]);
GRANT INSERT ON hidden_result TO regress_rr_support;
SET ROLE regress_rr_support;
INSERT INTO hidden_result SELECT * FROM refund_rules.forbidden_refunds('shop.random_requests');
RESET ROLE;
SELECT count(*) FILTER (WHERE v.row_key IS NULL AND ref.hidden <> '{}') AS missed,
       count(*) FILTER (WHERE v.row_key IS NOT NULL AND (ref.row_key IS NULL OR ref.hidden = '{}')) AS wrongly_returned,
       count(*) FILTER (WHERE v.reasons IS DISTINCT FROM ref.hidden AND v.row_key IS NOT NULL) AS other_reasons
  FROM reference ref FULL JOIN hidden_result v USING (row_key);

-- Its cursor is PostgreSQL's: closed under it by user code, or opened in a
-- savepoint rolled back, it is an error (past the rows already read), never
-- a crash.
CREATE FUNCTION shop.close_cursors() RETURNS integer LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT name FROM pg_cursors WHERE name LIKE '<unnamed portal %>' LOOP
    BEGIN EXECUTE format('CLOSE %I', r.name); EXCEPTION WHEN others THEN NULL; END;
  END LOOP;
  RETURN 1;
END $$;
SELECT count(*) FROM (SELECT (refund_rules.forbidden_refunds('shop.random_requests')).row_key,
                             shop.close_cursors()) s;
BEGIN;
DECLARE c CURSOR FOR SELECT (refund_rules.forbidden_refunds('shop.random_requests')).row_key;
SAVEPOINT s;
FETCH 2 FROM c;
ROLLBACK TO s;
FETCH 2000 FROM c;
ROLLBACK;
SELECT count(*) AS forbidden FROM refund_rules.forbidden_refunds('shop.random_requests');

-- A partitioned request table: every partition's rows, in key order.
CREATE TABLE shop.partitioned_requests (
    id bigint PRIMARY KEY,
    purchase_id integer REFERENCES shop.purchases (id),
    kind refund_rules.refund_kind,
    requested_at timestamptz,
    requested_by_role text
) PARTITION BY RANGE (id);
CREATE TABLE shop.partitioned_requests_a PARTITION OF shop.partitioned_requests FOR VALUES FROM (0) TO (15);
CREATE TABLE shop.partitioned_requests_b PARTITION OF shop.partitioned_requests FOR VALUES FROM (15) TO (100);
INSERT INTO shop.partitioned_requests SELECT * FROM shop.refund_requests WHERE id <= 20;  -- before the trigger
CREATE TRIGGER refund_policy AFTER INSERT OR UPDATE ON shop.partitioned_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('shop.purchases', 'purchase_id', 'mode=dry_run');
SELECT row_key, purchase_key, reasons FROM refund_rules.forbidden_refunds('shop.partitioned_requests');

-- A purchases table checked by check_refund(): its refunded rows, judged
-- at refunded_at; rows without a refund are not refunds.
CREATE TABLE shop.memberships (LIKE shop.purchases INCLUDING ALL, refunded_at timestamptz);
INSERT INTO shop.memberships SELECT p.*, m FROM shop.purchases p,
  (VALUES (1, '2026-01-20 00:00+00'::timestamptz), (2, '2026-01-03'), (3, NULL), (6, '2026-02-15')) v(id, m)
  WHERE p.id = v.id;
ALTER TABLE shop.memberships ADD CONSTRAINT refund_allowed
  CHECK (refunded_at IS NULL OR refund_rules.check_refund(memberships, refunded_at)) NOT VALID;
CREATE TRIGGER refund_moment AFTER INSERT OR UPDATE ON shop.memberships
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_moment('mode=dry_run');
SELECT * FROM refund_rules.forbidden_refunds('shop.memberships');
-- VALIDATE CONSTRAINT stops at the first of them; forbidden_refunds lists them all.
ALTER TABLE shop.memberships VALIDATE CONSTRAINT refund_allowed;
DELETE FROM shop.memberships WHERE id IN (SELECT row_key::integer FROM refund_rules.forbidden_refunds('shop.memberships'));
SELECT count(*) AS forbidden FROM refund_rules.forbidden_refunds('shop.memberships');
ALTER TABLE shop.memberships VALIDATE CONSTRAINT refund_allowed;

-- Misuse: not a table, no primary key.
SELECT * FROM refund_rules.forbidden_refunds('refund_rules.reasons');
CREATE TABLE shop.keyless (purchase_id integer REFERENCES shop.purchases (id), kind refund_rules.refund_kind,
                           requested_at timestamptz, requested_by_role text);
CREATE TRIGGER refund_policy AFTER INSERT OR UPDATE ON shop.keyless
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('shop.purchases', 'purchase_id');
SELECT * FROM refund_rules.forbidden_refunds('shop.keyless');

DROP TABLE hidden_result;
DROP SCHEMA shop CASCADE;
DROP FUNCTION pick(anyarray);
DROP ROLE regress_rr_support;
DROP ROLE regress_rr_clerk;
