-- The enforcement trigger against a hostile request-table owner, a key
-- that is not unique, and partitions: the purchase is the one the request
-- table's FOREIGN KEY finds, read as the purchases' owner with the foreign
-- key's own operators and casts (as the foreign key's own check reads it),
-- and never locked for an owner who could not reference it.  The trigger
-- judges at the database's clock:
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
-- 1. A reference of the owner's own type with an implicit cast: the
--    foreign key accepts it, and its check runs the cast as the purchases
--    table's owner; the trigger's lookup uses the foreign key's cast the
--    same way (once for the foreign key, once for the trigger).
------------------------------------------------------------------------
CREATE ROLE regress_t24_mallory NOLOGIN;
CREATE SCHEMA t24_m AUTHORIZATION regress_t24_mallory;
GRANT USAGE ON SCHEMA t24 TO regress_t24_mallory;
GRANT SELECT, REFERENCES ON t24.purchases TO regress_t24_mallory;
SET ROLE regress_t24_mallory;
CREATE TYPE t24_m.ref AS (i integer);
CREATE FUNCTION t24_m.ref_to_int(t24_m.ref) RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE 'cast runs as %',
      CASE current_user
        WHEN 'regress_t24_mallory' THEN 'the inserting user'
        WHEN (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 't24.purchases'::regclass)
          THEN 'the purchases owner'
        ELSE current_user END;
    RETURN ($1).i;
