\echo Use "ALTER EXTENSION refund_rules UPDATE TO '1.1'" to load this file. \quit

-- refund_rules 1.0 -> 1.1: enforcement that trusts nothing the client writes.
-- The trigger judges requests at the database's clock and takes options
-- (the C library changes with it); two companion triggers for the
-- purchases table are new.

COMMENT ON FUNCTION @extschema@.enforce_refund_policy() IS
  'BEFORE INSERT OR UPDATE row trigger for refund requests. Arguments: purchases table, referencing column(s), key column(s) (default id), then options requester=column|session, mpn_partner_admin_role=ROLE, account_admin_role=ROLE, max_lag=INTERVAL. Judges a request at the database''s clock when the row is written; refuses a requested_at before the transaction start or after the clock (backdated_request, postdated_request; give or take max_lag); raises 23514 for a refund the policy forbids';

CREATE FUNCTION @extschema@.refund_request_status(request anyelement,
    OUT allowed pg_catalog.bool, OUT reasons pg_catalog.text[], OUT deadline pg_catalog.timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'refund_request_status'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.refund_request_status(anyelement) IS
  'What the enforce_refund_policy trigger of the row''s table would decide for inserting this refund request now, without inserting it or locking the purchase: allowed, reason codes (the purchase''s own as purchase_not_eligible unless the caller may read them) and deadline. A NULL requested_at stands for now(). Needs INSERT on the request table';

CREATE FUNCTION @extschema@.protect_refunded_purchase()
RETURNS trigger
AS 'MODULE_PATHNAME', 'protect_refunded_purchase'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.protect_refunded_purchase() IS
  'BEFORE UPDATE row trigger for the purchases table, companion of enforce_refund_policy. Arguments: refund request table, its referencing column(s), key column(s) of the purchases (default id). Raises 23514 when a policy column or the key of a purchase with an accepted refund request changes';

CREATE FUNCTION @extschema@.enforce_refund_moment()
RETURNS trigger
AS 'MODULE_PATHNAME', 'enforce_refund_moment'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.enforce_refund_moment() IS
  'BEFORE INSERT OR UPDATE row trigger for a purchases table checked with check_refund. Arguments: the moment column (default refunded_at), then options kind=purchase|tax, max_lag=INTERVAL. A moment the statement writes is judged at the database''s clock; one before the transaction start or after the clock is refused (backdated_request, postdated_request, 23514), and a recorded refund cannot be withdrawn';

-- The column forms' C functions are named without a leading underscore
-- (such names are reserved in C); their SQL names stay.  Until this update
-- runs, the planner support of the 1.1 library leaves calls unrewritten.
CREATE OR REPLACE FUNCTION @extschema@._refund_eligible(
    offer "any", purchased_at "any", benefits_activated "any",
    product_keys_viewed "any", upgraded_with_gold_discount "any",
    as_of pg_catalog.timestamptz)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'refund_eligible_columns'
LANGUAGE C IMMUTABLE PARALLEL SAFE COST 5
SUPPORT @extschema@.refund_rules_support;

CREATE OR REPLACE FUNCTION @extschema@._tax_refund_eligible(
    purchased_at "any", tax_exempt "any", as_of pg_catalog.timestamptz)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'tax_refund_eligible_columns'
LANGUAGE C IMMUTABLE PARALLEL SAFE COST 5
SUPPORT @extschema@.refund_rules_support;

CREATE OR REPLACE FUNCTION @extschema@._refund_ineligibility_reasons(
    offer "any", purchased_at "any", benefits_activated "any",
    product_keys_viewed "any", upgraded_with_gold_discount "any",
    tax_exempt "any", as_of pg_catalog.timestamptz, kind @extschema@.refund_kind)
RETURNS pg_catalog.text[]
AS 'MODULE_PATHNAME', 'refund_ineligibility_reasons_columns'
LANGUAGE C IMMUTABLE PARALLEL SAFE COST 5;

CREATE OR REPLACE FUNCTION @extschema@._refund_status(
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
