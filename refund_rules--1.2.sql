\echo Use "CREATE EXTENSION refund_rules" to load this file. \quit

-- refund_rules 1.2: refund eligibility of MPN benefit purchases.
-- Every name is qualified with @extschema@ or pg_catalog, so nothing here
-- depends on search_path (a database owner may run it: the extension is
-- trusted).

-- The extension's schema belongs to the extension.  A schema that was
-- there before CREATE EXTENSION (anyone with CREATE on the database can make
-- one) is refused if it holds anything, or if its owner is neither the
-- installing role nor a superuser (the schema a dropped install leaves
-- behind is a superuser's and empty: it is taken again).  Then it is handed
-- to the superuser running this script (for a trusted install by a
-- database owner: the bootstrap superuser), so that nobody but a superuser
-- can add an object to it (an overload of a function here would run as
-- whoever calls it).
DO $guard$
DECLARE
  owner pg_catalog.oid;
BEGIN
  SELECT n.nspowner INTO owner FROM pg_catalog.pg_namespace n
   WHERE n.oid OPERATOR(pg_catalog.=) '@extschema@'::pg_catalog.regnamespace;
  IF (owner OPERATOR(pg_catalog.<>) '@extowner@'::pg_catalog.regrole
      AND NOT (SELECT r.rolsuper FROM pg_catalog.pg_authid r WHERE r.oid OPERATOR(pg_catalog.=) owner))
     OR EXISTS (SELECT FROM pg_catalog.pg_depend d
                WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass
                  AND d.refobjid OPERATOR(pg_catalog.=) '@extschema@'::pg_catalog.regnamespace
                  AND d.classid OPERATOR(pg_catalog.<>) 'pg_catalog.pg_extension'::pg_catalog.regclass)
     OR EXISTS (SELECT FROM pg_catalog.pg_namespace n, pg_catalog.aclexplode(n.nspacl) a
                WHERE n.oid OPERATOR(pg_catalog.=) '@extschema@'::pg_catalog.regnamespace
                  AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'
                  AND a.grantee OPERATOR(pg_catalog.<>) n.nspowner)
  THEN
    RAISE EXCEPTION 'schema "%" already exists', '@extschema@'
      USING ERRCODE = 'duplicate_schema',
            DETAIL = 'The extension refund_rules creates its schema; a schema made before by another role, holding objects, or where another role may create objects could hold look-alikes of its functions.',
            HINT = 'Drop the schema, or have its owner drop it, then run CREATE EXTENSION again.';
  END IF;
END
$guard$;
ALTER SCHEMA @extschema@ OWNER TO CURRENT_USER;

-- Report writers of any role call the functions (EXECUTE is PUBLIC by
-- default); they need to reach the schema too.
GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;

------------------------------------------------------------------------
-- Types
------------------------------------------------------------------------

CREATE TYPE @extschema@.mpn_offer AS ENUM ('action_pack', 'silver', 'gold');
COMMENT ON TYPE @extschema@.mpn_offer IS
  'MPN benefit offer: Action Pack, Silver or Gold';

CREATE TYPE @extschema@.refund_kind AS ENUM ('purchase', 'tax');
COMMENT ON TYPE @extschema@.refund_kind IS
  'What a refund pays back: the price of the offer (purchase) or the tax paid (tax)';

CREATE TYPE @extschema@.purchase AS (
    offer                       @extschema@.mpn_offer,
    purchased_at                pg_catalog.timestamptz,
    benefits_activated          pg_catalog.bool,
    product_keys_viewed         pg_catalog.bool,
    upgraded_with_gold_discount pg_catalog.bool,
    tax_exempt                  pg_catalog.bool
);
COMMENT ON TYPE @extschema@.purchase IS
  'A purchase with the columns the refund rules read; build one with ROW(...)::refund_rules.purchase when your columns are named otherwise';

------------------------------------------------------------------------
-- Planner support and the column forms it rewrites calls into
------------------------------------------------------------------------

CREATE FUNCTION @extschema@.refund_rules_support(pg_catalog.internal)
RETURNS pg_catalog.internal
AS 'MODULE_PATHNAME', 'refund_rules_support'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.refund_rules_support(pg_catalog.internal) IS
  'Planner support: rewrites a whole-row call into a call on the needed columns plus a range on purchased_at';

CREATE FUNCTION @extschema@.refund_window_start(as_of pg_catalog.timestamptz, kind @extschema@.refund_kind)
RETURNS pg_catalog.timestamptz
AS 'MODULE_PATHNAME', 'refund_window_start'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.refund_window_start(pg_catalog.timestamptz, @extschema@.refund_kind) IS
  'Earliest purchased_at whose refund window of this kind can still be open at as_of (a lower bound, used for index ranges)';

CREATE FUNCTION @extschema@._refund_eligible(
    offer "any", purchased_at "any", benefits_activated "any",
    product_keys_viewed "any", upgraded_with_gold_discount "any",
    as_of pg_catalog.timestamptz)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'refund_eligible_columns'
LANGUAGE C IMMUTABLE PARALLEL SAFE COST 5
SUPPORT @extschema@.refund_rules_support;
COMMENT ON FUNCTION @extschema@._refund_eligible("any", "any", "any", "any", "any", pg_catalog.timestamptz) IS
  'refund_eligible on separate columns (what the planner rewrites refund_eligible(p) into)';

CREATE FUNCTION @extschema@._tax_refund_eligible(
    purchased_at "any", tax_exempt "any", as_of pg_catalog.timestamptz)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'tax_refund_eligible_columns'
LANGUAGE C IMMUTABLE PARALLEL SAFE COST 5
SUPPORT @extschema@.refund_rules_support;
COMMENT ON FUNCTION @extschema@._tax_refund_eligible("any", "any", pg_catalog.timestamptz) IS
  'tax_refund_eligible on separate columns (what the planner rewrites tax_refund_eligible(p) into)';

CREATE FUNCTION @extschema@._refund_ineligibility_reasons(
    offer "any", purchased_at "any", benefits_activated "any",
    product_keys_viewed "any", upgraded_with_gold_discount "any",
    tax_exempt "any", as_of pg_catalog.timestamptz, kind @extschema@.refund_kind)
RETURNS pg_catalog.text[]
AS 'MODULE_PATHNAME', 'refund_ineligibility_reasons_columns'
LANGUAGE C IMMUTABLE PARALLEL SAFE COST 5;
COMMENT ON FUNCTION @extschema@._refund_ineligibility_reasons("any", "any", "any", "any", "any", "any", pg_catalog.timestamptz, @extschema@.refund_kind) IS
  'refund_ineligibility_reasons on separate columns (what the planner rewrites refund_ineligibility_reasons(p) into)';

CREATE FUNCTION @extschema@._refund_status(
    offer "any", purchased_at "any", benefits_activated "any",
    product_keys_viewed "any", upgraded_with_gold_discount "any",
    tax_exempt "any", as_of pg_catalog.timestamptz,
    OUT refund_eligible pg_catalog.bool,
    OUT refund_reasons pg_catalog.text[],
    OUT refund_deadline pg_catalog.timestamptz,
    OUT tax_refund_eligible pg_catalog.bool,
    OUT tax_refund_reasons pg_catalog.text[],
    OUT tax_refund_deadline pg_catalog.timestamptz)
AS 'MODULE_PATHNAME', 'refund_status_columns'
LANGUAGE C IMMUTABLE PARALLEL SAFE COST 10;
COMMENT ON FUNCTION @extschema@._refund_status("any", "any", "any", "any", "any", "any", pg_catalog.timestamptz) IS
  'refund_status on separate columns (what the planner rewrites refund_status(p) into)';

------------------------------------------------------------------------
-- Query functions
------------------------------------------------------------------------

CREATE FUNCTION @extschema@.refund_deadline(purchased_at pg_catalog.timestamptz)
RETURNS pg_catalog.timestamptz
AS 'MODULE_PATHNAME', 'refund_deadline'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.refund_deadline(pg_catalog.timestamptz) IS
  'Last moment a purchase refund is allowed: purchased_at + 30 days (720 hours); infinity when beyond the largest timestamp';

CREATE FUNCTION @extschema@.tax_refund_deadline(purchased_at pg_catalog.timestamptz)
RETURNS pg_catalog.timestamptz
AS 'MODULE_PATHNAME', 'tax_refund_deadline'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.tax_refund_deadline(pg_catalog.timestamptz) IS
  'Last moment a tax refund is allowed: purchased_at read in UTC plus one calendar year (29 February gives 28 February)';

CREATE FUNCTION @extschema@.refund_eligible(
    purchase pg_catalog.record,
    as_of pg_catalog.timestamptz DEFAULT pg_catalog.now())
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'refund_eligible'
LANGUAGE C IMMUTABLE PARALLEL SAFE COST 5
SUPPORT @extschema@.refund_rules_support;
COMMENT ON FUNCTION @extschema@.refund_eligible(pg_catalog.record, pg_catalog.timestamptz) IS
  'True when the purchase may be refunded at as_of, false when it may not, NULL when a needed value is NULL';

CREATE FUNCTION @extschema@.tax_refund_eligible(
    purchase pg_catalog.record,
    as_of pg_catalog.timestamptz DEFAULT pg_catalog.now())
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'tax_refund_eligible'
LANGUAGE C IMMUTABLE PARALLEL SAFE COST 5
SUPPORT @extschema@.refund_rules_support;
COMMENT ON FUNCTION @extschema@.tax_refund_eligible(pg_catalog.record, pg_catalog.timestamptz) IS
  'True when the tax paid on the purchase may be refunded at as_of, false when not, NULL when a needed value is NULL';

CREATE FUNCTION @extschema@.refund_ineligibility_reasons(
    purchase pg_catalog.record,
    as_of pg_catalog.timestamptz DEFAULT pg_catalog.now(),
    kind @extschema@.refund_kind DEFAULT 'purchase')
RETURNS pg_catalog.text[]
AS 'MODULE_PATHNAME', 'refund_ineligibility_reasons'
LANGUAGE C IMMUTABLE PARALLEL SAFE COST 10
SUPPORT @extschema@.refund_rules_support;
COMMENT ON FUNCTION @extschema@.refund_ineligibility_reasons(pg_catalog.record, pg_catalog.timestamptz, @extschema@.refund_kind) IS
  'Reason codes why a refund of this kind is not allowed at as_of, in the policy''s order; {} when it is allowed';

CREATE FUNCTION @extschema@.refund_status(
    purchase pg_catalog.record,
    as_of pg_catalog.timestamptz DEFAULT pg_catalog.now(),
    OUT refund_eligible pg_catalog.bool,
    OUT refund_reasons pg_catalog.text[],
    OUT refund_deadline pg_catalog.timestamptz,
    OUT tax_refund_eligible pg_catalog.bool,
    OUT tax_refund_reasons pg_catalog.text[],
    OUT tax_refund_deadline pg_catalog.timestamptz)
AS 'MODULE_PATHNAME', 'refund_status'
LANGUAGE C IMMUTABLE PARALLEL SAFE COST 20
SUPPORT @extschema@.refund_rules_support;
COMMENT ON FUNCTION @extschema@.refund_status(pg_catalog.record, pg_catalog.timestamptz) IS
  'Both refunds of a purchase at as_of in one row: eligibility, reasons and deadline of the purchase refund and of the tax refund';

------------------------------------------------------------------------
-- Enforcement
------------------------------------------------------------------------

CREATE FUNCTION @extschema@.check_refund(
    purchase pg_catalog.record,
    requested_at pg_catalog.timestamptz,
    kind @extschema@.refund_kind DEFAULT 'purchase')
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'check_refund'
LANGUAGE C IMMUTABLE PARALLEL SAFE COST 10;
COMMENT ON FUNCTION @extschema@.check_refund(pg_catalog.record, pg_catalog.timestamptz, @extschema@.refund_kind) IS
  'Check-constraint helper: true when the refund requested at requested_at is provably allowed, otherwise raises check_violation (23514) with the reasons in DETAIL and the deadline in HINT';

CREATE FUNCTION @extschema@.enforce_refund_policy()
RETURNS trigger
AS 'MODULE_PATHNAME', 'enforce_refund_policy'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.enforce_refund_policy() IS
  'AFTER INSERT OR UPDATE row trigger (best a constraint trigger) for refund requests. Arguments: purchases table, referencing column(s), key column(s) (default: the foreign key''s), then options requester=column|session, mpn_partner_admin_role=ROLE, account_admin_role=ROLE, max_lag=INTERVAL, mode=enforce|dry_run. The purchase is the one the foreign key on the referencing columns references, read and locked as its table''s owner; a request is judged at the database''s clock when the row is written; requested_at must be the transaction''s start (now()), give or take max_lag; raises 23514 for a refund the policy forbids';

CREATE FUNCTION @extschema@.refund_request_status(request anyelement,
    OUT allowed pg_catalog.bool, OUT reasons pg_catalog.text[], OUT deadline pg_catalog.timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'refund_request_status'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.refund_request_status(anyelement) IS
  'What the enforce_refund_policy trigger of the row''s table would decide for inserting this refund request now, without inserting it or locking the purchase: allowed, reason codes (the purchase''s own as purchase_not_eligible unless the caller may read them) and deadline. The row''s requested_at is ignored: the request is one made now. Needs INSERT on the request table; writes nothing';

CREATE FUNCTION @extschema@.protect_refunded_purchase()
RETURNS trigger
AS 'MODULE_PATHNAME', 'protect_refunded_purchase'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.protect_refunded_purchase() IS
  'AFTER INSERT OR UPDATE row trigger for the purchases table, made as a constraint trigger FROM the refund request table, companion of enforce_refund_policy. Arguments: refund request table, its referencing column(s), key column(s) of the purchases (default: the foreign key''s). Raises 23514 when a policy column or the key of a purchase with an accepted refund request changes, or such a purchase is inserted again';

CREATE FUNCTION @extschema@.enforce_refund_moment()
RETURNS trigger
AS 'MODULE_PATHNAME', 'enforce_refund_moment'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
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
