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
#include "nodes/primnodes.h"
#include "storage/lockdefs.h"
#include "utils/hsearch.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#if PG_VERSION_NUM < 150000
#error "refund_rules needs PostgreSQL 15 or later"
#endif

/*
 * The differences between the PostgreSQL versions, each named once.
 *
 * 16 on: a Var carries the outer joins that can null it (varnullingrels);
 * 18 on: also whether it is the old or the new row in RETURNING.
 */
static inline void
rr_copy_var_markings(Var *to, const Var *from)
{
#if PG_VERSION_NUM >= 160000
	to->varnullingrels = bms_copy(from->varnullingrels);
#endif
#if PG_VERSION_NUM >= 180000
	to->varreturningtype = from->varreturningtype;
#endif
	(void) to;
	(void) from;
}

/* 18 on: grouping has a range-table entry of its own, which marks what grouping sets null. */
#define RR_HAS_GROUP_RTE (PG_VERSION_NUM >= 180000)

/* 18 on: virtual generated columns, which store nothing. */
#ifdef ATTRIBUTE_GENERATED_VIRTUAL
#define RR_VIRTUAL_GENERATED(att) ((att)->attgenerated == ATTRIBUTE_GENERATED_VIRTUAL)
#else
#define RR_VIRTUAL_GENERATED(att) false
#endif

/*
 * 16 on, role membership that carries privileges is per grant (its INHERIT
 * option); before, per member role (rolinherit).
 */
#if PG_VERSION_NUM >= 160000
#define RR_ROLE_INHERITS(roleid)	true
#define RR_GRANT_INHERITS(form)		((form)->inherit_option)
#else
#define RR_ROLE_INHERITS(roleid)	rr_role_inherits(roleid)
#define RR_GRANT_INHERITS(form)		true
#endif

/* 18 on: a deferrable primary key is found only when asked for. */
#if PG_VERSION_NUM >= 180000
#define RR_PRIMARY_KEY_INDEX(rel)	RelationGetPrimaryKeyIndex((rel), true)
#else
#define RR_PRIMARY_KEY_INDEX(rel)	RelationGetPrimaryKeyIndex(rel)
#endif

/* 18 on: the module's name and version in pg_get_loaded_modules(). */
#ifdef PG_MODULE_MAGIC_EXT
#define RR_MODULE_MAGIC PG_MODULE_MAGIC_EXT(.name = "refund_rules",.version = "1.2")
#else
#define RR_MODULE_MAGIC PG_MODULE_MAGIC
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
	REASON_PURCHASE_NOT_ELIGIBLE,	/* stands for the purchase's own reasons,
									 * hidden */
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
	bool		values_hidden;	/* bad data is reported without its value */
} PurchaseReader;

/* How many distinct sets of reasons a call site keeps arrays of. */
#define REASON_SETS 32

/* Everything a call site keeps between calls, in fn_mcxt. */
typedef struct CallCache
{
	ExtensionTypes ext;
	PurchaseReader reader;
	/* the arrays of the sets of reasons met so far, built once each */
	int			nsets;
	uint32		set_reasons[REASON_SETS];
	struct varlena *set_array[REASON_SETS];
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
	bool		dry_run;		/* a WARNING, not an ERROR */
	Relation	relation;		/* the table the error is about, or NULL */
	const char *constraint_name;	/* the trigger that refuses, or NULL */
	const char *schema_name;	/* the table, when there is no relation */
	const char *table_name;
	bool		hide_all;		/* one code for every reason (see protect.c) */
	bool		check_pattern;	/* check_refund() or the moment guard beside
								 * it */
	const char *frozen_column;	/* protect_refunded_purchase: what changed */
	const char *requests_name;	/* and where the request is */
} Refusal;

/* A whole-row function the planner support rewrites, and its column form. */
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

/* The extension's catalog objects in this database (catalog.c). */
typedef struct RRCatalog
{
	bool		valid;
	Oid			nsp;			/* the extension's schema */
	ExtensionTypes ext;
	bool		rewrites_ok;	/* the functions below are this library's */
	Oid			row_form[NUM_REWRITES];
	Oid			column_form[NUM_REWRITES];
	Oid			window_start;	/* refund_window_start(timestamptz,
								 * refund_kind) */
	Oid			check_refund;	/* check_refund(record, timestamptz,
								 * refund_kind) */
	Oid			tstz_le;		/* timestamptz <= timestamptz, and its
								 * function */
	Oid			tstz_le_func;
	Oid			tstz_ge;		/* timestamptz >= timestamptz, and its
								 * function */
	Oid			tstz_ge_func;
	Oid			enum_eq;		/* anyenum = anyenum, and its function */
	Oid			enum_eq_func;
} RRCatalog;

/* ---- enforcement: what the triggers share (trigger.c) ---- */

/* The largest lag a trigger may allow between a written moment and ours. */
#define MAX_ALLOWED_LAG ((int64) USECS_PER_HOUR)

