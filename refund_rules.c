/*-------------------------------------------------------------------------
 *
 * refund_rules.c
 *		Refund eligibility of MPN benefit purchases (Action Pack, Silver,
 *		Gold), decided inside the database.
 *
 * The rules are those of shared/refund-policy.md.  The file follows the
 * way data flows:
 *
 *	POLICY CORE			pure C on plain values: windows, reasons, verdicts
 *	READING A PURCHASE	from a row value of any row type, or from columns
 *	QUERY FUNCTIONS		refund_eligible() and friends
 *	ENFORCEMENT			check_refund() and the enforce_refund_policy trigger
 *	PLANNER SUPPORT		the whole-row rewrite, index ranges, selectivity
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/pg_am.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/pathnodes.h"
#include "nodes/supportnodes.h"
#include "optimizer/clauses.h"
#include "optimizer/optimizer.h"
#include "parser/parse_coerce.h"
#include "parser/parsetree.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/selfuncs.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"
#include "utils/varlena.h"

PG_MODULE_MAGIC;


/* ==================================================================
 *		POLICY CORE
 *
 * Plain C on plain values: no catalog access, no SQL.
 * ==================================================================
 */

/* The purchase refund window: 30 days of elapsed time. */
#define REFUND_WINDOW	((int64) 720 * USECS_PER_HOUR)

/* A calendar year is at most this long: a lower bound for tax windows. */
#define TAX_WINDOW_MAX	((int64) 366 * USECS_PER_DAY)

/* The largest finite timestamp. */
#define LAST_TIMESTAMP	(END_TIMESTAMP - 1)

/* The fields of a purchase, in the order of refund_rules.purchase. */
typedef enum PurchaseField
{
	FIELD_OFFER,
	FIELD_PURCHASED_AT,
	FIELD_BENEFITS_ACTIVATED,
	FIELD_PRODUCT_KEYS_VIEWED,
	FIELD_UPGRADED_WITH_GOLD_DISCOUNT,
	FIELD_TAX_EXEMPT,
	NUM_FIELDS
} PurchaseField;

static const char *const field_names[NUM_FIELDS] = {
	"offer",
	"purchased_at",
	"benefits_activated",
	"product_keys_viewed",
	"upgraded_with_gold_discount",
	"tax_exempt"
};

/* Sets of fields, as bit masks. */
#define FIELD_BIT(f)	(1u << (f))
#define FIELDS_REFUND	(FIELD_BIT(FIELD_OFFER) | FIELD_BIT(FIELD_PURCHASED_AT) | \
						 FIELD_BIT(FIELD_BENEFITS_ACTIVATED) | \
						 FIELD_BIT(FIELD_PRODUCT_KEYS_VIEWED) | \
						 FIELD_BIT(FIELD_UPGRADED_WITH_GOLD_DISCOUNT))
#define FIELDS_TAX		(FIELD_BIT(FIELD_PURCHASED_AT) | FIELD_BIT(FIELD_TAX_EXEMPT))
#define FIELDS_ALL		(FIELDS_REFUND | FIELDS_TAX)

typedef enum MpnOffer
{
	OFFER_ACTION_PACK,
	OFFER_SILVER,
	OFFER_GOLD,
	NUM_OFFERS
} MpnOffer;

static const char *const offer_labels[NUM_OFFERS] = {"action_pack", "silver", "gold"};

typedef enum RefundKind
{
	KIND_PURCHASE,
	KIND_TAX,
	NUM_KINDS
} RefundKind;

static const char *const kind_labels[NUM_KINDS] = {"purchase", "tax"};

/* A purchase as plain values; a field is valid only when not isnull. */
typedef struct Purchase
{
	bool		isnull[NUM_FIELDS];
	MpnOffer	offer;
	TimestampTz purchased_at;
	bool		flag[NUM_FIELDS];	/* the boolean fields, by field */
} Purchase;

/*
 * Reason codes, in the fixed order they are reported in: the window first,
 * then benefits, keys, upgrade, tax exemption, then the requester.  A
 * "missing_" reason stands where its criterion stands.
 */
typedef enum Reason
{
	REASON_MISSING_KIND,
	REASON_BACKDATED_REQUEST,
	REASON_POSTDATED_REQUEST,
	REASON_NOT_YET_PURCHASED,
	REASON_REFUND_WINDOW_EXPIRED,
	REASON_TAX_REFUND_WINDOW_EXPIRED,
	REASON_MISSING_PURCHASED_AT,
	REASON_MISSING_REQUESTED_AT,
	REASON_BENEFITS_ACTIVATED,
	REASON_MISSING_BENEFITS_ACTIVATED,
	REASON_PRODUCT_KEYS_VIEWED,
	REASON_MISSING_PRODUCT_KEYS_VIEWED,
	REASON_UPGRADED_WITH_GOLD_DISCOUNT,
	REASON_MISSING_OFFER,
	REASON_MISSING_UPGRADED_WITH_GOLD_DISCOUNT,
	REASON_NOT_TAX_EXEMPT,
	REASON_MISSING_TAX_EXEMPT,
	REASON_REQUESTER_NOT_AUTHORIZED,
	REASON_MISSING_REQUESTED_BY_ROLE,
	NUM_REASONS
} Reason;

static const char *const reason_codes[NUM_REASONS] = {
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
	"requester_not_authorized",
	"missing_requested_by_role"
};

#define REASON_BIT(r)	(UINT32_C(1) << (r))

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
static TimestampTz
refund_deadline_of(TimestampTz purchased_at)
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
static TimestampTz
tax_refund_deadline_of(TimestampTz purchased_at)
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

/*
 * A lower bound of the purchases whose window of this kind can be open at
 * as_of: every purchase with a deadline at or after as_of was made at or
 * after it.  Used as an index range, so it may be low, never high.
 */
static TimestampTz
window_start_of(TimestampTz as_of, RefundKind kind)
{
	int64		span = (kind == KIND_TAX) ? TAX_WINDOW_MAX : REFUND_WINDOW;

	if (TIMESTAMP_IS_NOBEGIN(as_of))
		return DT_NOBEGIN;
	if (TIMESTAMP_IS_NOEND(as_of))
		return LAST_TIMESTAMP - span + 1;	/* deadlines past the range */
	if (as_of < MIN_TIMESTAMP + span)
		return DT_NOBEGIN;
	return as_of - span;
}

/*
 * The window criterion: purchased_at <= as_of <= deadline.  as_of_known is
 * false when the moment of the request is NULL.
 */
static uint32
window_reasons(const Purchase *p, TimestampTz as_of, bool as_of_known, RefundKind kind)
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
	deadline = (kind == KIND_TAX) ? tax_refund_deadline_of(p->purchased_at)
		: refund_deadline_of(p->purchased_at);
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
static uint32
refund_reasons(const Purchase *p, TimestampTz as_of, bool as_of_known, RefundKind kind)
{
	uint32		reasons = window_reasons(p, as_of, as_of_known, kind);

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
static Datum
verdict(uint32 reasons, bool *isnull)
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
static uint32
fields_for_kind(RefundKind kind)
{
	return (kind == KIND_TAX) ? FIELDS_TAX : FIELDS_REFUND;
}


/* ==================================================================
 *		READING A PURCHASE
 *
 * A purchase comes as a row value of any row type, its columns found by
 * name, or as separate arguments (the columns the planner support passed).
 * What is derived from a row type is cached per call site in fn_extra.
 * ==================================================================
 */

/* How a column supplies its field. */
typedef enum ValueKind
{
	VALUE_UNUSABLE,				/* missing, or of a type we do not read */
	VALUE_OFFER_ENUM,			/* refund_rules.mpn_offer */
	VALUE_OFFER_TEXT,			/* text or varchar holding a label */
	VALUE_TIMESTAMP,			/* timestamptz, or timestamp read as UTC */
	VALUE_BOOL					/* boolean */
} ValueKind;

/* What the extension's types are in this database. */
typedef struct ExtensionTypes
{
	Oid			nsp;			/* the extension's schema */
	Oid			mpn_offer;
	Oid			offer_label[NUM_OFFERS];
	Oid			refund_kind;
	Oid			kind_label[NUM_KINDS];
} ExtensionTypes;

/* Where the fields of a purchase are, for one row type or argument list. */
typedef struct PurchaseReader
{
	bool		valid;
	Oid			rowtype;		/* the row type read (row form) */
	int32		rowtypmod;
	uint64		rowtype_id;		/* changes when the row type is altered */
	const char *rowname;		/* for messages */
	TupleDesc	tupdesc;		/* our copy, or NULL for the column form */
	AttrNumber	attnum[NUM_FIELDS]; /* column (1-based) or argument (0-based) */
	Oid			coltype[NUM_FIELDS];	/* InvalidOid when missing */
	ValueKind	kind[NUM_FIELDS];
	uint32		usable;			/* fields that can be read */
} PurchaseReader;

/* Everything a call site keeps between calls, in fn_mcxt. */
typedef struct CallCache
{
	ExtensionTypes ext;
	PurchaseReader reader;
	Datum		reason_text[NUM_REASONS];	/* built on first use */
	TupleDesc	result_desc;	/* refund_status's row */
} CallCache;

static Oid
enum_label_oid(Oid enumtype, const char *label)
{
	HeapTuple	tup;
	Oid			result;

	tup = SearchSysCache2(ENUMTYPOIDNAME, ObjectIdGetDatum(enumtype),
						  CStringGetDatum(label));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "label \"%s\" of enum %u not found", label, enumtype);
	result = ((Form_pg_enum) GETSTRUCT(tup))->oid;
	ReleaseSysCache(tup);
	return result;
}

static Oid
extension_type_oid(Oid nsp, const char *name)
{
	Oid			typid = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
										CStringGetDatum(name), ObjectIdGetDatum(nsp));

	if (!OidIsValid(typid))
		elog(ERROR, "type \"%s\" of extension refund_rules not found", name);
	return typid;
}

/* Look the extension's types up in the schema of one of its functions. */
static void
lookup_extension_types(ExtensionTypes *ext, Oid nsp)
{
	int			i;

	ext->nsp = nsp;
	ext->mpn_offer = extension_type_oid(nsp, "mpn_offer");
	for (i = 0; i < NUM_OFFERS; i++)
		ext->offer_label[i] = enum_label_oid(ext->mpn_offer, offer_labels[i]);
	ext->refund_kind = extension_type_oid(nsp, "refund_kind");
	for (i = 0; i < NUM_KINDS; i++)
		ext->kind_label[i] = enum_label_oid(ext->refund_kind, kind_labels[i]);
}

static CallCache *
get_call_cache(FunctionCallInfo fcinfo)
{
	CallCache  *cache = (CallCache *) fcinfo->flinfo->fn_extra;

	if (cache == NULL)
	{
		cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(CallCache));
		lookup_extension_types(&cache->ext, get_func_namespace(fcinfo->flinfo->fn_oid));
		fcinfo->flinfo->fn_extra = cache;
	}
	return cache;
}

/* How a value of type typid can supply field f. */
static ValueKind
value_kind_for(const ExtensionTypes *ext, PurchaseField f, Oid typid)
{
	Oid			base = getBaseType(typid);

	switch (f)
	{
		case FIELD_OFFER:
			if (base == ext->mpn_offer)
				return VALUE_OFFER_ENUM;
			if (base == TEXTOID || base == VARCHAROID)
				return VALUE_OFFER_TEXT;
			break;
		case FIELD_PURCHASED_AT:
			if (base == TIMESTAMPTZOID || base == TIMESTAMPOID)
				return VALUE_TIMESTAMP;
			break;
		default:
			if (base == BOOLOID)
				return VALUE_BOOL;
			break;
	}
	return VALUE_UNUSABLE;
}

static const char *
field_expected_type(PurchaseField f)
{
	switch (f)
	{
		case FIELD_OFFER:
			return "refund_rules.mpn_offer, text or character varying";
		case FIELD_PURCHASED_AT:
			return "timestamp with time zone or timestamp without time zone";
		default:
			return "boolean";
	}
}

/* The column of a row type with this name (not dropped), or NULL. */
static Form_pg_attribute
table_column(TupleDesc tupdesc, const char *name)
{
	int			i;

	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return att;
	}
	return NULL;
}

/* The attribute of a row type that holds field f, or NULL. */
static Form_pg_attribute
find_field_column(TupleDesc tupdesc, PurchaseField f)
{
	return table_column(tupdesc, field_names[f]);
}

static void
reader_set_field(PurchaseReader *r, const ExtensionTypes *ext, PurchaseField f,
				 AttrNumber attnum, Oid coltype)
{
	r->attnum[f] = attnum;
	r->coltype[f] = coltype;
	r->kind[f] = OidIsValid(coltype) ? value_kind_for(ext, f, coltype) : VALUE_UNUSABLE;
	if (r->kind[f] != VALUE_UNUSABLE)
		r->usable |= FIELD_BIT(f);
}

/* Point a reader at the columns of a row type. */
static void
reader_init_row(PurchaseReader *r, const ExtensionTypes *ext, TupleDesc tupdesc,
				Oid rowtype, int32 rowtypmod, const char *rowname, MemoryContext mcxt)
{
	MemoryContext old = MemoryContextSwitchTo(mcxt);
	int			f;

	if (r->tupdesc)
		FreeTupleDesc(r->tupdesc);
	if (r->rowname)
		pfree((char *) r->rowname);
	memset(r, 0, sizeof(PurchaseReader));
	r->rowtype = rowtype;
	r->rowtypmod = rowtypmod;
	r->rowname = pstrdup(rowname);
	r->tupdesc = CreateTupleDescCopyConstr(tupdesc);	/* keeps missing-value defaults */
	for (f = 0; f < NUM_FIELDS; f++)
	{
		Form_pg_attribute att = find_field_column(tupdesc, (PurchaseField) f);

		reader_set_field(r, ext, (PurchaseField) f, att ? att->attnum : InvalidAttrNumber,
						 att ? att->atttypid : InvalidOid);
	}
	r->valid = true;
	MemoryContextSwitchTo(old);
}

/* Point a reader at the arguments of a column-form call (layout: fields). */
static void
reader_init_args(PurchaseReader *r, const ExtensionTypes *ext, FmgrInfo *flinfo, uint32 layout)
{
	int			f;
	int			argno = 0;

	memset(r, 0, sizeof(PurchaseReader));
	r->rowname = NULL;			/* not named in messages: see reader_require */
	for (f = 0; f < NUM_FIELDS; f++)
	{
		if (!(layout & FIELD_BIT(f)))
			continue;
		reader_set_field(r, ext, (PurchaseField) f, argno,
						 get_fn_expr_argtype(flinfo, argno));
		argno++;
	}
	r->valid = true;
}

/* Raise the error for the first needed field the reader cannot read. */
static void
reader_require(const PurchaseReader *r, uint32 fields)
{
	int			f;

	if ((fields & ~r->usable) == 0)
		return;
	for (f = 0; f < NUM_FIELDS; f++)
	{
		if (!(fields & FIELD_BIT(f)) || (r->usable & FIELD_BIT(f)))
			continue;
		if (!OidIsValid(r->coltype[f]))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("purchase has no column \"%s\"", field_names[f]),
					 errdetail("The refund rules read column \"%s\" of type %s; %s has none.",
							   field_names[f], field_expected_type(f),
							   r->rowname ? r->rowname : "the argument list")));
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of the purchase is of type %s",
						field_names[f], format_type_be(r->coltype[f])),
				 errdetail("Column \"%s\" must be of type %s.",
						   field_names[f], field_expected_type(f))));
	}
}

static void
report_invalid_offer(const char *value)
{
	int			len = strlen(value);
	int			clip = pg_mbcliplen(value, len, 64);

	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid offer \"%.*s%s\"", clip, value, clip < len ? "..." : ""),
			 errdetail("Column \"offer\" must hold one of \"action_pack\", \"silver\" or \"gold\".")));
}

static void
report_invalid_kind(const char *value)
{
	int			len = strlen(value);
	int			clip = pg_mbcliplen(value, len, 64);

	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid refund kind \"%.*s%s\"", clip, value, clip < len ? "..." : ""),
			 errdetail("A refund kind must be \"purchase\" or \"tax\".")));
}

