-- 41_schema_ownership: the extension's schema belongs to the extension.
-- A schema refund_rules made before CREATE EXTENSION by another role is
-- refused (it could hold look-alikes of the extension's functions); after a
-- trusted install by a database owner who is not a superuser, nobody but a
-- superuser can add an object to the schema, also after ALTER EXTENSION
-- UPDATE by that owner; an update refuses a schema holding someone's objects.
SET client_min_messages = warning;
SELECT pg_catalog.current_database() AS orig_db \gset
CREATE ROLE regress_rr_dbowner NOLOGIN;
CREATE ROLE regress_rr_creator NOLOGIN;
CREATE DATABASE regress_rr_schema_db OWNER regress_rr_dbowner;
GRANT CREATE ON DATABASE regress_rr_schema_db TO regress_rr_creator;

\c regress_rr_schema_db
SET client_min_messages = warning;
SET TimeZone = 'UTC';
\set VERBOSITY default
\set SHOW_CONTEXT never

-- 1. A role with only CREATE on the database makes the schema first, with
-- an overload that would answer "allowed" for anyone: CREATE EXTENSION by
-- the database owner refuses the schema.
SET ROLE regress_rr_creator;
CREATE SCHEMA refund_rules;
CREATE FUNCTION refund_rules.refund_request_status(request anyelement,
    OUT allowed boolean, OUT reasons text[], OUT deadline timestamptz)
  LANGUAGE plpgsql AS $$ BEGIN allowed := true; reasons := '{}'; END $$;
SET ROLE regress_rr_dbowner;
CREATE EXTENSION refund_rules;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS extensions FROM pg_extension WHERE extname = 'refund_rules';
RESET ROLE;
DROP SCHEMA refund_rules CASCADE;

-- An empty schema of another role is refused too; one of the installing
-- role's own, empty and where only it may create, is taken over.
SET ROLE regress_rr_creator;
CREATE SCHEMA refund_rules;
SET ROLE regress_rr_dbowner;
CREATE EXTENSION refund_rules;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP SCHEMA refund_rules;
-- The owner's own schema, where it let another role create objects: refused.
SET ROLE regress_rr_dbowner;
CREATE SCHEMA refund_rules;
GRANT CREATE ON SCHEMA refund_rules TO regress_rr_creator;
CREATE EXTENSION refund_rules;
\echo :LAST_ERROR_SQLSTATE
REVOKE CREATE ON SCHEMA refund_rules FROM regress_rr_creator;
CREATE EXTENSION refund_rules;
SELECT e.extowner::regrole AS extension_owner, n.nspowner::regrole = 'regress_rr_dbowner'::regrole AS schema_still_the_owners,
       (SELECT rolsuper FROM pg_roles WHERE oid = n.nspowner) AS schema_owner_is_superuser
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'refund_rules';

-- 2. After the trusted install, the owner of the database and of the
-- extension cannot add an object to the schema: no overload of a function
-- (the attack that made a superuser run it), no table, no type.
CREATE FUNCTION refund_rules.refund_eligible(p record, as_of timestamptz)
  RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE refund_rules.extra (id integer);
\echo :LAST_ERROR_SQLSTATE
GRANT CREATE ON SCHEMA refund_rules TO regress_rr_dbowner;
SELECT has_schema_privilege('regress_rr_dbowner', 'refund_rules', 'CREATE') AS owner_may_create,
       has_schema_privilege('regress_rr_creator', 'refund_rules', 'CREATE') AS creator_may_create;
ALTER SCHEMA refund_rules OWNER TO regress_rr_dbowner;
\echo :LAST_ERROR_SQLSTATE
SET ROLE regress_rr_creator;
CREATE FUNCTION refund_rules.refund_deadline(t timestamptz)
  RETURNS timestamptz LANGUAGE sql AS $$ SELECT 'infinity'::timestamptz $$;
\echo :LAST_ERROR_SQLSTATE
SET ROLE regress_rr_dbowner;
-- It still works for everyone, and the owner can still remove it.
SELECT refund_rules.refund_deadline('2026-11-01 00:00+00');
DROP EXTENSION refund_rules;
-- The schema stays, a superuser's and empty: the owner installs again.
SELECT (SELECT rolsuper FROM pg_roles WHERE oid = n.nspowner) AS leftover_schema_is_a_superusers,
       NOT EXISTS (SELECT FROM pg_depend d WHERE d.refobjid = n.oid) AS empty
  FROM pg_namespace n WHERE n.nspname = 'refund_rules';
CREATE EXTENSION refund_rules;
SELECT extversion FROM pg_extension WHERE extname = 'refund_rules';
DROP EXTENSION refund_rules;
RESET ROLE;
DROP SCHEMA refund_rules;

-- 3. The same owner installs 1.1 (whose schema it owned) and updates to
-- the current version: the update takes the schema from it too.
SET ROLE regress_rr_dbowner;
CREATE EXTENSION refund_rules VERSION '1.1';
SELECT (SELECT rolsuper FROM pg_roles WHERE oid = n.nspowner) AS schema_owner_is_superuser
  FROM pg_namespace n WHERE n.nspname = 'refund_rules';
-- While another role may create in it, the update refuses.
GRANT CREATE ON SCHEMA refund_rules TO regress_rr_creator;
ALTER EXTENSION refund_rules UPDATE;
\echo :LAST_ERROR_SQLSTATE
REVOKE CREATE ON SCHEMA refund_rules FROM regress_rr_creator;
ALTER EXTENSION refund_rules UPDATE;
SELECT (SELECT rolsuper FROM pg_roles WHERE oid = n.nspowner) AS schema_owner_is_superuser
  FROM pg_namespace n WHERE n.nspname = 'refund_rules';
CREATE FUNCTION refund_rules.refund_eligible(p record, as_of timestamptz)
  RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
\echo :LAST_ERROR_SQLSTATE
DROP EXTENSION refund_rules;
RESET ROLE;
DROP SCHEMA refund_rules;

-- 4. A 1.1 schema that holds an object of someone else's (an owner's
-- exact-type overload, made while it could): the update refuses, naming it,
-- and goes through once it is dropped.
SET ROLE regress_rr_dbowner;
CREATE EXTENSION refund_rules VERSION '1.1';
CREATE FUNCTION refund_rules.refund_eligible(p refund_rules.purchase, as_of timestamptz)
  RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
