/*-------------------------------------------------------------------------
 *
 * refund_rules.c
 *		The module's entry and the policy core: refund windows, reasons and
 *		verdicts as plain C on plain values (no catalog access, no SQL).
 *
 * The rules are those of shared/refund-policy.md.  The other files, in the
 * order data flows:
 *
 *	catalog.c		the extension's own types and labels in this database
 *	purchase.c		reading a purchase from a row of any row type, or columns
 *	query.c			refund_eligible() and the other query functions
 *	support.c		planner support: the whole-row rewrite, index ranges
 *	report.c		refusals (check_violation) and check_refund()
 *	trigger.c		what the triggers share: protocol, arguments, keys, kept state
 *	request.c		enforce_refund_policy() and refund_request_status()
 *	protect.c		the purchases table's triggers: protect_refunded_purchase()
 *					and enforce_refund_moment()
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/datetime.h"

#include "refund_rules.h"

RR_MODULE_MAGIC;

const char *const rr_field_names[NUM_FIELDS] = {
	"offer",
	"purchased_at",
	"benefits_activated",
	"product_keys_viewed",
	"upgraded_with_gold_discount",
	"tax_exempt"
};

const char *const rr_offer_labels[NUM_OFFERS] = {"action_pack", "silver", "gold"};

const char *const rr_kind_labels[NUM_KINDS] = {"purchase", "tax"};

const char *const rr_reason_codes[NUM_REASONS] = {
	"missing_kind",
	"backdated_request",
	"postdated_request",
	"not_yet_purchased",
	"refund_window_expired",
	"tax_refund_window_expired",
	"missing_purchased_at",
	"missing_requested_at",
	"benefits_activated",
	"missing_benefits_activated",
	"product_keys_viewed",
	"missing_product_keys_viewed",
	"upgraded_with_gold_discount",
	"missing_offer",
	"missing_upgraded_with_gold_discount",
	"not_tax_exempt",
	"missing_tax_exempt",
	"purchase_not_eligible",
	"requester_not_authorized",
	"missing_requested_by_role"
};

/* Reasons saying a criterion cannot be decided (an input is NULL). */
#define UNDECIDED_REASONS \
	(REASON_BIT(REASON_MISSING_KIND) | REASON_BIT(REASON_MISSING_PURCHASED_AT) | \
	 REASON_BIT(REASON_MISSING_REQUESTED_AT) | \
	 REASON_BIT(REASON_MISSING_BENEFITS_ACTIVATED) | \
	 REASON_BIT(REASON_MISSING_PRODUCT_KEYS_VIEWED) | \
	 REASON_BIT(REASON_MISSING_OFFER) | \
	 REASON_BIT(REASON_MISSING_UPGRADED_WITH_GOLD_DISCOUNT) | \
	 REASON_BIT(REASON_MISSING_TAX_EXEMPT) | \
	 REASON_BIT(REASON_MISSING_REQUESTED_BY_ROLE))

/*
 * Last moment of the purchase refund window: 720 hours after the purchase.
 * Infinite purchases keep their infinity; a deadline past the largest
 * timestamp is never reached, so it is infinity.
 */
TimestampTz
rr_refund_deadline_of(TimestampTz purchased_at)
{
	if (TIMESTAMP_NOT_FINITE(purchased_at))
		return purchased_at;
	if (purchased_at > LAST_TIMESTAMP - REFUND_WINDOW)
		return DT_NOEND;
	return purchased_at + REFUND_WINDOW;
}

/*
 * Last moment of the tax refund window: the purchase read in UTC plus one
 * calendar year; 29 February gives 28 February.
 */
TimestampTz
rr_tax_refund_deadline_of(TimestampTz purchased_at)
{
	struct pg_tm tm;
	fsec_t		fsec;
	Timestamp	result;

	if (TIMESTAMP_NOT_FINITE(purchased_at))
		return purchased_at;
	if (timestamp2tm(purchased_at, NULL, &tm, &fsec, NULL, NULL) != 0)
		return DT_NOEND;		/* out of the calendar's range: never reached */
	tm.tm_year += 1;
	if (tm.tm_mon == 2 && tm.tm_mday == 29 && !isleap(tm.tm_year))
		tm.tm_mday = 28;
	if (tm2timestamp(&tm, fsec, NULL, &result) != 0 || !IS_VALID_TIMESTAMP(result))
		return DT_NOEND;
	return result;
}

/* The last moment of a refund of this kind: the one place kind chooses it. */
TimestampTz
rr_deadline_of(TimestampTz purchased_at, RefundKind kind)
{
	return (kind == KIND_TAX) ? rr_tax_refund_deadline_of(purchased_at)
		: rr_refund_deadline_of(purchased_at);
}

/*
 * A lower bound of the purchases whose window of this kind can be open at
 * as_of: every purchase with a deadline at or after as_of was made at or
 * after it.  Used as an index range, so it may be low, never high.  For
 * the purchase window it is exact: with purchased_at <= as_of, the window
 * is open exactly when purchased_at is at or after it (the planner
 * support relies on this).
 */