static MpnOffer
offer_from_enum(const ExtensionTypes *ext, Oid label)
{
	int			i;
	HeapTuple	tup;

	for (i = 0; i < NUM_OFFERS; i++)
		if (ext->offer_label[i] == label)
			return (MpnOffer) i;

	/* A label added to the enum after this version: bad data. */
	tup = SearchSysCache1(ENUMOID, ObjectIdGetDatum(label));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "enum label %u not found", label);
	report_invalid_offer(NameStr(((Form_pg_enum) GETSTRUCT(tup))->enumlabel));
	pg_unreachable();
}

static MpnOffer
offer_from_text(Datum value)
{
	text	   *t = DatumGetTextPP(value);
	const char *s = VARDATA_ANY(t);
	size_t		len = VARSIZE_ANY_EXHDR(t);
	int			i;

	for (i = 0; i < NUM_OFFERS; i++)
	{
		if (len == strlen(offer_labels[i]) && memcmp(s, offer_labels[i], len) == 0)
		{
			if ((Pointer) t != DatumGetPointer(value))
				pfree(t);
			return (MpnOffer) i;
		}
	}
	report_invalid_offer(text_to_cstring(t));
	pg_unreachable();
}

/* Store one field's value into a Purchase. */
static void
store_field(const PurchaseReader *r, const ExtensionTypes *ext, PurchaseField f,
			Datum value, bool isnull, Purchase *p)
{
	p->isnull[f] = isnull;
	if (isnull)
		return;
	switch (r->kind[f])
	{
		case VALUE_OFFER_ENUM:
			p->offer = offer_from_enum(ext, DatumGetObjectId(value));
			break;
		case VALUE_OFFER_TEXT:
			p->offer = offer_from_text(value);
			break;
		case VALUE_TIMESTAMP:
			/* timestamp and timestamptz share a representation: UTC */
			p->purchased_at = DatumGetTimestampTz(value);
			break;
		case VALUE_BOOL:
			p->flag[f] = DatumGetBool(value);
			break;
		case VALUE_UNUSABLE:
			elog(ERROR, "field \"%s\" cannot be read", field_names[f]);
	}
}

static void
purchase_set_null(Purchase *p)
{
	int			f;

	memset(p, 0, sizeof(Purchase));
	for (f = 0; f < NUM_FIELDS; f++)
		p->isnull[f] = true;
}

/* Read the needed fields of a heap tuple whose layout the reader knows. */
static void
read_purchase_tuple(const PurchaseReader *r, const ExtensionTypes *ext, HeapTuple tuple,
					uint32 fields, Purchase *p)
{
	int			f;

	purchase_set_null(p);
	for (f = 0; f < NUM_FIELDS; f++)
	{
		bool		isnull;
		Datum		value;

		if (!(fields & FIELD_BIT(f)))
			continue;
		value = heap_getattr(tuple, r->attnum[f], r->tupdesc, &isnull);
		store_field(r, ext, (PurchaseField) f, value, isnull, p);
	}
}

/*
 * Make the cached reader fit a row type.  The columns are looked up once per
 * row type; the typcache's identifier of the type's current layout tells when
 * the type was altered since (a PL/pgSQL expression outlives ALTER TABLE).
 */
static void
ensure_row_reader(FunctionCallInfo fcinfo, CallCache *cache, Oid rowtype, int32 rowtypmod)
{
	PurchaseReader *r = &cache->reader;
	uint64		rowtype_id = assign_record_type_identifier(rowtype, rowtypmod);
	TupleDesc	tupdesc;

	if (r->valid && r->tupdesc && r->rowtype == rowtype && r->rowtypmod == rowtypmod &&
		r->rowtype_id == rowtype_id)
		return;
	tupdesc = lookup_rowtype_tupdesc(rowtype, rowtypmod);
	reader_init_row(r, &cache->ext, tupdesc, rowtype, rowtypmod,
					format_type_be(rowtype), fcinfo->flinfo->fn_mcxt);
	r->rowtype_id = rowtype_id;
	ReleaseTupleDesc(tupdesc);
}

/*
 * Whether a reader built for one tuple descriptor still fits another:
 * every column of the same type (so the same physical layout), and the
 * policy columns where they were.
 */
static bool
reader_fits(const PurchaseReader *r, TupleDesc tupdesc)
{
	int			i;

	if (!r->valid || r->tupdesc == NULL || r->tupdesc->natts != tupdesc->natts)
		return false;
	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute mine = TupleDescAttr(r->tupdesc, i);
		Form_pg_attribute theirs = TupleDescAttr(tupdesc, i);

		if (mine->atttypid != theirs->atttypid || mine->attisdropped != theirs->attisdropped ||
			mine->attlen != theirs->attlen || mine->attalign != theirs->attalign ||
			strcmp(NameStr(mine->attname), NameStr(theirs->attname)) != 0)
			return false;
	}
	return true;
}

/*
 * Read the purchase of a row-form call (argument 0).  A NULL row reads as
 * all fields NULL; its row type is still checked when it is known.
 */
static void
read_purchase_row_arg(FunctionCallInfo fcinfo, CallCache *cache, uint32 fields, Purchase *p)
{
	HeapTupleHeader th;
	HeapTupleData tuple;

	if (PG_ARGISNULL(0))
	{
		Oid			argtype = get_fn_expr_argtype(fcinfo->flinfo, 0);

		if (OidIsValid(argtype))
			argtype = getBaseType(argtype); /* a domain over a row type */
		if (OidIsValid(argtype) && argtype != RECORDOID && type_is_rowtype(argtype))
		{
			ensure_row_reader(fcinfo, cache, argtype, -1);
			reader_require(&cache->reader, fields);
		}
		purchase_set_null(p);
		return;
	}

	th = PG_GETARG_HEAPTUPLEHEADER(0);
	ensure_row_reader(fcinfo, cache, HeapTupleHeaderGetTypeId(th),
					  HeapTupleHeaderGetTypMod(th));
	reader_require(&cache->reader, fields);

	tuple.t_len = HeapTupleHeaderGetDatumLength(th);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = th;
	read_purchase_tuple(&cache->reader, &cache->ext, &tuple, fields, p);
}

/* Read the purchase of a column-form call: one argument per field of layout. */
static void
read_purchase_column_args(FunctionCallInfo fcinfo, CallCache *cache, uint32 layout,
						  uint32 fields, Purchase *p)
{
	int			f;

	if (!cache->reader.valid)
		reader_init_args(&cache->reader, &cache->ext, fcinfo->flinfo, layout);
	reader_require(&cache->reader, fields);

	purchase_set_null(p);
	for (f = 0; f < NUM_FIELDS; f++)
	{
		int			argno = cache->reader.attnum[f];

		if (!(fields & FIELD_BIT(f)))
			continue;
		store_field(&cache->reader, &cache->ext, (PurchaseField) f,
					PG_GETARG_DATUM(argno), PG_ARGISNULL(argno), p);
	}
}

/*
 * Read the purchase of either form; layout is 0 for the row form.  Returns
 * the number of the argument that follows the purchase (as_of).
 */
static int
read_purchase(FunctionCallInfo fcinfo, CallCache *cache, uint32 layout, uint32 fields,
			  Purchase *p)
{
	if (layout == 0)
	{
		read_purchase_row_arg(fcinfo, cache, fields, p);
		return 1;
	}
	read_purchase_column_args(fcinfo, cache, layout, fields, p);
	return pg_popcount32(layout);
}

/* The refund kind of an enum argument or value. */
static RefundKind
kind_from_enum(const ExtensionTypes *ext, Oid label)
{
	HeapTuple	tup;

	if (label == ext->kind_label[KIND_TAX])
		return KIND_TAX;
	if (label == ext->kind_label[KIND_PURCHASE])
		return KIND_PURCHASE;

	/* A label added to the enum after this version: bad data. */
	tup = SearchSysCache1(ENUMOID, ObjectIdGetDatum(label));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "enum label %u not found", label);
	report_invalid_kind(NameStr(((Form_pg_enum) GETSTRUCT(tup))->enumlabel));
	pg_unreachable();
}


/* ==================================================================
 *		QUERY FUNCTIONS
 *
 * IMMUTABLE and PARALLEL SAFE; none raises for a NULL.  Each whole-row
 * function has a column form that the planner support rewrites calls
 * into; both share one body.  In SQL the column form's name is the row
 * form's with a leading underscore (_refund_eligible); in C it ends in
 * _columns instead, since C reserves names that begin with one.
 * ==================================================================
 */

static Datum
reasons_array(FunctionCallInfo fcinfo, CallCache *cache, uint32 reasons)
{
	Datum		elems[NUM_REASONS];
	int			n = 0;
	int			r;

	for (r = 0; r < NUM_REASONS; r++)
	{
		if (!(reasons & REASON_BIT(r)))
			continue;
		if (cache->reason_text[r] == (Datum) 0)
		{
			MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

			cache->reason_text[r] = PointerGetDatum(cstring_to_text(reason_codes[r]));
			MemoryContextSwitchTo(old);
		}
		elems[n++] = cache->reason_text[r];
	}
	if (n == 0)
		return PointerGetDatum(construct_empty_array(TEXTOID));
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* refund_eligible and tax_refund_eligible, in either form. */
static Datum
eligible_common(FunctionCallInfo fcinfo, uint32 layout, RefundKind kind)
{
	CallCache  *cache = get_call_cache(fcinfo);
	Purchase	p;
	int			as_of_arg = read_purchase(fcinfo, cache, layout, fields_for_kind(kind), &p);
	uint32		reasons;

	if (PG_ARGISNULL(as_of_arg))
		PG_RETURN_NULL();
	reasons = refund_reasons(&p, PG_GETARG_TIMESTAMPTZ(as_of_arg), true, kind);
	return verdict(reasons, &fcinfo->isnull);
}

/* refund_ineligibility_reasons, in either form: kind follows as_of. */
static Datum
reasons_common(FunctionCallInfo fcinfo, uint32 layout)
{
	CallCache  *cache = get_call_cache(fcinfo);
	int			as_of_arg = (layout == 0) ? 1 : pg_popcount32(layout);
	int			kind_arg = as_of_arg + 1;
	RefundKind	kind = KIND_PURCHASE;
	Purchase	p;

	if (!PG_ARGISNULL(kind_arg))
		kind = kind_from_enum(&cache->ext, PG_GETARG_OID(kind_arg));
	read_purchase(fcinfo, cache, layout, fields_for_kind(kind), &p);
	if (PG_ARGISNULL(as_of_arg) || PG_ARGISNULL(kind_arg))
		PG_RETURN_NULL();
	return reasons_array(fcinfo, cache,
						 refund_reasons(&p, PG_GETARG_TIMESTAMPTZ(as_of_arg), true, kind));
}

/*
 * refund_eligible(purchase record, as_of timestamptz) returns boolean:
 * whether the price of the purchase may be refunded at as_of.
 */
PG_FUNCTION_INFO_V1(refund_eligible);
Datum
refund_eligible(PG_FUNCTION_ARGS)
{
	return eligible_common(fcinfo, 0, KIND_PURCHASE);
}

/*
 * _refund_eligible(offer, purchased_at, benefits_activated,
 * product_keys_viewed, upgraded_with_gold_discount, as_of) returns boolean:
 * refund_eligible on separate columns.
 */
PG_FUNCTION_INFO_V1(refund_eligible_columns);
Datum
refund_eligible_columns(PG_FUNCTION_ARGS)
{
	return eligible_common(fcinfo, FIELDS_REFUND, KIND_PURCHASE);
}

/*
 * tax_refund_eligible(purchase record, as_of timestamptz) returns boolean:
 * whether the tax paid on the purchase may be refunded at as_of.
 */
PG_FUNCTION_INFO_V1(tax_refund_eligible);
Datum
tax_refund_eligible(PG_FUNCTION_ARGS)
{
	return eligible_common(fcinfo, 0, KIND_TAX);
}

/*
 * _tax_refund_eligible(purchased_at, tax_exempt, as_of) returns boolean:
 * tax_refund_eligible on separate columns.
 */
PG_FUNCTION_INFO_V1(tax_refund_eligible_columns);
Datum
tax_refund_eligible_columns(PG_FUNCTION_ARGS)
{
	return eligible_common(fcinfo, FIELDS_TAX, KIND_TAX);
}

/*
 * refund_ineligibility_reasons(purchase record, as_of timestamptz, kind
 * refund_kind) returns text[]: the reason codes, in the policy's order; {}
 * when the refund is allowed.
 */
PG_FUNCTION_INFO_V1(refund_ineligibility_reasons);
Datum
refund_ineligibility_reasons(PG_FUNCTION_ARGS)
{
	return reasons_common(fcinfo, 0);
}

/*
 * _refund_ineligibility_reasons(the six columns, as_of, kind) returns
 * text[]: refund_ineligibility_reasons on separate columns.
 */
PG_FUNCTION_INFO_V1(refund_ineligibility_reasons_columns);
Datum
refund_ineligibility_reasons_columns(PG_FUNCTION_ARGS)
{
	return reasons_common(fcinfo, FIELDS_ALL);
}

/*
 * refund_deadline(purchased_at timestamptz) returns timestamptz: the last
 * moment a purchase refund is allowed.
 */
PG_FUNCTION_INFO_V1(refund_deadline);
Datum
refund_deadline(PG_FUNCTION_ARGS)
{
	PG_RETURN_TIMESTAMPTZ(refund_deadline_of(PG_GETARG_TIMESTAMPTZ(0)));
}

/*
 * tax_refund_deadline(purchased_at timestamptz) returns timestamptz: the
 * last moment a tax refund is allowed.
 */
PG_FUNCTION_INFO_V1(tax_refund_deadline);
Datum
tax_refund_deadline(PG_FUNCTION_ARGS)
{
	PG_RETURN_TIMESTAMPTZ(tax_refund_deadline_of(PG_GETARG_TIMESTAMPTZ(0)));
}

/*
 * refund_window_start(as_of timestamptz, kind refund_kind) returns
 * timestamptz: no purchase made before it can have a window of this kind
 * open at as_of.
 */
PG_FUNCTION_INFO_V1(refund_window_start);
Datum
refund_window_start(PG_FUNCTION_ARGS)
{
	CallCache  *cache = get_call_cache(fcinfo);

	PG_RETURN_TIMESTAMPTZ(window_start_of(PG_GETARG_TIMESTAMPTZ(0),
										  kind_from_enum(&cache->ext, PG_GETARG_OID(1))));
}

/* refund_status, in either form. */
static Datum
status_common(FunctionCallInfo fcinfo, uint32 layout)
{
	CallCache  *cache = get_call_cache(fcinfo);
	Datum		values[6];
	bool		nulls[6];
	Purchase	p;
	int			as_of_arg;
	int			k;

	if (cache->result_desc == NULL)
	{
		TupleDesc	tupdesc;
		MemoryContext old;

		if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "return type must be a row type");
		old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
		cache->result_desc = BlessTupleDesc(CreateTupleDescCopy(tupdesc));
		MemoryContextSwitchTo(old);
	}

	as_of_arg = read_purchase(fcinfo, cache, layout, FIELDS_ALL, &p);
	for (k = 0; k < NUM_KINDS; k++)
	{
		int			col = 3 * k;

		nulls[col] = nulls[col + 1] = nulls[col + 2] = true;
		if (!PG_ARGISNULL(as_of_arg))
		{
			uint32		reasons = refund_reasons(&p, PG_GETARG_TIMESTAMPTZ(as_of_arg), true,
												 (RefundKind) k);

			values[col] = verdict(reasons, &nulls[col]);
			values[col + 1] = reasons_array(fcinfo, cache, reasons);
			nulls[col + 1] = false;
		}
		if (!p.isnull[FIELD_PURCHASED_AT])
		{
			values[col + 2] = TimestampTzGetDatum(k == KIND_TAX
												  ? tax_refund_deadline_of(p.purchased_at)
												  : refund_deadline_of(p.purchased_at));
			nulls[col + 2] = false;
		}
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(cache->result_desc, values, nulls)));
}

/*
 * refund_status(purchase record, as_of timestamptz) returns one row:
 * (refund_eligible, refund_reasons, refund_deadline, tax_refund_eligible,
 * tax_refund_reasons, tax_refund_deadline).
 */
PG_FUNCTION_INFO_V1(refund_status);
Datum
refund_status(PG_FUNCTION_ARGS)
{
	return status_common(fcinfo, 0);
}

/*
 * _refund_status(the six columns, as_of) returns the row of refund_status:
 * refund_status on separate columns.
 */