END $$;
CREATE CAST (t24_m.ref AS integer) WITH FUNCTION t24_m.ref_to_int(t24_m.ref) AS IMPLICIT;
CREATE TABLE t24_m.req (pid t24_m.ref REFERENCES t24.purchases, requested_at timestamptz,
                        requested_by_role text);
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t24_m.req FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('t24.purchases', 'pid');
INSERT INTO t24_m.req VALUES (ROW(1)::t24_m.ref, now(), 'account_admin');
SELECT * FROM t24.attempt($$INSERT INTO t24_m.req VALUES (ROW(2)::t24_m.ref, now(), 'account_admin')$$);
RESET ROLE;
-- Without REFERENCES the owner's trigger may not lock the purchases (the
-- foreign key made before still checks, as the purchases' owner).
REVOKE REFERENCES ON t24.purchases FROM regress_t24_mallory;
SET ROLE regress_t24_mallory;
INSERT INTO t24_m.req VALUES (ROW(1)::t24_m.ref, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
RESET ROLE;
SELECT count(*) AS accepted FROM t24_m.req;

------------------------------------------------------------------------
-- 2. References of another type: compared by the foreign key's operator
--    (bigint with integer, no conversion); a type the foreign key cannot
--    compare (text with integer) cannot have one, and without one the
--    trigger refuses to run.  A missing purchase is reported by the
--    foreign key.
------------------------------------------------------------------------
CREATE TABLE t24.req_bigint (pid bigint REFERENCES t24.purchases, requested_at timestamptz,
                             requested_by_role text);
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t24.req_bigint FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'pid');
INSERT INTO t24.req_bigint VALUES (1, now(), 'account_admin');
INSERT INTO t24.req_bigint VALUES (5000000000, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
CREATE TABLE t24.req_text (pid text, requested_at timestamptz, requested_by_role text);
-- (PostgreSQL's own DETAIL is worded differently from 18 on: terse)
\set VERBOSITY terse
ALTER TABLE t24.req_text ADD FOREIGN KEY (pid) REFERENCES t24.purchases;
\set VERBOSITY default
\echo SQLSTATE :SQLSTATE
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t24.req_text FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'pid');
INSERT INTO t24.req_text VALUES ('1', now(), 'account_admin');
\echo SQLSTATE :SQLSTATE

------------------------------------------------------------------------
-- 3. A key that is not unique: refused, not judged on an arbitrary row
--    (no foreign key can reference it, and without one the trigger judges
--    no row at all, not even of a key that happens to be unique).
------------------------------------------------------------------------
CREATE TABLE t24.by_sku (sku text, offer refund_rules.mpn_offer, purchased_at timestamptz,
    benefits_activated boolean, product_keys_viewed boolean,
    upgraded_with_gold_discount boolean, tax_exempt boolean);
INSERT INTO t24.by_sku VALUES
  ('A', 'gold', now() - interval '5 days', false, false, false, true),
  ('A', 'gold', now() - interval '5 days', true,  false, false, true),
  ('B', 'gold', now() - interval '5 days', false, false, false, true);
CREATE TABLE t24.req_sku (sku text, requested_at timestamptz, requested_by_role text);
ALTER TABLE t24.req_sku ADD FOREIGN KEY (sku) REFERENCES t24.by_sku (sku);
\echo SQLSTATE :SQLSTATE
ALTER TABLE t24.by_sku ADD UNIQUE (sku);
\echo SQLSTATE :SQLSTATE
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t24.req_sku FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('by_sku', 'sku', 'sku');
INSERT INTO t24.req_sku VALUES ('B', now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
INSERT INTO t24.req_sku VALUES ('A', now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
SELECT count(*) AS accepted FROM t24.req_sku;

-- An inheritance child's rows are not the parent's purchases (ONLY, as
-- foreign keys read them).
CREATE TABLE t24.child_purchases () INHERITS (t24.purchases);
INSERT INTO t24.child_purchases VALUES (3, 'gold', now() - interval '5 days', false, false, false, true);
INSERT INTO t24.req_bigint VALUES (3, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE

------------------------------------------------------------------------
-- 4. Partitioned request tables: the foreign key of the partitioned table
--    (cloned on its partitions) decides which table is read, also for
--    partitions in other schemas with a look-alike there; an unqualified
--    purchases name must be the name of that table, and naming the
--    look-alike is refused.
------------------------------------------------------------------------
CREATE SCHEMA t24_parts;
CREATE TABLE t24_parts.purchases (LIKE t24.purchases);
INSERT INTO t24_parts.purchases VALUES (2, 'gold', now() - interval '5 days', false, false, false, true);
CREATE TABLE t24.req_part (pid integer REFERENCES t24.purchases, requested_at timestamptz,
                           requested_by_role text)
  PARTITION BY RANGE (pid);
CREATE TABLE t24_parts.req_part_low PARTITION OF t24.req_part FOR VALUES FROM (0) TO (100);
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t24.req_part FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'pid');
INSERT INTO t24.req_part VALUES (1, now(), 'account_admin');
-- purchase 2 has benefits activated in t24.purchases (the look-alike says not)
SELECT * FROM t24.attempt($$INSERT INTO t24.req_part VALUES (2, now(), 'account_admin')$$);
SELECT tableoid::regclass, pid FROM t24.req_part;
DROP TRIGGER enforce ON t24.req_part;
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t24.req_part FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('t24_parts.purchases', 'pid');
SELECT * FROM t24.attempt($$INSERT INTO t24.req_part VALUES (1, now(), 'account_admin')$$);

------------------------------------------------------------------------
-- 5. What the trigger keeps between statements follows the catalogs in
--    the same session: the purchases table cannot be dropped (its foreign
--    key refuses), it is renamed and another created under its old name
--    (the trigger, naming the old name, refuses: the foreign key's table
--    is never swapped for the look-alike), the trigger created again
--    naming the real table reads the real row, a kind column added to the
--    requests, a column dropped from the purchases.
------------------------------------------------------------------------
CREATE TABLE t24.kept (LIKE t24.purchases INCLUDING INDEXES);
INSERT INTO t24.kept VALUES (1, 'gold', now() - interval '5 days', false, false, false, false);
CREATE TABLE t24.req_keep (pid integer REFERENCES t24.kept, requested_at timestamptz,
                           requested_by_role text);
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t24.req_keep FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('kept', 'pid');
INSERT INTO t24.req_keep VALUES (1, now(), 'account_admin');
DROP TABLE t24.kept;
\echo SQLSTATE :SQLSTATE
ALTER TABLE t24.kept RENAME TO kept_before;
-- the look-alike says nothing is used and the partner is tax exempt; the
-- real purchase now has benefits activated and is not tax exempt
CREATE TABLE t24.kept (LIKE t24.purchases INCLUDING INDEXES);
INSERT INTO t24.kept VALUES (1, 'gold', now() - interval '5 days', false, false, false, true);
UPDATE t24.kept_before SET benefits_activated = true;
SELECT * FROM t24.attempt($$INSERT INTO t24.req_keep VALUES (1, now(), 'account_admin')$$);
DROP TRIGGER enforce ON t24.req_keep;
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t24.req_keep FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('kept', 'pid');
SELECT * FROM t24.attempt($$INSERT INTO t24.req_keep VALUES (1, now(), 'account_admin')$$);
DROP TRIGGER enforce ON t24.req_keep;
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t24.req_keep FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('kept_before', 'pid');
SELECT * FROM t24.attempt($$INSERT INTO t24.req_keep VALUES (1, now(), 'account_admin')$$);
ALTER TABLE t24.req_keep ADD COLUMN kind text DEFAULT 'tax';
SELECT * FROM t24.attempt($$INSERT INTO t24.req_keep VALUES (1, now(), 'account_admin')$$);
ALTER TABLE t24.kept_before DROP COLUMN tax_exempt;
INSERT INTO t24.req_keep VALUES (1, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
SELECT count(*) AS accepted FROM t24.req_keep;
-- No trigger of this file that fired, with a foreign key or without one
-- (req_text, req_sku), recorded a dependency on a table but its own.
SELECT count(DISTINCT t.oid) AS triggers, count(d.objid) AS other_table_dependencies
  FROM pg_trigger t
  LEFT JOIN pg_depend d ON d.classid = 'pg_trigger'::regclass AND d.objid = t.oid
                       AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> t.tgrelid
  WHERE t.tgfoid IN (SELECT oid FROM pg_proc WHERE pronamespace = 'refund_rules'::regnamespace);

RESET ROLE;
DROP SCHEMA t24_parts CASCADE;
DROP SCHEMA t24_m CASCADE;
DROP SCHEMA t24 CASCADE;
DROP OWNED BY regress_t24_mallory;
DROP ROLE regress_t24_mallory;
