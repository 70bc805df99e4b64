--
-- 23_trigger_misuse: enforce_refund_policy() used the wrong way
--
-- CREATE TRIGGER cannot check a C trigger's arguments, so every misuse is
-- reported at the first row the trigger sees: 39P01 for the trigger itself
-- (not a row-level AFTER INSERT OR UPDATE trigger, wrong number of
-- arguments, no foreign key on the reference, a purchases table or key that
-- is not the foreign key's), 42703 for a missing column, 42804 for a column
-- of the wrong type, 22023 for a bad value.  Request tables get a FOREIGN KEY
-- on the reference wherever the test needs a working trigger.
-- The trigger judges at the database's clock: every request is written
-- with now() and the purchase was made 5 days ago (both windows open), so
-- a request the misuse does not stop is accepted.
--
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET client_min_messages = warning;
CREATE SCHEMA enf_misuse;
RESET client_min_messages;
SET search_path = enf_misuse, public;
\set VERBOSITY default
\set SHOW_CONTEXT never

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

CREATE TABLE purchases (
    id                          integer PRIMARY KEY,
    offer                       text,
    purchased_at                timestamptz,
    benefits_activated          boolean,
    product_keys_viewed         boolean,
    upgraded_with_gold_discount boolean,
    tax_exempt                  boolean
);
INSERT INTO purchases VALUES (1, 'gold', now() - interval '5 days', false, false, false, true);
CREATE TABLE refund_requests (
    id                serial PRIMARY KEY,
    purchase_id       integer CONSTRAINT refund_requests_purchase_fk REFERENCES purchases,
    requested_at      timestamptz,
    requested_by_role text
);

-- Called directly, not as a trigger.
SELECT refund_rules.enforce_refund_policy();
\echo SQLSTATE :SQLSTATE

-- Statement-level triggers.
CREATE TRIGGER misuse BEFORE INSERT OR UPDATE ON refund_requests
  FOR EACH STATEMENT EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
INSERT INTO refund_requests (purchase_id, requested_at, requested_by_role)
VALUES (1, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
DROP TRIGGER misuse ON refund_requests;
CREATE TRIGGER misuse BEFORE TRUNCATE ON refund_requests
  FOR EACH STATEMENT EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
TRUNCATE refund_requests;
\echo SQLSTATE :SQLSTATE
DROP TRIGGER misuse ON refund_requests;

-- BEFORE triggers (1.1's declaration): another BEFORE trigger could still
-- change the row after it was judged.  Refused, the row is not kept.
CREATE TRIGGER misuse BEFORE INSERT OR UPDATE ON refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
INSERT INTO refund_requests (purchase_id, requested_at, requested_by_role)
VALUES (1, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
SELECT count(*) AS rows_kept FROM refund_requests;
DROP TRIGGER misuse ON refund_requests;

-- AFTER, but not on every INSERT and UPDATE of the row: one of the two
-- events, a column list, a WHEN condition, deferred checking.
CREATE TRIGGER misuse AFTER INSERT ON refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
INSERT INTO refund_requests (purchase_id, requested_at, requested_by_role)
VALUES (1, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
DROP TRIGGER misuse ON refund_requests;
CREATE TRIGGER misuse AFTER INSERT OR UPDATE OF purchase_id ON refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
INSERT INTO refund_requests (purchase_id, requested_at, requested_by_role)
VALUES (1, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
DROP TRIGGER misuse ON refund_requests;
CREATE TRIGGER misuse AFTER INSERT OR UPDATE ON refund_requests
  FOR EACH ROW WHEN (NEW.requested_by_role IS NOT NULL)
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
INSERT INTO refund_requests (purchase_id, requested_at, requested_by_role)
VALUES (1, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
DROP TRIGGER misuse ON refund_requests;
CREATE CONSTRAINT TRIGGER misuse AFTER INSERT OR UPDATE ON refund_requests
  DEFERRABLE INITIALLY IMMEDIATE
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
INSERT INTO refund_requests (purchase_id, requested_at, requested_by_role)
VALUES (1, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
DROP TRIGGER misuse ON refund_requests;
SELECT count(*) AS rows_kept FROM refund_requests;

-- A DELETE event in the declaration: refused at the first row, as any other misdeclaration.
CREATE TRIGGER misuse AFTER INSERT OR UPDATE OR DELETE ON refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
INSERT INTO refund_requests (purchase_id, requested_at, requested_by_role)
VALUES (1, now(), 'account_admin');
DELETE FROM refund_requests;
\echo SQLSTATE :SQLSTATE
SELECT count(*) AS rows_kept FROM refund_requests;
DROP TRIGGER misuse ON refund_requests;
DELETE FROM refund_requests;

-- An INSTEAD OF trigger on a view is not an AFTER trigger either.
CREATE VIEW refund_requests_v AS SELECT * FROM refund_requests;
CREATE TRIGGER misuse INSTEAD OF INSERT ON refund_requests_v
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
INSERT INTO refund_requests_v (purchase_id, requested_at, requested_by_role)
VALUES (1, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
DROP VIEW refund_requests_v;

-- 0, 1 and 4 arguments.
CREATE TRIGGER misuse AFTER INSERT OR UPDATE ON refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy();
INSERT INTO refund_requests (purchase_id, requested_at, requested_by_role)
VALUES (1, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
DROP TRIGGER misuse ON refund_requests;
CREATE TRIGGER misuse AFTER INSERT OR UPDATE ON refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases');
INSERT INTO refund_requests (purchase_id, requested_at, requested_by_role)
VALUES (1, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
DROP TRIGGER misuse ON refund_requests;
CREATE TRIGGER misuse AFTER INSERT OR UPDATE ON refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id', 'id', 'extra');
INSERT INTO refund_requests (purchase_id, requested_at, requested_by_role)
VALUES (1, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
DROP TRIGGER misuse ON refund_requests;

-- A purchases table that is not the foreign key's (by name: it is not
-- looked up): one that does not exist, in a schema that does not exist, a
-- three-part name.
CREATE TRIGGER misuse AFTER INSERT OR UPDATE ON refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('orders', 'purchase_id');
INSERT INTO refund_requests (purchase_id, requested_at, requested_by_role)
VALUES (1, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
DROP TRIGGER misuse ON refund_requests;
CREATE TRIGGER misuse AFTER INSERT OR UPDATE ON refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('no_such_schema.purchases', 'purchase_id');
INSERT INTO refund_requests (purchase_id, requested_at, requested_by_role)
VALUES (1, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
DROP TRIGGER misuse ON refund_requests;
CREATE TRIGGER misuse AFTER INSERT OR UPDATE ON refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('db.enf_misuse.purchases', 'purchase_id');
INSERT INTO refund_requests (purchase_id, requested_at, requested_by_role)
VALUES (1, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
DROP TRIGGER misuse ON refund_requests;
-- Not a name at all.
CREATE TRIGGER misuse AFTER INSERT OR UPDATE ON refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('"purchases', 'purchase_id');
INSERT INTO refund_requests (purchase_id, requested_at, requested_by_role)
VALUES (1, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
DROP TRIGGER misuse ON refund_requests;
-- Unquoted names fold to lower case, as in SQL: 'PURCHASES' is purchases.
CREATE TRIGGER misuse AFTER INSERT OR UPDATE ON refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('PURCHASES', 'purchase_id');
INSERT INTO refund_requests (purchase_id, requested_at, requested_by_role)
VALUES (1, now(), 'account_admin');
DROP TRIGGER misuse ON refund_requests;

-- A key column that is not the foreign key's (the purchases table does not
-- have it); a referencing column the request table does not have.
CREATE TRIGGER misuse AFTER INSERT OR UPDATE ON refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id', 'purchase_no');
INSERT INTO refund_requests (purchase_id, requested_at, requested_by_role)
VALUES (1, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
DROP TRIGGER misuse ON refund_requests;
CREATE TRIGGER misuse AFTER INSERT OR UPDATE ON refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase');
INSERT INTO refund_requests (purchase_id, requested_at, requested_by_role)
VALUES (1, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
DROP TRIGGER misuse ON refund_requests;

-- A referencing column that cannot be compared with the key: the foreign
-- key between incompatible types cannot be made (42804), and without it the
-- trigger refuses (39P01).  A bigint referencing an integer key is fine.
CREATE TABLE text_ref_requests (purchase_id text, requested_at timestamptz, requested_by_role text);
-- (PostgreSQL's own DETAIL is worded differently from 18 on: terse)
\set VERBOSITY terse
ALTER TABLE text_ref_requests ADD FOREIGN KEY (purchase_id) REFERENCES purchases;
\set VERBOSITY default
\echo SQLSTATE :SQLSTATE
CREATE TRIGGER misuse AFTER INSERT OR UPDATE ON text_ref_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
INSERT INTO text_ref_requests VALUES ('1', now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
CREATE TABLE bigint_ref_requests (purchase_id bigint REFERENCES purchases, requested_at timestamptz, requested_by_role text);
CREATE TRIGGER misuse AFTER INSERT OR UPDATE ON bigint_ref_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
INSERT INTO bigint_ref_requests VALUES (1, now(), 'account_admin');

-- Request tables without requested_at or requested_by_role.
CREATE TABLE no_requested_at (purchase_id integer REFERENCES purchases, requested_by_role text);
CREATE TRIGGER misuse AFTER INSERT OR UPDATE ON no_requested_at
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
INSERT INTO no_requested_at VALUES (1, 'account_admin');
\echo SQLSTATE :SQLSTATE
CREATE TABLE no_role (purchase_id integer REFERENCES purchases, requested_at timestamptz);
CREATE TRIGGER misuse AFTER INSERT OR UPDATE ON no_role
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
INSERT INTO no_role VALUES (1, now());
\echo SQLSTATE :SQLSTATE
-- A dropped column is no column.
CREATE TABLE dropped_role (purchase_id integer REFERENCES purchases, requested_at timestamptz, requested_by_role text);
ALTER TABLE dropped_role DROP COLUMN requested_by_role;
CREATE TRIGGER misuse AFTER INSERT OR UPDATE ON dropped_role
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
INSERT INTO dropped_role VALUES (1, now());
\echo SQLSTATE :SQLSTATE

-- Request columns of the wrong type.
CREATE TABLE wrong_types (
    purchase_id       integer REFERENCES purchases,
    requested_at      text,
    kind              integer,
    requested_by_role integer
);
CREATE TRIGGER misuse AFTER INSERT OR UPDATE ON wrong_types
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
INSERT INTO wrong_types VALUES (1, now(), 0, 1);
\echo SQLSTATE :SQLSTATE
ALTER TABLE wrong_types ALTER requested_at TYPE date USING requested_at::date;
INSERT INTO wrong_types VALUES (1, now(), 0, 1);
\echo SQLSTATE :SQLSTATE
ALTER TABLE wrong_types ALTER requested_at TYPE timestamptz;
INSERT INTO wrong_types VALUES (1, now(), 0, 1);
\echo SQLSTATE :SQLSTATE
ALTER TABLE wrong_types ALTER kind TYPE text;
INSERT INTO wrong_types VALUES (1, now(), 'purchase', 1);
\echo SQLSTATE :SQLSTATE
ALTER TABLE wrong_types ALTER requested_by_role TYPE boolean USING true;
INSERT INTO wrong_types VALUES (1, now(), 'purchase', true);
\echo SQLSTATE :SQLSTATE
ALTER TABLE wrong_types ALTER requested_by_role TYPE text;
INSERT INTO wrong_types VALUES (1, now(), 'purchase', 'account_admin');
-- A kind that is an enum, but not of refund kinds: its labels are bad data.
ALTER TABLE wrong_types ALTER kind TYPE refund_rules.mpn_offer USING NULL;
INSERT INTO wrong_types VALUES (1, now(), 'gold', 'account_admin');
\echo SQLSTATE :SQLSTATE
SELECT count(*) AS accepted FROM wrong_types;

-- Purchases tables the rules cannot read: a column missing, of the wrong
-- type, an offer that is not a label.
CREATE TABLE bad_purchases (
    id                          integer PRIMARY KEY,
    offer                       integer,
    purchased_at                date,
    benefits_activated          integer,
    upgraded_with_gold_discount boolean,
    tax_exempt                  text
);
INSERT INTO bad_purchases VALUES (1, 1, current_date - 5, 0, false, 'yes');
CREATE TABLE bad_requests (
    purchase_id       integer REFERENCES bad_purchases,
    requested_at      timestamptz,
    kind              refund_rules.refund_kind,
    requested_by_role text
);
CREATE TRIGGER misuse AFTER INSERT OR UPDATE ON bad_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('bad_purchases', 'purchase_id');
INSERT INTO bad_requests VALUES (1, now(), 'purchase', 'account_admin');
\echo SQLSTATE :SQLSTATE
ALTER TABLE bad_purchases ALTER offer TYPE text USING 'platinum';
INSERT INTO bad_requests VALUES (1, now(), 'purchase', 'account_admin');
\echo SQLSTATE :SQLSTATE
ALTER TABLE bad_purchases ALTER purchased_at TYPE timestamptz;
INSERT INTO bad_requests VALUES (1, now(), 'purchase', 'account_admin');
\echo SQLSTATE :SQLSTATE
ALTER TABLE bad_purchases ALTER benefits_activated TYPE boolean USING false;
INSERT INTO bad_requests VALUES (1, now(), 'purchase', 'account_admin');
\echo SQLSTATE :SQLSTATE
ALTER TABLE bad_purchases ADD COLUMN product_keys_viewed boolean DEFAULT false;
INSERT INTO bad_requests VALUES (1, now(), 'purchase', 'account_admin');
\echo SQLSTATE :SQLSTATE
-- A tax refund reads only purchased_at and tax_exempt.
INSERT INTO bad_requests VALUES (1, now(), 'tax', 'account_admin');
\echo SQLSTATE :SQLSTATE
ALTER TABLE bad_purchases ALTER tax_exempt TYPE boolean USING tax_exempt = 'yes';
INSERT INTO bad_requests VALUES (1, now(), 'tax', 'account_admin');
UPDATE bad_purchases SET offer = 'silver';
INSERT INTO bad_requests VALUES (1, now(), 'purchase', 'account_admin');
SELECT purchase_id, kind, requested_by_role FROM bad_requests ORDER BY kind;

-- The same misuse fails the same way on every row, not only the first.
CREATE TRIGGER misuse AFTER INSERT OR UPDATE ON refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id', 'purchase_no');
INSERT INTO refund_requests (purchase_id, requested_at, requested_by_role)
VALUES (1, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
INSERT INTO refund_requests (purchase_id, requested_at, requested_by_role)
VALUES (1, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
SELECT purchase_id, requested_by_role FROM refund_requests ORDER BY id;
-- Fixed in place (a key column added, the foreign key moved to it, the
-- requests made so far removed): the trigger works in the same session.
DELETE FROM refund_requests;
ALTER TABLE purchases ADD COLUMN purchase_no integer UNIQUE;
UPDATE purchases SET purchase_no = id + 100;
-- The column exists now, but the foreign key still references id.
INSERT INTO refund_requests (purchase_id, requested_at, requested_by_role)
VALUES (1, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
ALTER TABLE refund_requests DROP CONSTRAINT refund_requests_purchase_fk,
  ADD CONSTRAINT refund_requests_purchase_fk FOREIGN KEY (purchase_id) REFERENCES purchases (purchase_no);
INSERT INTO refund_requests (purchase_id, requested_at, requested_by_role)
VALUES (101, now(), 'account_admin');
INSERT INTO refund_requests (purchase_id, requested_at, requested_by_role)
VALUES (1, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
SELECT purchase_id, requested_by_role FROM refund_requests ORDER BY id;
DROP TRIGGER misuse ON refund_requests;

-- A request table without a foreign key on the reference: refused, with the
-- statement that fixes it in the HINT; nothing is recorded in pg_depend
-- (1.1 bound such a trigger to the purchases table there on first use).
CREATE TABLE no_fk_requests (purchase_id integer, requested_at timestamptz, requested_by_role text);
CREATE TRIGGER misuse AFTER INSERT OR UPDATE ON no_fk_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
SELECT * FROM attempt($$INSERT INTO no_fk_requests VALUES (1, now(), 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO no_fk_requests VALUES (1, now(), 'account_admin')$$);
SELECT count(*) AS rows_kept FROM no_fk_requests;
SELECT count(*) AS dependencies_on_purchases
  FROM pg_depend
 WHERE refclassid = 'pg_class'::regclass AND refobjid = 'purchases'::regclass
   AND classid = 'pg_trigger'::regclass
   AND objid IN (SELECT oid FROM pg_trigger WHERE tgrelid = 'no_fk_requests'::regclass);
-- A foreign key that lets a request lose its purchase (CASCADE, SET NULL,
-- SET DEFAULT) is refused too.
ALTER TABLE no_fk_requests ADD CONSTRAINT no_fk_requests_fk
  FOREIGN KEY (purchase_id) REFERENCES purchases (id) ON DELETE CASCADE;
SELECT * FROM attempt($$INSERT INTO no_fk_requests VALUES (1, now(), 'account_admin')$$);
ALTER TABLE no_fk_requests DROP CONSTRAINT no_fk_requests_fk, ADD CONSTRAINT no_fk_requests_fk
  FOREIGN KEY (purchase_id) REFERENCES purchases (id) ON UPDATE SET NULL;
SELECT * FROM attempt($$INSERT INTO no_fk_requests VALUES (1, now(), 'account_admin')$$);
ALTER TABLE no_fk_requests DROP CONSTRAINT no_fk_requests_fk, ADD CONSTRAINT no_fk_requests_fk
  FOREIGN KEY (purchase_id) REFERENCES purchases (id) ON DELETE SET DEFAULT;
SELECT * FROM attempt($$INSERT INTO no_fk_requests VALUES (1, now(), 'account_admin')$$);
SELECT count(*) AS rows_kept FROM no_fk_requests;
-- RESTRICT is fine: the request gets in.
ALTER TABLE no_fk_requests DROP CONSTRAINT no_fk_requests_fk, ADD CONSTRAINT no_fk_requests_fk
  FOREIGN KEY (purchase_id) REFERENCES purchases (id) ON DELETE RESTRICT;
SELECT * FROM attempt($$INSERT INTO no_fk_requests VALUES (1, now(), 'account_admin')$$);
SELECT count(*) AS rows_kept FROM no_fk_requests;

-- Options with a bad value.
DROP TRIGGER misuse ON no_fk_requests;
CREATE TRIGGER misuse AFTER INSERT OR UPDATE ON no_fk_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id', 'requester=nobody');
SELECT * FROM attempt($$INSERT INTO no_fk_requests VALUES (1, now(), 'account_admin')$$);
DROP TRIGGER misuse ON no_fk_requests;
CREATE TRIGGER misuse AFTER INSERT OR UPDATE ON no_fk_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id', 'mode=off');
SELECT * FROM attempt($$INSERT INTO no_fk_requests VALUES (1, now(), 'account_admin')$$);
SELECT count(*) AS rows_kept FROM no_fk_requests;

-- A table argument is compared with the table the catalog gives (the
-- foreign key's, FROM's), schema by OID: "pg_temp" is the session's own
-- temporary schema, as in SQL; another schema, or a table of that name in
-- pg_temp when the key references enf_misuse's, is refused.
CREATE TEMP TABLE purchases (LIKE enf_misuse.purchases INCLUDING ALL);
INSERT INTO pg_temp.purchases SELECT * FROM enf_misuse.purchases;
CREATE TEMP TABLE temp_requests (
    purchase_id integer NOT NULL REFERENCES pg_temp.purchases,
    requested_at timestamptz NOT NULL DEFAULT now(),
    requested_by_role text NOT NULL);
CREATE TRIGGER misuse AFTER INSERT OR UPDATE ON temp_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('pg_temp.purchases', 'purchase_id');
CREATE CONSTRAINT TRIGGER protect AFTER INSERT OR UPDATE ON pg_temp.purchases FROM temp_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.protect_refunded_purchase('pg_temp.temp_requests', 'purchase_id');
SELECT * FROM attempt($$INSERT INTO temp_requests (purchase_id, requested_by_role) VALUES (1, 'account_admin')$$);
SELECT code, message FROM attempt($$UPDATE pg_temp.purchases SET benefits_activated = true$$);
DROP TRIGGER misuse ON temp_requests;
CREATE TRIGGER misuse AFTER INSERT OR UPDATE ON temp_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('enf_misuse.purchases', 'purchase_id');
SELECT regexp_replace(message, 'pg_temp_[0-9]+', 'pg_temp_N') AS message
FROM attempt($$INSERT INTO temp_requests (purchase_id, requested_by_role) VALUES (1, 'account_admin')$$);
DROP TRIGGER misuse ON temp_requests;
DROP TABLE temp_requests, pg_temp.purchases;
CREATE TEMP TABLE purchases (LIKE enf_misuse.purchases INCLUDING ALL);
CREATE TRIGGER misuse AFTER INSERT OR UPDATE ON refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('pg_temp.purchases', 'purchase_id');
SELECT code, message FROM attempt($$INSERT INTO refund_requests (purchase_id, requested_at, requested_by_role) VALUES (101, now(), 'account_admin')$$);
DROP TRIGGER misuse ON refund_requests;
DROP TABLE pg_temp.purchases;

RESET search_path;
RESET TimeZone;
RESET DateStyle;
SET client_min_messages = warning;
DROP SCHEMA enf_misuse CASCADE;
RESET client_min_messages;