PG_FUNCTION_INFO_V1(refund_status_columns);
Datum
refund_status_columns(PG_FUNCTION_ARGS)
{
	return status_common(fcinfo, FIELDS_ALL);
}


/* ==================================================================
 *		ENFORCEMENT
 *
 * Fails closed: only a refund that is provably allowed passes.  Nothing
 * the client writes decides on its own: a request is judged at the
 * database's clock, the requester can be the session's role, the
 * purchases table is the one the request table references, and the
 * purchase is read and locked by name, after its table is locked, so no
 * layout worked out earlier is applied to its row.  Like a foreign key's
 * errors, a refusal shows the purchase's state only to who may read it.
 * ==================================================================
 */

/* The largest lag a trigger may allow between a written moment and ours. */
#define MAX_ALLOWED_LAG ((int64) USECS_PER_HOUR)

/* A key value is shown up to this many bytes in a message. */
#define KEY_CLIP		64

/* Reasons about the request itself, never about the purchase's state. */
#define REQUEST_REASONS \
	(REASON_BIT(REASON_MISSING_KIND) | REASON_BIT(REASON_BACKDATED_REQUEST) | \
	 REASON_BIT(REASON_POSTDATED_REQUEST) | REASON_BIT(REASON_MISSING_REQUESTED_AT) | \
	 REASON_BIT(REASON_REQUESTER_NOT_AUTHORIZED) | \
	 REASON_BIT(REASON_MISSING_REQUESTED_BY_ROLE))

/* Stands in DETAIL for the purchase's own reasons when they are not shown. */
#define HIDDEN_REASONS_CODE "purchase_not_eligible"

/* A timestamp in UTC, ISO style, whatever the session's settings. */
static char *
format_utc(TimestampTz t)
{
	struct pg_tm tm;
	fsec_t		fsec;
	char		buf[MAXDATELEN + 1];

	if (TIMESTAMP_IS_NOBEGIN(t))
		return pstrdup(EARLY);
	if (TIMESTAMP_IS_NOEND(t))
		return pstrdup(LATE);
	if (timestamp2tm(t, NULL, &tm, &fsec, NULL, NULL) != 0)
		elog(ERROR, "timestamp out of range");
	tm.tm_isdst = 0;			/* UTC: print the zone as +00 */
	EncodeDateTime(&tm, fsec, true, 0, NULL, USE_ISO_DATES, buf);
	return pstrdup(buf);
}

/* A span of microseconds in seconds, whatever the session's IntervalStyle. */
static char *
format_lag(int64 usecs)
{
	if (usecs % USECS_PER_SEC == 0)
		return psprintf(INT64_FORMAT " seconds", usecs / USECS_PER_SEC);
	return psprintf("%.6f seconds", (double) usecs / USECS_PER_SEC);
}

/* Key values as text, each clipped, for messages. */
static char *
key_text(int nkeys, const Datum *values, const Oid *types)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < nkeys; i++)
	{
		Oid			output;
		bool		isvarlena;
		char	   *s;
		int			len;
		int			clip;

		getTypeOutputInfo(types[i], &output, &isvarlena);
		s = OidOutputFunctionCall(output, values[i]);
		len = strlen(s);
		clip = pg_mbcliplen(s, len, KEY_CLIP);
		appendStringInfo(&buf, "%s%.*s%s", i ? ", " : "", clip, s, clip < len ? "..." : "");
	}
	return buf.data;
}

/*
 * The reasons of a refund recorded with a moment.  It is judged at the
 * database's clock when the row is written, and the moment recorded must
 * lie in the window too (so a CHECK that judges it later agrees).  A moment
 * this statement writes must lie between the start of the transaction
 * (what DEFAULT now() writes) and the clock, give or take lag:
 * backdated_request or postdated_request otherwise.
 */
static uint32
written_refund_reasons(const Purchase *p, TimestampTz written, bool written_now, int64 lag,
					   RefundKind kind)
{
	TimestampTz clock = GetCurrentTimestamp();
	uint32		reasons = refund_reasons(p, clock, true, kind);

	if (written_now && written < GetCurrentTransactionStartTimestamp() - lag)
		return reasons | REASON_BIT(REASON_BACKDATED_REQUEST);
	if (written_now && written > clock + lag)
		return reasons | REASON_BIT(REASON_POSTDATED_REQUEST);
	return reasons | window_reasons(p, written, true, kind);
}

/* What a refusal says; see report_refused. */
typedef struct Refusal
{
	uint32		reasons;
	bool		kind_known;
	RefundKind	kind;
	const Purchase *p;			/* the purchase's fields, or NULL */
	bool		purchase_shown; /* the user may read the purchase's state */
	const char *purchases_name; /* where the purchase is, when not shown */
	const char *purchase_key;	/* names the purchase in the message, or NULL */
	const char *moment_column;	/* the column of the moment, for its hint */
	int64		lag;
	const char *schema_name;	/* the table the error is about, or NULL */
	const char *table_name;
} Refusal;

/*
 * Raise check_violation for a refused refund: the reason codes in DETAIL
 * (always after "Reasons: "), in HINT what to do about the moment and the
 * window that applied.  The purchase's own reasons and window are shown
 * only when the user may read them; else one code stands for them.
 */
/*
 * The reason codes a refusal shows, in order: the purchase's own reasons,
 * when the user may not read them, as one code where the first of them
 * stands.  Returns how many.
 */
static int
refusal_codes(const Refusal *f, const char **codes)
{
	uint32		hidden = f->purchase_shown ? 0 : (f->reasons & ~REQUEST_REASONS);
	bool		hidden_listed = false;
	int			n = 0;
	int			r;

	for (r = 0; r < NUM_REASONS; r++)
	{
		if (!(f->reasons & REASON_BIT(r)))
			continue;
		if (hidden & REASON_BIT(r))
		{
			if (!hidden_listed)
				codes[n++] = HIDDEN_REASONS_CODE;
			hidden_listed = true;
		}
		else
			codes[n++] = reason_codes[r];
	}
	return n;
}

/* The deadline a refusal may show (the user may read the purchase), or false. */
static bool
refusal_deadline(const Refusal *f, TimestampTz *deadline)
{
	if (!f->purchase_shown || f->p == NULL || !f->kind_known || f->p->isnull[FIELD_PURCHASED_AT])
		return false;
	*deadline = (f->kind == KIND_TAX) ? tax_refund_deadline_of(f->p->purchased_at)
		: refund_deadline_of(f->p->purchased_at);
	return true;
}

static void
report_refused(const Refusal *f)
{
	StringInfoData list;
	StringInfoData hint;
	bool		tax = f->kind_known && f->kind == KIND_TAX;
	bool		hidden = !f->purchase_shown && (f->reasons & ~REQUEST_REASONS);
	const char *codes[NUM_REASONS];
	int			n = refusal_codes(f, codes);
	TimestampTz deadline;
	int			i;

	initStringInfo(&list);
	for (i = 0; i < n; i++)
		appendStringInfo(&list, "%s%s", i ? ", " : "", codes[i]);

	initStringInfo(&hint);
	if (f->reasons & (REASON_BIT(REASON_BACKDATED_REQUEST) | REASON_BIT(REASON_POSTDATED_REQUEST)))
	{
		if (f->lag > 0)
			appendStringInfo(&hint, "Leave column \"%s\" to its default, now(); a moment written must lie between the start of the transaction and the moment the row is written, give or take %s.",
							 f->moment_column, format_lag(f->lag));
		else
			appendStringInfo(&hint, "Leave column \"%s\" to its default, now(); a moment written must lie between the start of the transaction and the moment the row is written.",
							 f->moment_column);
	}
	if (hidden)
		appendStringInfo(&hint, "%sThe purchase's own reasons are shown only to roles that may read purchases table \"%s\".",
						 hint.len ? " " : "", f->purchases_name);
	else if (refusal_deadline(f, &deadline))
		appendStringInfo(&hint, "%s%s of this purchase are allowed from %s until %s.",
						 hint.len ? " " : "", tax ? "Tax refunds" : "Refunds",
						 format_utc(f->p->purchased_at), format_utc(deadline));

	ereport(ERROR,
			(errcode(ERRCODE_CHECK_VIOLATION),
			 f->purchase_key
			 ? (tax ? errmsg("tax refund of purchase \"%s\" is not allowed", f->purchase_key)
				: errmsg("refund of purchase \"%s\" is not allowed", f->purchase_key))
			 : (tax ? errmsg("tax refund is not allowed")
				: errmsg("refund is not allowed")),
			 errdetail("Reasons: %s.", list.data),
			 hint.len ? errhint("%s", hint.data) : 0,
			 f->schema_name ? err_generic_string(PG_DIAG_SCHEMA_NAME, f->schema_name) : 0,
			 f->table_name ? err_generic_string(PG_DIAG_TABLE_NAME, f->table_name) : 0));
}

/* Whether the user may read these columns of a table, as a foreign key's error asks. */
static bool
columns_readable(Oid relid, int ncols, const AttrNumber *attnums)
{
	Oid			user = GetUserId();
	int			i;

	if (check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED)
		return false;
	if (pg_class_aclcheck(relid, user, ACL_SELECT) == ACLCHECK_OK)
		return true;
	for (i = 0; i < ncols; i++)
		if (attnums[i] != InvalidAttrNumber &&
			pg_attribute_aclcheck(relid, attnums[i], user, ACL_SELECT) != ACLCHECK_OK)
			return false;
	return true;
}

/* The table whose row type is rowtype, or InvalidOid. */
static Oid
row_table(Oid rowtype)
{
	Oid			relid = OidIsValid(rowtype) ? get_typ_typrelid(getBaseType(rowtype)) : InvalidOid;
	char		relkind = OidIsValid(relid) ? get_rel_relkind(relid) : '\0';

	return (relkind == RELKIND_RELATION || relkind == RELKIND_PARTITIONED_TABLE) ? relid : InvalidOid;
}

/*
 * check_refund(purchase record, requested_at timestamptz, kind refund_kind)
 * returns boolean: true when the refund is provably allowed; otherwise it
 * raises check_violation, naming the table when the row is a table's (its
 * purchase's reasons then shown only to who may read them, as the
 * trigger's).  NULL anywhere raises too.  Reads stored values only: the moment written
 * is guarded by enforce_refund_moment().
 */
PG_FUNCTION_INFO_V1(check_refund);
Datum
check_refund(PG_FUNCTION_ARGS)
{
	CallCache  *cache = get_call_cache(fcinfo);
	bool		kind_known = !PG_ARGISNULL(2);
	RefundKind	kind = kind_known ? kind_from_enum(&cache->ext, PG_GETARG_OID(2)) : KIND_PURCHASE;
	bool		as_of_known = !PG_ARGISNULL(1);
	Purchase	p;
	Refusal		f;
	Oid			relid;

	read_purchase(fcinfo, cache, 0, fields_for_kind(kind), &p);
	memset(&f, 0, sizeof(f));
	if (!kind_known)
		f.reasons = REASON_BIT(REASON_MISSING_KIND);
	else
		f.reasons = refund_reasons(&p, as_of_known ? PG_GETARG_TIMESTAMPTZ(1) : 0,
								   as_of_known, kind);
	if (f.reasons)
	{
		f.kind_known = kind_known;
		f.kind = kind;
		f.p = &p;
		f.purchase_shown = true;
		relid = row_table(PG_ARGISNULL(0) ? get_fn_expr_argtype(fcinfo->flinfo, 0)
						  : HeapTupleHeaderGetTypeId(PG_GETARG_HEAPTUPLEHEADER(0)));
		if (OidIsValid(relid))
		{
			/* a table's row: named in the error, shown to who may read it */
			f.schema_name = get_namespace_name(get_rel_namespace(relid));
			f.table_name = get_rel_name(relid);
			f.purchases_name = psprintf("%s.%s", f.schema_name, f.table_name);
			f.purchase_shown = columns_readable(relid, NUM_FIELDS, cache->reader.attnum);
		}
		report_refused(&f);
	}
	PG_RETURN_BOOL(true);
}

/* ---- what every trigger of the extension shares ---- */

/* The common protocol: a row-level BEFORE trigger for these events. */
static TriggerData *
trigger_data(FunctionCallInfo fcinfo, const char *funcname, bool insert_ok)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s was not called by the trigger manager", funcname)));
	if (!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s must be fired for each row", funcname),
				 errhint("Create the trigger with FOR EACH ROW.")));
	if (!TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!(TRIGGER_FIRED_BY_UPDATE(td->tg_event) ||
		  (insert_ok && TRIGGER_FIRED_BY_INSERT(td->tg_event))))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 insert_ok ? errmsg("%s must be fired BEFORE INSERT OR UPDATE", funcname)
				 : errmsg("%s must be fired BEFORE UPDATE", funcname),
				 insert_ok ? errhint("Create the trigger as BEFORE INSERT OR UPDATE ... FOR EACH ROW.")
				 : errhint("Create the trigger as BEFORE UPDATE ... FOR EACH ROW.")));
	return td;
}

/* Whether a column's value differs between two versions of a row. */
static bool
column_changed(TupleDesc tupdesc, AttrNumber attnum, HeapTuple oldtup, HeapTuple newtup)
{
	Form_pg_attribute att = TupleDescAttr(tupdesc, attnum - 1);
	bool		oldnull,
				newnull;
	Datum		oldval = heap_getattr(oldtup, attnum, tupdesc, &oldnull);
	Datum		newval = heap_getattr(newtup, attnum, tupdesc, &newnull);

	return oldnull != newnull ||
		(!oldnull && !datumIsEqual(oldval, newval, att->attbyval, att->attlen));
}

/*
 * The column names of a trigger argument: one or several, separated by
 * commas, quoted like SQL identifiers.  An argument that is exactly the
 * name of a column of relid is that column (as in version 1.0).
 */
static List *
column_list(const Trigger *tg, int argno, Oid relid, const char *what)
{
	const char *arg = tg->tgargs[argno];
	List	   *names;

	if (get_attnum(relid, arg) > 0)
		return list_make1(pstrdup(arg));
	if (!SplitIdentifierString(pstrdup(arg), ',', &names) ||
		list_length(names) < 1 || list_length(names) > INDEX_MAX_KEYS)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" names %s as \"%s\", which is not a list of column names",
						tg->tgname, what, arg),
				 errhint("Pass one column, or several separated by commas, quoted like SQL identifiers.")));
	return names;
}

/* An option argument "name=value": the value when the name matches. */
static const char *
option_value(const char *arg, const char *name)
{
	size_t		len = strlen(name);

	if (strncmp(arg, name, len) == 0 && arg[len] == '=')
		return arg + len + 1;
	return NULL;
}

/* The value of option max_lag: an interval from zero to MAX_ALLOWED_LAG. */
static int64
parse_lag(const Trigger *tg, const char *value)
{
	Interval   *span = DatumGetIntervalP(DirectFunctionCall3(interval_in,
															 CStringGetDatum(value),
															 ObjectIdGetDatum(InvalidOid),
															 Int32GetDatum(-1)));

	if (span->month != 0 || span->day != 0 || span->time < 0 || span->time > MAX_ALLOWED_LAG)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("trigger \"%s\" allows a lag of \"%s\"", tg->tgname, value),
				 errdetail("Option max_lag must be a span from 0 to %s, in hours, minutes or seconds.",
						   format_lag(MAX_ALLOWED_LAG))));
	return span->time;
}

static void
report_unknown_option(const Trigger *tg, const char *arg, const char *known)
{
	ereport(ERROR,
			(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
			 errmsg("trigger \"%s\" passes unknown option \"%s\"", tg->tgname, arg),
			 errhint("Options are %s.", known)));
}

/*
 * The relation a (possibly qualified) name names, locked in lockmode; the
 * name is looked up again after the lock, so a concurrent rename or drop
 * gives the table that has the name once it is locked.  An unqualified name
 * is looked up in home_nsp, never through search_path.
 */
