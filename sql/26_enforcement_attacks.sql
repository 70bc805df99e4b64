-- 26_enforcement_attacks: the 1.2 enforcement against the attacks that
-- broke 1.1, as the least-privileged roles: user code re-entering the
-- trigger, wrong declarations, other triggers and generated columns,
-- DELETE and re-INSERT, every key type a foreign key accepts, hidden state,
-- read-only pre-checks, partitions, a clerk in a fresh backend, session
-- requesters, and the dry run.
SET client_min_messages = warning;
SET TimeZone = 'UTC';
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE ROLE regress_rr_nobody NOLOGIN;       -- only the default privileges
CREATE ROLE regress_rr_clerk NOLOGIN;        -- INSERT on requests only
CREATE ROLE regress_rr_partner_admins NOLOGIN;
CREATE ROLE regress_rr_noinherit NOLOGIN NOINHERIT;
GRANT regress_rr_partner_admins TO regress_rr_noinherit;
CREATE SCHEMA t26;
GRANT USAGE, CREATE ON SCHEMA t26 TO regress_rr_nobody;
CREATE SCHEMA t26_util;
GRANT USAGE ON SCHEMA t26_util TO PUBLIC;

-- attempt(sql): the error a statement raises, as SQLSTATE | message | detail | hint.
CREATE FUNCTION t26_util.attempt(stmt text, OUT code text, OUT message text, OUT detail text, OUT hint text)
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  code := '00000';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                          detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
  hint := regexp_replace(hint, '\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\+00', 'T', 'g');
END $$;
GRANT EXECUTE ON FUNCTION t26_util.attempt(text) TO PUBLIC;

------------------------------------------------------------------------
-- 1. User code re-entering the trigger: a role with the default privileges,
-- everything in pg_temp.  An implicit cast from its own enum to bigint, in
-- PL/pgSQL, runs inside the lookups (the foreign key's and ours); on its
-- second call it renames the purchases table and inserts a nested request.
-- The server stays up and the statement ends with a clear error.
------------------------------------------------------------------------
SET ROLE regress_rr_nobody;
CREATE TYPE pg_temp.kid AS ENUM ('1', '2', '3');
CREATE TEMP TABLE purchases (id bigint PRIMARY KEY, offer refund_rules.mpn_offer,
  purchased_at timestamptz, benefits_activated boolean, product_keys_viewed boolean,
  upgraded_with_gold_discount boolean, tax_exempt boolean);
INSERT INTO purchases VALUES (1, 'gold', now() - interval '1 day', false, false, false, true),
                             (2, 'gold', now() - interval '1 day', false, false, false, true),
                             (3, 'gold', now() - interval '60 days', false, false, false, true);
CREATE FUNCTION pg_temp.kid_to_bigint(k pg_temp.kid) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  calls integer := coalesce(nullif(current_setting('regress_rr.calls', true), ''), '0')::integer + 1;
  attack text := current_setting('regress_rr.attack', true);
BEGIN
  PERFORM set_config('regress_rr.calls', calls::text, false);
  IF calls = current_setting('regress_rr.at', true)::integer THEN
    IF attack IN ('rename', 'both') THEN
      EXECUTE 'ALTER TABLE pg_temp.purchases RENAME TO purchases_moved';
    END IF;
    IF attack IN ('nested', 'both') THEN
      INSERT INTO pg_temp.requests (purchase_id, requested_by_role) VALUES ('2', 'account_admin');
    END IF;
    IF attack = 'raise' THEN
      RAISE EXCEPTION 'cast refused key %', k;
    END IF;
  END IF;
  RETURN k::text::bigint;
END $$;
CREATE CAST (pg_temp.kid AS bigint) WITH FUNCTION pg_temp.kid_to_bigint(pg_temp.kid) AS IMPLICIT;
CREATE TEMP TABLE requests (id serial PRIMARY KEY, purchase_id pg_temp.kid REFERENCES purchases,
  requested_at timestamptz DEFAULT now(), requested_by_role text);
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
-- try_attack(attack, at, key): a request for key, the attack made on the
-- cast's at-th call (the foreign key's check calls it too, before ours);
-- what the statement gave, and whether an error's context would show the
-- lookup's query.  A rename that stays is undone for the next try.
CREATE FUNCTION pg_temp.try_attack(attack text, at integer, key text,
                                   OUT code text, OUT message text, OUT context_shows_lookup boolean)
LANGUAGE plpgsql AS $$
DECLARE ctx text;
BEGIN
  PERFORM set_config('regress_rr.attack', attack, false);
  PERFORM set_config('regress_rr.at', at::text, false);
  PERFORM set_config('regress_rr.calls', '0', false);
  BEGIN
    EXECUTE format('INSERT INTO pg_temp.requests (purchase_id, requested_by_role) VALUES (%L, ''account_admin'')', key);
    code := '00000';
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT, ctx = PG_EXCEPTION_CONTEXT;
    context_shows_lookup := ctx ~* 'purchased_at|for share of';
  END;
  PERFORM set_config('regress_rr.attack', 'none', false);
  IF to_regclass('pg_temp.purchases_moved') IS NOT NULL THEN
    EXECUTE 'ALTER TABLE pg_temp.purchases_moved RENAME TO purchases';
  END IF;
