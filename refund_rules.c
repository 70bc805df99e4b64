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

#include "access/htup_details.h"
#include "access/stratnum.h"
#include "catalog/pg_am.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_proc.h"
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
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/selfuncs.h"
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

/* The attribute of a row type that holds field f, or NULL. */
static Form_pg_attribute
find_field_column(TupleDesc tupdesc, PurchaseField f)
{
	int			i;

	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), field_names[f]) == 0)
			return att;
	}
	return NULL;
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

/* Whether a reader built for one tuple descriptor still fits another. */
static bool
reader_fits(const PurchaseReader *r, TupleDesc tupdesc)
{
	int			f;

	if (!r->valid || r->tupdesc == NULL || r->tupdesc->natts != tupdesc->natts)
		return false;
	for (f = 0; f < NUM_FIELDS; f++)
	{
		Form_pg_attribute att;

		if (r->attnum[f] == InvalidAttrNumber)
			continue;
		att = TupleDescAttr(tupdesc, r->attnum[f] - 1);
		if (att->attisdropped || att->atttypid != r->coltype[f] ||
			strcmp(NameStr(att->attname), field_names[f]) != 0)
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
	if (label == ext->kind_label[KIND_TAX])
		return KIND_TAX;
	if (label == ext->kind_label[KIND_PURCHASE])
		return KIND_PURCHASE;
	elog(ERROR, "unknown refund kind %u", label);
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
 * Fails closed: only a refund that is provably allowed passes.
 * ==================================================================
 */

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

/*
 * Raise check_violation for a refused refund: the reasons in DETAIL, the
 * window that applied in HINT.  purchase_key names the purchase when known.
 */
static void
report_refused(uint32 reasons, bool kind_known, RefundKind kind, const Purchase *p,
			   const char *purchase_key, Relation rel)
{
	StringInfoData list;
	bool		tax = kind_known && kind == KIND_TAX;
	bool		window_known = kind_known && !p->isnull[FIELD_PURCHASED_AT];
	char	   *from = NULL;
	char	   *until = NULL;
	int			r;

	initStringInfo(&list);
	for (r = 0; r < NUM_REASONS; r++)
		if (reasons & REASON_BIT(r))
			appendStringInfo(&list, "%s%s", list.len ? ", " : "", reason_codes[r]);

	if (window_known)
	{
		from = format_utc(p->purchased_at);
		until = format_utc(tax ? tax_refund_deadline_of(p->purchased_at)
						   : refund_deadline_of(p->purchased_at));
	}

	ereport(ERROR,
			(errcode(ERRCODE_CHECK_VIOLATION),
			 purchase_key
			 ? (tax ? errmsg("tax refund of purchase \"%s\" is not allowed", purchase_key)
				: errmsg("refund of purchase \"%s\" is not allowed", purchase_key))
			 : (tax ? errmsg("tax refund is not allowed")
				: errmsg("refund is not allowed")),
			 errdetail("Reasons: %s.", list.data),
			 window_known
			 ? (tax ? errhint("Tax refunds of this purchase are allowed from %s until %s.", from, until)
				: errhint("Refunds of this purchase are allowed from %s until %s.", from, until))
			 : 0,
			 rel ? errtable(rel) : 0));
}

/*
 * check_refund(purchase record, requested_at timestamptz, kind refund_kind)
 * returns boolean: true when the refund is provably allowed; otherwise it
 * raises check_violation.  NULL anywhere raises too.
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
	uint32		reasons;

	read_purchase(fcinfo, cache, 0, fields_for_kind(kind), &p);
	if (!kind_known)
		reasons = REASON_BIT(REASON_MISSING_KIND);
	else
		reasons = refund_reasons(&p, as_of_known ? PG_GETARG_TIMESTAMPTZ(1) : 0,
								 as_of_known, kind);
	if (reasons)
		report_refused(reasons, kind_known, kind, &p, NULL, NULL);
	PG_RETURN_BOOL(true);
}

/* ---- the trigger ---- */

/* The columns of the request table the trigger reads. */
typedef enum RequestColumn
{
	REQ_REFERENCE,				/* named by the trigger's second argument */
	REQ_REQUESTED_AT,
	REQ_KIND,					/* optional */
	REQ_REQUESTED_BY_ROLE,
	NUM_REQUEST_COLUMNS
} RequestColumn;

static const char *const authorized_roles[] = {"mpn_partner_admin", "account_admin"};

/*
 * What the trigger works out about one trigger: kept across statements in a
 * backend-wide table (a refund request is often a statement of its own), and
 * worked out again after any change to relations, types, schemas or roles,
 * so no decision outlives a GRANT, an ALTER or a DROP.
 */
typedef struct TriggerState
{
	Oid			tgoid;			/* hash key */
	uint64		generation;		/* trigger_generation when worked out; 0: not */
	MemoryContext mcxt;			/* what is worked out, but the plan */
	Oid			relid;
	AttrNumber	attnum[NUM_REQUEST_COLUMNS];	/* 0: absent (kind only) */
	Oid			atttype[NUM_REQUEST_COLUMNS];
	Oid			purchases_owner;
	Oid			key_type;		/* the plan's parameter */
	Oid			key_eq;			/* key = parameter */
	Oid			key_cast;		/* reference -> key type, or InvalidOid */
	int			key_cast_nargs;
	char	   *purchases_name;	/* schema.table, for messages */
	char	   *key_column;
	char	   *query;
	ExtensionTypes ext;
	PurchaseReader reader;		/* set up from the first fetched purchase */
	char	   *plan_query;		/* what the kept plan was made from */
	Oid			plan_argtype;
	SPIPlanPtr	plan;
} TriggerState;

static HTAB *trigger_states = NULL;
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

/* Find a column of the request table, checking its type. */
static AttrNumber
request_column(Relation rel, const char *name, bool required, bool (*type_ok) (Oid),
			   const char *expected, Oid *atttype)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	int			i;

	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);

		if (att->attisdropped || strcmp(NameStr(att->attname), name) != 0)
			continue;
		*atttype = att->atttypid;
		if (type_ok && !type_ok(getBaseType(att->atttypid)))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of refund request table \"%s\" is of type %s",
							name, RelationGetRelationName(rel), format_type_be(att->atttypid)),
					 errdetail("Column \"%s\" must be of type %s.", name, expected)));
		return att->attnum;
	}
	if (required)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("refund request table \"%s\" has no column \"%s\"",
						RelationGetRelationName(rel), name),
				 errhint("enforce_refund_policy() reads the columns requested_at, requested_by_role and optionally kind.")));
	*atttype = InvalidOid;
	return InvalidAttrNumber;
}