ALTER EXTENSION refund_rules UPDATE;
\echo :LAST_ERROR_SQLSTATE
SELECT extversion FROM pg_extension WHERE extname = 'refund_rules';
-- Made a member of the extension (its owner may ALTER EXTENSION ... ADD what
-- it owns), it is refused all the same.
ALTER EXTENSION refund_rules ADD FUNCTION refund_rules.refund_eligible(refund_rules.purchase, timestamptz);
ALTER EXTENSION refund_rules UPDATE;
\echo :LAST_ERROR_SQLSTATE
ALTER EXTENSION refund_rules DROP FUNCTION refund_rules.refund_eligible(refund_rules.purchase, timestamptz);
DROP FUNCTION refund_rules.refund_eligible(refund_rules.purchase, timestamptz);
ALTER EXTENSION refund_rules UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'refund_rules';
DROP EXTENSION refund_rules;
RESET ROLE;
DROP SCHEMA refund_rules;

-- 5. Triggers made for 1.1 (BEFORE): the update names each one to
-- recreate, and until then each refuses every row, saying how.
SET ROLE regress_rr_dbowner;
CREATE EXTENSION refund_rules VERSION '1.1';
CREATE TABLE purchases (id bigint PRIMARY KEY, offer refund_rules.mpn_offer, purchased_at timestamptz,
  benefits_activated boolean, product_keys_viewed boolean, upgraded_with_gold_discount boolean);
INSERT INTO purchases VALUES (1, 'gold', now() - interval '1 day', false, false, false);
CREATE TABLE refund_requests (purchase_id bigint REFERENCES purchases, requested_at timestamptz DEFAULT now(),
  requested_by_role text);
CREATE TRIGGER refund_policy BEFORE INSERT OR UPDATE ON refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
CREATE TRIGGER protect BEFORE UPDATE ON purchases
  FOR EACH ROW EXECUTE FUNCTION refund_rules.protect_refunded_purchase('refund_requests', 'purchase_id');
SET client_min_messages = warning;
ALTER EXTENSION refund_rules UPDATE;
INSERT INTO refund_requests (purchase_id, requested_by_role) VALUES (1, 'account_admin');
UPDATE purchases SET benefits_activated = true;
DROP TRIGGER refund_policy ON refund_requests;
DROP TRIGGER protect ON purchases;
CREATE TRIGGER refund_policy AFTER INSERT OR UPDATE ON refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
CREATE CONSTRAINT TRIGGER protect AFTER INSERT OR UPDATE ON purchases FROM refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.protect_refunded_purchase('refund_requests', 'purchase_id');
INSERT INTO refund_requests (purchase_id, requested_by_role) VALUES (1, 'account_admin');
UPDATE purchases SET benefits_activated = true;
SELECT count(*) AS requests, bool_or(p.benefits_activated) AS activated FROM refund_requests, purchases p;
DROP TABLE refund_requests, purchases;
DROP EXTENSION refund_rules;
RESET ROLE;
DROP SCHEMA refund_rules;

\c :orig_db
SET client_min_messages = warning;
DROP DATABASE regress_rr_schema_db;
DROP ROLE regress_rr_dbowner;
DROP ROLE regress_rr_creator;