static Oid
locked_table(const Trigger *tg, int argno, Oid home_nsp, LOCKMODE lockmode, char **name)
{
	List	   *names;
	Oid			nsp;
	const char *relname;
	Oid			relid;

	if (!SplitIdentifierString(pstrdup(tg->tgargs[argno]), '.', &names) ||
		list_length(names) < 1 || list_length(names) > 2)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" names a table as \"%s\", which is not a table name",
						tg->tgname, tg->tgargs[argno]),
				 errhint("Pass the table as table or schema.table, quoted like an SQL identifier.")));
	nsp = (list_length(names) == 1) ? home_nsp
		: get_namespace_oid((const char *) linitial(names), true);
	relname = (const char *) llast(names);
	*name = (list_length(names) == 1) ? psprintf("%s", relname)
		: psprintf("%s.%s", (const char *) linitial(names), relname);

	for (;;)
	{
		relid = OidIsValid(nsp) ? get_relname_relid(relname, nsp) : InvalidOid;
		if (!OidIsValid(relid))
			return InvalidOid;
		LockRelationOid(relid, lockmode);
		if (get_relname_relid(relname, nsp) == relid)
			return relid;
		UnlockRelationOid(relid, lockmode);
	}
}

/* The schema an unqualified table name of a trigger is looked up in. */
static Oid
home_namespace(Relation rel)
{
	Oid			home = RelationGetRelid(rel);

	/* a trigger cloned onto a partition was written for the root */
	if (rel->rd_rel->relispartition)
		home = llast_oid(get_partition_ancestors(home));
	return get_rel_namespace(home);
}

static char *
qualified_name(Oid relid)
{
	return psprintf("%s.%s", get_namespace_name(get_rel_namespace(relid)), get_rel_name(relid));
}

/* A plain or partitioned table, or else an error. */
static void
require_table(const Trigger *tg, Oid relid, const char *what)
{
	char		relkind = get_rel_relkind(relid);

	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s \"%s\" of trigger \"%s\" is not a table",
						what, qualified_name(relid), tg->tgname)));
}

/* The equality operator of a btree family for two types, or InvalidOid. */
static Oid
btree_equality(Oid opfamily, Oid left, Oid right)
{
	if (!OidIsValid(opfamily))
		return InvalidOid;
	return get_opfamily_member(opfamily, left, right, BTEqualStrategyNumber);
}

/*
 * One column of a key that a lookup compares, as a foreign key compares:
 * with an equality operator of the looked-up column's btree family (for
 * types that family compares directly, e.g. bigint with integer), or else
 * after an implicit conversion of the given value to the column's type.
 * The conversion runs as the user who writes the row, before the lookup
 * switches to the owner of the looked-up table, so no function of the
 * user's choosing runs as the owner.
 */
typedef struct KeyColumn
{
	AttrNumber	given;			/* the column of the trigger's row */
	Oid			given_type;
	AttrNumber	looked_up;		/* the column of the looked-up table */
	Oid			param_type;		/* the lookup's parameter */
	Oid			eq;				/* looked_up = parameter */
	Oid			cast;			/* given -> looked-up type, or InvalidOid */
	int			cast_nargs;
} KeyColumn;

static void
setup_key_column(KeyColumn *k, Oid looked_up_type, const char *given_name,
				 const char *looked_up_name, const char *tables)
{
	Oid			keybase = getBaseType(looked_up_type);
	Oid			refbase = getBaseType(k->given_type);
	Oid			opclass = GetDefaultOpClass(keybase, BTREE_AM_OID);
	Oid			opfamily = OidIsValid(opclass) ? get_opclass_family(opclass) : InvalidOid;
	/* the type the operators take: text for varchar */
	Oid			keyop = OidIsValid(opclass) ? get_opclass_input_type(opclass) : keybase;
	Oid			castfunc = InvalidOid;

	k->cast = InvalidOid;
	k->eq = btree_equality(opfamily, keyop, refbase);
	k->param_type = refbase;
	if (!OidIsValid(k->eq))
	{
		k->eq = btree_equality(opfamily, keyop, keyop);
		k->param_type = keyop;
		if (IsBinaryCoercible(refbase, keyop))
			;					/* the value serves as it is */
		else if (find_coercion_pathway(keybase, refbase, COERCION_IMPLICIT,
									   &castfunc) == COERCION_PATH_FUNC)
			k->cast = castfunc;
		else
			k->eq = InvalidOid; /* no way to compare them */
	}
	if (!OidIsValid(k->eq))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" cannot be compared with column \"%s\" (%s)",
						given_name, looked_up_name, tables),
				 errdetail("Key columns are of incompatible types: %s and %s.",
						   format_type_be(k->given_type), format_type_be(looked_up_type))));
	k->cast_nargs = OidIsValid(k->cast) ? get_func_nargs(k->cast) : 0;
}

/* The value of a key column as the lookup's parameter. */
static Datum
key_param(const KeyColumn *k, Datum given)
{
	if (!OidIsValid(k->cast))
		return given;
	if (k->cast_nargs == 1)
		return OidFunctionCall1(k->cast, given);
	return OidFunctionCall3(k->cast, given, Int32GetDatum(-1), BoolGetDatum(false));
}

/* "col1 = $1 AND col2 = $2", with each column's own operator, schema-qualified. */
static char *
key_condition(int nkeys, const KeyColumn *keys, const char *const *names)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < nkeys; i++)
	{
		HeapTuple	eqop = SearchSysCache1(OPEROID, ObjectIdGetDatum(keys[i].eq));
		Form_pg_operator op;

		if (!HeapTupleIsValid(eqop))
			elog(ERROR, "cache lookup failed for operator %u", keys[i].eq);
		op = (Form_pg_operator) GETSTRUCT(eqop);
		appendStringInfo(&buf, "%st.%s OPERATOR(%s.%s) $%d", i ? " AND " : "",
						 quote_identifier(names[i]),
						 quote_identifier(get_namespace_name(op->oprnamespace)),
						 NameStr(op->oprname), i + 1);
		ReleaseSysCache(eqop);
	}
	return buf.data;
}

/*
 * Set up the key columns of a lookup: given (columns of the trigger's
 * table rel) against looked_up (columns of table relid).  System columns
 * are not keys.
 */
static int
setup_keys(const Trigger *tg, Relation rel, List *given, const char *given_what, Oid relid,
		   List *looked_up, const char *looked_up_what, KeyColumn *keys, const char *tables)
{
	int			nkeys = list_length(given);
	int			i;

	if (list_length(looked_up) != nkeys)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" pairs %d column(s) of \"%s\" with %d column(s) of \"%s\"",
						tg->tgname, nkeys, RelationGetRelationName(rel),
						list_length(looked_up), get_rel_name(relid)),
				 errhint("Name as many key columns as reference columns, in the same order.")));
	for (i = 0; i < nkeys; i++)
	{
		const char *gname = (const char *) list_nth(given, i);
		const char *lname = (const char *) list_nth(looked_up, i);
		Form_pg_attribute gatt = table_column(RelationGetDescr(rel), gname);
		AttrNumber	lattnum = get_attnum(relid, lname);

		if (gatt == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("table \"%s\" has no column \"%s\"", RelationGetRelationName(rel), gname),
					 errhint("Trigger \"%s\" names it as a %s.", tg->tgname, given_what)));
		if (lattnum == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("table \"%s\" has no column \"%s\"", qualified_name(relid), lname),
					 errhint("Trigger \"%s\" names it as a %s.", tg->tgname, looked_up_what)));
		if (lattnum < 0)
			ereport(ERROR,
					(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
					 errmsg("trigger \"%s\" names system column \"%s\" as a %s",
							tg->tgname, lname, looked_up_what),
					 errhint("A key is made of ordinary columns, as a foreign key's is.")));
		keys[i].given = gatt->attnum;
		keys[i].given_type = gatt->atttypid;
		keys[i].looked_up = lattnum;
		setup_key_column(&keys[i], get_atttype(relid, lattnum), gname, lname, tables);
	}
	return nkeys;
}

/*
 * Read the key of the trigger's row and convert it for the lookup.
 * Returns the index of a key column that is NULL, or -1.
 */
static int
read_key(int nkeys, const KeyColumn *keys, HeapTuple tuple, TupleDesc tupdesc,
		 Datum *given, Oid *given_types, Datum *params)
{
	int			i;

	for (i = 0; i < nkeys; i++)
	{
		bool		isnull;

		given[i] = heap_getattr(tuple, keys[i].given, tupdesc, &isnull);
		given_types[i] = keys[i].given_type;
		if (isnull)
			return i;
	}
	for (i = 0; i < nkeys; i++)
		params[i] = key_param(&keys[i], given[i]);
	return -1;
}

/*
 * Run a lookup plan as the owner of the looked-up table, as foreign keys
 * do, with no user code allowed to change the session (security-restricted).
 * Under REPEATABLE READ or SERIALIZABLE, latest says to see rows committed
 * since the transaction's snapshot, as a foreign key's check does.
 */
static void
run_lookup(SPIPlanPtr plan, Datum *params, Oid owner, long limit, bool latest)
{
	Oid			save_userid;
	int			save_sec_context;
	int			rc;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION | SECURITY_NOFORCE_RLS);
	if (latest && IsolationUsesXactSnapshot())
	{
		CommandCounterIncrement();
		rc = SPI_execute_snapshot(plan, params, NULL, GetLatestSnapshot(), InvalidSnapshot,
								  false, false, limit);
	}
	else
		rc = SPI_execute_plan(plan, params, NULL, false, limit);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI lookup failed: %s", SPI_result_code_string(rc));
}

/*
 * States kept per trigger (by the trigger's OID) across statements, in a
 * backend-wide table: a refund request is often a statement of its own.
 * Each is worked out again after any change to relations, types, schemas
 * or roles, once the looked-up table is locked, so no decision outlives a
 * GRANT, an ALTER or a DROP.  A state whose trigger is gone is freed.
 */
static uint64 trigger_generation = 1;

static void
trigger_states_relcache_changed(Datum arg pg_attribute_unused(), Oid relid pg_attribute_unused())
{
	trigger_generation++;
}

static void
trigger_states_syscache_changed(Datum arg pg_attribute_unused(), int cacheid pg_attribute_unused(),
								uint32 hashvalue pg_attribute_unused())
{
	trigger_generation++;
}

/* The header every kept state starts with. */
typedef struct KeptState
{
	Oid			tgoid;			/* hash key */
	uint64		generation;		/* trigger_generation when worked out; 0: not */
	MemoryContext mcxt;			/* what is worked out, but the plan */
	Oid			relid;			/* the trigger's table */
	Oid			locked;			/* the table locked before using the state */
	char	   *plan_query;		/* what the kept plan was made from */
	SPIPlanPtr	plan;
} KeptState;

/* One table of states per trigger function, each entry of its size. */
static HTAB *
kept_states(HTAB **table, const char *name, Size entrysize)
{
	static bool callbacks = false;

	if (*table == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = entrysize;
		*table = hash_create(name, 16, &ctl, HASH_ELEM | HASH_BLOBS);
	}
	if (!callbacks)
	{
		CacheRegisterRelcacheCallback(trigger_states_relcache_changed, (Datum) 0);
		CacheRegisterSyscacheCallback(TYPEOID, trigger_states_syscache_changed, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, trigger_states_syscache_changed, (Datum) 0);
		CacheRegisterSyscacheCallback(AUTHOID, trigger_states_syscache_changed, (Datum) 0);
		CacheRegisterSyscacheCallback(AUTHMEMMEMROLE, trigger_states_syscache_changed, (Datum) 0);
		callbacks = true;
	}
	return *table;
}

static void
free_plan(KeptState *ks)
{
	if (ks->plan)
		SPI_freeplan(ks->plan);
	if (ks->plan_query)
		pfree(ks->plan_query);
	ks->plan = NULL;
	ks->plan_query = NULL;
}

/* Whether a trigger still exists. */
static bool
trigger_exists(Oid tgoid)
{
	Relation	tgrel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	bool		found;

	ScanKeyInit(&key, Anum_pg_trigger_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(tgoid));
	scan = systable_beginscan(tgrel, TriggerOidIndexId, true, NULL, 1, &key);
	found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(tgrel, AccessShareLock);
	return found;
}

/* Free the states of triggers that were dropped (checked when out of date). */
static void
free_dropped_states(HTAB *table, Oid keep)
{
	HASH_SEQ_STATUS seq;
	KeptState  *ks;
	List	   *gone = NIL;
	ListCell   *lc;

	hash_seq_init(&seq, table);
	while ((ks = (KeptState *) hash_seq_search(&seq)) != NULL)
		if (ks->tgoid != keep && ks->generation != trigger_generation &&
			!trigger_exists(ks->tgoid))
			gone = lappend_oid(gone, ks->tgoid);
	foreach(lc, gone)
	{
		Oid			tgoid = lfirst_oid(lc);

		ks = (KeptState *) hash_search(table, &tgoid, HASH_FIND, NULL);
		free_plan(ks);
		MemoryContextDelete(ks->mcxt);
		hash_search(table, &tgoid, HASH_REMOVE, NULL);
	}
	list_free(gone);
}

/*
 * The kept state of a trigger, valid for this row: the table it looks up
 * is locked first (as a foreign key check locks the referenced table), so
 * what invalidations came before are seen now and no DDL can change the
 * table until the transaction ends.  *stale says the caller must work the
 * state out again (then it has been reset, and freed of dropped triggers).
 */
static KeptState *
kept_state(HTAB *table, Size entrysize, TriggerData *td, bool *stale)
{
	Oid			tgoid = td->tg_trigger->tgoid;
	bool		found;
	KeptState  *ks = (KeptState *) hash_search(table, &tgoid, HASH_ENTER, &found);

	if (!found)
	{
		ks->generation = 0;
		ks->mcxt = AllocSetContextCreate(CacheMemoryContext, "refund_rules trigger",
										 ALLOCSET_SMALL_SIZES);
		ks->plan_query = NULL;
		ks->plan = NULL;
	}
	*stale = true;
	if (ks->generation != 0 && ks->relid == RelationGetRelid(td->tg_relation))
	{
		LockRelationOid(ks->locked, RowShareLock);
		*stale = (ks->generation != trigger_generation);
	}
	if (*stale)
	{
		/* what follows the header pointed into the memory reset here */
		ks->generation = 0;
		MemoryContextReset(ks->mcxt);
		memset((char *) ks + sizeof(KeptState), 0, entrysize - sizeof(KeptState));
		free_dropped_states(table, tgoid);
	}
	return ks;
}

/* The kept plan of a state, prepared again when its query changed. */
static SPIPlanPtr
kept_plan(KeptState *ks, const char *query, int nargs, Oid *argtypes)
{
	if (ks->plan && strcmp(ks->plan_query, query) != 0)
		free_plan(ks);
	if (ks->plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(query, nargs, argtypes);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		ks->plan_query = MemoryContextStrdup(TopMemoryContext, query);
		ks->plan = plan;
	}
	return ks->plan;
}

/* The query's text carries the parameter types, so a kept plan fits it. */
static char *
typed_query(const char *query, int nkeys, const KeyColumn *keys)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	appendStringInfoString(&buf, query);
	appendStringInfoString(&buf, " -- ");
	for (i = 0; i < nkeys; i++)
		appendStringInfo(&buf, "%s%u", i ? "," : "", keys[i].param_type);
	return buf.data;
}

/* ---- the request trigger: enforce_refund_policy() ---- */

/* The columns of the request the trigger reads besides the reference. */
typedef enum RequestColumn
{
	REQ_REQUESTED_AT,
	REQ_KIND,					/* optional */
	REQ_REQUESTED_BY_ROLE,		/* optional when the session is the requester */
	NUM_REQUEST_COLUMNS
} RequestColumn;

static const char *const request_column_names[NUM_REQUEST_COLUMNS] = {
	"requested_at", "kind", "requested_by_role"
};

/* The roles a refund may be requested in, and the options that name them. */
#define NUM_AUTHORIZED 2
static const char *const authorized_roles[NUM_AUTHORIZED] = {"mpn_partner_admin", "account_admin"};
static const char *const authorized_role_options[NUM_AUTHORIZED] = {
	"mpn_partner_admin_role", "account_admin_role"
};

#define REQUEST_OPTIONS "requester=column, requester=session, mpn_partner_admin_role=ROLE, account_admin_role=ROLE and max_lag=INTERVAL"

typedef struct RequestTriggerState
{
	KeptState	kept;			/* first: the hash entry's header */
	Oid			purchases;		/* = kept.locked */
	Oid			purchases_owner;
	char	   *purchases_name; /* schema.table, for messages */
	int			nkeys;
	KeyColumn	keys[INDEX_MAX_KEYS];
	char	   *key_names;		/* the purchases' key columns, for messages */
	AttrNumber	attnum[NUM_REQUEST_COLUMNS];	/* 0: absent */
	Oid			atttype[NUM_REQUEST_COLUMNS];
	int32		atttypmod[NUM_REQUEST_COLUMNS];
	bool		session_requester;	/* the session's roles decide, not a column */
	Oid			role[NUM_AUTHORIZED];	/* with session_requester; InvalidOid: none */
	int64		max_lag;
	AttrNumber	field_attnum[NUM_FIELDS];	/* columns of the purchases; 0: absent */
	char	   *query;			/* fetches and locks the purchase */
	char	   *query_unlocked; /* fetches it only (refund_request_status) */
	ExtensionTypes ext;
	PurchaseReader reader;		/* the lookup's result columns */
} RequestTriggerState;