static bool
is_timestamp_type(Oid base)
{
	return base == TIMESTAMPTZOID || base == TIMESTAMPOID;
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

/* The equality operator of a btree family for two types, or InvalidOid. */
static Oid
btree_equality(Oid opfamily, Oid left, Oid right)
{
	if (!OidIsValid(opfamily))
		return InvalidOid;
	return get_opfamily_member(opfamily, left, right, BTEqualStrategyNumber);
}

/*
 * How the lookup compares the reference with the key, as a foreign key
 * does: with an equality operator of the key type's btree family (types
 * that family compares directly, e.g. bigint with integer), or else after
 * an implicit conversion of the reference to the key's type.  The
 * conversion runs as the inserting user, before the lookup switches to the
 * purchases table's owner, so no function of the user's choosing runs as
 * the owner; the family's operators are the family owner's.
 */
static void
setup_key_comparison(TriggerState *ts, Relation rel, const char *refcol, Oid reftype, Oid keytype)
{
	Oid			keybase = getBaseType(keytype);
	Oid			refbase = getBaseType(reftype);
	Oid			opclass = GetDefaultOpClass(keybase, BTREE_AM_OID);
	Oid			opfamily = OidIsValid(opclass) ? get_opclass_family(opclass) : InvalidOid;
	Oid			castfunc = InvalidOid;

	ts->key_cast = InvalidOid;
	ts->key_eq = btree_equality(opfamily, keybase, refbase);
	ts->key_type = refbase;
	if (!OidIsValid(ts->key_eq))
	{
		ts->key_eq = btree_equality(opfamily, keybase, keybase);
		ts->key_type = keybase;
		if (IsBinaryCoercible(refbase, keybase))
			;					/* the value serves as it is */
		else if (find_coercion_pathway(keybase, refbase, COERCION_IMPLICIT,
									   &castfunc) == COERCION_PATH_FUNC)
			ts->key_cast = castfunc;
		else
			ts->key_eq = InvalidOid;	/* no way to compare them */
	}
	if (!OidIsValid(ts->key_eq))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of refund request table \"%s\" cannot reference column \"%s\" of purchases table \"%s\"",
						refcol, RelationGetRelationName(rel), ts->key_column, ts->purchases_name),
				 errdetail("Key columns are of incompatible types: %s and %s.",
						   format_type_be(reftype), format_type_be(keytype))));
	ts->key_cast_nargs = OidIsValid(ts->key_cast) ? get_func_nargs(ts->key_cast) : 0;
}