/* The columns of a refund request the trigger reads besides the reference. */
typedef enum RequestColumn
{
	REQ_REQUESTED_AT,
	REQ_KIND,					/* optional */
	REQ_REQUESTED_BY_ROLE,		/* optional when the session is the requester */
	NUM_REQUEST_COLUMNS
} RequestColumn;

/* The roles a refund may be requested in. */
#define NUM_AUTHORIZED 2

/* A trigger option, for the table-driven parser. */
typedef enum RROptionType
{
	RR_OPTION_CHOICE,			/* one of choices[] (NULL-terminated) */
	RR_OPTION_LAG,				/* an interval up to MAX_ALLOWED_LAG */
	RR_OPTION_ROLE				/* a role that exists */
} RROptionType;

typedef struct RROption
{
	const char *name;
	RROptionType type;
	const char *const *choices;
} RROption;

typedef struct RROptionValue
{
	bool		given;
	int			choice;			/* index into choices[] */
	int64		lag;
	Oid			role;
} RROptionValue;

#define RR_MAX_OPTIONS 8

/* A foreign key, copied out of pg_constraint (conkey order). */
typedef struct RRForeignKey
{
	Oid			oid;			/* InvalidOid: none */
	char	   *name;
	Oid			fkrel;			/* the referencing (request) table */
	Oid			pkrel;			/* the referenced (purchases) table */
	char		deltype;
	char		updtype;
	int			nkeys;
	AttrNumber	fk_attnums[INDEX_MAX_KEYS];
	AttrNumber	pk_attnums[INDEX_MAX_KEYS];
	Oid			pf_eq_oprs[INDEX_MAX_KEYS];
} RRForeignKey;

/* A lookup a trigger runs through SPI, and its kept plan. */
typedef struct RRLookup
{
	char	   *query;
	int			nargs;
	Oid			argtypes[INDEX_MAX_KEYS];
	SPIPlanPtr	plan;			/* prepared on first use, checked before each */
} RRLookup;

#define RR_LOOKUP_LOCKED	0	/* the trigger's lookup */
#define RR_LOOKUP_ASK		1	/* refund_request_status's (no lock) */
#define RR_NUM_LOOKUPS		2

/*
 * What a trigger works out once and keeps, per trigger OID: built whole in
 * its own memory context (mcxt) and never changed afterwards, but for
 * valid (cleared by invalidations) and the plans of its lookups.
 */
typedef struct RRTriggerInfo
{
	Oid			tgoid;
	char	   *tgname;
	bool		valid;			/* cleared by an invalidation of its objects */
	bool		rebuild;		/* worked out again on next use */
	MemoryContext mcxt;
	Oid			relid;			/* the trigger's table */
	ExtensionTypes ext;
	RRForeignKey fk;			/* the foreign key it is bound by, if any */
	uint32		fk_hash;		/* its pg_constraint entry's hash value */
	uint32		namespace_hash[2];	/* the schemas its queries name */
	bool		names_roles;	/* options name roles */
	Oid			lock_relid;		/* locked before a kept state is used */
	LOCKMODE	lockmode;
	Oid			lookup_relid;	/* the table the lookups read */
	Oid			lookup_owner;	/* and its owner, as whom they run */
	Oid			fk_types[INDEX_MAX_KEYS];
	Oid			pk_types[INDEX_MAX_KEYS];
	char	   *key_names;		/* the purchases' key columns, for messages */
	char	   *purchases_name; /* schema.table, for messages */
	char	   *requests_name;
	AttrNumber	field_attnum[NUM_FIELDS];	/* the purchases' policy columns */
	RRLookup	lookups[RR_NUM_LOOKUPS];
	/* options */
	bool		dry_run;
	int64		max_lag;
	/* enforce_refund_policy() */
	AttrNumber	req_attnum[NUM_REQUEST_COLUMNS];	/* 0: absent */
	Oid			req_type[NUM_REQUEST_COLUMNS];
	bool		session_requester;
	Oid			role[NUM_AUTHORIZED];	/* with session_requester */
	/* enforce_refund_moment() */
	const char *moment_column;
	AttrNumber	moment_attnum;
	Oid			check_constraint_func;	/* check_refund(), to name its CHECK */
	RefundKind	kind;
	PurchaseReader reader;		/* the table's own row */
} RRTriggerInfo;

typedef void (*RRBuildInfo) (TriggerData *td, RRTriggerInfo *info);

/* in refund_rules.c */
extern const char *const rr_field_names[NUM_FIELDS];
extern const char *const rr_offer_labels[NUM_OFFERS];
extern const char *const rr_kind_labels[NUM_KINDS];
extern const char *const rr_reason_codes[NUM_REASONS];
TimestampTz rr_refund_deadline_of(TimestampTz purchased_at);
TimestampTz rr_tax_refund_deadline_of(TimestampTz purchased_at);
TimestampTz rr_deadline_of(TimestampTz purchased_at, RefundKind kind);
TimestampTz rr_window_start_of(TimestampTz as_of, RefundKind kind);
uint32		rr_window_reasons(const Purchase *p, TimestampTz as_of, bool as_of_known, RefundKind kind);
uint32		rr_refund_reasons(const Purchase *p, TimestampTz as_of, bool as_of_known, RefundKind kind);
Datum		rr_verdict(uint32 reasons, bool *isnull);
uint32		rr_fields_for_kind(RefundKind kind);