static HTAB *request_trigger_states = NULL;

/* Find a column of the request table, checking its type. */
static void
request_column(RequestTriggerState *ts, Relation rel, RequestColumn c, bool required,
			   bool (*type_ok) (Oid), const char *expected)
{
	const char *name = request_column_names[c];
	Form_pg_attribute att = table_column(RelationGetDescr(rel), name);

	ts->attnum[c] = InvalidAttrNumber;
	ts->atttype[c] = InvalidOid;
	if (att == NULL)
	{
		if (required)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("refund request table \"%s\" has no column \"%s\"",
							RelationGetRelationName(rel), name),
					 errhint("enforce_refund_policy() reads the columns requested_at, requested_by_role (unless the session is the requester) and optionally kind.")));
		return;
	}
	if (!type_ok(getBaseType(att->atttypid)))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of refund request table \"%s\" is of type %s",
						name, RelationGetRelationName(rel), format_type_be(att->atttypid)),
				 errdetail("Column \"%s\" must be of type %s.", name, expected)));
	ts->attnum[c] = att->attnum;
	ts->atttype[c] = att->atttypid;
	ts->atttypmod[c] = att->atttypmod;
}

static bool
is_timestamptz_type(Oid base)
{
	return base == TIMESTAMPTZOID;
}

static bool
is_label_type(Oid base)
{
	return base == TEXTOID || base == VARCHAROID || type_is_enum(base);
}

/* The text of a label-typed value (text, varchar or enum). */
static char *
label_value(Datum value, Oid type)
{
	Oid			base = getBaseType(type);
	HeapTuple	tup;
	char	   *result;

	if (base == TEXTOID || base == VARCHAROID)
		return TextDatumGetCString(value);
	tup = SearchSysCache1(ENUMOID, value);
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "enum label %u not found", DatumGetObjectId(value));
	result = pstrdup(NameStr(((Form_pg_enum) GETSTRUCT(tup))->enumlabel));
	ReleaseSysCache(tup);
	return result;
}

static Oid
relation_owner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * The foreign key of the request table on exactly the reference columns
 * (in any order), or NULL.
 */
static ForeignKeyCacheInfo *
reference_foreign_key(Relation rel, int nkeys, const KeyColumn *keys)
{
	ListCell   *lc;

	foreach(lc, RelationGetFKeyList(rel))
	{
		ForeignKeyCacheInfo *fk = (ForeignKeyCacheInfo *) lfirst(lc);
		int			i,
					j;
		int			matched = 0;

		if (fk->nkeys != nkeys)
			continue;
		for (i = 0; i < nkeys; i++)
			for (j = 0; j < nkeys; j++)
				if (fk->conkey[j] == keys[i].given)
					matched++;
		if (matched == nkeys)
			return fk;
	}
	return NULL;
}

/*
 * The table a trigger without a foreign key was first used with, recorded
 * as a dependency of the trigger on it (so it cannot be dropped while the
 * trigger needs it), or InvalidOid.
 */
static Oid
bound_table(Oid tgoid, Oid tgrelid)
{
	Relation	deprel = table_open(DependRelationId, AccessShareLock);
	ScanKeyData key[2];
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			result = InvalidOid;

	ScanKeyInit(&key[0], Anum_pg_depend_classid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(TriggerRelationId));
	ScanKeyInit(&key[1], Anum_pg_depend_objid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(tgoid));
	scan = systable_beginscan(deprel, DependDependerIndexId, true, NULL, 2, key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_depend dep = (Form_pg_depend) GETSTRUCT(tup);

		if (dep->refclassid == RelationRelationId && dep->refobjsubid == 0 &&
			dep->refobjid != tgrelid && dep->deptype == DEPENDENCY_NORMAL)
		{
			result = dep->refobjid;
			break;
		}
	}
	systable_endscan(scan);
	table_close(deprel, AccessShareLock);
	return result;
}

/* Record that a trigger is bound to a table (a dependency of the trigger on it). */
static void
record_binding(Oid tgoid, Oid relid)
{
	ObjectAddress trigger;
	ObjectAddress table;

	ObjectAddressSet(trigger, TriggerRelationId, tgoid);
	ObjectAddressSet(table, RelationRelationId, relid);
	recordDependencyOn(&trigger, &table, DEPENDENCY_NORMAL);
}

/*
 * Whether table relid is a Citus shard of table logical.  On a Citus
 * worker the trigger fires on a shard of the request table, whose foreign
 * key references the co-located shard of the purchases table, while the
 * name in the trigger's argument is the distributed table.  Citus names a
 * shard <table>_<shardid> in the table's schema and lists it in
 * pg_catalog.pg_dist_shard; both must hold.
 */
static bool
is_citus_shard_of(Oid relid, Oid logical)
{
	const char *name = get_rel_name(relid);
	const char *logical_name = get_rel_name(logical);
	Oid			argtypes[2] = {OIDOID, INT8OID};
	Datum		values[2];
	char	   *end;
	int64		shardid;
	size_t		len;
	bool		found;

	if (name == NULL || logical_name == NULL ||
		get_rel_namespace(relid) != get_rel_namespace(logical) ||
		!OidIsValid(get_relname_relid("pg_dist_shard", PG_CATALOG_NAMESPACE)))
		return false;
	len = strlen(logical_name);
	if (strncmp(name, logical_name, len) != 0 || name[len] != '_' ||
		!isdigit((unsigned char) name[len + 1]))
		return false;
	errno = 0;
	shardid = strtoi64(name + len + 1, &end, 10);
	if (*end != '\0' || errno != 0)
		return false;

	values[0] = ObjectIdGetDatum(logical);
	values[1] = Int64GetDatum(shardid);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_dist_shard"
							  " WHERE logicalrelid::pg_catalog.oid OPERATOR(pg_catalog.=) $1"
							  " AND shardid OPERATOR(pg_catalog.=) $2",
							  2, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "SPI lookup of pg_dist_shard failed");
	found = (SPI_processed > 0);
	SPI_finish();
	return found;
}

/*
 * Bind a trigger to the table its argument names, by identity: the table
 * fk_bound (what a foreign key references) when valid, or else the table the
 * trigger was first used with, recorded now if this is the first use.  The
 * name must name that table; a table that took the name over is refused.
 */
static void
bind_table(const Trigger *tg, Relation rel, Oid named, const char *name, const char *what,
		   Oid fk_bound)
{
	Oid			bound = OidIsValid(fk_bound) ? fk_bound : bound_table(tg->tgoid, RelationGetRelid(rel));

	if (OidIsValid(bound) && bound != named)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" names %s \"%s\", but is bound to table \"%s\"",
						tg->tgname, what, name, qualified_name(bound)),
				 OidIsValid(fk_bound)
				 ? errdetail("The foreign key of table \"%s\" on the reference references \"%s\".",
							 RelationGetRelationName(rel), qualified_name(bound))
				 : errdetail("The trigger was first used with \"%s\"; that table was renamed or another table took its name since.",
							 qualified_name(bound)),
				 errhint("Recreate the trigger naming the table it should read.")));
	if (!OidIsValid(bound))
		record_binding(tg->tgoid, named);
}

/*
 * Bind the purchases table: the one the reference's foreign key references,
 * with the key it references, or else the one of the first use.  Returns
 * the table to read: the named one, or on a Citus worker the shard of it
 * that the foreign key references (locked too), as PostgreSQL's own check
 * of that foreign key reads it.
 */
static Oid
bind_purchases(const Trigger *tg, Relation rel, Oid named, const char *name,
			   RequestTriggerState *ts)
{
	ForeignKeyCacheInfo *fk = reference_foreign_key(rel, ts->nkeys, ts->keys);
	Oid			target = named;
	int			i,
				j;

	if (fk && fk->confrelid != named && is_citus_shard_of(fk->confrelid, named))
	{
		target = fk->confrelid;
		LockRelationOid(target, RowShareLock);
	}
	bind_table(tg, rel, target, name, "purchases table", fk ? fk->confrelid : InvalidOid);
	for (i = 0; fk && i < ts->nkeys; i++)
		for (j = 0; j < fk->nkeys; j++)
			if (fk->conkey[j] == ts->keys[i].given &&
				strcmp(get_attname(target, fk->confkey[j], false),
					   get_attname(named, ts->keys[i].looked_up, false)) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						 errmsg("trigger \"%s\" looks purchases up by column \"%s\", but the foreign key references column \"%s\"",
								tg->tgname, get_attname(named, ts->keys[i].looked_up, false),
								get_attname(target, fk->confkey[j], false)),
						 errhint("Pass the referenced columns as the key columns of enforce_refund_policy().")));
	return target;
}

/* Parse the options (arguments with "=") of enforce_refund_policy(). */
static void
request_trigger_options(const Trigger *tg, int first, RequestTriggerState *ts)
{
	int			i,
				r;
	bool		named_role = false;

	ts->session_requester = false;
	ts->max_lag = 0;
	for (r = 0; r < NUM_AUTHORIZED; r++)
		ts->role[r] = InvalidOid;
	for (i = first; i < tg->tgnargs; i++)
	{
		const char *arg = tg->tgargs[i];
		const char *v;
		bool		known = false;

		if ((v = option_value(arg, "requester")) != NULL)
		{
			if (strcmp(v, "session") != 0 && strcmp(v, "column") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						 errmsg("trigger \"%s\" passes invalid option \"%s\"", tg->tgname, arg),
						 errhint("The requester is \"column\" (column requested_by_role) or \"session\" (the current user's roles).")));
			ts->session_requester = (strcmp(v, "session") == 0);
			known = true;
		}
		else if ((v = option_value(arg, "max_lag")) != NULL)
		{
			ts->max_lag = parse_lag(tg, v);
			known = true;
		}
		for (r = 0; r < NUM_AUTHORIZED && !known; r++)
			if ((v = option_value(arg, authorized_role_options[r])) != NULL)
			{
				ts->role[r] = get_role_oid(v, true);
				if (!OidIsValid(ts->role[r]))
					ereport(ERROR,
							(errcode(ERRCODE_UNDEFINED_OBJECT),
							 errmsg("role \"%s\" named by trigger \"%s\" does not exist", v, tg->tgname)));
				named_role = known = true;
			}
		if (!known)
			report_unknown_option(tg, arg, REQUEST_OPTIONS);
	}
	if (ts->session_requester && !named_role)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" makes the session the requester but names no role", tg->tgname),
				 errhint("Add mpn_partner_admin_role=ROLE, account_admin_role=ROLE or both.")));
	if (!ts->session_requester && named_role)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" names roles but takes the requester from a column", tg->tgname),
				 errhint("Add requester=session to have the current user's roles decide.")));
}

/*
 * Work out what the trigger reads and the query that fetches and locks the
 * purchase: its policy columns by name, so the result's layout is the
 * query's, whatever the table's.
 */
static void
request_trigger_setup(FunctionCallInfo fcinfo, TriggerData *td, RequestTriggerState *ts)
{
	Trigger    *tg = td->tg_trigger;
	Relation	rel = td->tg_relation;
	uint64		generation;
	MemoryContext old;
	List	   *refcols;
	List	   *keycols;
	int			nargs_fixed;
	char	   *named;
	Oid			purchases;
	Oid			target;
	const char *names[INDEX_MAX_KEYS] = {0};
	StringInfoData query;
	StringInfoData keylist;
	int			f,
				i;

	if (tg->tgnargs < 2)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg_plural("trigger \"%s\" passes %d argument to enforce_refund_policy()",
							   "trigger \"%s\" passes %d arguments to enforce_refund_policy()",
							   tg->tgnargs, tg->tgname, tg->tgnargs),
				 errhint("Pass the purchases table, the column(s) of the refund requests that reference it, optionally the key column(s) of the purchases table (default id), then options.")));

	old = MemoryContextSwitchTo(ts->kept.mcxt);
	ts->kept.relid = RelationGetRelid(rel);

	/* The purchases table, locked before anything is read of it. */
	purchases = locked_table(tg, 0, home_namespace(rel), RowShareLock, &named);
	generation = trigger_generation;
	if (!OidIsValid(purchases))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("purchases table \"%s\" of trigger \"%s\" does not exist", named, tg->tgname),
				 errhint("An unqualified name is looked up in the schema of the table the trigger is on.")));
	ts->purchases = ts->kept.locked = purchases;
	ts->purchases_name = qualified_name(purchases);
	require_table(tg, purchases, "purchases table");
	lookup_extension_types(&ts->ext, get_func_namespace(fcinfo->flinfo->fn_oid));

	/*
	 * Like a foreign key: the request table's owner must be allowed to read
	 * the purchases and to lock them (REFERENCES), because the lookup runs
	 * as the purchases table's owner.
	 */
	if (pg_class_aclcheck(purchases, rel->rd_rel->relowner, ACL_SELECT) != ACLCHECK_OK ||
		pg_class_aclcheck(purchases, rel->rd_rel->relowner, ACL_REFERENCES) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", get_rel_name(purchases)),
				 errdetail("The owner of refund request table \"%s\" needs SELECT and REFERENCES on purchases table \"%s\".",
						   RelationGetRelationName(rel), ts->purchases_name)));

	/* The reference and the key; the third argument is a key unless an option. */
	refcols = column_list(tg, 1, RelationGetRelid(rel), "the reference columns");
	nargs_fixed = (tg->tgnargs >= 3 && strchr(tg->tgargs[2], '=') == NULL) ? 3 : 2;
	keycols = (nargs_fixed == 3) ? column_list(tg, 2, purchases, "the key columns") : list_make1("id");
	ts->nkeys = setup_keys(tg, rel, refcols, "reference column", purchases, keycols,
						   "key column", ts->keys,
						   psprintf("refund request table \"%s\", purchases table \"%s\"",
									RelationGetRelationName(rel), ts->purchases_name));
	target = bind_purchases(tg, rel, purchases, named, ts);
	if (target != purchases)
	{
		/* a Citus shard: its own columns, its own owner; messages keep the name */
		purchases = ts->purchases = ts->kept.locked = target;
		ts->nkeys = setup_keys(tg, rel, refcols, "reference column", purchases, keycols,
							   "key column", ts->keys,
							   psprintf("refund request table \"%s\", purchases table \"%s\"",
										RelationGetRelationName(rel), ts->purchases_name));
		if (pg_class_aclcheck(purchases, rel->rd_rel->relowner, ACL_SELECT) != ACLCHECK_OK ||
			pg_class_aclcheck(purchases, rel->rd_rel->relowner, ACL_REFERENCES) != ACLCHECK_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for table %s", get_rel_name(purchases))));
	}
	request_trigger_options(tg, nargs_fixed, ts);

	request_column(ts, rel, REQ_REQUESTED_AT, true, is_timestamptz_type,
				   "timestamp with time zone");
	request_column(ts, rel, REQ_KIND, false, is_label_type,
				   "refund_rules.refund_kind (or another enum), text or character varying");
	request_column(ts, rel, REQ_REQUESTED_BY_ROLE, !ts->session_requester, is_label_type,
				   "text, character varying or an enum");
	ts->purchases_owner = relation_owner(purchases);

	/*
	 * The query: the policy columns the table has, by name; ONLY for a
	 * plain table, as foreign keys do (a partitioned one has no rows of its
	 * own).  A column the table lacks is reported when a refund needs it.
	 */
	initStringInfo(&query);
	appendStringInfoString(&query, "SELECT ");
	for (f = 0; f < NUM_FIELDS; f++)
	{
		AttrNumber	attnum = get_attnum(purchases, field_names[f]);

		ts->field_attnum[f] = (attnum > 0) ? attnum : InvalidAttrNumber;
		if (ts->field_attnum[f] != InvalidAttrNumber)
			appendStringInfo(&query, "%st.%s", query.len > 7 ? ", " : "",
							 quote_identifier(field_names[f]));
	}
	if (query.len == 7)
		appendStringInfoString(&query, "NULL");
	initStringInfo(&keylist);
	for (i = 0; i < ts->nkeys; i++)
	{
		names[i] = (const char *) list_nth(keycols, i);
		appendStringInfo(&keylist, "%s%s", i ? ", " : "", names[i]);
	}
	ts->key_names = keylist.data;
	appendStringInfo(&query, " FROM %s%s t WHERE %s",
					 get_rel_relkind(purchases) == RELKIND_RELATION ? "ONLY " : "",
					 quote_qualified_identifier(get_namespace_name(get_rel_namespace(purchases)),
												get_rel_name(purchases)),
					 key_condition(ts->nkeys, ts->keys, names));
	ts->query_unlocked = pstrdup(query.data);
	appendStringInfoString(&query, " FOR SHARE OF t");
	ts->query = typed_query(query.data, ts->nkeys, ts->keys);
	MemoryContextSwitchTo(old);
	ts->kept.generation = generation;
}