/* The reference of a request as a value of the key's type. */
static Datum
key_value(const TriggerState *ts, Datum reference)
{
	if (!OidIsValid(ts->key_cast))
		return reference;
	if (ts->key_cast_nargs == 1)
		return OidFunctionCall1(ts->key_cast, reference);
	return OidFunctionCall3(ts->key_cast, reference, Int32GetDatum(-1), BoolGetDatum(false));
}

/*
 * Work out what the trigger reads and the query that fetches and locks the
 * purchase; kept until the catalogs change.
 */
static TriggerState *
trigger_state(FunctionCallInfo fcinfo, TriggerData *td)
{
	Trigger    *tg = td->tg_trigger;
	Relation	rel = td->tg_relation;
	TriggerState *ts;
	uint64		generation = trigger_generation;
	MemoryContext old;
	List	   *names;
	Oid			nsp;
	const char *relname;
	Oid			purchases;
	char		relkind;
	AttrNumber	keyattnum;
	Oid			keytype;
	HeapTuple	eqop;
	char	   *eqname;
	bool		found;

	if (trigger_states == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(TriggerState);
		trigger_states = hash_create("refund_rules triggers", 16, &ctl,
									 HASH_ELEM | HASH_BLOBS);
		CacheRegisterRelcacheCallback(trigger_states_relcache_changed, (Datum) 0);
		CacheRegisterSyscacheCallback(TYPEOID, trigger_states_syscache_changed, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, trigger_states_syscache_changed, (Datum) 0);
		CacheRegisterSyscacheCallback(AUTHOID, trigger_states_syscache_changed, (Datum) 0);
		CacheRegisterSyscacheCallback(AUTHMEMMEMROLE, trigger_states_syscache_changed, (Datum) 0);
	}
	ts = hash_search(trigger_states, &tg->tgoid, HASH_ENTER, &found);
	if (!found)
	{
		ts->generation = 0;
		ts->mcxt = AllocSetContextCreate(CacheMemoryContext, "refund_rules trigger",
										 ALLOCSET_SMALL_SIZES);
		ts->plan_query = NULL;
		ts->plan = NULL;
	}
	if (ts->generation == generation && ts->relid == RelationGetRelid(rel))
		return ts;

	/* Work it out again; until that succeeds the entry is not valid. */
	ts->generation = 0;
	MemoryContextReset(ts->mcxt);
	memset(&ts->reader, 0, sizeof(PurchaseReader));

	if (tg->tgnargs < 2 || tg->tgnargs > 3)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg_plural("trigger \"%s\" passes %d argument to enforce_refund_policy()",
							   "trigger \"%s\" passes %d arguments to enforce_refund_policy()",
							   tg->tgnargs, tg->tgname, tg->tgnargs),
				 errhint("Pass the purchases table, the column of the refund requests that references it, and optionally the key column of the purchases table (default id).")));

	old = MemoryContextSwitchTo(ts->mcxt);
	ts->relid = RelationGetRelid(rel);
	lookup_extension_types(&ts->ext, get_func_namespace(fcinfo->flinfo->fn_oid));

	/*
	 * The purchases table.  An unqualified name is looked up in the schema of
	 * the table the trigger was created on: the request table, or for a
	 * trigger cloned onto a partition, the root of its partition tree.
	 */
	if (!SplitIdentifierString(pstrdup(tg->tgargs[0]), '.', &names) ||
		list_length(names) < 1 || list_length(names) > 2)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" names the purchases table as \"%s\", which is not a table name",
						tg->tgname, tg->tgargs[0]),
				 errhint("Pass the purchases table as table or schema.table, quoted like an SQL identifier.")));
	if (list_length(names) == 1)
	{
		Oid			home = RelationGetRelid(rel);

		if (rel->rd_rel->relispartition)
			home = llast_oid(get_partition_ancestors(home));
		nsp = get_rel_namespace(home);
		relname = (const char *) linitial(names);
	}
	else
	{
		nsp = get_namespace_oid((const char *) linitial(names), true);
		relname = (const char *) lsecond(names);
	}
	purchases = OidIsValid(nsp) ? get_relname_relid(relname, nsp) : InvalidOid;
	if (!OidIsValid(purchases))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("purchases table \"%s%s%s\" of trigger \"%s\" does not exist",
						list_length(names) == 2 ? (const char *) linitial(names) : "",
						list_length(names) == 2 ? "." : "", relname, tg->tgname),
				 errhint("An unqualified name is looked up in the schema of the table the trigger is on.")));
	ts->purchases_name = psprintf("%s.%s", get_namespace_name(get_rel_namespace(purchases)),
								  get_rel_name(purchases));
	relkind = get_rel_relkind(purchases);
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("purchases table \"%s\" of trigger \"%s\" is not a table",
						ts->purchases_name, tg->tgname)));

	/*
	 * Like a foreign key: the request table's owner must be allowed to read
	 * the purchases and to hold locks on them (REFERENCES), because the
	 * lookup runs as the purchases table's owner.
	 */
	if (pg_class_aclcheck(purchases, rel->rd_rel->relowner, ACL_SELECT) != ACLCHECK_OK ||
		pg_class_aclcheck(purchases, rel->rd_rel->relowner, ACL_REFERENCES) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", get_rel_name(purchases)),
				 errdetail("The owner of refund request table \"%s\" needs SELECT and REFERENCES on purchases table \"%s\".",
						   RelationGetRelationName(rel), ts->purchases_name)));

	ts->key_column = pstrdup((tg->tgnargs == 3) ? tg->tgargs[2] : "id");
	keyattnum = get_attnum(purchases, ts->key_column);
	if (keyattnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("purchases table \"%s\" has no column \"%s\"", ts->purchases_name, ts->key_column),
				 errhint("The third argument of enforce_refund_policy() names the key column (default id).")));

	ts->attnum[REQ_REFERENCE] = request_column(rel, tg->tgargs[1], true, NULL, NULL,
											   &ts->atttype[REQ_REFERENCE]);
	keytype = get_atttype(purchases, keyattnum);
	setup_key_comparison(ts, rel, tg->tgargs[1], ts->atttype[REQ_REFERENCE], keytype);
	eqop = SearchSysCache1(OPEROID, ObjectIdGetDatum(ts->key_eq));
	if (!HeapTupleIsValid(eqop))
		elog(ERROR, "cache lookup failed for operator %u", ts->key_eq);
	eqname = psprintf("OPERATOR(%s.%s)",
					  quote_identifier(get_namespace_name(((Form_pg_operator) GETSTRUCT(eqop))->oprnamespace)),
					  NameStr(((Form_pg_operator) GETSTRUCT(eqop))->oprname));
	ReleaseSysCache(eqop);

	ts->attnum[REQ_REQUESTED_AT] = request_column(rel, "requested_at", true, is_timestamp_type,
												  "timestamp with time zone or timestamp without time zone",
												  &ts->atttype[REQ_REQUESTED_AT]);
	ts->attnum[REQ_KIND] = request_column(rel, "kind", false, is_label_type,
										  "refund_rules.refund_kind (or another enum), text or character varying",
										  &ts->atttype[REQ_KIND]);
	ts->attnum[REQ_REQUESTED_BY_ROLE] = request_column(rel, "requested_by_role", true,
													   is_label_type, "text, character varying or an enum",
													   &ts->atttype[REQ_REQUESTED_BY_ROLE]);

	ts->purchases_owner = relation_owner(purchases);

	/* ONLY for a plain table, as foreign keys do; a partitioned one has no rows of its own. */
	ts->query = psprintf("SELECT p.* FROM %s%s p WHERE p.%s %s $1 FOR SHARE OF p",
						 relkind == RELKIND_RELATION ? "ONLY " : "",
						 quote_qualified_identifier(get_namespace_name(get_rel_namespace(purchases)),
													get_rel_name(purchases)),
						 quote_identifier(ts->key_column), eqname);
	MemoryContextSwitchTo(old);

	/* The prepared plan is kept while the query stays the same. */
	if (ts->plan != NULL &&
		(strcmp(ts->plan_query, ts->query) != 0 || ts->plan_argtype != ts->key_type))
	{
		SPI_freeplan(ts->plan);
		pfree(ts->plan_query);
		ts->plan = NULL;
	}

	ts->generation = generation;
	return ts;
}

