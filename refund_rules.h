/*-------------------------------------------------------------------------
 *
 * refund_rules.h
 *		Shared types and prototypes of the refund_rules extension, and the
 *		differences between the PostgreSQL versions it builds on.
 *
 *-------------------------------------------------------------------------
 */
#ifndef REFUND_RULES_H
#define REFUND_RULES_H

#include "access/htup.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/pg_list.h"
#include "storage/lockdefs.h"
#include "utils/hsearch.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#if PG_VERSION_NUM < 150000
#error "refund_rules needs PostgreSQL 15 or later"
#endif

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


typedef enum RefundKind
{
	KIND_PURCHASE,
	KIND_TAX,
	NUM_KINDS
} RefundKind;


/* A purchase as plain values; a field is valid only when not isnull. */
typedef struct Purchase
{
	bool		isnull[NUM_FIELDS];
	MpnOffer	offer;
	TimestampTz purchased_at;
	bool		flag[NUM_FIELDS];	/* the boolean fields, by field */
} Purchase;


#define REASON_BIT(r)	(UINT32_C(1) << (r))


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


/* The largest lag a trigger may allow between a written moment and ours. */
#define MAX_ALLOWED_LAG ((int64) USECS_PER_HOUR)


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


/* in refund_rules.c */
extern const char *const rr_field_names[NUM_FIELDS];
extern const char *const rr_offer_labels[NUM_OFFERS];
extern const char *const rr_kind_labels[NUM_KINDS];
extern const char *const rr_reason_codes[NUM_REASONS];
TimestampTz rr_refund_deadline_of(TimestampTz purchased_at);
TimestampTz rr_tax_refund_deadline_of(TimestampTz purchased_at);
TimestampTz rr_window_start_of(TimestampTz as_of, RefundKind kind);
uint32 rr_window_reasons(const Purchase *p, TimestampTz as_of, bool as_of_known, RefundKind kind);
uint32 rr_refund_reasons(const Purchase *p, TimestampTz as_of, bool as_of_known, RefundKind kind);
Datum rr_verdict(uint32 reasons, bool *isnull);
uint32 rr_fields_for_kind(RefundKind kind);

/* in catalog.c */
void rr_lookup_extension_types(ExtensionTypes *ext, Oid nsp);

/* in purchase.c */
CallCache * rr_get_call_cache(FunctionCallInfo fcinfo);
ValueKind rr_value_kind_for(const ExtensionTypes *ext, PurchaseField f, Oid typid);
Form_pg_attribute rr_table_column(TupleDesc tupdesc, const char *name);
Form_pg_attribute rr_find_field_column(TupleDesc tupdesc, PurchaseField f);
void rr_reader_init_row(PurchaseReader *r, const ExtensionTypes *ext, TupleDesc tupdesc, Oid rowtype, int32 rowtypmod, const char *rowname, MemoryContext mcxt);
void rr_reader_require(const PurchaseReader *r, uint32 fields);
void rr_report_invalid_kind(const char *value);
void rr_read_purchase_tuple(const PurchaseReader *r, const ExtensionTypes *ext, HeapTuple tuple, uint32 fields, Purchase *p);
bool rr_reader_fits(const PurchaseReader *r, TupleDesc tupdesc);
int rr_read_purchase(FunctionCallInfo fcinfo, CallCache *cache, uint32 layout, uint32 fields, Purchase *p);
RefundKind rr_kind_from_enum(const ExtensionTypes *ext, Oid label);

/* in report.c */
char * rr_format_lag(int64 usecs);
char * rr_key_text(int nkeys, const Datum *values, const Oid *types);
uint32 rr_written_refund_reasons(const Purchase *p, TimestampTz written, bool written_now, int64 lag, RefundKind kind);
int rr_refusal_codes(const Refusal *f, const char **codes);
bool rr_refusal_deadline(const Refusal *f, TimestampTz *deadline);
void rr_report_refused(const Refusal *f);
bool rr_columns_readable(Oid relid, int ncols, const AttrNumber *attnums);

/* in trigger.c */
TriggerData * rr_trigger_data(FunctionCallInfo fcinfo, const char *funcname, bool insert_ok);
bool rr_column_changed(TupleDesc tupdesc, AttrNumber attnum, HeapTuple oldtup, HeapTuple newtup);
List * rr_column_list(const Trigger *tg, int argno, Oid relid, const char *what);
const char * rr_option_value(const char *arg, const char *name);
int64 rr_parse_lag(const Trigger *tg, const char *value);
void rr_report_unknown_option(const Trigger *tg, const char *arg, const char *known);
Oid rr_locked_table(const Trigger *tg, int argno, Oid home_nsp, LOCKMODE lockmode, char **name);
Oid rr_home_namespace(Relation rel);
char * rr_qualified_name(Oid relid);
void rr_require_table(const Trigger *tg, Oid relid, const char *what);
char * rr_key_condition(int nkeys, const KeyColumn *keys, const char *const *names);
int rr_setup_keys(const Trigger *tg, Relation rel, List *given, const char *given_what, Oid relid, List *looked_up, const char *looked_up_what, KeyColumn *keys, const char *tables);
int rr_read_key(int nkeys, const KeyColumn *keys, HeapTuple tuple, TupleDesc tupdesc, Datum *given, Oid *given_types, Datum *params);
void rr_run_lookup(SPIPlanPtr plan, Datum *params, Oid owner, long limit, bool latest);
extern uint64 rr_trigger_generation;
HTAB * rr_kept_states(HTAB **table, const char *name, Size entrysize);
KeptState * rr_kept_state(HTAB *table, Size entrysize, TriggerData *td, bool *stale);
SPIPlanPtr rr_kept_plan(KeptState *ks, const char *query, int nargs, Oid *argtypes);
char * rr_typed_query(const char *query, int nkeys, const KeyColumn *keys);
bool rr_is_timestamptz_type(Oid base);
bool rr_is_label_type(Oid base);
char * rr_label_value(Datum value, Oid type);
Oid rr_relation_owner(Oid relid);
bool rr_is_citus_shard_of(Oid relid, Oid logical);
void rr_bind_table(const Trigger *tg, Relation rel, Oid named, const char *name, const char *what, Oid fk_bound);
Oid rr_bound_named_table(const Trigger *tg, Relation rel, int argno, const char *what);

#endif							/* REFUND_RULES_H */