END $$;
-- Warm: the kept state exists before the attacks.
SELECT * FROM pg_temp.try_attack('none', 0, '1');
SELECT * FROM pg_temp.try_attack('none', 0, '3');
-- Every attack at each of the cast's calls: the server stays up, and each
-- statement is judged right (00000 for purchase 1, 23514 for 3) or ends with
-- a clear error: 39P01 when the trigger's state is worked out anew with the
-- table renamed, 55000 when it changed under our lookup, the cast's own
-- (P0001) when it raises; no error's context shows the lookup's query.
CREATE TEMP TABLE attacks AS
SELECT a.attack, n AS at, k AS key, t.*
  FROM unnest(ARRAY['rename', 'nested', 'both', 'raise']) a(attack),
       generate_series(1, 6) n, unnest(ARRAY['1', '3']) k,
       LATERAL pg_temp.try_attack(a.attack, n, k) t;
SELECT count(*) AS tries,
       count(*) FILTER (WHERE code NOT IN ('00000', '23514', '39P01', '55000', 'P0001')) AS unclear,
       count(*) FILTER (WHERE key = '3' AND code = '00000') AS wrongly_accepted,
       count(*) FILTER (WHERE key = '1' AND code = '23514') AS wrongly_refused,
       count(*) FILTER (WHERE context_shows_lookup) AS contexts_showing_the_lookup,
       bool_or(code = '55000') AS state_changed_under_a_lookup_seen,
       bool_or(attack = 'nested' AND code = '00000') AS nested_requests_judged
  FROM attacks;
SELECT purchase_id, count(*) FROM requests GROUP BY 1 ORDER BY 1;
-- The same attacks with the trigger naming pg_temp.purchases (the session's
-- temporary schema, as SQL reads the name): the same answers.
DROP TRIGGER enforce ON requests;
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('pg_temp.purchases', 'purchase_id');
CREATE TEMP TABLE attacks_qualified AS
SELECT a.attack, n AS at, k AS key, t.*
  FROM unnest(ARRAY['rename', 'nested', 'both', 'raise']) a(attack),
       generate_series(1, 6) n, unnest(ARRAY['1', '3']) k,
       LATERAL pg_temp.try_attack(a.attack, n, k) t;
SELECT count(*) AS tries,
       count(*) FILTER (WHERE code NOT IN ('00000', '23514', '39P01', '55000', 'P0001')) AS unclear,
       count(*) FILTER (WHERE key = '3' AND code = '00000') AS wrongly_accepted,
       count(*) FILTER (WHERE key = '1' AND code = '23514') AS wrongly_refused,
       count(*) FILTER (WHERE context_shows_lookup) AS contexts_showing_the_lookup
  FROM attacks_qualified;
SELECT 1 AS server_up;
RESET ROLE;

------------------------------------------------------------------------
-- 2. Declarations: the trigger checks its own.  1.1's BEFORE INSERT only
-- let an UPDATE move an accepted request onto any purchase.
------------------------------------------------------------------------
CREATE TABLE t26.purchases (id bigint PRIMARY KEY, offer refund_rules.mpn_offer,
  purchased_at timestamptz, benefits_activated boolean, product_keys_viewed boolean,
  upgraded_with_gold_discount boolean, tax_exempt boolean, activations integer DEFAULT 0);
INSERT INTO t26.purchases VALUES
  (1, 'gold', now() - interval '1 day', false, false, false, true),
  (2, 'gold', now() - interval '1 day', false, false, false, true),
  (3, 'silver', now() - interval '60 days', false, false, false, true),
  (4, 'gold', now() - interval '1 day', true, false, false, true);
CREATE TABLE t26.requests (id serial PRIMARY KEY,
  purchase_id bigint REFERENCES t26.purchases DEFERRABLE INITIALLY IMMEDIATE,
  requested_at timestamptz DEFAULT now(), requested_by_role text);
