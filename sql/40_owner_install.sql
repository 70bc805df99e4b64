-- 40_owner_install: a database owner who is not a superuser installs the
-- extension (it is trusted), owns it, and nothing it does depends on
-- search_path: not an empty one, not one whose first schema holds
-- look-alikes of our functions, types and of pg_catalog's now() and operators.
SET client_min_messages = warning;
SELECT pg_catalog.current_database() AS orig_db \gset
CREATE ROLE regress_rr_owner NOLOGIN;
CREATE ROLE regress_rr_app NOLOGIN;
CREATE DATABASE regress_rr_owner_db OWNER regress_rr_owner;

\c regress_rr_owner_db
SET client_min_messages = warning;
SET TimeZone = 'UTC';
SET ROLE regress_rr_owner;
SELECT current_user, r.rolsuper, r.rolcreatedb, d.datdba::regrole AS db_owner
  FROM pg_roles r, pg_database d
 WHERE r.rolname = current_user AND d.datname = current_database();

-- A role without CREATE on the database cannot install it.
SET ROLE regress_rr_app;
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE EXTENSION refund_rules;
\echo :LAST_ERROR_SQLSTATE
SET ROLE regress_rr_owner;

-- The hostile schema, made by the owner itself: look-alikes of our types and
-- functions, and of pg_catalog's now(), text, =, <=, >=, + and -.
CREATE SCHEMA hostile;
CREATE TYPE hostile.mpn_offer AS ENUM ('gold', 'silver', 'action_pack');
CREATE TYPE hostile.refund_kind AS ENUM ('tax', 'purchase');
CREATE TYPE hostile.purchase AS (offer pg_catalog.text, purchased_at pg_catalog.date);
CREATE DOMAIN hostile.text AS pg_catalog.varchar(3);
CREATE FUNCTION hostile.now() RETURNS timestamptz
  LANGUAGE sql IMMUTABLE AS $$ SELECT '2000-01-01 00:00+00'::pg_catalog.timestamptz $$;
CREATE FUNCTION hostile.refund_eligible(record, timestamptz DEFAULT hostile.now())
  RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN true; END $$;
CREATE FUNCTION hostile.refund_deadline(timestamptz) RETURNS timestamptz
  LANGUAGE sql IMMUTABLE AS $$ SELECT 'infinity'::pg_catalog.timestamptz $$;
CREATE FUNCTION hostile.refund_window_start(timestamptz, anyenum) RETURNS timestamptz
  LANGUAGE sql IMMUTABLE AS $$ SELECT '-infinity'::pg_catalog.timestamptz $$;
CREATE FUNCTION hostile.always(anyenum, anyenum) RETURNS boolean
  LANGUAGE sql IMMUTABLE AS $$ SELECT true $$;
CREATE FUNCTION hostile.always(integer, integer) RETURNS boolean
  LANGUAGE sql IMMUTABLE AS $$ SELECT true $$;
CREATE FUNCTION hostile.always(text, text) RETURNS boolean
  LANGUAGE sql IMMUTABLE AS $$ SELECT true $$;
CREATE FUNCTION hostile.always(timestamptz, timestamptz) RETURNS boolean
  LANGUAGE sql IMMUTABLE AS $$ SELECT true $$;
CREATE FUNCTION hostile.plus(timestamptz, interval) RETURNS timestamptz
  LANGUAGE sql IMMUTABLE AS $$ SELECT $1 OPERATOR(pg_catalog.+) '1000 days'::pg_catalog.interval $$;
CREATE FUNCTION hostile.minus(timestamptz, interval) RETURNS timestamptz
  LANGUAGE sql IMMUTABLE AS $$ SELECT $1 OPERATOR(pg_catalog.-) '1000 days'::pg_catalog.interval $$;
CREATE OPERATOR hostile.= (LEFTARG = anyenum, RIGHTARG = anyenum, FUNCTION = hostile.always);
CREATE OPERATOR hostile.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = hostile.always);
CREATE OPERATOR hostile.= (LEFTARG = pg_catalog.text, RIGHTARG = pg_catalog.text, FUNCTION = hostile.always);
CREATE OPERATOR hostile.<= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = hostile.always);
CREATE OPERATOR hostile.>= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = hostile.always);
CREATE OPERATOR hostile.+ (LEFTARG = timestamptz, RIGHTARG = interval, FUNCTION = hostile.plus);
CREATE OPERATOR hostile.- (LEFTARG = timestamptz, RIGHTARG = interval, FUNCTION = hostile.minus);