static SPIPlanPtr
trigger_plan(TriggerState *ts)
{
	if (ts->plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(ts->query, 1, &ts->key_type);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		ts->plan_query = MemoryContextStrdup(TopMemoryContext, ts->query);
		ts->plan_argtype = ts->key_type;
		ts->plan = plan;
	}
	return ts->plan;
}

/* The purchase key as text, for messages. */
static char *
key_text(Oid type, Datum value)
{
	Oid			output;
	bool		isvarlena;

	getTypeOutputInfo(type, &output, &isvarlena);
	return OidOutputFunctionCall(output, value);
}

/* On UPDATE, whether any column the check read has changed. */
static bool
checked_columns_changed(const TriggerState *ts, TupleDesc tupdesc, HeapTuple oldtup,
						HeapTuple newtup)
{
	int			c;

	for (c = 0; c < NUM_REQUEST_COLUMNS; c++)
	{
		Form_pg_attribute att;
		bool		oldnull,
					newnull;
		Datum		oldval,
					newval;

		if (ts->attnum[c] == InvalidAttrNumber)
			continue;
		att = TupleDescAttr(tupdesc, ts->attnum[c] - 1);
		oldval = heap_getattr(oldtup, ts->attnum[c], tupdesc, &oldnull);
		newval = heap_getattr(newtup, ts->attnum[c], tupdesc, &newnull);
		if (oldnull != newnull ||
			(!oldnull && !datumIsEqual(oldval, newval, att->attbyval, att->attlen)))
			return true;
	}
	return false;
}

