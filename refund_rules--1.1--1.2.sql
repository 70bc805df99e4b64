\echo Use "ALTER EXTENSION refund_rules UPDATE TO '1.2'" to load this file. \quit

-- refund_rules 1.1 -> 1.2: enforcement rebuilt on PostgreSQL's own
-- foundations.  The triggers are AFTER INSERT OR UPDATE row triggers bound
-- by the request table's foreign key (the C library changes with them): a
-- 1.1 trigger (BEFORE) is refused when it fires, with the statement that
-- recreates it; the triggers to recreate are listed below as warnings.

-- The schema belongs to the extension: nothing in it may be another
-- role's (a member or not), and from now on only a superuser may add to it.
DO $guard$
DECLARE
  foreign_objects pg_catalog.text;
BEGIN
  -- Not the extension's: not one of its members, or owned by a role that is
  -- not a superuser (ALTER EXTENSION ... ADD makes anything its owner owns a
  -- member; the extension's own objects are the installing superuser's).
  SELECT pg_catalog.string_agg(pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid), ', ')
    INTO foreign_objects
    FROM pg_catalog.pg_depend d
   WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass
     AND d.refobjid OPERATOR(pg_catalog.=) '@extschema@'::pg_catalog.regnamespace
     AND d.classid OPERATOR(pg_catalog.<>) 'pg_catalog.pg_extension'::pg_catalog.regclass
     AND (NOT EXISTS (SELECT FROM pg_catalog.pg_depend e
                       WHERE e.classid OPERATOR(pg_catalog.=) d.classid
                         AND e.objid OPERATOR(pg_catalog.=) d.objid
                         AND e.deptype OPERATOR(pg_catalog.=) 'e')
          OR NOT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_authid r
                            WHERE r.oid OPERATOR(pg_catalog.=) CASE d.classid
             WHEN 'pg_catalog.pg_proc'::pg_catalog.regclass THEN
               (SELECT o.proowner FROM pg_catalog.pg_proc o WHERE o.oid OPERATOR(pg_catalog.=) d.objid)
             WHEN 'pg_catalog.pg_type'::pg_catalog.regclass THEN
               (SELECT o.typowner FROM pg_catalog.pg_type o WHERE o.oid OPERATOR(pg_catalog.=) d.objid)
             WHEN 'pg_catalog.pg_class'::pg_catalog.regclass THEN
               (SELECT o.relowner FROM pg_catalog.pg_class o WHERE o.oid OPERATOR(pg_catalog.=) d.objid)
             WHEN 'pg_catalog.pg_operator'::pg_catalog.regclass THEN
               (SELECT o.oprowner FROM pg_catalog.pg_operator o WHERE o.oid OPERATOR(pg_catalog.=) d.objid)
             WHEN 'pg_catalog.pg_collation'::pg_catalog.regclass THEN
               (SELECT o.collowner FROM pg_catalog.pg_collation o WHERE o.oid OPERATOR(pg_catalog.=) d.objid)
             WHEN 'pg_catalog.pg_opclass'::pg_catalog.regclass THEN
               (SELECT o.opcowner FROM pg_catalog.pg_opclass o WHERE o.oid OPERATOR(pg_catalog.=) d.objid)
             WHEN 'pg_catalog.pg_opfamily'::pg_catalog.regclass THEN
               (SELECT o.opfowner FROM pg_catalog.pg_opfamily o WHERE o.oid OPERATOR(pg_catalog.=) d.objid)
             WHEN 'pg_catalog.pg_conversion'::pg_catalog.regclass THEN
               (SELECT o.conowner FROM pg_catalog.pg_conversion o WHERE o.oid OPERATOR(pg_catalog.=) d.objid)
             END), false));
  IF foreign_objects IS NOT NULL THEN
    RAISE EXCEPTION 'schema "%" holds objects that are not the extension''s', '@extschema@'
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = 'Not part of refund_rules: ' || foreign_objects || '.',
            HINT = 'Review and drop them (they may be look-alikes of the extension''s functions), then update again.';
  END IF;
  -- Only the owner may create in it; the owner becomes a superuser below.
  REVOKE CREATE ON SCHEMA @extschema@ FROM PUBLIC;
  PERFORM FROM pg_catalog.pg_namespace n, pg_catalog.aclexplode(n.nspacl) a
    WHERE n.oid OPERATOR(pg_catalog.=) '@extschema@'::pg_catalog.regnamespace
      AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'
      AND a.grantee OPERATOR(pg_catalog.<>) n.nspowner;
  IF FOUND THEN
    RAISE EXCEPTION 'other roles may create objects in schema "%"', '@extschema@'
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'REVOKE CREATE ON SCHEMA ' || '@extschema@' || ' FROM those roles, then update again.';
  END IF;