-- The look-alikes do win where a name is not qualified.
SET search_path = hostile, pg_catalog;
SELECT now() AS hostile_now, 'gold'::mpn_offer = 'silver'::mpn_offer AS hostile_eq,
       2 = 3 AS hostile_int_eq, pg_typeof('abc'::text) OPERATOR(pg_catalog.<>) 'pg_catalog.text'::pg_catalog.regtype AS hostile_text,
       '2024-03-15'::timestamptz <= '2000-01-01'::timestamptz AS hostile_le;

-- Install with an empty search_path, then again with the hostile one first.
SET search_path = '';
CREATE EXTENSION refund_rules;
DROP EXTENSION refund_rules;
-- The schema stays, a superuser's (see 41_schema_ownership): a superuser
-- drops it before the owner installs again.
RESET ROLE;
DROP SCHEMA refund_rules;
SET ROLE regress_rr_owner;
SET search_path = hostile, pg_catalog;
CREATE EXTENSION refund_rules;

-- Who owns what: the extension belongs to the database owner, its schema
-- and the member objects to the bootstrap superuser (what a trusted
-- extension's script runs as), and every member lives in schema refund_rules.
SET search_path = public, pg_catalog;
SELECT e.extname, e.extversion, e.extowner::regrole AS ext_owner,
       n.nspname, n.nspowner = 10 AS schema_bootstrap_owned
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'refund_rules';
WITH members AS (
  SELECT d.classid, d.objid, pg_identify_object(d.classid, d.objid, 0) AS ident
    FROM pg_depend d
   WHERE d.refclassid = 'pg_extension'::regclass
     AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'refund_rules')
     AND d.deptype = 'e'),
owners AS (
  SELECT (m.ident).type, (m.ident).schema,
         COALESCE((SELECT p.proowner FROM pg_proc p
                    WHERE m.classid = 'pg_proc'::regclass AND p.oid = m.objid),
                  (SELECT t.typowner FROM pg_type t
                    WHERE m.classid = 'pg_type'::regclass AND t.oid = m.objid),
                  (SELECT c.relowner FROM pg_class c
                    WHERE m.classid = 'pg_class'::regclass AND c.oid = m.objid)) AS owner
    FROM members m)
SELECT type, count(*) > 0 AS has_members,
       count(*) FILTER (WHERE schema IS DISTINCT FROM 'refund_rules') AS outside_schema,
       count(*) FILTER (WHERE owner IS DISTINCT FROM 10) AS not_bootstrap_owned
  FROM owners GROUP BY type ORDER BY type;
SET search_path = hostile, pg_catalog;
-- Defaults were bound at install time to pg_catalog's now(), not hostile's.
SELECT pg_catalog.pg_get_function_arguments('refund_rules.refund_eligible(pg_catalog.record, pg_catalog.timestamptz)'::pg_catalog.regprocedure);
SELECT pg_catalog.count(*) AS functions_with_proconfig
  FROM pg_catalog.pg_proc
 WHERE pronamespace OPERATOR(pg_catalog.=) 'refund_rules'::pg_catalog.regnamespace
   AND proconfig IS NOT NULL;

-- The data: fixed edge rows plus generated ones with NULLs everywhere.
-- Columns are text and timestamp (without time zone) on purpose too: the
-- functions accept labels as text and read timestamp as UTC.
SET search_path = public, pg_catalog;
CREATE TABLE purchases (
    id integer PRIMARY KEY,
    offer refund_rules.mpn_offer,
    purchased_at timestamptz,
    benefits_activated boolean,
    product_keys_viewed boolean,
    upgraded_with_gold_discount boolean,
    tax_exempt boolean);