TimestampTz
rr_window_start_of(TimestampTz as_of, RefundKind kind)
{
	int64		span = (kind == KIND_TAX) ? TAX_WINDOW_MAX : REFUND_WINDOW;

	if (TIMESTAMP_IS_NOBEGIN(as_of))
		return DT_NOBEGIN;
	if (TIMESTAMP_IS_NOEND(as_of))
		return LAST_TIMESTAMP - span + 1;	/* deadlines past the range */
	if (as_of < MIN_TIMESTAMP + span)
		return MIN_TIMESTAMP;	/* not -infinity: its deadline is -infinity */
	return as_of - span;
}

/*
 * The window criterion: purchased_at <= as_of <= deadline.  as_of_known is
 * false when the moment of the request is NULL.
 */
uint32
rr_window_reasons(const Purchase *p, TimestampTz as_of, bool as_of_known, RefundKind kind)
{
	uint32		reasons = 0;
	TimestampTz deadline;

	if (p->isnull[FIELD_PURCHASED_AT])
		reasons |= REASON_BIT(REASON_MISSING_PURCHASED_AT);
	if (!as_of_known)
		reasons |= REASON_BIT(REASON_MISSING_REQUESTED_AT);
	if (reasons)
		return reasons;

	if (as_of < p->purchased_at)
		return REASON_BIT(REASON_NOT_YET_PURCHASED);
	deadline = rr_deadline_of(p->purchased_at, kind);
	if (as_of > deadline)
		return REASON_BIT(kind == KIND_TAX ? REASON_TAX_REFUND_WINDOW_EXPIRED
						  : REASON_REFUND_WINDOW_EXPIRED);
	return 0;
}

/* A criterion "flag must be false" (wanted = false) or "must be true". */
static uint32
flag_reasons(const Purchase *p, PurchaseField f, bool wanted, Reason failed, Reason missing)
{
	if (p->isnull[f])
		return REASON_BIT(missing);
	return (p->flag[f] == wanted) ? 0 : REASON_BIT(failed);
}

/*
 * Criterion U: not (offer = silver and upgraded_with_gold_discount), in
 * three-valued logic.  A NULL offer matters only when the flag is not
 * false; a NULL flag only when the offer is not known to be another one.
 */
static uint32
upgrade_reasons(const Purchase *p)
{
	bool		offer_null = p->isnull[FIELD_OFFER];
	bool		flag_null = p->isnull[FIELD_UPGRADED_WITH_GOLD_DISCOUNT];
	bool		flag = !flag_null && p->flag[FIELD_UPGRADED_WITH_GOLD_DISCOUNT];
	uint32		reasons = 0;

	if (!offer_null && p->offer != OFFER_SILVER)
		return 0;
	if (!flag_null && !flag)
		return 0;
	if (!offer_null && !flag_null)
		return REASON_BIT(REASON_UPGRADED_WITH_GOLD_DISCOUNT);
	if (offer_null)
		reasons |= REASON_BIT(REASON_MISSING_OFFER);
	if (flag_null)
		reasons |= REASON_BIT(REASON_MISSING_UPGRADED_WITH_GOLD_DISCOUNT);
	return reasons;
}

/* Every reason a refund of this kind is not allowed at as_of. */
uint32
rr_refund_reasons(const Purchase *p, TimestampTz as_of, bool as_of_known, RefundKind kind)
{
	uint32		reasons = rr_window_reasons(p, as_of, as_of_known, kind);

	if (kind == KIND_TAX)
		return reasons | flag_reasons(p, FIELD_TAX_EXEMPT, true,
									  REASON_NOT_TAX_EXEMPT, REASON_MISSING_TAX_EXEMPT);

	reasons |= flag_reasons(p, FIELD_BENEFITS_ACTIVATED, false,
							REASON_BENEFITS_ACTIVATED, REASON_MISSING_BENEFITS_ACTIVATED);
	reasons |= flag_reasons(p, FIELD_PRODUCT_KEYS_VIEWED, false,
							REASON_PRODUCT_KEYS_VIEWED, REASON_MISSING_PRODUCT_KEYS_VIEWED);
	return reasons | upgrade_reasons(p);
}

/*
 * Three-valued verdict of a set of reasons: false when a criterion
 * definitely fails, NULL when none fails but one is undecided, else true.
 */
Datum
rr_verdict(uint32 reasons, bool *isnull)
{
	*isnull = false;
	if (reasons & ~UNDECIDED_REASONS)
		return BoolGetDatum(false);
	if (reasons != 0)
	{
		*isnull = true;
		return (Datum) 0;
	}
	return BoolGetDatum(true);
}

/* The fields a refund of this kind reads. */
uint32
rr_fields_for_kind(RefundKind kind)
{
	return (kind == KIND_TAX) ? FIELDS_TAX : FIELDS_REFUND;
}