/*
 * enforce_refund_policy() is a BEFORE INSERT OR UPDATE row trigger for a
 * table of refund requests.  Arguments: the purchases table, the column
 * of the request that references it, the purchases' key column (default
 * id).  It returns the new row, or raises when the refund is not allowed.
 */
PG_FUNCTION_INFO_V1(enforce_refund_policy);
Datum
enforce_refund_policy(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TriggerState *ts;
	TupleDesc	tupdesc;
	HeapTuple	newtup;
	Datum		value[NUM_REQUEST_COLUMNS];
	bool		isnull[NUM_REQUEST_COLUMNS];
	Datum		keyval;
	Oid			save_userid;
	int			save_sec_context;
	bool		kind_known = true;
	RefundKind	kind = KIND_PURCHASE;
	char	   *key;
	Purchase	p;
	uint32		reasons = 0;
	int			c;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("enforce_refund_policy() was not called by the trigger manager")));
	if (!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("enforce_refund_policy() must be fired for each row"),
				 errhint("Create the trigger with FOR EACH ROW.")));
	if (!TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!(TRIGGER_FIRED_BY_INSERT(td->tg_event) || TRIGGER_FIRED_BY_UPDATE(td->tg_event)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("enforce_refund_policy() must be fired BEFORE INSERT OR UPDATE"),
				 errhint("Create the trigger as BEFORE INSERT OR UPDATE ... FOR EACH ROW.")));

	ts = trigger_state(fcinfo, td);
	tupdesc = RelationGetDescr(td->tg_relation);
	newtup = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;

	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event) &&
		!checked_columns_changed(ts, tupdesc, td->tg_trigtuple, newtup))
		return PointerGetDatum(newtup);

	for (c = 0; c < NUM_REQUEST_COLUMNS; c++)
	{
		value[c] = (Datum) 0;
		isnull[c] = true;
		if (ts->attnum[c] != InvalidAttrNumber)
			value[c] = heap_getattr(newtup, ts->attnum[c], tupdesc, &isnull[c]);
	}

	if (isnull[REQ_REFERENCE])
		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 errmsg("refund request does not name a purchase"),
				 errdetail("Column \"%s\" is NULL.", td->tg_trigger->tgargs[1]),
				 errtable(td->tg_relation)));
	key = key_text(ts->atttype[REQ_REFERENCE], value[REQ_REFERENCE]);

	if (ts->attnum[REQ_KIND] != InvalidAttrNumber)
	{
		kind_known = !isnull[REQ_KIND];
		if (kind_known)
		{
			char	   *label = label_value(value[REQ_KIND], ts->atttype[REQ_KIND]);

			if (strcmp(label, "tax") == 0)
				kind = KIND_TAX;
			else if (strcmp(label, "purchase") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid refund kind \"%s\"", label),
						 errdetail("Column \"kind\" must hold \"purchase\" or \"tax\".")));
		}
	}

	/*
	 * Fetch and lock the purchase as its table's owner, as foreign keys do.
	 * The key is converted first, as the inserting user.  Two rows are asked
	 * for, to tell a key that is not unique.
	 */
	keyval = key_value(ts, value[REQ_REFERENCE]);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(ts->purchases_owner,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION | SECURITY_NOFORCE_RLS);
	if (SPI_execute_plan(trigger_plan(ts), &keyval, NULL, false, 2) != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_plan failed");
	SetUserIdAndSecContext(save_userid, save_sec_context);

	if (SPI_processed > 1)
		ereport(ERROR,
				(errcode(ERRCODE_CARDINALITY_VIOLATION),
				 errmsg("purchase \"%s\" is not unique", key),
				 errdetail("Key (%s)=(%s) matches more than one row of purchases table \"%s\".",
						   ts->key_column, key, ts->purchases_name),
				 errhint("Make the key column of the purchases table unique.")));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 errmsg("purchase \"%s\" does not exist", key),
				 errdetail("Key (%s)=(%s) is not present in purchases table \"%s\".",
						   ts->key_column, key, ts->purchases_name),
				 errtable(td->tg_relation)));

	if (!reader_fits(&ts->reader, SPI_tuptable->tupdesc))
		reader_init_row(&ts->reader, &ts->ext, SPI_tuptable->tupdesc, RECORDOID, -1,
						psprintf("purchases table \"%s\"", ts->purchases_name),
						ts->mcxt);
	reader_require(&ts->reader, fields_for_kind(kind));
	read_purchase_tuple(&ts->reader, &ts->ext, SPI_tuptable->vals[0],
						fields_for_kind(kind), &p);
	SPI_finish();

	if (!kind_known)
		reasons = REASON_BIT(REASON_MISSING_KIND);
	else
		reasons = refund_reasons(&p, isnull[REQ_REQUESTED_AT] ? 0
								 : DatumGetTimestampTz(value[REQ_REQUESTED_AT]),
								 !isnull[REQ_REQUESTED_AT], kind);

	if (isnull[REQ_REQUESTED_BY_ROLE])
		reasons |= REASON_BIT(REASON_MISSING_REQUESTED_BY_ROLE);
	else
	{
		char	   *role = label_value(value[REQ_REQUESTED_BY_ROLE],
									   ts->atttype[REQ_REQUESTED_BY_ROLE]);

		if (strcmp(role, authorized_roles[0]) != 0 && strcmp(role, authorized_roles[1]) != 0)
			reasons |= REASON_BIT(REASON_REQUESTER_NOT_AUTHORIZED);
	}

	if (reasons)
		report_refused(reasons, kind_known, kind, &p, key, td->tg_relation);
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
	{"refund_eligible", "_refund_eligible", FIELDS_REFUND, false, KIND_PURCHASE},
	{"tax_refund_eligible", "_tax_refund_eligible", FIELDS_TAX, false, KIND_TAX},
	{"refund_ineligibility_reasons", "_refund_ineligibility_reasons", FIELDS_ALL, true, -1},
	{"refund_status", "_refund_status", FIELDS_ALL, false, -1},
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
 * NULL while a function is missing (in the middle of CREATE EXTENSION):
 * then nothing is rewritten.
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
		if (!OidIsValid(cat.row_form[r]) || !OidIsValid(cat.column_form[r]))
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