/* On UPDATE, whether any column the check reads has changed. */
static bool
request_changed(const RequestTriggerState *ts, TupleDesc tupdesc, HeapTuple oldtup,
				HeapTuple newtup)
{
	int			c;

	for (c = 0; c < ts->nkeys; c++)
		if (column_changed(tupdesc, ts->keys[c].given, oldtup, newtup))
			return true;
	for (c = 0; c < NUM_REQUEST_COLUMNS; c++)
		if (ts->attnum[c] != InvalidAttrNumber &&
			column_changed(tupdesc, ts->attnum[c], oldtup, newtup))
			return true;
	return false;
}

/*
 * The requester's reasons; *role is the authorized role the decision used
 * (an index of authorized_roles), or -1.
 */
static uint32
requester_reasons(const RequestTriggerState *ts, const Datum *value, const bool *isnull, int *role)
{
	int			r;

	*role = -1;
	if (ts->session_requester)
	{
		/* the current user's membership decides; nothing the row says */
		for (r = 0; r < NUM_AUTHORIZED && *role < 0; r++)
			if (OidIsValid(ts->role[r]) && is_member_of_role(GetUserId(), ts->role[r]))
				*role = r;
	}
	else
	{
		char	   *label;

		if (isnull[REQ_REQUESTED_BY_ROLE])
			return REASON_BIT(REASON_MISSING_REQUESTED_BY_ROLE);
		label = label_value(value[REQ_REQUESTED_BY_ROLE], ts->atttype[REQ_REQUESTED_BY_ROLE]);
		for (r = 0; r < NUM_AUTHORIZED && *role < 0; r++)
			if (strcmp(label, authorized_roles[r]) == 0)
				*role = r;
	}
	return (*role < 0) ? REASON_BIT(REASON_REQUESTER_NOT_AUTHORIZED) : 0;
}

/*
 * The refund kind a request asks for; *known is false when the column is
 * NULL.  A label other than the two is bad data.
 */
static RefundKind
request_kind(const RequestTriggerState *ts, const Datum *value, const bool *isnull, bool *known)
{
	char	   *label;

	*known = true;
	if (ts->attnum[REQ_KIND] == InvalidAttrNumber)
		return KIND_PURCHASE;
	*known = !isnull[REQ_KIND];
	if (!*known)
		return KIND_PURCHASE;
	label = label_value(value[REQ_KIND], ts->atttype[REQ_KIND]);
	if (strcmp(label, kind_labels[KIND_TAX]) == 0)
		return KIND_TAX;
	if (strcmp(label, kind_labels[KIND_PURCHASE]) != 0)
		report_invalid_kind(label);
	return KIND_PURCHASE;
}

/*
 * Fetch the purchase, locked FOR SHARE unless only asked about; false when
 * there is none.
 */
static bool
fetch_purchase(RequestTriggerState *ts, Datum *params, const Datum *given, const Oid *given_types,
			   RefundKind kind, bool lock, Purchase *p)
{
	Oid			argtypes[INDEX_MAX_KEYS];
	SPIPlanPtr	plan;
	TupleDesc	result;
	int			i;

	for (i = 0; i < ts->nkeys; i++)
		argtypes[i] = ts->keys[i].param_type;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = lock ? kept_plan(&ts->kept, ts->query, ts->nkeys, argtypes)
		: SPI_prepare(ts->query_unlocked, ts->nkeys, argtypes);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	/* two rows are asked for, to tell a key that is not unique */
	run_lookup(plan, params, ts->purchases_owner, 2, false);
	if (SPI_processed > 1)
	{
		char	   *key = key_text(ts->nkeys, given, given_types);

		ereport(ERROR,
				(errcode(ERRCODE_CARDINALITY_VIOLATION),
				 errmsg("purchase \"%s\" is not unique", key),
				 errdetail("Key (%s)=(%s) matches more than one row of purchases table \"%s\".",
						   ts->key_names, key, ts->purchases_name),
				 errhint("Make the key of the purchases table unique.")));
	}
	if (SPI_processed == 0)
	{
		SPI_finish();
		return false;
	}

	/* the result's own descriptor, checked column by column */
	result = SPI_tuptable->tupdesc;
	if (!reader_fits(&ts->reader, result))
		reader_init_row(&ts->reader, &ts->ext, result, RECORDOID, -1,
						psprintf("purchases table \"%s\"", ts->purchases_name), ts->kept.mcxt);
	reader_require(&ts->reader, fields_for_kind(kind));
	read_purchase_tuple(&ts->reader, &ts->ext, SPI_tuptable->vals[0], fields_for_kind(kind), p);
	SPI_finish();
	return true;
}

/* What the request trigger decided about one row. */
typedef struct RequestJudgement
{
	RequestTriggerState *ts;
	bool		judged;			/* false: an UPDATE that changes nothing checked */
	Refusal		f;				/* f.reasons == 0: allowed */
	Purchase	p;
	int			role;			/* the authorized role used, or -1 */
	Datum		given[INDEX_MAX_KEYS];	/* the key as the request wrote it */
	Oid			given_types[INDEX_MAX_KEYS];
} RequestJudgement;

/*
 * Judge the new row of a request trigger's event: everything but raising
 * the refusal.  The trigger locks the purchase FOR SHARE; asking (the
 * pre-check) does not, and judges a request made now, whatever moment the
 * row says, so the answer tells no more than a request made now would.  Missing purchases and bad data raise here; what the
 * refusal may show (f.purchase_shown) is left to the caller.
 */
static void
judge_request(FunctionCallInfo fcinfo, TriggerData *td, bool asking, RequestJudgement *j)
{
	bool		is_update = TRIGGER_FIRED_BY_UPDATE(td->tg_event);
	TupleDesc	tupdesc = RelationGetDescr(td->tg_relation);
	HeapTuple	newtup = is_update ? td->tg_newtuple : td->tg_trigtuple;
	RequestTriggerState *ts;
	bool		stale;
	Datum		value[NUM_REQUEST_COLUMNS];
	bool		isnull[NUM_REQUEST_COLUMNS];
	Datum		params[INDEX_MAX_KEYS];
	bool		kind_known;
	RefundKind	kind;
	int			c;

	memset(j, 0, sizeof(RequestJudgement));
	ts = (RequestTriggerState *) kept_state(kept_states(&request_trigger_states,
														"refund_rules request triggers",
														sizeof(RequestTriggerState)),
											sizeof(RequestTriggerState), td, &stale);
	if (stale)
		request_trigger_setup(fcinfo, td, ts);
	j->ts = ts;
	if (is_update && !request_changed(ts, tupdesc, td->tg_trigtuple, newtup))
		return;
	j->judged = true;

	for (c = 0; c < NUM_REQUEST_COLUMNS; c++)
	{
		value[c] = (Datum) 0;
		isnull[c] = true;
		if (ts->attnum[c] != InvalidAttrNumber)
			value[c] = heap_getattr(newtup, ts->attnum[c], tupdesc, &isnull[c]);
	}
	if (asking)
	{
		/* a request made now: what DEFAULT now() writes, whatever the row says */
		value[REQ_REQUESTED_AT] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
		isnull[REQ_REQUESTED_AT] = false;
	}
	kind = request_kind(ts, value, isnull, &kind_known);

	/* The key, converted as the user who writes the request. */
	c = read_key(ts->nkeys, ts->keys, newtup, tupdesc, j->given, j->given_types, params);
	if (c >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 errmsg("refund request does not name a purchase"),
				 errdetail("Column \"%s\" is NULL.",
						   NameStr(TupleDescAttr(tupdesc, ts->keys[c].given - 1)->attname)),
				 errtable(td->tg_relation)));

	if (!fetch_purchase(ts, params, j->given, j->given_types, kind, !asking, &j->p))
	{
		char	   *key = key_text(ts->nkeys, j->given, j->given_types);

		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 errmsg("purchase \"%s\" does not exist", key),
				 errdetail("Key (%s)=(%s) is not present in purchases table \"%s\".",
						   ts->key_names, key, ts->purchases_name),
				 errtable(td->tg_relation)));
	}

	/* The moment is the database's, read once the purchase is locked. */
	if (!kind_known)
		j->f.reasons = REASON_BIT(REASON_MISSING_KIND);
	else if (isnull[REQ_REQUESTED_AT])
		j->f.reasons = refund_reasons(&j->p, 0, false, kind);
	else
		j->f.reasons = written_refund_reasons(&j->p, DatumGetTimestampTz(value[REQ_REQUESTED_AT]),
											  !is_update || column_changed(tupdesc, ts->attnum[REQ_REQUESTED_AT],
																		   td->tg_trigtuple, newtup),
											  ts->max_lag, kind);
	j->f.reasons |= requester_reasons(ts, value, isnull, &j->role);

	j->f.kind_known = kind_known;
	j->f.kind = kind;
	j->f.p = &j->p;
	j->f.purchases_name = ts->purchases_name;
	j->f.moment_column = request_column_names[REQ_REQUESTED_AT];
	j->f.lag = ts->max_lag;
	j->f.schema_name = get_namespace_name(RelationGetNamespace(td->tg_relation));
	j->f.table_name = RelationGetRelationName(td->tg_relation);
}

/*
 * enforce_refund_policy() is a BEFORE INSERT OR UPDATE row trigger for a
 * table of refund requests.  Arguments: the purchases table, the column(s)
 * of the request that reference it, the purchases' key column(s) (default
 * id), then options: requester=column|session, mpn_partner_admin_role=ROLE,
 * account_admin_role=ROLE, max_lag=INTERVAL.  It returns the new row (with
 * the role the decision used, when the session is the requester), or
 * raises when the refund is not allowed.
 */
PG_FUNCTION_INFO_V1(enforce_refund_policy);
Datum
enforce_refund_policy(PG_FUNCTION_ARGS)
{
	TriggerData *td = trigger_data(fcinfo, "enforce_refund_policy()", true);
	HeapTuple	newtup = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	RequestJudgement j;
	RequestTriggerState *ts;

	judge_request(fcinfo, td, false, &j);
	ts = j.ts;
	if (!j.judged)
		return PointerGetDatum(newtup);
	if (j.f.reasons)
	{
		j.f.purchase_shown = columns_readable(ts->purchases, NUM_FIELDS, ts->field_attnum);
		j.f.purchase_key = key_text(ts->nkeys, j.given, j.given_types);
		report_refused(&j.f);
	}

	/* With the session as the requester, the row records the role used. */
	if (ts->session_requester && ts->attnum[REQ_REQUESTED_BY_ROLE] != InvalidAttrNumber)
	{
		Oid			input;
		Oid			ioparam;
		int			attnum = ts->attnum[REQ_REQUESTED_BY_ROLE];
		Datum		label;
		bool		label_null = false;

		getTypeInputInfo(ts->atttype[REQ_REQUESTED_BY_ROLE], &input, &ioparam);
		label = OidInputFunctionCall(input, (char *) authorized_roles[j.role], ioparam,
									 ts->atttypmod[REQ_REQUESTED_BY_ROLE]);
		newtup = heap_modify_tuple_by_cols(newtup, RelationGetDescr(td->tg_relation), 1,
										   &attnum, &label, &label_null);
	}
	return PointerGetDatum(newtup);
}

/* The enabled enforce_refund_policy() trigger of a request table. */
static Trigger *
request_trigger_of(Relation rel, Oid trigger_func)
{
	TriggerDesc *trigdesc = rel->trigdesc;
	Trigger    *found = NULL;
	int			i;

	for (i = 0; trigdesc && i < trigdesc->numtriggers; i++)
	{
		Trigger    *tg = &trigdesc->triggers[i];

		/* only a trigger that would fire in this session */
		bool		fires = (SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA)
			? (tg->tgenabled == TRIGGER_FIRES_ON_REPLICA || tg->tgenabled == TRIGGER_FIRES_ALWAYS)
			: (tg->tgenabled == TRIGGER_FIRES_ON_ORIGIN || tg->tgenabled == TRIGGER_FIRES_ALWAYS);

		if (tg->tgfoid != trigger_func || !fires ||
			!TRIGGER_FOR_ROW(tg->tgtype) || !TRIGGER_FOR_BEFORE(tg->tgtype) ||
			!TRIGGER_FOR_INSERT(tg->tgtype))
			continue;
		if (found)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("table \"%s\" has more than one enforce_refund_policy() trigger",
							RelationGetRelationName(rel))));
		found = tg;
	}
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("table \"%s\" has no enforce_refund_policy() trigger that fires",
						RelationGetRelationName(rel)),
				 errhint("refund_request_status() answers for a table whose refund requests the trigger checks.")));
	return found;
}

/*
 * refund_request_status(request anyelement) returns (allowed boolean,
 * reasons text[], deadline timestamptz): what the enforce_refund_policy()
 * trigger of the request's table would decide for inserting this row now,
 * without inserting it or locking the purchase.  A NULL requested_at
 * stands for the column's default, now().  The caller must be allowed to
 * insert into the table; the purchase's own reasons and its deadline are
 * shown as in the trigger's refusals.  Other errors are the trigger's.
 */
PG_FUNCTION_INFO_V1(refund_request_status);
Datum
refund_request_status(PG_FUNCTION_ARGS)
{
	Oid			rowtype = get_fn_expr_argtype(fcinfo->flinfo, 0);
	Oid			relid = OidIsValid(rowtype) ? get_typ_typrelid(getBaseType(rowtype)) : InvalidOid;
	Oid			trigger_func;
	Oid			noargs[1] = {InvalidOid};
	Relation	rel;
	TriggerData td;
	HeapTupleData tuple;
	RequestJudgement j;
	TupleDesc	result_desc;
	const char *codes[NUM_REASONS];
	Datum		elems[NUM_REASONS];
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	TimestampTz deadline;
	int			n,
				i;

	if (!OidIsValid(relid) || get_rel_relkind(relid) != RELKIND_RELATION ||
		getBaseType(rowtype) != get_rel_type_id(relid))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("refund request is of type %s", format_type_be(rowtype)),
				 errdetail("Pass a row of the refund request table, e.g. jsonb_populate_record(NULL::refund_requests, ...).")));
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	if (pg_class_aclcheck(relid, GetUserId(), ACL_INSERT) != ACLCHECK_OK &&
		pg_attribute_aclcheck_all(relid, GetUserId(), ACL_INSERT, ACLMASK_ANY) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", get_rel_name(relid)),
				 errdetail("Asking whether a refund request would be accepted needs INSERT on its table.")));
	if (get_call_result_type(fcinfo, NULL, &result_desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	trigger_func = GetSysCacheOid3(PROCNAMEARGSNSP, Anum_pg_proc_oid,
								   CStringGetDatum("enforce_refund_policy"),
								   PointerGetDatum(buildoidvector(noargs, 0)),
								   ObjectIdGetDatum(get_func_namespace(fcinfo->flinfo->fn_oid)));
	rel = table_open(relid, AccessShareLock);

	/* the trigger's event, as an INSERT of this row would fire it */
	tuple.t_data = PG_GETARG_HEAPTUPLEHEADER(0);
	tuple.t_len = HeapTupleHeaderGetDatumLength(tuple.t_data);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = relid;
	memset(&td, 0, sizeof(td));
	td.type = T_TriggerData;
	td.tg_event = TRIGGER_EVENT_INSERT | TRIGGER_EVENT_ROW | TRIGGER_EVENT_BEFORE;
	td.tg_relation = rel;
	td.tg_trigtuple = &tuple;
	td.tg_trigger = request_trigger_of(rel, trigger_func);

	judge_request(fcinfo, &td, true, &j);
	j.f.purchase_shown = columns_readable(j.ts->purchases, NUM_FIELDS, j.ts->field_attnum);
	n = refusal_codes(&j.f, codes);
	for (i = 0; i < n; i++)
		elems[i] = CStringGetTextDatum(codes[i]);
	values[0] = BoolGetDatum(j.f.reasons == 0);
	values[1] = PointerGetDatum(n ? construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT)
								: construct_empty_array(TEXTOID));
	if (refusal_deadline(&j.f, &deadline))
		values[2] = TimestampTzGetDatum(deadline);
	else
		nulls[2] = true;
	table_close(rel, AccessShareLock);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(result_desc), values, nulls)));
}

