\echo Use "ALTER EXTENSION refund_rules UPDATE TO '1.1'" to load this file. \quit

-- refund_rules 1.0 -> 1.1: enforcement that trusts nothing the client writes.
-- The trigger judges requests at the database's clock and takes options
-- (the C library changes with it); two companion triggers for the
-- purchases table are new.

COMMENT ON FUNCTION @extschema@.enforce_refund_policy() IS
  'BEFORE INSERT OR UPDATE row trigger for refund requests. Arguments: purchases table, referencing column(s), key column(s) (default id), then options requester=column|session, mpn_partner_admin_role=ROLE, account_admin_role=ROLE, max_lag=INTERVAL. Judges a request at the later of requested_at and the statement start; refuses a requested_at before the transaction start (backdated_request); raises 23514 for a refund the policy forbids';

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
  'BEFORE INSERT OR UPDATE row trigger for a purchases table checked with check_refund. Arguments: the moment column (default refunded_at), then options kind=purchase|tax, max_lag=INTERVAL. A moment the statement writes is judged at the later of it and the statement start; one before the transaction start is refused (backdated_request, 23514)';
