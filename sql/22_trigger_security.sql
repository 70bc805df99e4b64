--
-- 22_trigger_security: an unprivileged role cannot get a forbidden refund in
--
-- regress_enf_clerk owns nothing and may only INSERT into the refund
-- requests (plus USAGE on the schema and the sequence).  It needs no
-- privilege on the purchases (the trigger reads them as their owner, like a
-- foreign key), and nothing it can do changes the verdict: look-alike
-- purchases tables (a schema earlier on its search_path, a temporary table),
-- a look-alike = operator, any SET it may run (search_path, TimeZone,
-- DateStyle, IntervalStyle, ...), row-level security on the purchases.
-- The owner of a request table must be able to reference the purchases
-- (the trigger finds them through the request table's foreign key).
-- The purchases belong to regress_enf_sales (not a superuser, so that
-- row-level security could apply to it).  The trigger judges at the
-- database's clock, so every request is written with now() and the
-- purchases are placed relative to now(), at least an hour from any edge of
-- a window (the edges to the microsecond are 11_windows' and
-- 20_check_refund's); moments in a HINT are written as T.
--
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_enf_clerk;
DROP ROLE IF EXISTS regress_enf_sales;
DROP ROLE IF EXISTS regress_enf_other;
CREATE SCHEMA enf_sec;
CREATE SCHEMA enf_sec_fake;
CREATE SCHEMA enf_sec_test;
CREATE SCHEMA enf_sec_other;
RESET client_min_messages;
\set VERBOSITY default
\set SHOW_CONTEXT never

-- What a statement got, with the moments in the HINT written as T.
CREATE FUNCTION enf_sec_test.attempt(stmt text, OUT code text, OUT message text, OUT detail text, OUT hint text)
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
GRANT EXECUTE ON FUNCTION enf_sec_test.attempt(text) TO PUBLIC;

CREATE TABLE enf_sec.purchases (
    id                          integer PRIMARY KEY,
    offer                       refund_rules.mpn_offer,
    purchased_at                timestamptz,
    benefits_activated          boolean,
    product_keys_viewed         boolean,
    upgraded_with_gold_discount boolean,
    tax_exempt                  boolean
);
-- 1: both windows open, refundable (not tax exempt); 2: benefits
-- activated; 3: only the tax window open (31 days ago); 4: only the tax
-- window open, otherwise refundable; 5: not yet purchased (tomorrow);
-- 6: both windows closed (400 days ago), tax exempt.
INSERT INTO enf_sec.purchases VALUES
  (1, 'gold', now() - interval '5 days', false, false, false, false),
  (2, 'silver', now() - interval '5 days', true, false, false, false),
  (3, 'action_pack', now() - interval '31 days', true, true, false, true),
  (4, 'gold', now() - interval '31 days', false, false, false, true),
  (5, 'gold', now() + interval '1 day', false, false, false, true),
  (6, 'gold', now() - interval '400 days', false, false, false, true);
CREATE TABLE enf_sec.refund_requests (
    id                serial PRIMARY KEY,
    purchase_id       integer REFERENCES enf_sec.purchases,
    requested_at      timestamptz DEFAULT now(),
    kind              refund_rules.refund_kind NOT NULL DEFAULT 'purchase',
    requested_by_role text
);
CREATE TRIGGER refund_policy
  AFTER INSERT OR UPDATE ON enf_sec.refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
CREATE ROLE regress_enf_sales NOLOGIN;
GRANT USAGE ON SCHEMA enf_sec TO regress_enf_sales;
ALTER TABLE enf_sec.purchases OWNER TO regress_enf_sales;

CREATE ROLE regress_enf_clerk NOLOGIN;
GRANT USAGE ON SCHEMA enf_sec TO regress_enf_clerk;
GRANT INSERT ON enf_sec.refund_requests TO regress_enf_clerk;
GRANT USAGE ON SEQUENCE enf_sec.refund_requests_id_seq TO regress_enf_clerk;

-- The look-alikes a superuser hands the clerk: a purchases table where every
-- purchase is refundable (and one more), and an integer = that is always
-- true, in a schema the clerk may put first on its search_path.
CREATE TABLE enf_sec_fake.purchases (LIKE enf_sec.purchases);
INSERT INTO enf_sec_fake.purchases
SELECT id, 'gold', now() - interval '5 days', false, false, false, true
FROM unnest(ARRAY[1, 2, 3, 4, 5, 6, 99]) id;
CREATE TABLE enf_sec_fake.refund_rules_purchases (LIKE enf_sec.purchases);
CREATE FUNCTION enf_sec_fake.always_equal(integer, integer) RETURNS boolean
  LANGUAGE sql IMMUTABLE AS 'SELECT true';
CREATE OPERATOR enf_sec_fake.= (LEFTARG = integer, RIGHTARG = integer,
                                FUNCTION = enf_sec_fake.always_equal);
GRANT USAGE ON SCHEMA enf_sec_fake TO regress_enf_clerk;
GRANT SELECT ON ALL TABLES IN SCHEMA enf_sec_fake TO regress_enf_clerk;

-- A helper the clerk runs as itself (SECURITY INVOKER, no SET clause, so the
-- clerk's settings apply inside): a fixed list of requests, one result line
-- each, written at the statement's now() (or an hour before or after it:
-- backdated, postdated; or NULL).  Only schema-qualified names and no integer
-- operators in it.
CREATE FUNCTION enf_sec_test.attempts(OUT n integer, OUT result text)
RETURNS SETOF record LANGUAGE plpgsql AS $$
DECLARE
  r record;
  msg text;
  det text;
  hnt text;
BEGIN
  FOR r IN SELECT * FROM (VALUES
      (1, 1, pg_catalog.now(), 'purchase', 'account_admin'),
      (2, 4, pg_catalog.now(), 'purchase', 'account_admin'),
      (3, 5, pg_catalog.now(), 'purchase', 'mpn_partner_admin'),
      (4, 2, pg_catalog.now(), 'purchase', 'account_admin'),
      (5, 3, pg_catalog.now(), 'tax', 'account_admin'),
      (6, 6, pg_catalog.now(), 'tax', 'account_admin'),
      (7, 3, pg_catalog.now(), 'purchase', 'account_admin'),
      (8, 1, pg_catalog.now(), 'purchase', 'billing_admin'),
      (9, 99, pg_catalog.now(), 'purchase', 'account_admin'),
      (10, 1, pg_catalog.now() OPERATOR(pg_catalog.-) '1 hour'::pg_catalog.interval, 'purchase', 'account_admin'),
      (11, 1, pg_catalog.now() OPERATOR(pg_catalog.+) '1 hour'::pg_catalog.interval, 'purchase', 'account_admin'),
      (12, 2, pg_catalog.now() OPERATOR(pg_catalog.-) '1 hour'::pg_catalog.interval, 'purchase', 'billing_admin'),
      (13, 4, NULL, 'purchase', 'account_admin')
    ) v(n, purchase_id, requested_at, kind, role)
  LOOP
    n := r.n;
    BEGIN
      INSERT INTO enf_sec.refund_requests (purchase_id, requested_at, kind, requested_by_role)
      VALUES (r.purchase_id, r.requested_at, r.kind::refund_rules.refund_kind, r.role);
      result := 'accepted';
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS result = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                              det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
      result := pg_catalog.concat_ws(' | ', result, msg, det, NULLIF(hnt, ''));
    END;
    RETURN NEXT;
  END LOOP;
END $$;
GRANT USAGE ON SCHEMA enf_sec_test TO regress_enf_clerk;

------------------------------------------------------------------------
-- 1. The clerk: INSERT only, nothing on the purchases
------------------------------------------------------------------------
SET ROLE regress_enf_clerk;
SELECT current_user,
       has_table_privilege('enf_sec.purchases', 'SELECT') AS select_purchases,
       has_table_privilege('enf_sec.purchases', 'UPDATE') AS update_purchases,
       has_table_privilege('enf_sec.refund_requests', 'SELECT') AS select_requests,
       has_table_privilege('enf_sec.refund_requests', 'INSERT') AS insert_requests;
SELECT * FROM enf_sec.purchases;
\echo SQLSTATE :SQLSTATE
-- An allowed refund goes in; forbidden ones do not.
INSERT INTO enf_sec.refund_requests (purchase_id, requested_by_role)
VALUES (1, 'account_admin');
INSERT INTO enf_sec.refund_requests (purchase_id, requested_by_role)
VALUES (2, 'account_admin');
\echo SQLSTATE :SQLSTATE
INSERT INTO enf_sec.refund_requests (purchase_id, requested_by_role)
VALUES (99, 'account_admin');
\echo SQLSTATE :SQLSTATE

-- The verdicts with the clerk's settings as they are now: the baseline.
CREATE TEMP TABLE baseline AS SELECT * FROM enf_sec_test.attempts();
SELECT * FROM baseline ORDER BY n;

------------------------------------------------------------------------
-- 2. Look-alikes on the clerk's search_path
------------------------------------------------------------------------
-- The fake schema first, before pg_catalog even: its purchases table and its
-- = operator are what an unqualified query would use.
SET search_path = enf_sec_fake, pg_catalog, enf_sec;
SELECT count(*) AS fake_rows_seen_unqualified FROM purchases WHERE id = 1;
INSERT INTO refund_requests (purchase_id, requested_by_role)
VALUES (2, 'account_admin');
\echo SQLSTATE :SQLSTATE
INSERT INTO refund_requests (purchase_id, requested_by_role)
VALUES (99, 'account_admin');
\echo SQLSTATE :SQLSTATE
SELECT count(*) AS differences
FROM enf_sec_test.attempts() a FULL JOIN pg_temp.baseline b ON a.n OPERATOR(pg_catalog.=) b.n
WHERE a.result IS DISTINCT FROM b.result;
-- A temporary look-alike: pg_temp is searched first for tables.
RESET search_path;
CREATE TEMP TABLE purchases (LIKE enf_sec_fake.purchases);
INSERT INTO purchases SELECT * FROM enf_sec_fake.purchases;
SET search_path = pg_temp, enf_sec;
SELECT count(*) AS temp_rows_seen_unqualified FROM purchases;
INSERT INTO refund_requests (purchase_id, requested_by_role)
VALUES (2, 'account_admin');
\echo SQLSTATE :SQLSTATE
SELECT count(*) AS differences
FROM enf_sec_test.attempts() a FULL JOIN pg_temp.baseline b ON a.n = b.n
WHERE a.result IS DISTINCT FROM b.result;
RESET search_path;

------------------------------------------------------------------------
-- 3. Any setting the clerk may change
------------------------------------------------------------------------
-- Each setting is SET as the clerk (set_config, the same as SET), the
-- requests are tried, and the results compared with the baseline.
CREATE TEMP TABLE tried (name text, value text, differences bigint);
CREATE FUNCTION pg_temp.try_with(name text, value text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  old text := pg_catalog.current_setting(name);
  d bigint;
BEGIN
  PERFORM pg_catalog.set_config(name, value, false);
  SELECT count(*) INTO d
  FROM enf_sec_test.attempts() a FULL JOIN pg_temp.baseline b ON a.n OPERATOR(pg_catalog.=) b.n
  WHERE a.result IS DISTINCT FROM b.result;
  PERFORM pg_catalog.set_config(name, old, false);
  RETURN d;
END $$;
INSERT INTO tried
SELECT s.name, s.value, pg_temp.try_with(s.name, s.value)
FROM (VALUES
  ('TimeZone', 'Pacific/Kiritimati'), ('TimeZone', 'Etc/GMT+12'),
  ('TimeZone', 'America/St_Johns'), ('TimeZone', 'Asia/Kathmandu'),
  ('TimeZone', '<+0530>-05:30'),
  ('DateStyle', 'SQL, DMY'), ('DateStyle', 'German'), ('DateStyle', 'Postgres, MDY'),
  ('IntervalStyle', 'sql_standard'), ('IntervalStyle', 'iso_8601'),
  ('search_path', ''), ('search_path', 'enf_sec_fake, pg_catalog, enf_sec'),
  ('search_path', 'pg_temp, enf_sec'), ('search_path', 'enf_sec_fake, enf_sec, refund_rules'),
  ('extra_float_digits', '-15'), ('lc_time', 'C'),
  ('row_security', 'off'), ('enable_indexscan', 'off'), ('enable_bitmapscan', 'off'),
  ('enable_seqscan', 'off'), ('plan_cache_mode', 'force_generic_plan'),
  ('plan_cache_mode', 'force_custom_plan'), ('transform_null_equals', 'on'),
  ('default_transaction_isolation', 'serializable'),
  ('default_transaction_read_only', 'off'), ('check_function_bodies', 'off'),
  ('client_encoding', 'LATIN1'), ('constraint_exclusion', 'off')
) s(name, value);
SELECT name, value, differences FROM tried ORDER BY name, value;
SELECT count(*) AS settings_tried, sum(differences) AS total_differences FROM tried;

-- The same through plain SET statements, reading the messages.
SET TimeZone = 'Pacific/Kiritimati';
SET DateStyle = 'SQL, DMY';
SET IntervalStyle = 'iso_8601';
SET search_path = enf_sec_fake, pg_catalog, enf_sec;
-- Outside the refund window (the look-alike says inside): refused; inside
-- it: accepted.
INSERT INTO refund_requests (purchase_id, requested_at, requested_by_role)
VALUES (4, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
INSERT INTO refund_requests (purchase_id, requested_at, requested_by_role)
VALUES (1, now(), 'mpn_partner_admin');
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
RESET IntervalStyle;
RESET search_path;

-- A role-level setting the clerk may make for itself (it applies at its
-- next login; the same values were SET above).
ALTER ROLE regress_enf_clerk SET search_path = enf_sec_fake, pg_catalog, enf_sec;
ALTER ROLE regress_enf_clerk SET TimeZone = 'Pacific/Kiritimati';
SELECT unnest(setconfig) AS role_setting FROM pg_db_role_setting
WHERE setrole = 'regress_enf_clerk'::regrole ORDER BY 1;

-- What would switch the trigger off is out of the clerk's reach.
SET session_replication_role = replica;
\echo SQLSTATE :SQLSTATE
ALTER TABLE enf_sec.refund_requests DISABLE TRIGGER refund_policy;
\echo SQLSTATE :SQLSTATE
SELECT current_user;

------------------------------------------------------------------------
-- 4. Row-level security on the purchases does not hide them from the
--    trigger (it reads as the owner, like a foreign key)
------------------------------------------------------------------------
RESET ROLE;
ALTER TABLE enf_sec.purchases ENABLE ROW LEVEL SECURITY;
ALTER TABLE enf_sec.purchases FORCE ROW LEVEL SECURITY;
CREATE POLICY nothing ON enf_sec.purchases USING (false);
SET ROLE regress_enf_sales;
SELECT count(*) AS rows_the_owner_sees FROM enf_sec.purchases;
SET ROLE regress_enf_clerk;
SELECT count(*) AS differences
FROM enf_sec_test.attempts() a FULL JOIN pg_temp.baseline b ON a.n = b.n
WHERE a.result IS DISTINCT FROM b.result;
RESET ROLE;
DROP POLICY nothing ON enf_sec.purchases;
ALTER TABLE enf_sec.purchases NO FORCE ROW LEVEL SECURITY;
ALTER TABLE enf_sec.purchases DISABLE ROW LEVEL SECURITY;

-- The purchases' own reasons the clerk was not shown, as a role that may
-- read the purchases is told them (each is refused, nothing is stored).
SELECT v.n, a.code, a.detail, a.hint
FROM (VALUES (2, 4, 'purchase'), (3, 5, 'purchase'), (4, 2, 'purchase'),
             (6, 6, 'tax'), (7, 3, 'purchase')) v(n, purchase_id, kind)
CROSS JOIN LATERAL enf_sec_test.attempt(format(
  $$INSERT INTO enf_sec.refund_requests (purchase_id, kind, requested_by_role) VALUES (%s, %L, 'account_admin')$$,
  v.purchase_id, v.kind)) a
ORDER BY v.n;

-- The purchase's reasons among the others: after the moment's, before the
-- requester's, for the clerk (purchase_not_eligible above) as here.
SELECT code, detail FROM enf_sec_test.attempt(
  $$INSERT INTO enf_sec.refund_requests (purchase_id, requested_at, requested_by_role) VALUES (2, now() - interval '1 hour', 'billing_admin')$$);
SELECT code, detail FROM enf_sec_test.attempt(
  $$INSERT INTO enf_sec.refund_requests (purchase_id, requested_at, requested_by_role) VALUES (4, NULL, 'account_admin')$$);

-- Everything the clerk got in: only the allowed refunds.
SELECT r.purchase_id, r.kind, r.requested_by_role, count(*) AS times
FROM enf_sec.refund_requests r
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;

------------------------------------------------------------------------
-- 5. The owner of a request table must be able to read and reference the purchases
------------------------------------------------------------------------
CREATE ROLE regress_enf_other NOLOGIN;
GRANT USAGE ON SCHEMA enf_sec, enf_sec_test TO regress_enf_other;
CREATE TABLE enf_sec_other.my_requests (
    purchase_id       integer,
    requested_at      timestamptz,
    requested_by_role text
);
ALTER TABLE enf_sec_other.my_requests OWNER TO regress_enf_other;
GRANT USAGE ON SCHEMA enf_sec_other TO regress_enf_other;
SET ROLE regress_enf_other;
-- Its own trigger pointing at purchases it may not read or reference:
-- refused, so the trigger cannot be used to learn what the purchases hold.
-- The trigger finds the purchases only through a foreign key, which the
-- owner cannot make without REFERENCES.
CREATE TRIGGER refund_policy
  AFTER INSERT OR UPDATE ON enf_sec_other.my_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('enf_sec.purchases', 'purchase_id');
ALTER TABLE enf_sec_other.my_requests
  ADD CONSTRAINT my_requests_purchase_fk FOREIGN KEY (purchase_id) REFERENCES enf_sec.purchases;
\echo SQLSTATE :SQLSTATE
INSERT INTO enf_sec_other.my_requests VALUES (1, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
INSERT INTO enf_sec_other.my_requests VALUES (2, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
-- Even when a superuser inserts.
RESET ROLE;
INSERT INTO enf_sec_other.my_requests VALUES (1, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
-- SELECT alone is not enough: the foreign key needs REFERENCES.
GRANT SELECT ON enf_sec.purchases TO regress_enf_other;
SET ROLE regress_enf_other;
ALTER TABLE enf_sec_other.my_requests
  ADD CONSTRAINT my_requests_purchase_fk FOREIGN KEY (purchase_id) REFERENCES enf_sec.purchases;
\echo SQLSTATE :SQLSTATE
INSERT INTO enf_sec_other.my_requests VALUES (1, now(), 'account_admin');
\echo SQLSTATE :SQLSTATE
RESET ROLE;
-- Nothing was recorded for the trigger anywhere (1.1 wrote a binding to
-- pg_depend on first use).
SELECT count(*) AS trigger_dependencies
  FROM pg_depend d JOIN pg_trigger t ON d.classid = 'pg_trigger'::regclass AND d.objid = t.oid
 WHERE t.tgrelid = 'enf_sec_other.my_requests'::regclass
   AND d.refobjid <> 'enf_sec_other.my_requests'::regclass
   AND d.refobjid <> 'refund_rules.enforce_refund_policy()'::regprocedure;
-- With SELECT and REFERENCES on the purchases it works.
GRANT REFERENCES ON enf_sec.purchases TO regress_enf_other;
SET ROLE regress_enf_other;
ALTER TABLE enf_sec_other.my_requests
  ADD CONSTRAINT my_requests_purchase_fk FOREIGN KEY (purchase_id) REFERENCES enf_sec.purchases;
INSERT INTO enf_sec_other.my_requests VALUES (1, now(), 'account_admin');
SELECT * FROM enf_sec_test.attempt($$INSERT INTO enf_sec_other.my_requests VALUES (2, now(), 'account_admin')$$);
SELECT purchase_id, requested_by_role FROM enf_sec_other.my_requests;
RESET ROLE;
-- The foreign key once made, the owner of the request table still needs
-- SELECT on the purchases for the trigger to judge.
REVOKE SELECT ON enf_sec.purchases FROM regress_enf_other;
SET ROLE regress_enf_other;
SELECT * FROM enf_sec_test.attempt($$INSERT INTO enf_sec_other.my_requests VALUES (1, now(), 'account_admin')$$);
SELECT * FROM enf_sec_test.attempt($$INSERT INTO enf_sec_other.my_requests VALUES (2, now(), 'account_admin')$$);
SELECT count(*) AS requests FROM enf_sec_other.my_requests;
RESET ROLE;

------------------------------------------------------------------------
-- Clean up
------------------------------------------------------------------------
RESET search_path;
RESET TimeZone;
RESET DateStyle;
SET client_min_messages = warning;
DROP SCHEMA enf_sec, enf_sec_fake, enf_sec_test, enf_sec_other CASCADE;
DROP OWNED BY regress_enf_clerk, regress_enf_sales, regress_enf_other;
DROP ROLE regress_enf_clerk;
DROP ROLE regress_enf_sales;
DROP ROLE regress_enf_other;
RESET client_min_messages;
SELECT count(*) AS roles_left FROM pg_roles WHERE rolname LIKE 'regress_enf_%';