END
$guard$;
ALTER SCHEMA @extschema@ OWNER TO CURRENT_USER;

-- Triggers of 1.1 to recreate as AFTER INSERT OR UPDATE row triggers.
DO $recreate$
DECLARE
  t record;
BEGIN
  FOR t IN
    SELECT tg.tgname, tg.tgrelid::pg_catalog.regclass AS rel, p.proname
      FROM pg_catalog.pg_trigger tg
      JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) tg.tgfoid
     WHERE p.pronamespace OPERATOR(pg_catalog.=) '@extschema@'::pg_catalog.regnamespace
       AND NOT tg.tgisinternal AND tg.tgparentid OPERATOR(pg_catalog.=) 0
       AND (tg.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 2) OPERATOR(pg_catalog.<>) 0
  LOOP
    RAISE WARNING 'trigger "%" on table % must be recreated for refund_rules 1.2', t.tgname, t.rel
      USING DETAIL = t.proname || '() is now an AFTER INSERT OR UPDATE row trigger; until recreated, the trigger refuses every row.',
            HINT = CASE WHEN t.proname OPERATOR(pg_catalog.=) 'protect_refunded_purchase'
                        THEN 'Recreate it as CREATE CONSTRAINT TRIGGER ... AFTER INSERT OR UPDATE ON ... FROM <refund request table> FOR EACH ROW (see "Upgrading" in the README).'
                        ELSE 'Recreate it as CREATE TRIGGER ... AFTER INSERT OR UPDATE ON ... FOR EACH ROW (see "Upgrading" in the README).' END;
  END LOOP;
END
$recreate$;

COMMENT ON FUNCTION @extschema@.enforce_refund_policy() IS
  'AFTER INSERT OR UPDATE row trigger (best a constraint trigger) for refund requests. Arguments: purchases table, referencing column(s), key column(s) (default: the foreign key''s), then options requester=column|session, mpn_partner_admin_role=ROLE, account_admin_role=ROLE, max_lag=INTERVAL, mode=enforce|dry_run. The purchase is the one the foreign key on the referencing columns references, read and locked as its table''s owner; a request is judged at the database''s clock when the row is written; requested_at must be the transaction''s start (now()), give or take max_lag; raises 23514 for a refund the policy forbids';

COMMENT ON FUNCTION @extschema@.refund_request_status(anyelement) IS
  'What the enforce_refund_policy trigger of the row''s table would decide for inserting this refund request now, without inserting it or locking the purchase: allowed, reason codes (the purchase''s own as purchase_not_eligible unless the caller may read them) and deadline. The row''s requested_at is ignored: the request is one made now. Needs INSERT on the request table; writes nothing';

COMMENT ON FUNCTION @extschema@.protect_refunded_purchase() IS
  'AFTER INSERT OR UPDATE row trigger for the purchases table, made as a constraint trigger FROM the refund request table, companion of enforce_refund_policy. Arguments: refund request table, its referencing column(s), key column(s) of the purchases (default: the foreign key''s). Raises 23514 when a policy column or the key of a purchase with an accepted refund request changes, or such a purchase is inserted again';

COMMENT ON FUNCTION @extschema@.enforce_refund_moment() IS
  'AFTER INSERT OR UPDATE row trigger for a purchases table checked with check_refund. Arguments: the moment column (default refunded_at), then options kind=purchase|tax, max_lag=INTERVAL, mode=enforce|dry_run. A moment the statement writes must be the transaction''s start (now()), give or take max_lag, and is judged at the database''s clock too (backdated_request, postdated_request, 23514); a recorded refund cannot be withdrawn';

------------------------------------------------------------------------
-- Reason codes in plain words
------------------------------------------------------------------------

