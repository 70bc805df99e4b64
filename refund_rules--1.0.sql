\echo Use "CREATE EXTENSION refund_rules" to load this file. \quit

-- refund_rules 1.0: refund eligibility of MPN benefit purchases.
-- Every name is qualified with @extschema@ or pg_catalog, so nothing here
-- depends on search_path (a database owner may run it: the extension is
-- trusted).

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
AS 'MODULE_PATHNAME', '_refund_eligible'
LANGUAGE C IMMUTABLE PARALLEL SAFE COST 5
SUPPORT @extschema@.refund_rules_support;
COMMENT ON FUNCTION @extschema@._refund_eligible("any", "any", "any", "any", "any", pg_catalog.timestamptz) IS
  'refund_eligible on separate columns (what the planner rewrites refund_eligible(p) into)';

CREATE FUNCTION @extschema@._tax_refund_eligible(
    purchased_at "any", tax_exempt "any", as_of pg_catalog.timestamptz)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', '_tax_refund_eligible'
LANGUAGE C IMMUTABLE PARALLEL SAFE COST 5
SUPPORT @extschema@.refund_rules_support;
COMMENT ON FUNCTION @extschema@._tax_refund_eligible("any", "any", pg_catalog.timestamptz) IS
  'tax_refund_eligible on separate columns (what the planner rewrites tax_refund_eligible(p) into)';

CREATE FUNCTION @extschema@._refund_ineligibility_reasons(
    offer "any", purchased_at "any", benefits_activated "any",
    product_keys_viewed "any", upgraded_with_gold_discount "any",
    tax_exempt "any", as_of pg_catalog.timestamptz, kind @extschema@.refund_kind)
RETURNS pg_catalog.text[]
AS 'MODULE_PATHNAME', '_refund_ineligibility_reasons'
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
AS 'MODULE_PATHNAME', '_refund_status'
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
  'BEFORE INSERT OR UPDATE row trigger for refund requests; arguments: purchases table, referencing column, key column (default id); raises 23514 for a refund the policy forbids';