INSERT INTO purchases VALUES
  (1, 'gold',        '2024-03-01 00:00+00', false, false, false, true),
  (2, 'silver',      '2024-03-01 00:00+00', false, false, true,  true),
  (3, 'silver',      '2024-03-01 00:00+00', false, false, NULL,  false),
  (4, NULL,          '2024-03-01 00:00+00', false, false, NULL,  NULL),
  (5, 'action_pack', '2024-02-14 12:00+00', false, false, false, true),
  (6, 'action_pack', '2024-02-14 11:59:59.999999+00', false, false, false, true),
  (7, 'gold',        '2024-03-15 12:00+00', false, false, false, true),
  (8, 'gold',        '2024-03-15 12:00:00.000001+00', false, false, false, true),
  (9, 'gold',        '2023-03-15 12:00+00', true,  true,  false, true),
  (10, 'gold',       '2023-03-15 11:59+00', false, false, false, true),
  (11, 'gold',       '-infinity', false, false, false, true),
  (12, 'gold',       'infinity',  false, false, false, true),
  (13, 'gold',       NULL, false, false, false, true),
  (14, NULL, NULL, NULL, NULL, NULL, NULL);
SELECT setseed(0.4);
INSERT INTO purchases
SELECT 100 + i,
       (ARRAY['action_pack', 'silver', 'gold', NULL])[1 + floor(random() * 4)::int]::refund_rules.mpn_offer,
       CASE WHEN random() < 0.05 THEN NULL
            ELSE '2024-03-15 12:00+00'::timestamptz - random() * interval '400 days' END,
       CASE WHEN random() < 0.1 THEN NULL ELSE random() < 0.3 END,
       CASE WHEN random() < 0.1 THEN NULL ELSE random() < 0.3 END,
       CASE WHEN random() < 0.1 THEN NULL ELSE random() < 0.5 END,
       CASE WHEN random() < 0.1 THEN NULL ELSE random() < 0.5 END
  FROM generate_series(1, 300) i;
CREATE TABLE purchases_text AS
  SELECT id, offer::text AS offer, (purchased_at AT TIME ZONE 'UTC') AS purchased_at,
         benefits_activated, product_keys_viewed, upgraded_with_gold_discount, tax_exempt
    FROM purchases;

-- Refund requests, guarded by the trigger and by a CHECK constraint.
CREATE TABLE refund_requests (
    id integer PRIMARY KEY,
    purchase_id integer NOT NULL REFERENCES purchases,
    requested_at timestamptz NOT NULL,
    kind refund_rules.refund_kind NOT NULL DEFAULT 'purchase',
    requested_by_role text NOT NULL);
CREATE TRIGGER refund_requests_policy
  AFTER INSERT OR UPDATE ON refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
ALTER TABLE purchases ADD COLUMN refunded_at timestamptz
  CHECK (refunded_at IS NULL OR refund_rules.check_refund(purchases, refunded_at));