CREATE FUNCTION @extschema@.reason_codes(OUT "position" pg_catalog.int4, OUT code pg_catalog.text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'reason_codes'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 20;
COMMENT ON FUNCTION @extschema@.reason_codes() IS
  'Every reason code the extension can report, in the order it reports them';

CREATE VIEW @extschema@.reasons AS
SELECT c."position", c.code, d.description, d.criterion, d.changes_with_time, d.kinds
  FROM @extschema@.reason_codes() c
  LEFT JOIN (VALUES
    ('missing_kind', 'The request does not say whether it is for the price of the offer or for the tax.', 'request: kind', false, '{request}'::pg_catalog.text[]),
    ('backdated_request', 'The request is dated before the moment it was made; leave its time to the database.', 'request: moment', false, '{request}'),
    ('postdated_request', 'The request is dated after the moment it was made; leave its time to the database.', 'request: moment', false, '{request}'),
    ('not_yet_purchased', 'The purchase is dated after the moment of the request: it was not made yet.', 'W, TW', true, '{purchase,tax}'),
    ('refund_window_expired', 'The 30 days in which the price of the offer can be refunded have passed.', 'W', false, '{purchase}'),
    ('tax_refund_window_expired', 'The year in which the tax paid can be refunded has passed.', 'TW', false, '{tax}'),
    ('missing_purchased_at', 'The date of the purchase is not recorded.', 'W, TW', false, '{purchase,tax}'),
    ('missing_requested_at', 'The moment of the request is not recorded.', 'request: moment', false, '{request}'),
    ('benefits_activated', 'A benefit of the purchase has been activated or used.', 'B', false, '{purchase}'),
    ('missing_benefits_activated', 'It is not recorded whether a benefit of the purchase has been activated or used.', 'B', false, '{purchase}'),
    ('product_keys_viewed', 'A product key of the purchase has been viewed, even if not activated.', 'K', false, '{purchase}'),
    ('missing_product_keys_viewed', 'It is not recorded whether a product key of the purchase has been viewed.', 'K', false, '{purchase}'),
    ('upgraded_with_gold_discount', 'This Silver membership was upgraded to Gold with the 25 % Gold discount, so it cannot be refunded as Silver.', 'U', false, '{purchase}'),
    ('missing_offer', 'The offer of the purchase is not recorded.', 'U', false, '{purchase}'),
    ('missing_upgraded_with_gold_discount', 'It is not recorded whether this membership was upgraded with the Gold discount.', 'U', false, '{purchase}'),
    ('not_tax_exempt', 'The partner is not tax exempt, so there is no tax to refund.', 'TE', false, '{tax}'),
    ('missing_tax_exempt', 'It is not recorded whether the partner is tax exempt.', 'TE', false, '{tax}'),
    ('purchase_not_eligible', 'The purchase does not allow this refund; its details are shown only to staff who may see the purchase.', 'W, TW, B, K, U, TE', NULL, '{purchase,tax}'),
    ('requester_not_authorized', 'Only an MPN partner admin or an account admin may request a refund.', 'requester', false, '{request}'),
    ('missing_requested_by_role', 'The request does not say in which role it is made.', 'requester', false, '{request}')
  ) d(code, description, criterion, changes_with_time, kinds)
  ON d.code OPERATOR(pg_catalog.=) c.code;
GRANT SELECT ON @extschema@.reasons TO PUBLIC;
COMMENT ON VIEW @extschema@.reasons IS
  'One row per reason code: a sentence a support agent can read to a partner, the criterion of the policy (W, TW, B, K, U, TE of refund-policy.md, or the request''s own), whether it can still change with time, and the kinds of refund it concerns';

------------------------------------------------------------------------
-- Validating the refunds already recorded
------------------------------------------------------------------------

CREATE FUNCTION @extschema@.forbidden_refunds(refund_table pg_catalog.regclass,
    OUT row_key pg_catalog.text, OUT purchase_key pg_catalog.text,
    OUT requested_at pg_catalog.timestamptz, OUT reasons pg_catalog.text[])
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'forbidden_refunds'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE ROWS 100;
COMMENT ON FUNCTION @extschema@.forbidden_refunds(pg_catalog.regclass) IS
  'The rows of a refund request table (with an enforce_refund_policy trigger, mode=dry_run included) or of a purchases table checked by check_refund (with an enforce_refund_moment trigger) that the policy forbids at the moment each records, in the order of the table''s primary key: its key, its purchase''s key, the moment and the reason codes (NULL when the purchase is missing). Read as the caller, streamed; the purchase''s own reasons show as purchase_not_eligible to a caller who may not read the purchases. No row: the history obeys the policy';