CREATE TRIGGER enforce BEFORE INSERT ON t26.requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
SELECT code, message FROM t26_util.attempt($$INSERT INTO t26.requests (purchase_id, requested_by_role) VALUES (1, 'account_admin')$$);
DROP TRIGGER enforce ON t26.requests;
CREATE TRIGGER enforce AFTER INSERT ON t26.requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
SELECT code, message FROM t26_util.attempt($$INSERT INTO t26.requests (purchase_id, requested_by_role) VALUES (1, 'account_admin')$$);
DROP TRIGGER enforce ON t26.requests;
CREATE TRIGGER enforce AFTER INSERT OR UPDATE OF requested_at ON t26.requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
SELECT code, message FROM t26_util.attempt($$INSERT INTO t26.requests (purchase_id, requested_by_role) VALUES (1, 'account_admin')$$);
DROP TRIGGER enforce ON t26.requests;
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t26.requests FOR EACH ROW
  WHEN (NEW.requested_by_role <> 'x')
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
SELECT code, message FROM t26_util.attempt($$INSERT INTO t26.requests (purchase_id, requested_by_role) VALUES (1, 'account_admin')$$);
DROP TRIGGER enforce ON t26.requests;
CREATE CONSTRAINT TRIGGER enforce AFTER INSERT OR UPDATE ON t26.requests
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
SELECT code, message FROM t26_util.attempt($$INSERT INTO t26.requests (purchase_id, requested_by_role) VALUES (1, 'account_admin')$$);
DROP TRIGGER enforce ON t26.requests;
-- The declaration the docs give: a plain AFTER row trigger.
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t26.requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
CREATE CONSTRAINT TRIGGER protect AFTER INSERT OR UPDATE ON t26.purchases FROM t26.requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.protect_refunded_purchase('requests', 'purchase_id');
SELECT * FROM t26_util.attempt($$INSERT INTO t26.requests (purchase_id, requested_by_role) VALUES (1, 'account_admin')$$);
-- An UPDATE that moves the accepted request onto a purchase whose window
-- closed, or whose benefits are activated, is judged.
SELECT code, detail FROM t26_util.attempt($$UPDATE t26.requests SET purchase_id = 3 WHERE purchase_id = 1$$);
SELECT code, detail FROM t26_util.attempt($$UPDATE t26.requests SET purchase_id = 4 WHERE purchase_id = 1$$);

------------------------------------------------------------------------
-- 3. Another trigger of the table's owner changes the row before it is
-- stored: the row stored is the row judged.
------------------------------------------------------------------------
CREATE FUNCTION t26.swap_purchase() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.purchase_id := 3; RETURN NEW; END $$;
CREATE TRIGGER zz_swap BEFORE INSERT ON t26.requests FOR EACH ROW
  WHEN (NEW.requested_by_role = 'swap me') EXECUTE FUNCTION t26.swap_purchase();
SELECT code, detail FROM t26_util.attempt($$INSERT INTO t26.requests (purchase_id, requested_by_role) VALUES (2, 'swap me')$$);
DROP TRIGGER zz_swap ON t26.requests;

------------------------------------------------------------------------
-- 4. The purchase of an accepted request: a generated policy column, a
-- DELETE and re-INSERT (in one statement, and across statements under a
-- deferred foreign key), an INSERT ... ON CONFLICT.
------------------------------------------------------------------------
CREATE TABLE t26.gen_purchases (id bigint PRIMARY KEY, offer refund_rules.mpn_offer,
  purchased_at timestamptz, activations integer NOT NULL DEFAULT 0,
  benefits_activated boolean GENERATED ALWAYS AS (activations > 0) STORED,
  product_keys_viewed boolean, upgraded_with_gold_discount boolean);
INSERT INTO t26.gen_purchases (id, offer, purchased_at, product_keys_viewed, upgraded_with_gold_discount)
  VALUES (1, 'gold', now() - interval '1 day', false, false);
CREATE TABLE t26.gen_requests (purchase_id bigint REFERENCES t26.gen_purchases,
  requested_at timestamptz DEFAULT now(), requested_by_role text);
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t26.gen_requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('gen_purchases', 'purchase_id');
CREATE CONSTRAINT TRIGGER protect AFTER INSERT OR UPDATE ON t26.gen_purchases FROM t26.gen_requests
  FOR EACH ROW EXECUTE FUNCTION refund_rules.protect_refunded_purchase('gen_requests', 'purchase_id');
SELECT code FROM t26_util.attempt($$INSERT INTO t26.gen_requests (purchase_id, requested_by_role) VALUES (1, 'account_admin')$$);
SELECT * FROM t26_util.attempt($$UPDATE t26.gen_purchases SET activations = 1 WHERE id = 1$$);
SELECT benefits_activated FROM t26.gen_purchases;
-- DELETE and re-INSERT in one statement (NO ACTION sees the key again).
SELECT code, message, detail FROM t26_util.attempt($$
  WITH gone AS (DELETE FROM t26.purchases WHERE id = 1 RETURNING *)
  INSERT INTO t26.purchases SELECT id, offer, purchased_at, true, product_keys_viewed,
         upgraded_with_gold_discount, tax_exempt FROM gone$$);
-- Across statements, with the foreign key deferred.
BEGIN;
SET CONSTRAINTS ALL DEFERRED;
DELETE FROM t26.purchases WHERE id = 1;
SELECT code, message FROM t26_util.attempt($$INSERT INTO t26.purchases VALUES (1, 'gold', now() - interval '1 day', true, false, false, true)$$);
ROLLBACK;
SELECT code FROM t26_util.attempt($$INSERT INTO t26.purchases VALUES (1, 'gold', now(), true, false, false, true)
  ON CONFLICT (id) DO UPDATE SET benefits_activated = true$$);