-- EXPLAIN's text, whatever the search_path of the caller.
CREATE FUNCTION plan_of(query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  line pg_catalog.text;
  plan pg_catalog.text := '';
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' OPERATOR(pg_catalog.||) query LOOP
    plan := plan OPERATOR(pg_catalog.||) line OPERATOR(pg_catalog.||) E'\n';
  END LOOP;
  RETURN plan;
END $$;

-- Every answer, as digests per table, under a given search_path: "common"
-- covers what both tables answer, "more" the rest of the purchases' answers.
CREATE TABLE answers (path text, tab text, n bigint, eligible bigint,
                      common text, more text);
\set record_answers 'INSERT INTO public.answers SELECT pg_catalog.current_setting(''search_path''), ''purchases'', pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE refund_rules.refund_eligible(p, ''2024-03-15 12:00+00'')), pg_catalog.md5(pg_catalog.string_agg(pg_catalog.concat_ws(''|'', p.id, refund_rules.refund_eligible(p, ''2024-03-15 12:00+00''), refund_rules.tax_refund_eligible(p, ''2024-03-15 12:00+00''), refund_rules.refund_ineligibility_reasons(p, ''2024-03-15 12:00+00''), refund_rules.refund_ineligibility_reasons(p, ''2024-03-15 12:00+00'', ''tax'')), '','' ORDER BY p.id)), pg_catalog.md5(pg_catalog.string_agg(pg_catalog.concat_ws(''|'', p.id, refund_rules.refund_deadline(p.purchased_at), refund_rules.tax_refund_deadline(p.purchased_at), s.*, refund_rules.refund_eligible(ROW(p.offer, p.purchased_at, p.benefits_activated, p.product_keys_viewed, p.upgraded_with_gold_discount, p.tax_exempt)::refund_rules.purchase, ''2024-03-15 12:00+00''), refund_rules.refund_eligible(p, NULL)), '','' ORDER BY p.id)) FROM public.purchases p CROSS JOIN LATERAL refund_rules.refund_status(p, ''2024-03-15 12:00+00'') s UNION ALL SELECT pg_catalog.current_setting(''search_path''), ''purchases_text'', pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE refund_rules.refund_eligible(t, ''2024-03-15 12:00+00'')), pg_catalog.md5(pg_catalog.string_agg(pg_catalog.concat_ws(''|'', t.id, refund_rules.refund_eligible(t, ''2024-03-15 12:00+00''), refund_rules.tax_refund_eligible(t, ''2024-03-15 12:00+00''), refund_rules.refund_ineligibility_reasons(t, ''2024-03-15 12:00+00''), refund_rules.refund_ineligibility_reasons(t, ''2024-03-15 12:00+00'', ''tax'')), '','' ORDER BY t.id)), NULL FROM public.purchases_text t'
SET search_path = public, pg_catalog;
:record_answers;
SET search_path = '';
:record_answers;
SET search_path = hostile, pg_catalog;
:record_answers;

-- Same answers under every search_path, and the text/timestamp table agrees
-- with the enum/timestamptz one.
SET search_path = public, pg_catalog;
SELECT path, tab, n, eligible FROM answers ORDER BY tab, path;
SELECT count(DISTINCT common) AS distinct_common, count(DISTINCT more) AS distinct_more
  FROM answers;
-- The default as_of is pg_catalog's now(), bound at install time: read
-- under the hostile path, a 2010 purchase is expired, not "not yet made"
-- as it would be at hostile's now() in 2000.
SET search_path = hostile, pg_catalog;
SELECT refund_rules.refund_ineligibility_reasons(
         ROW('gold', '2010-01-01 00:00+00', false, false, false, true)::refund_rules.purchase) AS at_now,
       refund_rules.refund_ineligibility_reasons(
         ROW('gold', '2010-01-01 00:00+00', false, false, false, true)::refund_rules.purchase,
         now()) AS at_hostile_now;

-- A few rows, read under the hostile search_path.
SET search_path = hostile, pg_catalog;
SELECT p.id, p.offer, refund_rules.refund_eligible(p, '2024-03-15 12:00+00') AS eligible,
       refund_rules.refund_ineligibility_reasons(p, '2024-03-15 12:00+00') AS reasons,
       refund_rules.refund_ineligibility_reasons(p, '2024-03-15 12:00+00', 'tax') AS tax_reasons,
       refund_rules.refund_deadline(p.purchased_at) AS deadline
  FROM public.purchases p WHERE p.id OPERATOR(pg_catalog.<) 100 ORDER BY p.id;
-- The planner's rewrite names pg_catalog's operators and our types.
SELECT public.plan_of('SELECT pg_catalog.count(*) FROM public.purchases p WHERE refund_rules.refund_eligible(p, ''2024-03-15 12:00+00'')') AS plan \gset
SET search_path = public, pg_catalog;
SELECT :'plan' ~ 'Filter: .*purchased_at OPERATOR\(pg_catalog\.<=\) ' AS le_is_pg_catalogs,
       :'plan' ~ 'Filter: .*purchased_at OPERATOR\(pg_catalog\.>=\) ' AS ge_is_pg_catalogs,
       :'plan' ~ 'Filter: .*\(offer OPERATOR\(pg_catalog\.=\) ''silver''::refund_rules\.mpn_offer\)' AS eq_is_pg_catalogs,
       :'plan' ~ 'hostile' AS mentions_hostile;
SET search_path = hostile, pg_catalog;

-- The trigger judges a request at the database's clock: the purchases the
-- requests name move so that now() is 12 hours after the test's moment
-- (2024-03-15 12:00), and the requests are written at now().  What a statement got,
-- with the moments of HINT written as T (every name qualified: it runs
-- under the hostile search_path too).
SET search_path = public, pg_catalog;
CREATE FUNCTION public.attempt(stmt text, OUT code text, OUT message text, OUT detail text, OUT hint text)
LANGUAGE plpgsql AS $f$
BEGIN
  EXECUTE stmt;
  code := '00000';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                          detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
  IF detail OPERATOR(pg_catalog.=) '' THEN detail := NULL; END IF;
  hint := pg_catalog.regexp_replace(hint, '\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\+00', 'T', 'g');
  IF hint OPERATOR(pg_catalog.=) '' THEN hint := NULL; END IF;
END $f$;
UPDATE public.purchases
   SET purchased_at = purchased_at + (now() - timestamptz '2024-03-15 12:00+00' - interval '12 hours')
 WHERE id < 100;
SET search_path = hostile, pg_catalog;
-- Enforcement under the hostile search_path: hostile's "=" on integers
-- would find a purchase for any key, hostile's "<=" would open every window.
SELECT * FROM public.attempt($$INSERT INTO public.refund_requests VALUES (1, 1, pg_catalog.now(), 'purchase', 'account_admin')$$);
SELECT * FROM public.attempt($$INSERT INTO public.refund_requests VALUES (2, 9, pg_catalog.now(), 'purchase', 'account_admin')$$);
SELECT * FROM public.attempt($$INSERT INTO public.refund_requests VALUES (3, 12345, pg_catalog.now(), 'purchase', 'account_admin')$$);
SELECT * FROM public.attempt($$INSERT INTO public.refund_requests VALUES (4, 10, pg_catalog.now(), 'tax', 'mpn_partner_admin')$$);
SELECT * FROM public.attempt($$UPDATE public.purchases SET refunded_at = pg_catalog.now() WHERE id OPERATOR(pg_catalog.=) 1$$);
SELECT * FROM public.attempt($$UPDATE public.purchases SET refunded_at = pg_catalog.now() WHERE id OPERATOR(pg_catalog.=) 2$$);
SET search_path = '';
SELECT * FROM public.attempt($$INSERT INTO public.refund_requests VALUES (5, 5, pg_catalog.now(), 'purchase', 'mpn_partner_admin')$$);
SELECT * FROM public.attempt($$INSERT INTO public.refund_requests VALUES (6, 8, pg_catalog.now(), 'purchase', 'mpn_partner_admin')$$);
SELECT id, purchase_id, kind FROM public.refund_requests ORDER BY id;
SELECT id FROM public.purchases WHERE refunded_at IS NOT NULL ORDER BY id;

-- An application role needs nothing but INSERT on the requests table: the
-- trigger and the foreign key read the purchases as their owner.
SET search_path = public, pg_catalog;
GRANT INSERT ON refund_requests TO regress_rr_app;
SET ROLE regress_rr_app;
SELECT * FROM public.attempt($$INSERT INTO refund_requests VALUES (7, 7, now(), 'purchase', 'account_admin')$$);
SELECT * FROM public.attempt($$INSERT INTO refund_requests VALUES (8, 8, now(), 'purchase', 'account_admin')$$);
SELECT count(*) FROM purchases;
\echo :LAST_ERROR_SQLSTATE
-- The schema is usable by PUBLIC and the functions executable by PUBLIC,
-- so any role can call them by name.
SELECT has_schema_privilege('refund_rules', 'USAGE') AS schema_usage,
       refund_rules.refund_deadline('2024-03-01 00:00+00');
SET ROLE regress_rr_owner;
SELECT count(*) AS requests FROM refund_requests;

-- The owner can update and drop it; the CHECK constraint holds it until then.
ALTER EXTENSION refund_rules UPDATE;
\set VERBOSITY terse
DROP EXTENSION refund_rules;
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
DROP TABLE refund_requests, purchases, purchases_text, answers;
DROP FUNCTION plan_of(text);
DROP EXTENSION refund_rules;
-- The schema that CREATE EXTENSION made is not a member: it stays, empty,
-- a superuser's to drop.
SELECT n.nspname, count(c.objid) AS objects_in_it
  FROM pg_namespace n LEFT JOIN pg_depend c
       ON c.refclassid = 'pg_namespace'::regclass AND c.refobjid = n.oid
 WHERE n.nspname = 'refund_rules' GROUP BY n.nspname;
RESET ROLE;
DROP SCHEMA refund_rules;

\c :orig_db
SET client_min_messages = warning;
DROP DATABASE regress_rr_owner_db;
DROP ROLE regress_rr_owner;
DROP ROLE regress_rr_app;
