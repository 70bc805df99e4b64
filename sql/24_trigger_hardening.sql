-- The enforcement trigger against a hostile request-table owner, a key
-- that is not unique, and partitions: reading as the purchases' owner
-- never runs code of the request table's owner, and never locks rows that
-- owner could not reference.  The trigger judges at the database's clock:
-- every request is written with now(), the purchases were made 5 days ago
-- (both windows open), and the moments in a HINT are written as T.
SET TimeZone = 'UTC';
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE SCHEMA t24;
-- What a statement got, with the moments in the HINT written as T.
CREATE FUNCTION t24.attempt(stmt text, OUT code text, OUT message text, OUT detail text, OUT hint text)
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
GRANT EXECUTE ON FUNCTION t24.attempt(text) TO PUBLIC;
CREATE TABLE t24.purchases (
    id integer PRIMARY KEY, offer refund_rules.mpn_offer, purchased_at timestamptz,
    benefits_activated boolean, product_keys_viewed boolean,
    upgraded_with_gold_discount boolean, tax_exempt boolean);
INSERT INTO t24.purchases VALUES
  (1, 'gold', now() - interval '5 days', false, false, false, true),
  (2, 'gold', now() - interval '5 days', true,  false, false, true);

------------------------------------------------------------------------
-- 1. A reference of the owner's own type with an implicit cast: the cast
--    runs as the inserting user, not as the purchases table's owner.
------------------------------------------------------------------------
CREATE ROLE regress_t24_mallory NOLOGIN;
CREATE SCHEMA t24_m AUTHORIZATION regress_t24_mallory;
GRANT USAGE ON SCHEMA t24 TO regress_t24_mallory;
GRANT SELECT, REFERENCES ON t24.purchases TO regress_t24_mallory;
SET ROLE regress_t24_mallory;
CREATE TYPE t24_m.ref AS (i integer);
CREATE FUNCTION t24_m.ref_to_int(t24_m.ref) RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE 'cast runs as %', current_user;
    RETURN ($1).i;
END $$;
CREATE CAST (t24_m.ref AS integer) WITH FUNCTION t24_m.ref_to_int(t24_m.ref) AS IMPLICIT;
CREATE TABLE t24_m.req (pid t24_m.ref, requested_at timestamptz, requested_by_role text);
CREATE TRIGGER enforce BEFORE INSERT OR UPDATE ON t24_m.req FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('t24.purchases', 'pid');
INSERT INTO t24_m.req VALUES (ROW(1)::t24_m.ref, now(), 'account_admin');
SELECT * FROM t24.attempt($$INSERT INTO t24_m.req VALUES (ROW(2)::t24_m.ref, now(), 'account_admin')$$);
RESET ROLE;
-- Without REFERENCES the owner's trigger may not lock the purchases.
REVOKE REFERENCES ON t24.purchases FROM regress_t24_mallory;
SET ROLE regress_t24_mallory;
INSERT INTO t24_m.req VALUES (ROW(1)::t24_m.ref, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
RESET ROLE;
SELECT count(*) AS accepted FROM t24_m.req;

------------------------------------------------------------------------
-- 2. References of another type: compared by the key type's btree family
--    (bigint with integer, no conversion) or converted implicitly.
------------------------------------------------------------------------
CREATE TABLE t24.req_bigint (pid bigint, requested_at timestamptz, requested_by_role text);
CREATE TRIGGER enforce BEFORE INSERT OR UPDATE ON t24.req_bigint FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'pid');
INSERT INTO t24.req_bigint VALUES (1, now(), 'account_admin');
INSERT INTO t24.req_bigint VALUES (5000000000, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
CREATE TABLE t24.req_text (pid text, requested_at timestamptz, requested_by_role text);
CREATE TRIGGER enforce BEFORE INSERT OR UPDATE ON t24.req_text FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'pid');
INSERT INTO t24.req_text VALUES ('1', now(), 'account_admin');
\echo SQLSTATE :SQLSTATE

------------------------------------------------------------------------
-- 3. A key that is not unique: refused, not judged on an arbitrary row.
------------------------------------------------------------------------
CREATE TABLE t24.by_sku (sku text, offer refund_rules.mpn_offer, purchased_at timestamptz,
    benefits_activated boolean, product_keys_viewed boolean,
    upgraded_with_gold_discount boolean, tax_exempt boolean);