SELECT id, benefits_activated FROM t26.purchases WHERE id = 1;
-- A foreign key that cascades would take the request away with its
-- purchase: refused.
CREATE TABLE t26.cascading (purchase_id bigint REFERENCES t26.purchases ON DELETE CASCADE,
  requested_at timestamptz DEFAULT now(), requested_by_role text);
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t26.cascading FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
SELECT code, message FROM t26_util.attempt($$INSERT INTO t26.cascading (purchase_id, requested_by_role) VALUES (2, 'account_admin')$$);
-- Without a foreign key: refused at first use, nothing written to a catalog.
CREATE TABLE t26.loose (purchase_id bigint, requested_at timestamptz DEFAULT now(), requested_by_role text);
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t26.loose FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
SELECT count(*) AS depend_rows FROM pg_depend \gset before_
SELECT * FROM t26_util.attempt($$INSERT INTO t26.loose (purchase_id, requested_by_role) VALUES (2, 'account_admin')$$);
SELECT count(*) - :before_depend_rows AS new_depend_rows FROM pg_depend;

------------------------------------------------------------------------
-- 5. Every key type a foreign key accepts, compared as the foreign key
-- compares it, in the request trigger and the companion alike: an allowed
-- request, a refused one, and a protected purchase.
------------------------------------------------------------------------
CREATE COLLATION t26.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TYPE t26.tier AS ENUM ('bronze', 'steel', 'oak');
CREATE TYPE t26.pair AS (a integer, b text);
CREATE FUNCTION t26.try_key(pk_type text, fk_type text, ok_key text, bad_key text, ref_key text,
                            OUT accepted text, OUT refused text, OUT protected text, OUT stored bigint)
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE 'DROP TABLE IF EXISTS t26.k_requests, t26.k_purchases';
  EXECUTE format('CREATE TABLE t26.k_purchases (id %s PRIMARY KEY, offer refund_rules.mpn_offer,
    purchased_at timestamptz, benefits_activated boolean, product_keys_viewed boolean,
    upgraded_with_gold_discount boolean)', pk_type);
  EXECUTE format('INSERT INTO t26.k_purchases VALUES (%L, ''gold'', now() - interval ''1 day'', false, false, false),
    (%L, ''gold'', now() - interval ''1 day'', true, false, false)', ok_key, bad_key);
  EXECUTE format('CREATE TABLE t26.k_requests (purchase_id %s REFERENCES t26.k_purchases,
    requested_at timestamptz DEFAULT now(), requested_by_role text)', fk_type);
  EXECUTE 'CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t26.k_requests FOR EACH ROW
    EXECUTE FUNCTION refund_rules.enforce_refund_policy(''k_purchases'', ''purchase_id'')';
  EXECUTE 'CREATE CONSTRAINT TRIGGER protect AFTER INSERT OR UPDATE ON t26.k_purchases FROM t26.k_requests
    FOR EACH ROW EXECUTE FUNCTION refund_rules.protect_refunded_purchase(''k_requests'', ''purchase_id'')';
  SELECT a.code INTO accepted FROM t26_util.attempt(format(
    'INSERT INTO t26.k_requests (purchase_id, requested_by_role) VALUES (%L, ''account_admin'')', ref_key)) a;
  SELECT a.code || ' ' || a.detail INTO refused FROM t26_util.attempt(format(
    'INSERT INTO t26.k_requests (purchase_id, requested_by_role) VALUES (%L, ''account_admin'')', bad_key)) a;
  SELECT a.code || ' ' || a.detail INTO protected FROM t26_util.attempt(format(
    'UPDATE t26.k_purchases SET benefits_activated = true WHERE id = %L::%s', ok_key, pk_type)) a;
  SELECT count(*) INTO stored FROM t26.k_requests;
  EXECUTE 'DROP TABLE t26.k_requests, t26.k_purchases';
END $$;
SELECT 'numeric <- bigint' AS key, * FROM t26.try_key('numeric', 'bigint', '10', '11', '10');
SELECT 'bigint <- integer' AS key, * FROM t26.try_key('bigint', 'integer', '10', '11', '10');
SELECT 'text ci <- text ci' AS key, * FROM t26.try_key('text COLLATE t26.ci', 'text COLLATE t26.ci', 'ABC', 'XYZ', 'abc');
SELECT 'char(5) <- char(5)' AS key, * FROM t26.try_key('char(5)', 'char(5)', 'ab', 'cd', 'ab   ');
SELECT 'varchar <- text' AS key, * FROM t26.try_key('varchar(10)', 'text', 'ab', 'cd', 'ab');
SELECT 'enum' AS key, * FROM t26.try_key('t26.tier', 't26.tier', 'steel', 'oak', 'steel');
SELECT 'array' AS key, * FROM t26.try_key('integer[]', 'integer[]', '{1,2}', '{3}', '{1,2}');
SELECT 'range' AS key, * FROM t26.try_key('int4range', 'int4range', '[1,5)', '[7,9)', '[1,4]');
SELECT 'composite' AS key, * FROM t26.try_key('t26.pair', 't26.pair', '(1,a)', '(2,b)', '(1,a)');
SELECT 'uuid' AS key, * FROM t26.try_key('uuid', 'uuid', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11');

------------------------------------------------------------------------
-- 6. What a clerk who may not read the purchases learns: nothing of the
-- stored values, nor which criterion failed, nor the purchase's moment by
-- trying moments.  The clerk has USAGE on the request schema only, and is
-- the first to insert in a fresh backend (the lookup runs as the owner).
------------------------------------------------------------------------
CREATE SCHEMA t26_shop;
CREATE TABLE t26_shop.purchases (id bigint PRIMARY KEY, offer text, purchased_at timestamptz,
  benefits_activated boolean, product_keys_viewed boolean, upgraded_with_gold_discount boolean);
INSERT INTO t26_shop.purchases VALUES
  (1, 'gold', now() - interval '1 day', false, false, false),
  (2, 'gold', now() - interval '60 days', false, false, false),   -- window expired
  (3, 'gold', now() - interval '1 day', true, false, false),      -- benefits activated
  (4, 'secret-tier-7', now() - interval '1 day', false, false, false);
CREATE SCHEMA t26_desk;
CREATE TABLE t26_desk.requests (id serial PRIMARY KEY, purchase_id bigint REFERENCES t26_shop.purchases,
  requested_at timestamptz DEFAULT now(), requested_by_role text);
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t26_desk.requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('t26_shop.purchases', 'purchase_id');
GRANT USAGE ON SCHEMA t26_desk TO regress_rr_clerk;
GRANT INSERT ON t26_desk.requests TO regress_rr_clerk;
GRANT USAGE ON SEQUENCE t26_desk.requests_id_seq TO regress_rr_clerk;
\c
SET client_min_messages = warning;
SET TimeZone = 'UTC';
\set VERBOSITY default
\set SHOW_CONTEXT never
SET ROLE regress_rr_clerk;
SELECT * FROM t26_util.attempt($$INSERT INTO t26_desk.requests (purchase_id, requested_by_role) VALUES (1, 'account_admin')$$);
-- A stored offer that is not a label: bad data, without the value.
SELECT code, message FROM t26_util.attempt($$INSERT INTO t26_desk.requests (purchase_id, requested_by_role) VALUES (4, 'account_admin')$$);
-- With requested_at NULL, the hidden reasons stand in the same place
-- whichever criterion failed (window or benefits).
SELECT code, detail FROM t26_util.attempt($$INSERT INTO t26_desk.requests (purchase_id, requested_at, requested_by_role) VALUES (2, NULL, 'clerk')$$);
SELECT code, detail FROM t26_util.attempt($$INSERT INTO t26_desk.requests (purchase_id, requested_at, requested_by_role) VALUES (3, NULL, 'clerk')$$);
-- Trying moments inside an open transaction: any moment but the
-- transaction's start is refused the same way, whatever the purchase.
BEGIN;
SELECT code, detail FROM t26_util.attempt($$INSERT INTO t26_desk.requests (purchase_id, requested_at, requested_by_role) VALUES (1, now() + interval '1 microsecond', 'account_admin')$$);
SELECT code, detail FROM t26_util.attempt($$INSERT INTO t26_desk.requests (purchase_id, requested_at, requested_by_role) VALUES (2, now() + interval '1 microsecond', 'account_admin')$$);
SELECT code, detail FROM t26_util.attempt($$INSERT INTO t26_desk.requests (purchase_id, requested_at, requested_by_role) VALUES (1, now() - interval '1 microsecond', 'account_admin')$$);
SELECT code, detail FROM t26_util.attempt($$INSERT INTO t26_desk.requests (purchase_id, requested_at, requested_by_role) VALUES (2, now() - interval '1 microsecond', 'account_admin')$$);
COMMIT;
-- The pre-check answers as the clerk may see it, in a read-only transaction.
BEGIN READ ONLY;
SELECT v.id, (refund_rules.refund_request_status(r)).*
  FROM (VALUES (1), (2), (3)) v(id),
       LATERAL jsonb_populate_record(NULL::t26_desk.requests,
                                     jsonb_build_object('purchase_id', v.id, 'requested_by_role', 'account_admin')) r
 ORDER BY v.id;
COMMIT;
RESET ROLE;

------------------------------------------------------------------------
-- 7. Partitioned request tables: a sub-partition in another schema is
-- judged by the foreign key's purchases; the pre-check answers for the
-- partitioned table.
------------------------------------------------------------------------
CREATE SCHEMA t26_parts;
CREATE TABLE t26.part_requests (purchase_id bigint REFERENCES t26.purchases,
  requested_at timestamptz DEFAULT now(), requested_by_role text) PARTITION BY RANGE (purchase_id);
CREATE TABLE t26.part_low PARTITION OF t26.part_requests FOR VALUES FROM (0) TO (3) PARTITION BY RANGE (purchase_id);
CREATE TABLE t26_parts.part_low_sub PARTITION OF t26.part_low FOR VALUES FROM (0) TO (3);
CREATE TABLE t26_parts.purchases (LIKE t26.purchases);   -- a look-alike in the sub-partition's schema
INSERT INTO t26_parts.purchases SELECT id, offer, now(), false, false, false, true FROM t26.purchases;
CREATE TABLE t26_parts.part_high PARTITION OF t26.part_requests FOR VALUES FROM (3) TO (100);
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t26.part_requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
SELECT code FROM t26_util.attempt($$INSERT INTO t26.part_requests (purchase_id, requested_by_role) VALUES (2, 'account_admin')$$);
SELECT code, detail FROM t26_util.attempt($$INSERT INTO t26.part_requests (purchase_id, requested_by_role) VALUES (3, 'account_admin')$$);
SELECT code, detail FROM t26_util.attempt($$INSERT INTO t26.part_requests (purchase_id, requested_by_role) VALUES (4, 'account_admin')$$);
SELECT tableoid::regclass, purchase_id FROM t26.part_requests;
SELECT s.allowed, s.reasons, s.deadline = refund_rules.refund_deadline(p.purchased_at) AS deadline_is_the_purchases
  FROM refund_rules.refund_request_status(jsonb_populate_record(NULL::t26.part_requests,
          jsonb_build_object('purchase_id', 3, 'requested_by_role', 'account_admin'))) s,
       t26.purchases p WHERE p.id = 3;

------------------------------------------------------------------------
-- 8. The session as the requester: what the current user can act as.  A
-- superuser is not every role; a NOINHERIT member does not hold the role's
-- privileges; the row records only a capacity the person holds.
------------------------------------------------------------------------
CREATE TABLE t26.session_requests (purchase_id bigint REFERENCES t26.purchases,
  requested_at timestamptz DEFAULT now(), requested_by_role text);
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t26.session_requests FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id',
    'requester=session', 'mpn_partner_admin_role=regress_rr_partner_admins');
GRANT INSERT ON t26.session_requests TO PUBLIC;
GRANT USAGE ON SCHEMA t26 TO PUBLIC;
SELECT code, detail FROM t26_util.attempt($$INSERT INTO t26.session_requests (purchase_id, requested_by_role) VALUES (2, 'mpn_partner_admin')$$);
GRANT regress_rr_partner_admins TO regress_rr_clerk;
SET ROLE regress_rr_clerk;
SELECT code FROM t26_util.attempt($$INSERT INTO t26.session_requests (purchase_id, requested_by_role) VALUES (2, 'mpn_partner_admin')$$);
SELECT code, detail FROM t26_util.attempt($$INSERT INTO t26.session_requests (purchase_id, requested_by_role) VALUES (2, 'account_admin')$$);
SELECT code, detail FROM t26_util.attempt($$INSERT INTO t26.session_requests (purchase_id, requested_by_role) VALUES (2, NULL)$$);
SET ROLE regress_rr_noinherit;
SELECT code, detail FROM t26_util.attempt($$INSERT INTO t26.session_requests (purchase_id, requested_by_role) VALUES (2, 'mpn_partner_admin')$$);
RESET ROLE;
SELECT requested_by_role, count(*) FROM t26.session_requests GROUP BY 1;

------------------------------------------------------------------------
-- 9. The dry run: every would-be refusal is a WARNING with the refusal's
-- SQLSTATE, message, DETAIL and HINT, and the row is kept; one CREATE OR
-- REPLACE TRIGGER switches to enforcement.
------------------------------------------------------------------------
INSERT INTO t26.purchases VALUES (5, 'gold', '2020-01-01 00:00+00', false, false, false, true);
CREATE TABLE t26.rollout (purchase_id bigint REFERENCES t26.purchases,
  requested_at timestamptz DEFAULT now(), requested_by_role text);
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t26.rollout FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id', 'mode=dry_run');
INSERT INTO t26.rollout (purchase_id, requested_by_role) VALUES (5, 'account_admin'), (2, 'account_admin');
\set VERBOSITY sqlstate
INSERT INTO t26.rollout (purchase_id, requested_by_role) VALUES (5, 'clerk');
\set VERBOSITY default
SELECT purchase_id, requested_by_role FROM t26.rollout ORDER BY 1, 2;
CREATE OR REPLACE TRIGGER enforce AFTER INSERT OR UPDATE ON t26.rollout FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
SELECT * FROM t26_util.attempt($$INSERT INTO t26.rollout (purchase_id, requested_by_role) VALUES (5, 'account_admin')$$);
SELECT count(*) AS rows_kept FROM t26.rollout;
-- The companion follows the same option.
CREATE CONSTRAINT TRIGGER protect_rollout AFTER INSERT OR UPDATE ON t26.purchases FROM t26.rollout
  FOR EACH ROW EXECUTE FUNCTION refund_rules.protect_refunded_purchase('rollout', 'purchase_id', 'mode=dry_run');
UPDATE t26.purchases SET product_keys_viewed = true WHERE id = 2;
SELECT product_keys_viewed FROM t26.purchases WHERE id = 2;
DROP TRIGGER protect_rollout ON t26.purchases;
CREATE CONSTRAINT TRIGGER protect_rollout AFTER INSERT OR UPDATE ON t26.purchases FROM t26.rollout
  FOR EACH ROW EXECUTE FUNCTION refund_rules.protect_refunded_purchase('rollout', 'purchase_id');
SELECT code, detail FROM t26_util.attempt($$UPDATE t26.purchases SET product_keys_viewed = false WHERE id = 2$$);
-- A mode that does not exist.
CREATE OR REPLACE TRIGGER enforce AFTER INSERT OR UPDATE ON t26.rollout FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id', 'mode=later');
SELECT code, message, hint FROM t26_util.attempt($$INSERT INTO t26.rollout (purchase_id, requested_by_role) VALUES (2, 'account_admin')$$);

------------------------------------------------------------------------
-- 10. Every refusal names its table and its constraint: the trigger's name,
-- or the CHECK constraint that calls check_refund().
------------------------------------------------------------------------
CREATE TABLE t26.memberships (id integer PRIMARY KEY, offer refund_rules.mpn_offer,
  purchased_at timestamptz, benefits_activated boolean, product_keys_viewed boolean,
  upgraded_with_gold_discount boolean, refunded_at timestamptz,
  CONSTRAINT refund_allowed CHECK (refunded_at IS NULL OR refund_rules.check_refund(memberships, refunded_at)));
INSERT INTO t26.memberships VALUES (1, 'gold', '2020-01-01 00:00+00', true, false, false, NULL);
CREATE OR REPLACE TRIGGER enforce AFTER INSERT OR UPDATE ON t26.rollout FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id');
DO $$
DECLARE code text; sch text; tab text; con text;
BEGIN
  BEGIN
    UPDATE t26.memberships SET refunded_at = '2020-01-02 00:00+00';
  EXCEPTION WHEN check_violation THEN
    GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, sch = SCHEMA_NAME, tab = TABLE_NAME, con = CONSTRAINT_NAME;
    RAISE WARNING 'check_refund: % %.% constraint %', code, sch, tab, con;
  END;
  BEGIN
    INSERT INTO t26.rollout (purchase_id, requested_by_role) VALUES (5, 'account_admin');
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, sch = SCHEMA_NAME, tab = TABLE_NAME, con = CONSTRAINT_NAME;
    RAISE WARNING 'enforce_refund_policy: % %.% constraint %', code, sch, tab, con;
  END;
  BEGIN
    UPDATE t26.purchases SET product_keys_viewed = NOT product_keys_viewed WHERE id = 2;
  EXCEPTION WHEN check_violation THEN
    GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, sch = SCHEMA_NAME, tab = TABLE_NAME, con = CONSTRAINT_NAME;
    RAISE WARNING 'protect_refunded_purchase: % %.% constraint %', code, sch, tab, con;
  END;
END $$;

------------------------------------------------------------------------
-- 11. Trying moments where a CHECK judges them: a role that may write
-- refunded_at but not read the purchase gets one and the same refusal for
-- every moment but the transaction's start, in the window or not; a CHECK
-- built on ROW(...)::refund_rules.purchase hides the reasons as well; and
-- with max_lag the window is judged at the transaction's start, not at the
-- moment written.
------------------------------------------------------------------------
CREATE TABLE t26.refunds (id integer PRIMARY KEY, offer refund_rules.mpn_offer,
  purchased_at timestamptz, benefits_activated boolean, product_keys_viewed boolean,
  upgraded_with_gold_discount boolean, refunded_at timestamptz,
  CONSTRAINT refund_allowed CHECK (refunded_at IS NULL OR refund_rules.check_refund(refunds, refunded_at)));
CREATE TRIGGER refund_moment AFTER INSERT OR UPDATE ON t26.refunds FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_moment();
CREATE TABLE t26.row_refunds (LIKE t26.refunds,
  CONSTRAINT row_refund_allowed CHECK (refunded_at IS NULL OR refund_rules.check_refund(
    ROW(offer, purchased_at, benefits_activated, product_keys_viewed, upgraded_with_gold_discount, NULL)::refund_rules.purchase,
    refunded_at)));
INSERT INTO t26.refunds VALUES (1, 'gold', now() - interval '10 days', false, false, false, NULL);
INSERT INTO t26.row_refunds VALUES (1, 'gold', now() - interval '10 days', true, false, false, NULL);
GRANT SELECT (id), UPDATE (refunded_at) ON t26.refunds, t26.row_refunds TO regress_rr_clerk;
SET ROLE regress_rr_clerk;
CREATE FUNCTION pg_temp.refusal(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE code text; msg text; det text; hnt text; con text; sch text; tab text;
BEGIN
  EXECUTE stmt;
  RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
                          hnt = PG_EXCEPTION_HINT, con = CONSTRAINT_NAME, sch = SCHEMA_NAME, tab = TABLE_NAME;
  RETURN concat_ws(' | ', code, msg, det, hnt, 'schema ' || sch, 'table ' || tab, 'constraint ' || con);
END $$;
SELECT t.moment, pg_temp.refusal(format('UPDATE t26.refunds SET refunded_at = now() + interval %L WHERE id = 1', t.shift))
  FROM (VALUES ('11 days back', '-11 days'), ('9 days back', '-9 days'), ('1 second back', '-1 second'),
               ('1 second ahead', '1 second')) t(moment, shift)
 ORDER BY t.moment;
SELECT code, detail, hint FROM t26_util.attempt($$UPDATE t26.row_refunds SET refunded_at = now() WHERE id = 1$$);
RESET ROLE;
-- The same with the ROW(...) CHECK and its guard, and with two CHECKs that
-- call check_refund (refunded_at and tax_refunded_at): every refusal alike.
UPDATE t26.row_refunds SET benefits_activated = false;
CREATE TRIGGER refund_moment AFTER INSERT OR UPDATE ON t26.row_refunds FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_moment();
ALTER TABLE t26.refunds ADD COLUMN tax_exempt boolean DEFAULT true, ADD COLUMN tax_refunded_at timestamptz,
  ADD CONSTRAINT tax_refund_allowed CHECK (tax_refunded_at IS NULL
      OR refund_rules.check_refund(refunds, tax_refunded_at, 'tax'));
SET ROLE regress_rr_clerk;
SELECT t.tab, t.moment, pg_temp.refusal(format('UPDATE t26.%s SET refunded_at = now() + interval %L WHERE id = 1', t.tab, t.shift))
  FROM (VALUES ('row_refunds', '11 days back', '-11 days'), ('row_refunds', '9 days back', '-9 days'),
               ('refunds', '11 days back', '-11 days'), ('refunds', '9 days back', '-9 days')) t(tab, moment, shift)
 ORDER BY t.tab, t.moment;
RESET ROLE;
-- A wrapper that passes a row's values on as parameters hides them too;
-- values written in the call itself are shown.
CREATE FUNCTION t26.wrapped_check(o refund_rules.mpn_offer, t timestamptz, moment timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  RETURN refund_rules.check_refund(ROW(o, t, false, false, false, NULL)::refund_rules.purchase, moment);
END $$;
SELECT code, detail FROM t26_util.attempt($$SELECT t26.wrapped_check('gold', now() - interval '60 days', now())$$);
SELECT code, detail FROM t26_util.attempt($$SELECT refund_rules.check_refund(ROW('gold', now() - interval '60 days', false, false, false, NULL)::refund_rules.purchase, now())$$);
SELECT count(*) AS refunds_recorded FROM t26.refunds WHERE refunded_at IS NOT NULL;
-- max_lag: a moment 10 minutes back, for a purchase made 5 minutes ago and
-- one made 15 minutes ago: both judged at the transaction's start.
INSERT INTO t26.purchases VALUES (6, 'gold', now() - interval '5 minutes', false, false, false, true),
                                 (7, 'gold', now() - interval '15 minutes', false, false, false, true);
CREATE TABLE t26.lagged (purchase_id bigint REFERENCES t26.purchases,
  requested_at timestamptz DEFAULT now(), requested_by_role text);
CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON t26.lagged FOR EACH ROW
  EXECUTE FUNCTION refund_rules.enforce_refund_policy('purchases', 'purchase_id', 'max_lag=1 hour');
GRANT INSERT ON t26.lagged TO regress_rr_clerk;
SET ROLE regress_rr_clerk;
SELECT k.id, a.code FROM (VALUES (6), (7)) k(id),
  LATERAL t26_util.attempt(format('INSERT INTO t26.lagged VALUES (%s, now() - interval ''10 minutes'', ''account_admin'')', k.id)) a
 ORDER BY k.id;
RESET ROLE;

-- Clean up.
RESET ROLE;
DROP SCHEMA t26, t26_shop, t26_desk, t26_parts, t26_util CASCADE;
DROP OWNED BY regress_rr_nobody, regress_rr_clerk;
DROP ROLE regress_rr_nobody, regress_rr_clerk, regress_rr_noinherit, regress_rr_partner_admins;
