--
-- 25_trusted_enforcement: enforcement that trusts nothing the client writes
--
-- As the least-privileged role the README recommends (INSERT on the request
-- table, nothing on the purchases): the moment is the database's (a
-- backdated or postdated requested_at, a transaction held open, the
-- max_lag option, an UPDATE judged when its row is written); the requester
-- bound to the session; the purchases table bound by identity (the foreign
-- key's; without one the trigger refuses; renamed with a look-alike,
-- system columns); what a refusal reveals with and
-- without SELECT and under row-level security; the companion triggers
-- protect_refunded_purchase() and enforce_refund_moment(); composite keys;
-- a huge key in a message; states of dropped triggers freed; a refund_kind
-- label added later.
--
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET client_min_messages = warning;
CREATE SCHEMA t25;
CREATE ROLE regress_t25_app;
CREATE ROLE regress_t25_reader;
CREATE ROLE regress_t25_columns;
CREATE ROLE regress_t25_mallory;
CREATE ROLE regress_t25_partner_admins;
CREATE ROLE regress_t25_account_admins;
RESET client_min_messages;
SET search_path = t25, public;
\set VERBOSITY default
\set SHOW_CONTEXT never

-- What a statement got: SQLSTATE, message, DETAIL and HINT, with the
-- moments in the HINT (they depend on today's clock) written as T.
CREATE FUNCTION t25.attempt(stmt text, OUT code text, OUT message text, OUT detail text, OUT hint text)
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
-- The same, with the table the error names (schema.table) instead of HINT.
CREATE FUNCTION t25.attempt_table(stmt text, OUT code text, OUT detail text, OUT error_table text)
LANGUAGE plpgsql AS $$
DECLARE s text; t text;
BEGIN
  EXECUTE stmt;
  code := '00000';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, detail = PG_EXCEPTION_DETAIL,
                          s = SCHEMA_NAME, t = TABLE_NAME;
  error_table := nullif(s || '.' || t, '.');
END $$;
GRANT EXECUTE ON FUNCTION t25.attempt(text), t25.attempt_table(text) TO PUBLIC;

-- Purchases, relative to the clock (what is asserted does not depend on
-- the day the test runs).
CREATE TABLE t25.purchases (
    id                          bigint PRIMARY KEY,
    partner                     text,
    offer                       refund_rules.mpn_offer,
    purchased_at                timestamptz,
    benefits_activated          boolean,
    product_keys_viewed         boolean,
    upgraded_with_gold_discount boolean,
    tax_exempt                  boolean,
    legacy_id                   bigint UNIQUE
);
INSERT INTO t25.purchases VALUES
  (1, 'contoso', 'gold',   now() - interval '60 days', false, false, false, true),  -- the attack's
  (2, 'contoso', 'gold',   now() - interval '10 days', false, false, false, true),  -- allowed
  (4, 'fabrikam', 'silver', now() - interval '5 days',  true,  false, false, false), -- benefits used
  (5, 'fabrikam', 'gold',  now() - interval '720 hours' - interval '1 second', false, false, false, true),
  (7, 'fabrikam', 'gold',  now() - interval '3 days', false, false, false, true),
  (8, 'fabrikam', 'gold',  now() - interval '3 days', false, false, false, true),
  (9, 'fabrikam', 'gold',  now() - interval '3 days', false, false, false, true);

CREATE TABLE t25.refund_requests (
    id                bigserial PRIMARY KEY,
    purchase_id       bigint NOT NULL REFERENCES t25.purchases,
    kind              refund_rules.refund_kind NOT NULL DEFAULT 'purchase',
    requested_at      timestamptz NOT NULL DEFAULT now(),
    requested_by_role text NOT NULL,
    note              text
);
CREATE TRIGGER enforce_refund_policy
  AFTER INSERT OR UPDATE ON t25.refund_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id', 'id');

-- The application role of the README: INSERT on the requests, nothing else.
GRANT USAGE ON SCHEMA t25 TO regress_t25_app, regress_t25_reader, regress_t25_columns,
                             regress_t25_mallory;
GRANT INSERT ON t25.refund_requests TO regress_t25_app, regress_t25_reader, regress_t25_columns;
GRANT USAGE ON SEQUENCE t25.refund_requests_id_seq TO regress_t25_app, regress_t25_reader,
                                                      regress_t25_columns;
GRANT SELECT ON t25.purchases TO regress_t25_reader;

------------------------------------------------------------------------
-- 1. The database's clock decides
------------------------------------------------------------------------
SET ROLE regress_t25_app;
-- The attack of the issue: purchase 1 was bought 60 days ago; a request
-- written as made 59 days ago is refused, whatever role it claims.
SELECT * FROM attempt($$INSERT INTO t25.refund_requests (purchase_id, requested_at, requested_by_role)
                        VALUES (1, now() - interval '59 days', 'account_admin')$$);
-- Backdated by a second, by days, to -infinity: refused, even for a
-- purchase whose window is open.
SELECT * FROM attempt($$INSERT INTO t25.refund_requests (purchase_id, requested_at, requested_by_role)
                        VALUES (2, now() - interval '1 second', 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO t25.refund_requests (purchase_id, requested_at, requested_by_role)
                        VALUES (2, now() - interval '3 days', 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO t25.refund_requests (purchase_id, requested_at, requested_by_role)
                        VALUES (2, '-infinity', 'account_admin')$$);
-- A moment in the future is refused too: a moment written must be the
-- transaction's start.
SELECT * FROM attempt($$INSERT INTO t25.refund_requests (purchase_id, requested_at, requested_by_role)
                        VALUES (2, now() + interval '25 days', 'account_admin')$$);
-- Left to its default: accepted.
SELECT * FROM attempt($$INSERT INTO t25.refund_requests (purchase_id, requested_by_role)
                        VALUES (2, 'account_admin')$$);
-- Purchase 5's window closed a second before this test started: the
-- default moment cannot reopen it.
SELECT * FROM attempt($$INSERT INTO t25.refund_requests (purchase_id, requested_by_role)
                        VALUES (5, 'account_admin')$$);
RESET ROLE;

-- Column privileges as a second line of defence (the README's): INSERT on
-- the other columns only, so requested_at cannot be written at all, and
-- SELECT (id) for INSERT ... RETURNING id.
CREATE ROLE regress_t25_columns_app;
GRANT USAGE ON SCHEMA t25 TO regress_t25_columns_app;
GRANT INSERT (purchase_id, kind, requested_by_role) ON t25.refund_requests TO regress_t25_columns_app;
GRANT SELECT (id) ON t25.refund_requests TO regress_t25_columns_app;
GRANT USAGE ON SEQUENCE t25.refund_requests_id_seq TO regress_t25_columns_app;
SET ROLE regress_t25_columns_app;
SELECT * FROM attempt($$INSERT INTO t25.refund_requests (purchase_id, requested_at, requested_by_role)
                        VALUES (7, now(), 'account_admin')$$);
INSERT INTO t25.refund_requests (purchase_id, kind, requested_by_role) VALUES (7, 'tax', 'account_admin')
  RETURNING id > 0 AS got_id;
RESET ROLE;

-- A transaction held open does not keep a window open.  Purchase 3's
-- window closes 10 seconds from now: a request for it right away is
-- accepted (its window closes before a later UPDATE, below).  Purchase 6,
-- made in the transaction, has a window that closes a second after the
-- transaction started; once the clock is past it, a request in the same
-- transaction (now() is still the transaction's start, inside the window)
-- is refused.  The waits are computed from the deadlines, so a slow
-- machine only makes them shorter.
INSERT INTO t25.purchases VALUES
  (3, 'contoso', 'gold', clock_timestamp() - interval '720 hours' + interval '10 seconds', false, false, false, true);
SET ROLE regress_t25_reader;
BEGIN;
SELECT * FROM attempt($$INSERT INTO t25.refund_requests (purchase_id, requested_by_role)
                        VALUES (3, 'account_admin')$$);
RESET ROLE;
INSERT INTO t25.purchases VALUES
  (6, 'contoso', 'gold', now() - interval '720 hours' + interval '1 second', false, false, false, true);
SET ROLE regress_t25_reader;
SELECT FROM pg_sleep(greatest(0, extract(epoch FROM
  (SELECT purchased_at + interval '720 hours' FROM t25.purchases WHERE id = 6) - clock_timestamp())) + 0.5);
SELECT now() < (SELECT purchased_at + interval '720 hours' FROM t25.purchases WHERE id = 6)
       AS transaction_started_in_the_window,
       clock_timestamp() > (SELECT purchased_at + interval '720 hours' FROM t25.purchases WHERE id = 6)
       AS window_closed_since;
SELECT * FROM attempt($$INSERT INTO t25.refund_requests (purchase_id, requested_by_role)
                        VALUES (6, 'account_admin')$$);
COMMIT;
RESET ROLE;

-- A statement held open does not keep a window open either: the row is
-- judged when it is written (the statement makes purchase 11, whose window
-- closes a second after the statement starts; the row comes after 2).
SELECT * FROM attempt($$WITH p AS (
                          INSERT INTO t25.purchases VALUES (11, 'contoso', 'gold',
                            now() - interval '720 hours' + interval '1 second', false, false, false, true)
                          RETURNING id)
                        INSERT INTO t25.refund_requests (purchase_id, requested_by_role)
                        SELECT id, 'account_admin' FROM p, pg_sleep(2)$$);
-- A moment in the future is no more the database's: a purchase not yet
-- made cannot be refunded by writing a moment after it.
INSERT INTO t25.purchases VALUES
  (12, 'contoso', 'gold', now() + interval '1 day', false, false, false, true);
SET ROLE regress_t25_reader;
SELECT * FROM attempt($$INSERT INTO t25.refund_requests (purchase_id, requested_at, requested_by_role)
                        VALUES (12, now() + interval '2 days', 'account_admin')$$);
RESET ROLE;

-- An UPDATE that changes a checked column is judged at the clock when its
-- row is written; one that changes nothing checked is not checked (the
-- wait ends once purchase 3's window has closed).
DO $$
BEGIN
  PERFORM pg_sleep(greatest(0, extract(epoch FROM
    (SELECT purchased_at + interval '720 hours' FROM t25.purchases WHERE id = 3) - clock_timestamp())) + 0.5);
END $$;
UPDATE t25.refund_requests SET note = 'window closed since' WHERE purchase_id = 3;
SELECT * FROM attempt($$UPDATE t25.refund_requests SET requested_by_role = 'mpn_partner_admin'
                        WHERE purchase_id = 3$$);
SELECT * FROM attempt($$UPDATE t25.refund_requests SET requested_at = requested_at - interval '1 day'
                        WHERE purchase_id = 2 AND requested_at <= now()$$);
SELECT purchase_id, requested_by_role, note FROM t25.refund_requests ORDER BY id;

-- max_lag allows an application's own clock to lag, never more than asked,
-- and never moves the judged moment earlier than the statement.
CREATE TABLE t25.orm_requests (
    purchase_id       bigint NOT NULL REFERENCES t25.purchases,
    requested_at      timestamptz NOT NULL,
    requested_by_role text NOT NULL
);
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t25.orm_requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id', 'max_lag=5 seconds');
GRANT INSERT ON t25.orm_requests TO regress_t25_reader;
SET ROLE regress_t25_reader;
SELECT * FROM attempt($$INSERT INTO t25.orm_requests VALUES (2, now() - interval '3 seconds', 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO t25.orm_requests VALUES (2, now() - interval '6 seconds', 'account_admin')$$);
RESET ROLE;
-- A window that closed a second ago: a moment 3 seconds ago would be
-- inside it, but the purchase is judged at the clock.
INSERT INTO t25.purchases VALUES
  (10, 'contoso', 'gold', clock_timestamp() - interval '720 hours' - interval '1 second', false, false, false, true);
SET ROLE regress_t25_reader;
SELECT * FROM attempt($$INSERT INTO t25.orm_requests VALUES (10, now() - interval '3 seconds', 'account_admin')$$);
RESET ROLE;
SELECT count(*) AS orm_requests FROM t25.orm_requests;
-- Within max_lag a moment after the clock is accepted, but the purchase
-- is still judged at the clock: a purchase not yet made is not refunded by
-- writing a moment after it.
INSERT INTO t25.purchases VALUES
  (13, 'contoso', 'gold', now() + interval '10 minutes', false, false, false, true);
CREATE TABLE t25.lagged_requests (LIKE t25.orm_requests,
                                  FOREIGN KEY (purchase_id) REFERENCES t25.purchases);
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t25.lagged_requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id', 'max_lag=1 hour');
GRANT INSERT, UPDATE, SELECT ON t25.lagged_requests TO regress_t25_reader;
SET ROLE regress_t25_reader;
SELECT * FROM attempt($$INSERT INTO t25.lagged_requests VALUES (13, now() + interval '50 minutes', 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO t25.lagged_requests VALUES (2, now() + interval '50 minutes', 'account_admin')$$);
RESET ROLE;
-- The moment recorded must lie in the window of the purchase the request
-- names: moving a request to a purchase made after it is refused.
INSERT INTO t25.lagged_requests VALUES (7, now(), 'account_admin');
INSERT INTO t25.purchases VALUES
  (14, 'contoso', 'gold', clock_timestamp(), false, false, false, true);
SELECT * FROM attempt($$UPDATE t25.lagged_requests SET purchase_id = 14 WHERE purchase_id = 7$$);
-- The lag is bounded: from 0 to one hour, in hours, minutes or seconds.
CREATE TABLE t25.lag_requests (LIKE t25.orm_requests,
                               FOREIGN KEY (purchase_id) REFERENCES t25.purchases);
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t25.lag_requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id', 'max_lag=2 hours');
SELECT * FROM attempt($$INSERT INTO t25.lag_requests VALUES (2, now(), 'account_admin')$$);
DROP TRIGGER enforce ON t25.lag_requests;
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t25.lag_requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id', 'max_lag=-1 second');
SELECT * FROM attempt($$INSERT INTO t25.lag_requests VALUES (2, now(), 'account_admin')$$);
DROP TRIGGER enforce ON t25.lag_requests;
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t25.lag_requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id', 'max_lag=1 day');
SELECT * FROM attempt($$INSERT INTO t25.lag_requests VALUES (2, now(), 'account_admin')$$);
DROP TRIGGER enforce ON t25.lag_requests;
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t25.lag_requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id', 'max_lag=soon');
SELECT * FROM attempt($$INSERT INTO t25.lag_requests VALUES (2, now(), 'account_admin')$$);

-- requested_at must be timestamptz: a timestamp column's DEFAULT now()
-- follows the session's TimeZone.
CREATE TABLE t25.local_requests (
    purchase_id       bigint REFERENCES t25.purchases,
    requested_at      timestamp DEFAULT now(),
    requested_by_role text
);
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t25.local_requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
SELECT * FROM attempt($$INSERT INTO t25.local_requests (purchase_id, requested_by_role) VALUES (2, 'account_admin')$$);

------------------------------------------------------------------------
-- 2. The requester bound to the session
------------------------------------------------------------------------
CREATE TABLE t25.session_requests (
    purchase_id       bigint NOT NULL REFERENCES t25.purchases,
    requested_at      timestamptz NOT NULL DEFAULT now(),
    requested_by_role text
);
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t25.session_requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id',
      'requester=session', 'mpn_partner_admin_role=regress_t25_partner_admins',
      'account_admin_role=regress_t25_account_admins');
GRANT INSERT ON t25.session_requests TO regress_t25_app;
-- Not a member of either role: refused, whatever the row says.
SET ROLE regress_t25_app;
SELECT * FROM attempt($$INSERT INTO t25.session_requests (purchase_id, requested_by_role)
                        VALUES (2, 'account_admin')$$);
RESET ROLE;
-- A member of the account admins: the row is not rewritten, so what the
-- client writes in requested_by_role must name the capacity the session
-- acts in: a role that is no capacity, none at all, or a capacity the
-- session does not hold is refused; account_admin is accepted.
GRANT regress_t25_account_admins TO regress_t25_app;
SET ROLE regress_t25_app;
SELECT * FROM attempt($$INSERT INTO t25.session_requests (purchase_id, requested_by_role)
                        VALUES (2, 'billing_clerk')$$);
SELECT * FROM attempt($$INSERT INTO t25.session_requests (purchase_id) VALUES (7)$$);
SELECT * FROM attempt($$INSERT INTO t25.session_requests (purchase_id, requested_by_role)
                        VALUES (7, 'mpn_partner_admin')$$);
SELECT * FROM attempt($$INSERT INTO t25.session_requests (purchase_id, requested_by_role)
                        VALUES (2, 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO t25.session_requests (purchase_id, requested_by_role)
                        VALUES (7, 'account_admin')$$);
RESET ROLE;
GRANT regress_t25_partner_admins TO regress_t25_app;
SET ROLE regress_t25_app;
SELECT * FROM attempt($$INSERT INTO t25.session_requests (purchase_id) VALUES (8)$$);
SELECT * FROM attempt($$INSERT INTO t25.session_requests (purchase_id, requested_by_role)
                        VALUES (8, 'mpn_partner_admin')$$);
RESET ROLE;
SELECT purchase_id, requested_by_role FROM t25.session_requests ORDER BY purchase_id;
-- A superuser is not automatically any role; a membership that does not
-- inherit the role's privileges does not count.
SELECT * FROM attempt($$INSERT INTO t25.session_requests (purchase_id, requested_by_role)
                        VALUES (9, 'account_admin')$$);
CREATE ROLE regress_t25_noinherit NOINHERIT IN ROLE regress_t25_account_admins;
GRANT USAGE ON SCHEMA t25 TO regress_t25_noinherit;
GRANT INSERT ON t25.session_requests TO regress_t25_noinherit;
SET ROLE regress_t25_noinherit;
SELECT * FROM attempt($$INSERT INTO t25.session_requests (purchase_id, requested_by_role)
                        VALUES (9, 'account_admin')$$);
RESET ROLE;
-- Revoked: refused at once, in the same session.
REVOKE regress_t25_account_admins, regress_t25_partner_admins FROM regress_t25_app;
SET ROLE regress_t25_app;
SELECT * FROM attempt($$INSERT INTO t25.session_requests (purchase_id, requested_by_role)
                        VALUES (9, 'mpn_partner_admin')$$);
RESET ROLE;
-- Without a requested_by_role column, session mode needs none.
CREATE TABLE t25.session_only (purchase_id bigint NOT NULL REFERENCES t25.purchases,
                               requested_at timestamptz NOT NULL DEFAULT now());
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t25.session_only FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id', 'id',
      'requester=session', 'account_admin_role=regress_t25_account_admins');
GRANT INSERT ON t25.session_only TO regress_t25_app;
SET ROLE regress_t25_app;
SELECT * FROM attempt($$INSERT INTO t25.session_only VALUES (9)$$);
RESET ROLE;
GRANT regress_t25_account_admins TO regress_t25_app;
SET ROLE regress_t25_app;
SELECT * FROM attempt($$INSERT INTO t25.session_only VALUES (9)$$);
RESET ROLE;
REVOKE regress_t25_account_admins FROM regress_t25_app;
-- Bad options: each at first use.
CREATE TABLE t25.bad_options (LIKE t25.session_requests,
                              FOREIGN KEY (purchase_id) REFERENCES t25.purchases);
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t25.bad_options FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id', 'requester=session');
SELECT * FROM attempt($$INSERT INTO t25.bad_options VALUES (2, now(), NULL)$$);
DROP TRIGGER enforce ON t25.bad_options;
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t25.bad_options FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id',
      'requester=session', 'account_admin_role=regress_t25_nobody');
SELECT * FROM attempt($$INSERT INTO t25.bad_options VALUES (2, now(), NULL)$$);
DROP TRIGGER enforce ON t25.bad_options;
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t25.bad_options FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id',
      'account_admin_role=regress_t25_account_admins');
SELECT * FROM attempt($$INSERT INTO t25.bad_options VALUES (2, now(), 'account_admin')$$);
DROP TRIGGER enforce ON t25.bad_options;
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t25.bad_options FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id', 'requester=whoever');
SELECT * FROM attempt($$INSERT INTO t25.bad_options VALUES (2, now(), 'account_admin')$$);

------------------------------------------------------------------------
-- 3. The purchases table bound by identity
------------------------------------------------------------------------
-- Mallory may create tables in the schema, not read the purchases.
GRANT CREATE ON SCHEMA t25 TO regress_t25_mallory;
-- With a foreign key: after a rename, a look-alike under the old name is
-- refused, not read.
ALTER TABLE t25.purchases RENAME TO purchases_2026;
SET ROLE regress_t25_mallory;
CREATE TABLE t25.purchases (id bigint PRIMARY KEY, offer refund_rules.mpn_offer,
    purchased_at timestamptz, benefits_activated boolean, product_keys_viewed boolean,
    upgraded_with_gold_discount boolean, tax_exempt boolean);
INSERT INTO t25.purchases VALUES (4, 'silver', now(), false, false, false, true);
GRANT SELECT, REFERENCES ON t25.purchases TO PUBLIC;
RESET ROLE;
SET ROLE regress_t25_app;
SELECT * FROM attempt($$INSERT INTO t25.refund_requests (purchase_id, requested_by_role)
                        VALUES (4, 'account_admin')$$);
RESET ROLE;
-- The trigger's first argument must name the referenced table.
CREATE TABLE t25.fk_mismatch (purchase_id bigint REFERENCES t25.purchases_2026,
                              requested_at timestamptz DEFAULT now(), requested_by_role text);
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t25.fk_mismatch FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
SELECT * FROM attempt($$INSERT INTO t25.fk_mismatch (purchase_id, requested_by_role) VALUES (4, 'account_admin')$$);
DROP TABLE t25.purchases;   -- Mallory's
ALTER TABLE t25.purchases_2026 RENAME TO purchases;
SELECT * FROM attempt($$INSERT INTO t25.refund_requests (purchase_id, requested_by_role)
                        VALUES (4, 'account_admin')$$);
-- The key must be the one the foreign key references.
CREATE TABLE t25.by_partner (purchase_id bigint REFERENCES t25.purchases,
                             requested_at timestamptz DEFAULT now(), requested_by_role text);
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t25.by_partner FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id', 'legacy_id');
SELECT * FROM attempt($$INSERT INTO t25.by_partner (purchase_id, requested_by_role) VALUES (4, 'account_admin')$$);
-- Without a foreign key: refused, with the foreign key to add; nothing is
-- bound on first use (pg_depend gets no row).
CREATE TABLE t25.loose_requests (purchase_id bigint, requested_at timestamptz DEFAULT now(),
                                 requested_by_role text);
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t25.loose_requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
GRANT INSERT ON t25.loose_requests TO regress_t25_app;
SET ROLE regress_t25_app;
SELECT * FROM attempt($$INSERT INTO t25.loose_requests (purchase_id, requested_by_role) VALUES (2, 'account_admin')$$);
RESET ROLE;
SELECT pg_describe_object(classid, objid, objsubid) AS dependent,
       pg_describe_object(refclassid, refobjid, refobjsubid) AS bound_to, deptype
  FROM pg_depend WHERE classid = 'pg_trigger'::regclass AND refclassid = 'pg_class'::regclass
   AND refobjid = 't25.purchases'::regclass ORDER BY 1;
-- It cannot be dropped while the foreign keys reference it (the trigger
-- adds nothing); renamed, with a look-alike under its name, the trigger
-- without a foreign key still reads nothing.
SELECT * FROM attempt($$DROP TABLE t25.purchases$$);
ALTER TABLE t25.purchases RENAME TO purchases_2026;
SET ROLE regress_t25_mallory;
CREATE TABLE t25.purchases (id bigint PRIMARY KEY, offer refund_rules.mpn_offer,
    purchased_at timestamptz, benefits_activated boolean, product_keys_viewed boolean,
    upgraded_with_gold_discount boolean, tax_exempt boolean);
INSERT INTO t25.purchases VALUES (4, 'silver', now(), false, false, false, true);
GRANT SELECT, REFERENCES ON t25.purchases TO PUBLIC;
RESET ROLE;
SET ROLE regress_t25_app;
SELECT * FROM attempt($$INSERT INTO t25.loose_requests (purchase_id, requested_by_role) VALUES (4, 'account_admin')$$);
RESET ROLE;
DROP TABLE t25.purchases;
ALTER TABLE t25.purchases_2026 RENAME TO purchases;
-- With the foreign key added, the purchase it references is read.
ALTER TABLE t25.loose_requests ADD FOREIGN KEY (purchase_id) REFERENCES t25.purchases;
SET ROLE regress_t25_app;
SELECT * FROM attempt($$INSERT INTO t25.loose_requests (purchase_id, requested_by_role) VALUES (4, 'account_admin')$$);
RESET ROLE;
-- System columns are not keys.
CREATE TABLE t25.sys_requests (purchase_id bigint REFERENCES t25.purchases,
                               requested_at timestamptz DEFAULT now(), requested_by_role text);
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t25.sys_requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id', 'ctid');
SELECT * FROM attempt($$INSERT INTO t25.sys_requests (purchase_id, requested_by_role) VALUES (2, 'account_admin')$$);
DROP TRIGGER enforce ON t25.sys_requests;
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t25.sys_requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'ctid');
SELECT * FROM attempt($$INSERT INTO t25.sys_requests (purchase_id, requested_by_role) VALUES (2, 'account_admin')$$);

------------------------------------------------------------------------
-- 4. What a refusal reveals
------------------------------------------------------------------------
-- Purchase 4 has its benefits activated.  Without SELECT on the purchases:
-- the refusal, not the purchase's state; the request's own reasons stay.
SET ROLE regress_t25_app;
SELECT * FROM attempt($$INSERT INTO t25.refund_requests (purchase_id, requested_by_role)
                        VALUES (4, 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO t25.refund_requests (purchase_id, requested_at, requested_by_role)
                        VALUES (4, now() - interval '1 hour', 'intern')$$);
RESET ROLE;
-- With SELECT on the table: everything.
SET ROLE regress_t25_reader;
SELECT * FROM attempt($$INSERT INTO t25.refund_requests (purchase_id, requested_by_role)
                        VALUES (4, 'account_admin')$$);
RESET ROLE;
-- With SELECT on some policy columns only: not shown; on all of them: shown.
GRANT SELECT (id, offer, benefits_activated) ON t25.purchases TO regress_t25_columns;
SET ROLE regress_t25_columns;
SELECT * FROM attempt($$INSERT INTO t25.refund_requests (purchase_id, requested_by_role)
                        VALUES (4, 'account_admin')$$);
RESET ROLE;
GRANT SELECT (purchased_at, product_keys_viewed, upgraded_with_gold_discount, tax_exempt)
  ON t25.purchases TO regress_t25_columns;
SET ROLE regress_t25_columns;
SELECT * FROM attempt($$INSERT INTO t25.refund_requests (purchase_id, requested_by_role)
                        VALUES (4, 'account_admin')$$);
RESET ROLE;
-- Under row-level security, even with SELECT: not shown.
ALTER TABLE t25.purchases ENABLE ROW LEVEL SECURITY;
CREATE POLICY everything ON t25.purchases FOR SELECT USING (true);
SET ROLE regress_t25_reader;
SELECT * FROM attempt($$INSERT INTO t25.refund_requests (purchase_id, requested_by_role)
                        VALUES (4, 'account_admin')$$);
RESET ROLE;
ALTER TABLE t25.purchases DISABLE ROW LEVEL SECURITY;
-- A huge key is clipped in the refusal (a missing one is the foreign
-- key's to report).
CREATE TABLE t25.text_keyed (sku text PRIMARY KEY, offer refund_rules.mpn_offer, purchased_at timestamptz,
    benefits_activated boolean, product_keys_viewed boolean, upgraded_with_gold_discount boolean);
INSERT INTO t25.text_keyed VALUES (repeat('k', 100000), 'gold', now() - interval '2 days', true, false, false);
CREATE TABLE t25.text_requests (sku text REFERENCES t25.text_keyed, requested_at timestamptz DEFAULT now(),
                                requested_by_role text);
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t25.text_requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('text_keyed', 'sku', 'sku');
SELECT code, left(message, 40) AS message_start, length(message) < 300 AS short_message,
       detail, length(hint) < 300 AS short_hint
  FROM attempt($$INSERT INTO t25.text_requests (sku, requested_by_role) VALUES (repeat('k', 100000), 'account_admin')$$);

------------------------------------------------------------------------
-- 5. Composite keys, matched pairwise like a multi-column foreign key
------------------------------------------------------------------------
CREATE TABLE t25.partner_purchases (
    partner text, id integer, offer refund_rules.mpn_offer, purchased_at timestamptz,
    benefits_activated boolean, product_keys_viewed boolean, upgraded_with_gold_discount boolean,
    tax_exempt boolean, PRIMARY KEY (partner, id));
INSERT INTO t25.partner_purchases VALUES
  ('contoso', 1, 'gold', now() - interval '2 days', false, false, false, true),
  ('fabrikam', 1, 'gold', now() - interval '2 days', true, false, false, true);
CREATE TABLE t25.partner_requests (
    partner text, purchase_id bigint, requested_at timestamptz NOT NULL DEFAULT now(),
    requested_by_role text NOT NULL,
    FOREIGN KEY (partner, purchase_id) REFERENCES t25.partner_purchases (partner, id));
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t25.partner_requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('partner_purchases', 'partner, purchase_id', 'partner, id');
SELECT * FROM attempt($$INSERT INTO t25.partner_requests (partner, purchase_id, requested_by_role)
                        VALUES ('contoso', 1, 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO t25.partner_requests (partner, purchase_id, requested_by_role)
                        VALUES ('fabrikam', 1, 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO t25.partner_requests (partner, purchase_id, requested_by_role)
                        VALUES ('northwind', 1, 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO t25.partner_requests (partner, purchase_id, requested_by_role)
                        VALUES (NULL, 1, 'account_admin')$$);
-- The pairs must follow the foreign key; the lists must be as long.
CREATE TABLE t25.pair_purchases (a integer, b integer, offer refund_rules.mpn_offer, purchased_at timestamptz,
    benefits_activated boolean, product_keys_viewed boolean, upgraded_with_gold_discount boolean,
    PRIMARY KEY (a, b));
INSERT INTO t25.pair_purchases VALUES (1, 2, 'gold', now(), false, false, false);
CREATE TABLE t25.pair_requests (x integer, y integer, requested_at timestamptz DEFAULT now(),
    requested_by_role text, FOREIGN KEY (x, y) REFERENCES t25.pair_purchases (a, b));
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t25.pair_requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('pair_purchases', 'y, x', 'a, b');
SELECT * FROM attempt($$INSERT INTO t25.pair_requests (x, y, requested_by_role) VALUES (1, 2, 'account_admin')$$);
DROP TRIGGER enforce ON t25.pair_requests;
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t25.pair_requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('pair_purchases', 'x, y', 'a');
SELECT * FROM attempt($$INSERT INTO t25.pair_requests (x, y, requested_by_role) VALUES (1, 2, 'account_admin')$$);
DROP TRIGGER enforce ON t25.pair_requests;
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t25.pair_requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('pair_purchases', 'x, y', 'a, b');
SELECT * FROM attempt($$INSERT INTO t25.pair_requests (x, y, requested_by_role) VALUES (1, 2, 'account_admin')$$);
SELECT partner, purchase_id FROM t25.partner_requests;

-- varchar keys compare as text does (the operator class's type).
CREATE TABLE t25.vc_purchases (code varchar(20) PRIMARY KEY, offer refund_rules.mpn_offer,
    purchased_at timestamptz, benefits_activated boolean, product_keys_viewed boolean,
    upgraded_with_gold_discount boolean);
INSERT INTO t25.vc_purchases VALUES ('G-1', 'gold', now() - interval '2 days', false, false, false);
CREATE TABLE t25.vc_requests (code varchar(20) REFERENCES t25.vc_purchases,
    requested_at timestamptz DEFAULT now(), requested_by_role text);
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t25.vc_requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('vc_purchases', 'code', 'code');
SELECT * FROM attempt($$INSERT INTO t25.vc_requests (code, requested_by_role) VALUES ('G-1', 'account_admin')$$);
SELECT * FROM attempt($$INSERT INTO t25.vc_requests (code, requested_by_role) VALUES ('G-2', 'account_admin')$$);
CREATE TABLE t25.text_refs (code text REFERENCES t25.vc_purchases, requested_at timestamptz DEFAULT now(),
                            requested_by_role text);
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t25.text_refs FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('vc_purchases', 'code', 'code');
SELECT * FROM attempt($$INSERT INTO t25.text_refs (code, requested_by_role) VALUES ('G-1', 'account_admin')$$);

------------------------------------------------------------------------
-- 6. An accepted request protects its purchase
------------------------------------------------------------------------
CREATE CONSTRAINT TRIGGER protect AFTER INSERT OR UPDATE ON t25.purchases FROM refund_requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.protect_refunded_purchase('refund_requests', 'purchase_id', 'id');
-- Purchase 2 has an accepted request: no activation, no key view, no new
-- key (that one the foreign key refuses first: its check fires before).
SELECT * FROM attempt($$UPDATE t25.purchases SET benefits_activated = true WHERE id = 2$$);
SELECT * FROM attempt($$UPDATE t25.purchases SET product_keys_viewed = true WHERE id = 2$$);
SELECT * FROM attempt($$UPDATE t25.purchases SET id = 20 WHERE id = 2$$);
-- Other columns may change; purchases without a request may be activated.
SELECT * FROM attempt($$UPDATE t25.purchases SET partner = 'contoso ltd' WHERE id = 2$$);
SELECT * FROM attempt($$UPDATE t25.purchases SET benefits_activated = true WHERE id = 9$$);
SELECT id, partner, benefits_activated, product_keys_viewed FROM t25.purchases WHERE id IN (2, 9) ORDER BY id;
-- The purchases table's owner must be allowed to read the requests (the
-- owner may make the trigger FROM them: TRIGGER, not SELECT).
CREATE ROLE regress_t25_owner2;
GRANT USAGE, CREATE ON SCHEMA t25 TO regress_t25_owner2;
SET ROLE regress_t25_owner2;
CREATE TABLE t25.other_purchases (id bigint PRIMARY KEY, benefits_activated boolean);
INSERT INTO t25.other_purchases VALUES (1, false);
RESET ROLE;
CREATE TABLE t25.other_requests (purchase_id bigint REFERENCES t25.other_purchases,
                                 requested_at timestamptz DEFAULT now(), requested_by_role text);
GRANT TRIGGER ON t25.other_requests TO regress_t25_owner2;
SET ROLE regress_t25_owner2;
CREATE CONSTRAINT TRIGGER protect AFTER INSERT OR UPDATE ON t25.other_purchases FROM other_requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.protect_refunded_purchase('other_requests', 'purchase_id');
SELECT * FROM attempt($$UPDATE t25.other_purchases SET benefits_activated = true$$);
RESET ROLE;
DROP TABLE t25.other_requests;
DROP TABLE t25.other_purchases;
-- Misuse: it is an AFTER INSERT OR UPDATE constraint trigger; a BEFORE
-- INSERT one is refused at its first fire.
CREATE TRIGGER protect_insert BEFORE INSERT ON t25.purchases FOR EACH ROW
  EXECUTE FUNCTION refund_rules.protect_refunded_purchase('refund_requests', 'purchase_id');
SELECT code, message, detail, hint LIKE 'Recreate it: CREATE %' AS hint_recreates
  FROM attempt($$INSERT INTO t25.purchases (id) VALUES (99)$$);
DROP TRIGGER protect_insert ON t25.purchases;

------------------------------------------------------------------------
-- 7. The check-constraint pattern cannot be backdated either
------------------------------------------------------------------------
CREATE TABLE t25.memberships (
    id                          integer PRIMARY KEY,
    offer                       refund_rules.mpn_offer,
    purchased_at                timestamptz,
    benefits_activated          boolean,
    product_keys_viewed         boolean,
    upgraded_with_gold_discount boolean,
    refunded_at                 timestamptz,
    CONSTRAINT refund_allowed
      CHECK (refunded_at IS NULL OR refund_rules.check_refund(memberships, refunded_at))
);
INSERT INTO t25.memberships VALUES
  (1, 'gold', now() - interval '60 days', false, false, false, NULL),
  (2, 'gold', now() - interval '10 days', false, false, false, NULL),
  (3, 'gold', now() - interval '10 days', false, false, false, NULL);
CREATE TRIGGER refund_moment AFTER INSERT OR UPDATE ON t25.memberships FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_moment();
GRANT USAGE ON SCHEMA t25 TO regress_t25_app;
GRANT UPDATE (refunded_at) ON t25.memberships TO regress_t25_app;
GRANT SELECT (id) ON t25.memberships TO regress_t25_app;
SET ROLE regress_t25_app;
-- Backdated into the closed window of membership 1: refused, for a role that
-- may not read the purchase exactly as the CHECK refuses (nothing tells which).
SELECT * FROM attempt($$UPDATE t25.memberships SET refunded_at = now() - interval '59 days' WHERE id = 1$$);
-- now(): accepted for membership 2.
SELECT * FROM attempt($$UPDATE t25.memberships SET refunded_at = now() WHERE id = 2$$);
RESET ROLE;
-- The guard judges the purchase at the clock: a transaction opened before
-- the window closed does not keep it open (membership 4, made in the
-- transaction, has a window that closes a second after the transaction
-- started; now() is inside it, and the CHECK constraint, judging at the
-- moment written, would let it through).
BEGIN;
INSERT INTO t25.memberships VALUES
  (4, 'gold', now() - interval '720 hours' + interval '1 second', false, false, false, NULL);
SELECT FROM pg_sleep(greatest(0, extract(epoch FROM
  (SELECT purchased_at + interval '720 hours' FROM t25.memberships WHERE id = 4) - clock_timestamp())) + 0.5);
SELECT * FROM attempt($$UPDATE t25.memberships SET refunded_at = now() WHERE id = 4$$);
COMMIT;
-- Once refunded, always refunded: refunded_at cannot be set back to NULL.
SET ROLE regress_t25_app;
SELECT * FROM attempt($$UPDATE t25.memberships SET refunded_at = NULL WHERE id = 2$$);
RESET ROLE;
-- A statement held open: the guard judges the row when it is written (the
-- statement gives membership 5 a window that closes a second after the
-- statement starts; the row comes after 2).
INSERT INTO t25.memberships VALUES
  (5, 'gold', now() - interval '10 days', false, false, false, NULL);
SELECT * FROM attempt($$UPDATE t25.memberships
                        SET purchased_at = now() - interval '720 hours' + interval '1 second', refunded_at = now()
                        WHERE id = 5 AND pg_sleep(2) IS NOT NULL$$);
-- Without the guard, the CHECK's own refusal shows a role that may not
-- read the table only that the purchase is not eligible.
CREATE TABLE t25.unguarded (LIKE t25.memberships);
ALTER TABLE t25.unguarded ADD CONSTRAINT refund_allowed
  CHECK (refunded_at IS NULL OR refund_rules.check_refund(unguarded, refunded_at));
INSERT INTO t25.unguarded VALUES (1, 'gold', now() - interval '5 days', true, false, false, NULL);
GRANT UPDATE (refunded_at), SELECT (id) ON t25.unguarded TO regress_t25_app;
SET ROLE regress_t25_app;
SELECT * FROM attempt($$UPDATE t25.unguarded SET refunded_at = now() WHERE id = 1$$);
RESET ROLE;
SELECT * FROM attempt($$UPDATE t25.unguarded SET refunded_at = now() WHERE id = 1$$);
-- The refunded membership cannot be activated (the CHECK constraint); the
-- error names the table, as the trigger's does.
SELECT * FROM attempt_table($$UPDATE t25.memberships SET benefits_activated = true WHERE id = 2$$);
SELECT * FROM attempt_table($$UPDATE t25.memberships SET refunded_at = now() - interval '1 day' WHERE id = 3$$);
SELECT id, refunded_at IS NOT NULL AS refunded FROM t25.memberships ORDER BY id;
-- The trigger's error carries the request table.
SELECT * FROM attempt_table($$INSERT INTO t25.refund_requests (purchase_id, requested_by_role)
                             VALUES (4, 'account_admin')$$);
-- Options of the guard: kind and max_lag; a moment column of another type.
CREATE TABLE t25.tax_memberships (id integer, purchased_at timestamptz, tax_exempt boolean,
                                  tax_refunded_at timestamptz);
CREATE TRIGGER refund_moment AFTER INSERT OR UPDATE ON t25.tax_memberships FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_moment('tax_refunded_at', 'kind=tax', 'max_lag=1 minute');
SELECT * FROM attempt($$INSERT INTO t25.tax_memberships VALUES (1, now() - interval '200 days', true, now() - interval '2 seconds')$$);
SELECT * FROM attempt($$INSERT INTO t25.tax_memberships VALUES (2, now() - interval '200 days', false, now())$$);
SELECT * FROM attempt($$INSERT INTO t25.tax_memberships VALUES (3, now() - interval '200 days', true, now() - interval '2 minutes')$$);
-- within max_lag after the clock: the moment is accepted, the purchase is
-- still judged at the clock (not yet made)
SELECT * FROM attempt($$INSERT INTO t25.tax_memberships VALUES (4, now() + interval '40 seconds', true, now() + interval '50 seconds')$$);
SELECT * FROM attempt($$INSERT INTO t25.tax_memberships VALUES (5, now() - interval '200 days', true, now() + interval '2 minutes')$$);
CREATE TABLE t25.local_memberships (id integer, offer text, purchased_at timestamptz, benefits_activated boolean,
    product_keys_viewed boolean, upgraded_with_gold_discount boolean, refunded_at timestamp);
CREATE TRIGGER refund_moment AFTER INSERT OR UPDATE ON t25.local_memberships FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_moment();
SELECT * FROM attempt($$INSERT INTO t25.local_memberships VALUES (1, 'gold', now(), false, false, false, now())$$);
DROP TRIGGER refund_moment ON t25.local_memberships;
CREATE TRIGGER refund_moment AFTER INSERT OR UPDATE ON t25.local_memberships FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_moment('refunded_at', 'kind=partial');
SELECT * FROM attempt($$INSERT INTO t25.local_memberships VALUES (1, 'gold', now(), false, false, false, now())$$);

------------------------------------------------------------------------
-- 8. Asking first: refund_request_status() answers what the trigger would
--    decide, without inserting or locking, revealing what a refusal would
------------------------------------------------------------------------
SELECT count(*) AS requests_before FROM t25.refund_requests \gset
SET ROLE regress_t25_app;
SELECT * FROM refund_rules.refund_request_status(
  jsonb_populate_record(NULL::t25.refund_requests,
                        '{"purchase_id": 4, "kind": "purchase", "requested_by_role": "account_admin"}'));
SELECT allowed, reasons, deadline IS NULL AS deadline_hidden FROM refund_rules.refund_request_status(
  jsonb_populate_record(NULL::t25.refund_requests,
                        '{"purchase_id": 7, "kind": "purchase", "requested_by_role": "account_admin"}'));
SELECT * FROM refund_rules.refund_request_status(
  jsonb_populate_record(NULL::t25.refund_requests,
                        '{"purchase_id": 7, "kind": "purchase", "requested_by_role": "intern",
                          "requested_at": "2000-01-01 00:00+00"}'));
SELECT * FROM attempt($$SELECT refund_rules.refund_request_status(
  jsonb_populate_record(NULL::t25.refund_requests, '{"purchase_id": 424242, "kind": "purchase", "requested_by_role": "account_admin"}'))$$);
RESET ROLE;
SET ROLE regress_t25_reader;
SELECT allowed, reasons, deadline = (SELECT purchased_at + interval '720 hours' FROM t25.purchases WHERE id = 4) AS deadline_shown
  FROM refund_rules.refund_request_status(
  jsonb_populate_record(NULL::t25.refund_requests,
                        '{"purchase_id": 4, "kind": "purchase", "requested_by_role": "account_admin"}'));
-- nothing is locked: it answers in a read-only transaction
BEGIN READ ONLY;
SELECT allowed, reasons FROM refund_rules.refund_request_status(
  jsonb_populate_record(NULL::t25.refund_requests,
                        '{"purchase_id": 7, "kind": "tax", "requested_by_role": "mpn_partner_admin"}'));
COMMIT;
RESET ROLE;
-- The session as requester: the caller's roles decide.
GRANT regress_t25_account_admins TO regress_t25_app;
SET ROLE regress_t25_app;
SELECT allowed, reasons FROM refund_rules.refund_request_status(ROW(8, NULL, 'intern')::t25.session_requests);
SELECT allowed, reasons FROM refund_rules.refund_request_status(ROW(8, NULL, 'account_admin')::t25.session_requests);
RESET ROLE;
REVOKE regress_t25_account_admins FROM regress_t25_app;
SET ROLE regress_t25_app;
SELECT allowed, reasons FROM refund_rules.refund_request_status(ROW(8, NULL, 'account_admin')::t25.session_requests);
RESET ROLE;
-- Who may ask: who may insert; a table the trigger does not check.
SET ROLE regress_t25_mallory;
SELECT * FROM attempt($$SELECT refund_rules.refund_request_status(ROW(9, now(), 'account_admin')::t25.session_requests)$$);
RESET ROLE;
SELECT * FROM attempt($$SELECT refund_rules.refund_request_status(ROW(1, 'gold', now(), false, false, false, NULL)::t25.memberships)$$);
SELECT * FROM attempt($$SELECT refund_rules.refund_request_status(42)$$);
-- refund_request_status ignores the moment the row says: a request made
-- now (a moment past the deadline would otherwise tell the deadline).
SET ROLE regress_t25_app;
SELECT allowed, reasons FROM refund_rules.refund_request_status(
  jsonb_populate_record(NULL::t25.refund_requests,
                        '{"purchase_id": 7, "kind": "purchase", "requested_by_role": "account_admin",
                          "requested_at": "2999-01-01 00:00+00"}'));
RESET ROLE;
-- A trigger that does not fire in this session does not answer.
ALTER TABLE t25.session_requests ENABLE REPLICA TRIGGER enforce;
SELECT * FROM attempt($$SELECT refund_rules.refund_request_status(ROW(8, NULL, 'account_admin')::t25.session_requests)$$);
ALTER TABLE t25.session_requests ENABLE TRIGGER enforce;
SELECT count(*) = :requests_before AS nothing_inserted FROM t25.refund_requests;

------------------------------------------------------------------------
-- 9. Kept states of dropped triggers are freed
------------------------------------------------------------------------
-- (The tables are made first: a foreign key added to the purchases table
-- invalidates every state that reads it, as any change of it does.)
DO $$
BEGIN
  FOR i IN 1..20 LOOP
    EXECUTE format('CREATE TABLE t25.many_%s (purchase_id bigint REFERENCES t25.purchases,
                    requested_at timestamptz DEFAULT now(), requested_by_role text)', i);
    EXECUTE format('CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t25.many_%s FOR EACH ROW
                    EXECUTE FUNCTION refund_rules.enforce_refund_policy(''purchases'', ''purchase_id'')', i);
  END LOOP;
END $$;
DO $$
BEGIN
  FOR i IN 1..20 LOOP
    EXECUTE format('INSERT INTO t25.many_%s (purchase_id, requested_by_role) VALUES (7, ''account_admin'')', i);
  END LOOP;
END $$;
SELECT count(*) AS states_before FROM pg_backend_memory_contexts WHERE name = 'refund_rules trigger' \gset
SELECT :states_before >= 20 AS states_kept;
DO $$
BEGIN
  FOR i IN 1..20 LOOP
    EXECUTE format('DROP TABLE t25.many_%s', i);
  END LOOP;
END $$;
-- freed at the end of the transaction that dropped them, before any
-- other trigger fires (which would build its own state anew)
SELECT count(*) <= :states_before - 20 AS states_freed
  FROM pg_backend_memory_contexts WHERE name = 'refund_rules trigger';
INSERT INTO t25.loose_requests (purchase_id, requested_by_role) VALUES (7, 'account_admin');

RESET ROLE;
SET client_min_messages = warning;
DROP SCHEMA t25 CASCADE;
DROP ROLE regress_t25_columns_app, regress_t25_owner2, regress_t25_noinherit;
DROP ROLE regress_t25_app, regress_t25_reader, regress_t25_columns, regress_t25_mallory,
          regress_t25_partner_admins, regress_t25_account_admins;

------------------------------------------------------------------------
-- 10. A refund_kind label added later is bad data (22023), in a database
--     of its own (the label cannot be removed again)
------------------------------------------------------------------------
SELECT current_database() AS regress_db \gset
CREATE DATABASE regress_t25_kind;
\c regress_t25_kind
SET client_min_messages = warning;
CREATE EXTENSION refund_rules;
ALTER TYPE refund_rules.refund_kind ADD VALUE 'partial';
RESET client_min_messages;
SELECT refund_rules.refund_ineligibility_reasons(ROW('gold', now(), false, false, false, true)::refund_rules.purchase,
                                                 now(), 'partial');
SELECT refund_rules.check_refund(ROW('gold', now(), false, false, false, true)::refund_rules.purchase,
                                 now(), 'partial');
\c :regress_db
DROP DATABASE regress_t25_kind;