/* ---- the purchases' companions ---- */

/* The table a companion trigger names, locked and bound by identity. */
static Oid
bound_named_table(const Trigger *tg, Relation rel, int argno, const char *what)
{
	char	   *named;
	Oid			relid = locked_table(tg, argno, home_namespace(rel), RowShareLock, &named);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s \"%s\" of trigger \"%s\" does not exist", what, named, tg->tgname),
				 errhint("An unqualified name is looked up in the schema of the table the trigger is on.")));
	require_table(tg, relid, what);
	bind_table(tg, rel, relid, named, what, InvalidOid);
	return relid;
}

typedef struct ProtectTriggerState
{
	KeptState	kept;			/* first: the hash entry's header */
	Oid			requests;		/* = kept.locked */
	Oid			requests_owner;
	int			nkeys;
	KeyColumn	keys[INDEX_MAX_KEYS];	/* given: the purchase's key */
	AttrNumber	field_attnum[NUM_FIELDS];	/* the purchase's policy columns */
	char	   *query;
} ProtectTriggerState;

static HTAB *protect_trigger_states = NULL;

static void
protect_trigger_setup(TriggerData *td, ProtectTriggerState *ts)
{
	Trigger    *tg = td->tg_trigger;
	Relation	rel = td->tg_relation;
	uint64		generation;
	MemoryContext old;
	List	   *keycols;
	List	   *refcols;
	const char *names[INDEX_MAX_KEYS] = {0};
	int			f,
				i;

	if (tg->tgnargs < 2 || tg->tgnargs > 3)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg_plural("trigger \"%s\" passes %d argument to protect_refunded_purchase()",
							   "trigger \"%s\" passes %d arguments to protect_refunded_purchase()",
							   tg->tgnargs, tg->tgname, tg->tgnargs),
				 errhint("Pass the refund request table, its column(s) that reference the purchase, and optionally the key column(s) of the purchases (default id).")));

	old = MemoryContextSwitchTo(ts->kept.mcxt);
	ts->kept.relid = RelationGetRelid(rel);
	ts->requests = ts->kept.locked = bound_named_table(tg, rel, 0, "refund request table");
	generation = trigger_generation;
	ts->requests_owner = relation_owner(ts->requests);

	/* as for a foreign key: the purchases' owner may read the requests */
	if (pg_class_aclcheck(ts->requests, rel->rd_rel->relowner, ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", get_rel_name(ts->requests)),
				 errdetail("The owner of purchases table \"%s\" needs SELECT on refund request table \"%s\".",
						   RelationGetRelationName(rel), qualified_name(ts->requests))));

	refcols = column_list(tg, 1, ts->requests, "the reference columns");
	keycols = (tg->tgnargs == 3) ? column_list(tg, 2, RelationGetRelid(rel), "the key columns")
		: list_make1("id");
	ts->nkeys = setup_keys(tg, rel, keycols, "key column", ts->requests, refcols,
						   "reference column", ts->keys,
						   psprintf("purchases table \"%s\", refund request table \"%s\"",
									RelationGetRelationName(rel), qualified_name(ts->requests)));
	for (f = 0; f < NUM_FIELDS; f++)
	{
		Form_pg_attribute att = table_column(RelationGetDescr(rel), field_names[f]);

		ts->field_attnum[f] = att ? att->attnum : InvalidAttrNumber;
	}
	for (i = 0; i < ts->nkeys; i++)
		names[i] = (const char *) list_nth(refcols, i);
	ts->query = typed_query(psprintf("SELECT 1 FROM %s%s t WHERE %s LIMIT 1",
									 get_rel_relkind(ts->requests) == RELKIND_RELATION ? "ONLY " : "",
									 quote_qualified_identifier(get_namespace_name(get_rel_namespace(ts->requests)),
																get_rel_name(ts->requests)),
									 key_condition(ts->nkeys, ts->keys, names)),
							ts->nkeys, ts->keys);
	MemoryContextSwitchTo(old);
	ts->kept.generation = generation;
}

/*
 * protect_refunded_purchase() is a BEFORE UPDATE row trigger for the
 * purchases table, the companion of enforce_refund_policy().  Arguments:
 * the refund request table, its column(s) that reference the purchase, the
 * purchases' key column(s) (default id).  Once a refund request of a
 * purchase is accepted, the purchase's policy columns (benefits activated,
 * keys viewed, ...) and its key cannot change: it raises check_violation.
 */
PG_FUNCTION_INFO_V1(protect_refunded_purchase);
Datum
protect_refunded_purchase(PG_FUNCTION_ARGS)
{
	TriggerData *td = trigger_data(fcinfo, "protect_refunded_purchase()", false);
	TupleDesc	tupdesc = RelationGetDescr(td->tg_relation);
	HeapTuple	oldtup = td->tg_trigtuple;
	HeapTuple	newtup = td->tg_newtuple;
	ProtectTriggerState *ts;
	bool		stale;
	const char *changed = NULL;
	Datum		given[INDEX_MAX_KEYS];
	Oid			given_types[INDEX_MAX_KEYS];
	Datum		params[INDEX_MAX_KEYS];
	Oid			argtypes[INDEX_MAX_KEYS];
	bool		requested;
	int			f,
				i;

	ts = (ProtectTriggerState *) kept_state(kept_states(&protect_trigger_states,
														"refund_rules purchase triggers",
														sizeof(ProtectTriggerState)),
											sizeof(ProtectTriggerState), td, &stale);
	if (stale)
		protect_trigger_setup(td, ts);

	for (f = 0; f < NUM_FIELDS && !changed; f++)
		if (ts->field_attnum[f] != InvalidAttrNumber &&
			column_changed(tupdesc, ts->field_attnum[f], oldtup, newtup))
			changed = field_names[f];
	for (i = 0; i < ts->nkeys && !changed; i++)
		if (column_changed(tupdesc, ts->keys[i].given, oldtup, newtup))
			changed = NameStr(TupleDescAttr(tupdesc, ts->keys[i].given - 1)->attname);
	if (!changed || read_key(ts->nkeys, ts->keys, oldtup, tupdesc, given, given_types, params) >= 0)
		return PointerGetDatum(newtup);

	/* Requests committed since this transaction's snapshot count too. */
	for (i = 0; i < ts->nkeys; i++)
		argtypes[i] = ts->keys[i].param_type;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	run_lookup(kept_plan(&ts->kept, ts->query, ts->nkeys, argtypes), params,
			   ts->requests_owner, 1, true);
	requested = (SPI_processed > 0);
	SPI_finish();

	if (requested)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("purchase \"%s\" has an accepted refund request",
						key_text(ts->nkeys, given, given_types)),
				 errdetail("Column \"%s\" cannot change once a refund of the purchase is accepted.",
						   changed),
				 errhint("A refund request in table \"%s\" names this purchase.",
						 qualified_name(ts->requests)),
				 errtable(td->tg_relation)));
	return PointerGetDatum(newtup);
}

/* What enforce_refund_moment() works out once per statement. */
typedef struct MomentGuard
{
	AttrNumber	attnum;			/* the moment's column */
	const char *column;
	RefundKind	kind;
	int64		max_lag;
	bool		purchase_shown;
	ExtensionTypes ext;
	PurchaseReader reader;		/* the table's own row */
} MomentGuard;

#define MOMENT_OPTIONS "kind=purchase, kind=tax and max_lag=INTERVAL"

static MomentGuard *
moment_guard(FunctionCallInfo fcinfo, TriggerData *td)
{
	MomentGuard *g = (MomentGuard *) fcinfo->flinfo->fn_extra;
	Trigger    *tg = td->tg_trigger;
	Relation	rel = td->tg_relation;
	MemoryContext old;
	Form_pg_attribute att;
	int			first = 0;
	int			i;

	/* The table is locked by the statement: its layout holds until the end. */
	if (g != NULL)
		return g;
	old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	g = palloc0(sizeof(MomentGuard));
	g->column = "refunded_at";
	if (tg->tgnargs > 0 && strchr(tg->tgargs[0], '=') == NULL)
		g->column = tg->tgargs[first++];
	g->kind = KIND_PURCHASE;
	for (i = first; i < tg->tgnargs; i++)
	{
		const char *v;

		if ((v = option_value(tg->tgargs[i], "max_lag")) != NULL)
			g->max_lag = parse_lag(tg, v);
		else if ((v = option_value(tg->tgargs[i], "kind")) != NULL &&
				 (strcmp(v, kind_labels[KIND_PURCHASE]) == 0 || strcmp(v, kind_labels[KIND_TAX]) == 0))
			g->kind = (strcmp(v, kind_labels[KIND_TAX]) == 0) ? KIND_TAX : KIND_PURCHASE;
		else
			report_unknown_option(tg, tg->tgargs[i], MOMENT_OPTIONS);
	}
	att = table_column(RelationGetDescr(rel), g->column);
	if (att == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("table \"%s\" has no column \"%s\"", RelationGetRelationName(rel), g->column),
				 errhint("The first argument of enforce_refund_moment() names the column of the refund's moment (default refunded_at).")));
	if (getBaseType(att->atttypid) != TIMESTAMPTZOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of table \"%s\" is of type %s",
						g->column, RelationGetRelationName(rel), format_type_be(att->atttypid)),
				 errdetail("Column \"%s\" must be of type timestamp with time zone.", g->column)));
	g->attnum = att->attnum;
	lookup_extension_types(&g->ext, get_func_namespace(fcinfo->flinfo->fn_oid));
	reader_init_row(&g->reader, &g->ext, RelationGetDescr(rel), RelationGetForm(rel)->reltype, -1,
					psprintf("table \"%s\"", RelationGetRelationName(rel)), fcinfo->flinfo->fn_mcxt);
	reader_require(&g->reader, fields_for_kind(g->kind));
	g->purchase_shown = columns_readable(RelationGetRelid(rel), NUM_FIELDS, g->reader.attnum);
	MemoryContextSwitchTo(old);
	fcinfo->flinfo->fn_extra = g;
	return g;
}

/*
 * enforce_refund_moment() is a BEFORE INSERT OR UPDATE row trigger for a
 * purchases table whose CHECK constraint calls check_refund() on a moment
 * column.  Arguments: the column (default refunded_at), then options
 * kind=purchase|tax and max_lag=INTERVAL.  A moment the statement writes
 * is judged at the later of it and the statement's start, and one earlier
 * than the transaction's start is refused (backdated_request).
 */
PG_FUNCTION_INFO_V1(enforce_refund_moment);
Datum
enforce_refund_moment(PG_FUNCTION_ARGS)
{
	TriggerData *td = trigger_data(fcinfo, "enforce_refund_moment()", true);
	bool		is_update = TRIGGER_FIRED_BY_UPDATE(td->tg_event);
	TupleDesc	tupdesc = RelationGetDescr(td->tg_relation);
	HeapTuple	newtup = is_update ? td->tg_newtuple : td->tg_trigtuple;
	MomentGuard *g = moment_guard(fcinfo, td);
	bool		isnull;
	Datum		written = heap_getattr(newtup, g->attnum, tupdesc, &isnull);
	Purchase	p;
	Refusal		f;

	/* Once refunded, always refunded: the moment cannot be withdrawn. */
	if (isnull && is_update && !heap_attisnull(td->tg_trigtuple, g->attnum, tupdesc))
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("refund recorded in column \"%s\" cannot be withdrawn", g->column),
				 errdetail("Once refunded, always refunded: the column may change only to another allowed moment."),
				 errtable(td->tg_relation)));

	/* Only a moment this statement writes; the CHECK judges the rest. */
	if (isnull || (is_update && !column_changed(tupdesc, g->attnum, td->tg_trigtuple, newtup)))
		return PointerGetDatum(newtup);

	read_purchase_tuple(&g->reader, &g->ext, newtup, fields_for_kind(g->kind), &p);
	memset(&f, 0, sizeof(f));
	f.reasons = written_refund_reasons(&p, DatumGetTimestampTz(written), true, g->max_lag, g->kind);
	if (f.reasons)
	{
		f.kind_known = true;
		f.kind = g->kind;
		f.p = &p;
		f.purchase_shown = g->purchase_shown;
		f.purchases_name = psprintf("%s.%s", get_namespace_name(RelationGetNamespace(td->tg_relation)),
									RelationGetRelationName(td->tg_relation));
		f.moment_column = g->column;
		f.lag = g->max_lag;
		f.schema_name = get_namespace_name(RelationGetNamespace(td->tg_relation));
		f.table_name = RelationGetRelationName(td->tg_relation);
		report_refused(&f);
	}
	return PointerGetDatum(newtup);
}


/* ==================================================================
 *		PLANNER SUPPORT
 *
 * refund_eligible(p, as_of) on a table's whole row (or on a typed ROW())
 * makes PostgreSQL build the whole row for every row scanned.  The
 * simplification rewrites it into the column form on the needed columns
 * only, and adds the window as a plain range on purchased_at,
 *
 *		_refund_eligible(offer, purchased_at, ..., as_of)
 *		AND purchased_at <= as_of AND purchased_at >= refund_window_start(as_of)
 *
 * which btree and BRIN indexes on purchased_at can use.  The range is
 * implied by the call (it is false only when the call is false, NULL only
 * when the call is NULL or false), so the result is the same in
 * three-valued logic, under NOT and in outer joins.
 *
 * The column Vars must mean what the whole-row Var meant wherever the
 * expression ends up: they carry its varnullingrels (the outer joins that
 * can null it, PostgreSQL 16 on) and its varreturningtype (old or new in
 * RETURNING, 18 on).  Grouping sets null a grouped whole row above the
 * grouping step without nulling its columns, so a row that grouping sets
 * can null is left alone.
 * ==================================================================
 */

typedef struct Rewrite
{
	const char *row_form;		/* the whole-row function */
	const char *column_form;	/* the function it becomes */
	const char *symbol;			/* its C function in this library */
	uint32		layout;			/* the columns passed, in field order */
	bool		takes_kind;		/* a kind argument follows as_of */
	int			window_kind;	/* the window added as a range, or -1 */
} Rewrite;

enum
{
	REWRITE_REFUND_ELIGIBLE,
	REWRITE_TAX_REFUND_ELIGIBLE,
	REWRITE_REASONS,
	REWRITE_STATUS,
	NUM_REWRITES
};

static const Rewrite rewrites[NUM_REWRITES] = {
	{"refund_eligible", "_refund_eligible", "refund_eligible_columns", FIELDS_REFUND, false, KIND_PURCHASE},
	{"tax_refund_eligible", "_tax_refund_eligible", "tax_refund_eligible_columns", FIELDS_TAX, false, KIND_TAX},
	{"refund_ineligibility_reasons", "_refund_ineligibility_reasons", "refund_ineligibility_reasons_columns", FIELDS_ALL, true, -1},
	{"refund_status", "_refund_status", "refund_status_columns", FIELDS_ALL, false, -1},
};

/*
 * The extension's catalog entries the planner support uses, looked up once
 * per backend and forgotten whenever pg_proc, pg_type, pg_enum or
 * pg_namespace change (DROP and CREATE EXTENSION give new OIDs).
 */
typedef struct SupportCatalog
{
	bool		valid;
	ExtensionTypes ext;
	Oid			row_form[NUM_REWRITES];
	Oid			column_form[NUM_REWRITES];
	Oid			window_start;	/* refund_window_start(timestamptz, refund_kind) */
	Oid			tstz_le;		/* timestamptz <= timestamptz, and its function */
	Oid			tstz_le_func;
	Oid			tstz_ge;		/* timestamptz >= timestamptz, and its function */
	Oid			tstz_ge_func;
} SupportCatalog;

static SupportCatalog support_catalog;
static uint64 support_catalog_generation = 0;	/* counts invalidations */
static bool support_callbacks_registered = false;