INSERT INTO t24.by_sku VALUES
  ('A', 'gold', now() - interval '5 days', false, false, false, true),
  ('A', 'gold', now() - interval '5 days', true,  false, false, true),
  ('B', 'gold', now() - interval '5 days', false, false, false, true);
CREATE TABLE t24.req_sku (sku text, requested_at timestamptz, requested_by_role text);
CREATE TRIGGER enforce BEFORE INSERT OR UPDATE ON t24.req_sku FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('by_sku', 'sku', 'sku');
INSERT INTO t24.req_sku VALUES ('B', now(), 'account_admin');
INSERT INTO t24.req_sku VALUES ('A', now(), 'account_admin');
\echo SQLSTATE :SQLSTATE

-- An inheritance child's rows are not the parent's purchases (ONLY, as
-- foreign keys read them).
CREATE TABLE t24.child_purchases () INHERITS (t24.purchases);
INSERT INTO t24.child_purchases VALUES (3, 'gold', now() - interval '5 days', false, false, false, true);
INSERT INTO t24.req_bigint VALUES (3, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE

------------------------------------------------------------------------
-- 4. Partitioned request tables: an unqualified purchases name is looked
--    up in the schema of the partitioned table the trigger was created on,
--    also for partitions in other schemas (with a look-alike there).
------------------------------------------------------------------------
CREATE SCHEMA t24_parts;
CREATE TABLE t24_parts.purchases (LIKE t24.purchases);
INSERT INTO t24_parts.purchases VALUES (2, 'gold', now() - interval '5 days', false, false, false, true);
CREATE TABLE t24.req_part (pid integer, requested_at timestamptz, requested_by_role text)
  PARTITION BY RANGE (pid);
CREATE TABLE t24_parts.req_part_low PARTITION OF t24.req_part FOR VALUES FROM (0) TO (100);
CREATE TRIGGER enforce BEFORE INSERT OR UPDATE ON t24.req_part FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'pid');
INSERT INTO t24.req_part VALUES (1, now(), 'account_admin');
-- purchase 2 has benefits activated in t24.purchases (the look-alike says not)
SELECT * FROM t24.attempt($$INSERT INTO t24.req_part VALUES (2, now(), 'account_admin')$$);
SELECT tableoid::regclass, pid FROM t24.req_part;

------------------------------------------------------------------------
-- 5. What the trigger keeps between statements follows the catalogs in
--    the same session: a purchases table renamed and another created
--    under its name (refused: the trigger is bound to the first one, which
--    cannot be dropped while it is), the trigger created again, a kind
--    column added to the requests, a column dropped from the purchases.
------------------------------------------------------------------------
CREATE TABLE t24.req_keep (pid integer, requested_at timestamptz, requested_by_role text);
CREATE TRIGGER enforce BEFORE INSERT OR UPDATE ON t24.req_keep FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('kept', 'pid');
CREATE TABLE t24.kept (LIKE t24.purchases);
INSERT INTO t24.kept VALUES (1, 'gold', now() - interval '5 days', false, false, false, false);
INSERT INTO t24.req_keep VALUES (1, now(), 'account_admin');
DROP TABLE t24.kept;
\echo SQLSTATE :SQLSTATE
ALTER TABLE t24.kept RENAME TO kept_before;
CREATE TABLE t24.kept (LIKE t24.purchases);
INSERT INTO t24.kept VALUES (1, 'gold', now() - interval '5 days', true, false, false, false);
INSERT INTO t24.req_keep VALUES (1, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
DROP TRIGGER enforce ON t24.req_keep;
CREATE TRIGGER enforce BEFORE INSERT OR UPDATE ON t24.req_keep FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('kept', 'pid');
SELECT * FROM t24.attempt($$INSERT INTO t24.req_keep VALUES (1, now(), 'account_admin')$$);
ALTER TABLE t24.req_keep ADD COLUMN kind text DEFAULT 'tax';
SELECT * FROM t24.attempt($$INSERT INTO t24.req_keep VALUES (1, now(), 'account_admin')$$);
ALTER TABLE t24.kept DROP COLUMN tax_exempt;
INSERT INTO t24.req_keep VALUES (1, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
SELECT count(*) AS accepted FROM t24.req_keep;

RESET ROLE;
DROP SCHEMA t24_parts CASCADE;
DROP SCHEMA t24_m CASCADE;
DROP SCHEMA t24 CASCADE;
DROP OWNED BY regress_t24_mallory;
DROP ROLE regress_t24_mallory;