/* in catalog.c */
extern const Rewrite rr_rewrites[NUM_REWRITES];
const RRCatalog *rr_catalog(Oid nsp);

/* in purchase.c */
CallCache  *rr_get_call_cache(FunctionCallInfo fcinfo);
ValueKind	rr_value_kind_for(const ExtensionTypes *ext, PurchaseField f, Oid typid);
Form_pg_attribute rr_table_column(TupleDesc tupdesc, const char *name);
Form_pg_attribute rr_find_field_column(TupleDesc tupdesc, PurchaseField f);
void		rr_reader_init_row(PurchaseReader *r, const ExtensionTypes *ext, TupleDesc tupdesc, Oid rowtype, int32 rowtypmod, const char *rowname, MemoryContext mcxt);
void		rr_reader_require(const PurchaseReader *r, uint32 fields);
void		rr_report_invalid_kind(const char *value);
void		rr_read_purchase_tuple(const PurchaseReader *r, const ExtensionTypes *ext, HeapTuple tuple, uint32 fields, Purchase *p);
bool		rr_reader_fits(const PurchaseReader *r, TupleDesc tupdesc);
int			rr_read_purchase(FunctionCallInfo fcinfo, CallCache *cache, uint32 layout, uint32 fields, Purchase *p);
RefundKind	rr_kind_from_enum(const ExtensionTypes *ext, Oid label);

/* in query.c */
Datum		rr_reasons_array(uint32 reasons, CallCache *cache, MemoryContext mcxt);

/* in request.c */
RRTriggerInfo *rr_request_state(TriggerData *td);
bool		rr_fetch_purchase(RRTriggerInfo *info, Datum *key, RefundKind kind, bool lock, bool shown,
							  Purchase *p);
RefundKind	rr_request_kind(const RRTriggerInfo *info, const Datum *value, const bool *isnull,
							bool *known);
uint32		rr_recorded_request_reasons(const RRTriggerInfo *info, const Datum *value,
										const bool *isnull, const Purchase *p, RefundKind kind,
										bool kind_known);

/* in protect.c */
RRTriggerInfo *rr_moment_state(TriggerData *td);

/* in report.c */
char	   *rr_format_lag(int64 usecs);
char	   *rr_table_name(Oid relid);
bool		rr_names_table(const char *arg, Oid relid);
char	   *rr_key_text(int nkeys, const Datum *values, const Oid *types);
uint32		rr_refusal_shown(const Refusal *f);
uint32		rr_written_refund_reasons(const Purchase *p, TimestampTz written, bool written_known,
									  bool moment_written, int64 lag, RefundKind kind);
bool		rr_refusal_deadline(const Refusal *f, TimestampTz *deadline);
void		rr_report_refused(const Refusal *f);
void		rr_report_frozen(const Refusal *f);
void		rr_report_withdrawn(const Refusal *f);
bool		rr_columns_granted(Oid relid, int ncols, const AttrNumber *attnums);
bool		rr_columns_readable(Oid relid, int ncols, const AttrNumber *attnums);
char	   *rr_check_constraint_of(Oid relid, Oid funcid);

/* in trigger.c */
void		rr_check_declaration(const Trigger *tg, Relation rel, const char *funcname);
TriggerData *rr_check_trigger(FunctionCallInfo fcinfo, const char *funcname);
HeapTuple	rr_stored_row(const TriggerData *td);
bool		rr_column_changed(TupleDesc tupdesc, AttrNumber attnum, HeapTuple oldtup, HeapTuple newtup);
int			rr_column_list(const Trigger *tg, int argno, Oid relid, const char *what,
						   AttrNumber *attnums);
extern const char *const rr_mode_choices[];
void		rr_parse_options(const Trigger *tg, int first, const RROption *valid, int nvalid,
							 RROptionValue *values);
bool		rr_find_foreign_key(Oid relid, int ncols, const AttrNumber *cols, Oid confrelid,
								RRForeignKey *fk);
void		rr_foreign_key_columns(RRTriggerInfo *info);
void		rr_key_condition(StringInfo buf, const RRTriggerInfo *info, bool reading_pk,
							 const char *other_alias);
int			rr_read_key(const RRTriggerInfo *info, bool pk_side, HeapTuple tuple, TupleDesc tupdesc,
						Datum *values);
RRTriggerInfo *rr_trigger_info(TriggerData *td, RRBuildInfo build);
void		rr_recheck_state(const RRTriggerInfo *info, const char *funcname);
void		rr_run_lookup(RRTriggerInfo *info, int which, Datum *params, long limit, bool latest);
Trigger    *rr_firing_trigger(Relation rel, Oid nsp, const char *funcname);
Oid			rr_relation_owner(Oid relid);
void		rr_append_from(StringInfo buf, Oid relid);
char	   *rr_label_value(Datum value, Oid type);
bool		rr_is_label_type(Oid base);
bool		rr_role_inherits(Oid roleid);

#endif							/* REFUND_RULES_H */