static void
support_catalog_changed(Datum arg pg_attribute_unused(), int cacheid pg_attribute_unused(),
						uint32 hashvalue pg_attribute_unused())
{
	support_catalog.valid = false;
	support_catalog_generation++;
}

/* A function of the extension by name and argument types, or InvalidOid. */
static Oid
extension_function(Oid nsp, const char *name, int nargs, const Oid *argtypes)
{
	return GetSysCacheOid3(PROCNAMEARGSNSP, Anum_pg_proc_oid,
						   CStringGetDatum(name),
						   PointerGetDatum(buildoidvector(argtypes, nargs)),
						   ObjectIdGetDatum(nsp));
}

/* Whether a C function's catalog entry names this symbol of the library. */
static bool
function_is_symbol(Oid funcid, const char *symbol)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	bool		isnull;
	Datum		prosrc;
	bool		result;

	if (!HeapTupleIsValid(tup))
		return false;
	prosrc = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_prosrc, &isnull);
	result = !isnull && strcmp(TextDatumGetCString(prosrc), symbol) == 0;
	ReleaseSysCache(tup);
	return result;
}

static Oid
timestamptz_operator(int strategy)
{
	Oid			opfamily = get_opclass_family(GetDefaultOpClass(TIMESTAMPTZOID, BTREE_AM_OID));
	Oid			opno = get_opfamily_member(opfamily, TIMESTAMPTZOID, TIMESTAMPTZOID, strategy);

	if (!OidIsValid(opno))
		elog(ERROR, "no timestamptz comparison for strategy %d", strategy);
	return opno;
}

/*
 * The catalog entries, from the schema of the function being simplified
 * (every function that names this support function is the extension's).
 * No privilege checks: planning a query must not depend on who plans it
 * (index predicates and constraints are simplified by whoever comes first).
 * NULL while a function is missing (in the middle of CREATE EXTENSION) or
 * is not this library's (an older version's script, before ALTER EXTENSION
 * UPDATE): then nothing is rewritten, and the calls work as they are.
 */
static const SupportCatalog *
get_support_catalog(Oid funcid)
{
	SupportCatalog cat;
	uint64		generation;
	Oid			nsp;
	Oid			argtypes[FUNC_MAX_ARGS];
	int			r;
	int			i;

	if (support_catalog.valid)
		return &support_catalog;
	if (!support_callbacks_registered)
	{
		CacheRegisterSyscacheCallback(PROCOID, support_catalog_changed, (Datum) 0);
		CacheRegisterSyscacheCallback(TYPEOID, support_catalog_changed, (Datum) 0);
		CacheRegisterSyscacheCallback(ENUMOID, support_catalog_changed, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, support_catalog_changed, (Datum) 0);
		support_callbacks_registered = true;
	}

	generation = support_catalog_generation;
	memset(&cat, 0, sizeof(cat));
	nsp = get_func_namespace(funcid);
	if (!OidIsValid(nsp))
		return NULL;
	lookup_extension_types(&cat.ext, nsp);
	for (r = 0; r < NUM_REWRITES; r++)
	{
		const Rewrite *rw = &rewrites[r];
		int			ncols = pg_popcount32(rw->layout);

		argtypes[0] = RECORDOID;
		argtypes[1] = TIMESTAMPTZOID;
		argtypes[2] = cat.ext.refund_kind;
		cat.row_form[r] = extension_function(nsp, rw->row_form, rw->takes_kind ? 3 : 2, argtypes);

		for (i = 0; i < ncols; i++)
			argtypes[i] = ANYOID;
		argtypes[ncols] = TIMESTAMPTZOID;
		argtypes[ncols + 1] = cat.ext.refund_kind;
		cat.column_form[r] = extension_function(nsp, rw->column_form,
												ncols + (rw->takes_kind ? 2 : 1), argtypes);
		if (!OidIsValid(cat.row_form[r]) || !OidIsValid(cat.column_form[r]) ||
			!function_is_symbol(cat.column_form[r], rw->symbol))
			return NULL;
	}
	argtypes[0] = TIMESTAMPTZOID;
	argtypes[1] = cat.ext.refund_kind;
	cat.window_start = extension_function(nsp, "refund_window_start", 2, argtypes);
	if (!OidIsValid(cat.window_start))
		return NULL;
	cat.tstz_le = timestamptz_operator(BTLessEqualStrategyNumber);
	cat.tstz_le_func = get_opcode(cat.tstz_le);
	cat.tstz_ge = timestamptz_operator(BTGreaterEqualStrategyNumber);
	cat.tstz_ge_func = get_opcode(cat.tstz_ge);

	/*
	 * Good for this call either way; kept for the next ones only when no
	 * invalidation arrived during the lookups.
	 */
	support_catalog = cat;
	support_catalog.valid = (generation == support_catalog_generation);
	return &support_catalog;
}

/* The rewrite whose row form funcid is, or -1. */
static int
rewrite_of(const SupportCatalog *cat, Oid funcid)
{
	int			r;

	for (r = 0; r < NUM_REWRITES; r++)
		if (cat->row_form[r] == funcid)
			return r;
	return -1;
}

#if PG_VERSION_NUM >= 180000
/*
 * PostgreSQL 18 on: whether an expression holds a Var (or placeholder)
 * marked as nulled by the grouping step (the grouping RTE in its nulling
 * relids).
 */
static bool
nulled_by_grouping_walker(Node *node, void *context)
{
	PlannerInfo *root = (PlannerInfo *) context;

	if (node == NULL)
		return false;
	if (IsA(node, Var))
		return bms_is_member(root->group_rtindex, ((Var *) node)->varnullingrels);
	if (IsA(node, PlaceHolderVar) &&
		bms_is_member(root->group_rtindex, ((PlaceHolderVar *) node)->phnullingrels))
		return true;
	return expression_tree_walker(node, nulled_by_grouping_walker, context);
}
#endif

/*
 * Whether grouping sets may null the row argument above the grouping step,
 * where column Vars would keep the values of some row of the group.
 */
static bool
row_nullable_by_grouping(PlannerInfo *root, Node *row)
{
	if (root == NULL || root->parse->groupingSets == NIL)
		return false;
#if PG_VERSION_NUM >= 180000

	/*
	 * From 18 on, the target list and HAVING are simplified while a grouped
	 * row is still a Var of the grouping RTE, not of a relation (so
	 * row_columns leaves it alone); they are replaced by the grouping
	 * expressions afterwards, marked with the grouping RTE where grouping
	 * sets null them.  A row so marked is refused all the same.
	 */
	if (root->group_rtindex <= 0)
		return false;
	return nulled_by_grouping_walker(row, root);
#else

	/*
	 * Before 18 nothing marks what grouping sets null: refuse when the row
	 * is a grouping expression (the whole-row Var compared by relation
	 * alone), wherever in the query the call is.  A row that is not grouped
	 * is only allowed above the grouping step when it depends on columns
	 * grouped in every set, which are never nulled.
	 */
	{
		ListCell   *lc;

		foreach(lc, root->parse->groupClause)
		{
			Node	   *expr = get_sortgroupclause_expr((SortGroupClause *) lfirst(lc),
														root->parse->targetList);

			if (IsA(row, Var) && IsA(expr, Var))
			{
				if (((Var *) expr)->varno == ((Var *) row)->varno &&
					((Var *) expr)->varattno == 0 && ((Var *) expr)->varlevelsup == 0)
					return true;
			}
			else if (equal(expr, row))
				return true;
		}
		return false;
	}
#endif
}

/*
 * The expressions of the needed columns of a row argument: a whole-row Var
 * of a plain relation of this query level, or a ROW() of a named type.
 * False when it cannot be proven safe; then the call stays as it is.
 */
static bool
row_columns(PlannerInfo *root, Node *row, uint32 layout, const ExtensionTypes *ext,
			List **columns, Node **purchased_at)
{
	Var		   *var = NULL;
	RowExpr    *rowexpr = NULL;
	Oid			rowtype;
	TupleDesc	tupdesc;
	bool		ok = true;
	int			f;

	if (IsA(row, Var))
	{
		var = (Var *) row;
		if (var->varattno != 0 || var->varlevelsup != 0 ||
			!OidIsValid(get_typ_typrelid(var->vartype)))
			return false;

		/*
		 * In a query, only a plain relation's row.  Without a query (index
		 * predicates and expressions, CHECK constraints, trigger WHEN), the
		 * Var is the row of the table itself.  Either way the row type's
		 * attribute numbers are the relation's column numbers.
		 */
		if (root != NULL)
		{
			RangeTblEntry *rte;

			if (var->varno < 1 || var->varno > list_length(root->parse->rtable))
				return false;
			rte = rt_fetch(var->varno, root->parse->rtable);
			if (rte->rtekind != RTE_RELATION || get_rel_type_id(rte->relid) != var->vartype)
				return false;
		}
		rowtype = var->vartype;
	}
	else if (IsA(row, RowExpr))
	{
		rowexpr = (RowExpr *) row;
		if (rowexpr->row_typeid == RECORDOID)
			return false;
		rowtype = rowexpr->row_typeid;
	}
	else
		return false;

	if (row_nullable_by_grouping(root, row))
		return false;

	tupdesc = lookup_rowtype_tupdesc(rowtype, -1);
	if (rowexpr && list_length(rowexpr->args) != tupdesc->natts)
		ok = false;
	for (f = 0; ok && f < NUM_FIELDS; f++)
	{
		Form_pg_attribute att;
		Node	   *col;

		if (!(layout & FIELD_BIT(f)))
			continue;
		att = find_field_column(tupdesc, (PurchaseField) f);
		if (att == NULL || value_kind_for(ext, (PurchaseField) f, att->atttypid) == VALUE_UNUSABLE)
		{
			ok = false;			/* the call raises the error at run time */
			break;
		}
		if (var)
		{
			Var		   *colvar;

#ifdef ATTRIBUTE_GENERATED_VIRTUAL

			/*
			 * PostgreSQL 18's virtual generated columns store nothing: a Var
			 * made here, after the rewriter expanded them, would read NULL.
			 */
			if (att->attgenerated == ATTRIBUTE_GENERATED_VIRTUAL)
			{
				ok = false;
				break;
			}
#endif
			colvar = makeVar(var->varno, att->attnum, att->atttypid,
							 att->atttypmod, att->attcollation, 0);
#if PG_VERSION_NUM >= 160000
			/* nulled by the same outer joins as the row */
			colvar->varnullingrels = bms_copy(var->varnullingrels);
#endif
#if PG_VERSION_NUM >= 180000
			/* the old or the new row in RETURNING, as the row */
			colvar->varreturningtype = var->varreturningtype;
#endif
			colvar->location = var->location;
			col = (Node *) colvar;
		}
		else
			col = copyObject(list_nth(rowexpr->args, att->attnum - 1));
		*columns = lappend(*columns, col);
		if (f == FIELD_PURCHASED_AT)
			*purchased_at = col;
	}
	ReleaseTupleDesc(tupdesc);
	return ok;
}

static Expr *
timestamptz_comparison(Oid opno, Oid opfuncid, Node *left, Node *right)
{
	OpExpr	   *op;

	op = (OpExpr *) make_opclause(opno, BOOLOID, false, (Expr *) copyObject(left),
								  (Expr *) copyObject(right), InvalidOid, InvalidOid);
	op->opfuncid = opfuncid;
	return (Expr *) op;
}

/* The range on purchased_at that the window of this kind implies. */
static List *
window_range(const SupportCatalog *cat, PlannerInfo *root, Node *purchased_at, Node *as_of,
			 RefundKind kind)
{
	Const	   *kindconst = makeConst(cat->ext.refund_kind, -1, InvalidOid, sizeof(Oid),
									  ObjectIdGetDatum(cat->ext.kind_label[kind]), false, true);
	Node	   *as_of_copy = copyObject(as_of);
	Node	   *start;
	Expr	   *upper;
	Expr	   *lower;

	start = (Node *) makeFuncExpr(cat->window_start, TIMESTAMPTZOID,
								  lappend(lappend(NIL, as_of_copy), kindconst),
								  InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
	start = eval_const_expressions(root, start);	/* folds a constant as_of */
	upper = timestamptz_comparison(cat->tstz_le, cat->tstz_le_func, purchased_at, as_of);
	lower = timestamptz_comparison(cat->tstz_ge, cat->tstz_ge_func, purchased_at, start);
	return lappend(lappend(NIL, upper), lower);
}

static Node *
simplify_call(SupportRequestSimplify *req)
{
	FuncExpr   *fexpr = req->fcall;
	const SupportCatalog *cat = get_support_catalog(fexpr->funcid);
	const Rewrite *rw;
	int			r;
	List	   *args = NIL;
	Node	   *purchased_at = NULL;
	Node	   *as_of;
	FuncExpr   *call;

	if (cat == NULL || (r = rewrite_of(cat, fexpr->funcid)) < 0)
		return NULL;
	rw = &rewrites[r];
	if (list_length(fexpr->args) != (rw->takes_kind ? 3 : 2))
		return NULL;
	if (contain_volatile_functions((Node *) fexpr->args))
		return NULL;

	if (!row_columns(req->root, linitial(fexpr->args), rw->layout, &cat->ext, &args, &purchased_at))
		return NULL;

	as_of = lsecond(fexpr->args);
	args = lappend(args, copyObject(as_of));
	if (rw->takes_kind)
		args = lappend(args, copyObject(lthird(fexpr->args)));

	call = makeFuncExpr(cat->column_form[r], fexpr->funcresulttype, args,
						fexpr->funccollid, fexpr->inputcollid, COERCE_EXPLICIT_CALL);
	call->location = fexpr->location;

	/*
	 * The range only where an index could use it: a timestamptz column, and
	 * an as_of without a subquery (it is evaluated three times then).  The
	 * call comes first, so where the AND is evaluated as written (a select
	 * list) every row is read and checked as without the rewrite; in WHERE,
	 * the planner orders the conditions by cost and the range goes first.
	 */
	if (rw->window_kind >= 0 && purchased_at && IsA(purchased_at, Var) &&
		((Var *) purchased_at)->vartype == TIMESTAMPTZOID && !contain_subplans(as_of))
		return (Node *) make_andclause(list_concat(list_make1(call),
												   window_range(cat, req->root, purchased_at,
																as_of, (RefundKind) rw->window_kind)));
	return (Node *) call;
}

/*
 * Selectivity of the column forms, beside the range the rewrite adds: the
 * share of rows whose flags allow the refund, from the columns' statistics.
 */
static bool
estimate_selectivity(SupportRequestSelectivity *req)
{
	const SupportCatalog *cat;
	List	   *conditions = NIL;
	Selectivity s = 1.0;
	ListCell   *lc;

	if (req->is_join || (cat = get_support_catalog(req->funcid)) == NULL)
		return false;
	if (req->funcid == cat->column_form[REWRITE_REFUND_ELIGIBLE] && list_length(req->args) == 6)
	{
		/* neither benefits_activated nor product_keys_viewed */
		conditions = lappend(conditions, make_notclause(list_nth(req->args, 2)));
		conditions = lappend(conditions, make_notclause(list_nth(req->args, 3)));
	}
	else if (req->funcid == cat->column_form[REWRITE_TAX_REFUND_ELIGIBLE] &&
			 list_length(req->args) == 3)
		conditions = lappend(conditions, list_nth(req->args, 1));	/* tax_exempt */
	else
		return false;

	foreach(lc, conditions)
		s *= clause_selectivity(req->root, (Node *) lfirst(lc), req->varRelid,
								req->jointype, req->sjinfo);
	CLAMP_PROBABILITY(s);
	req->selectivity = s;
	return true;
}

/*
 * refund_rules_support(internal) returns internal: the planner support
 * function of the query functions (simplification and selectivity).
 */
PG_FUNCTION_INFO_V1(refund_rules_support);
Datum
refund_rules_support(PG_FUNCTION_ARGS)
{
	Node	   *rawreq = (Node *) PG_GETARG_POINTER(0);
	Node	   *ret = NULL;

	if (IsA(rawreq, SupportRequestSimplify))
		ret = simplify_call((SupportRequestSimplify *) rawreq);
	else if (IsA(rawreq, SupportRequestSelectivity))
	{
		if (estimate_selectivity((SupportRequestSelectivity *) rawreq))
			ret = rawreq;
	}
	PG_RETURN_POINTER(ret);
}
