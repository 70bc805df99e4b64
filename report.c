/*-------------------------------------------------------------------------
 *
 * report.c
 *		Refusals of a refund (check_violation, what they may show) and the
 *		check-constraint helper check_refund().
 *
 * Fails closed: only a refund that is provably allowed passes.  Nothing
 * the client writes decides on its own: a request is judged at the
 * database's clock, the requester can be the session's role, the
 * purchases table is the one the request table references, and the
 * purchase is read and locked by name, after its table is locked, so no
 * layout worked out earlier is applied to its row.  Like a foreign key's
 * errors, a refusal shows the purchase's state only to who may read it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_namespace.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/varlena.h"
#include "utils/rls.h"

#include "refund_rules.h"

/* A key value is shown up to this many bytes in a message. */
#define KEY_CLIP		64

/* Reasons about the request itself, never about the purchase's state. */
#define REQUEST_REASONS \
	(REASON_BIT(REASON_MISSING_KIND) | REASON_BIT(REASON_BACKDATED_REQUEST) | \
	 REASON_BIT(REASON_POSTDATED_REQUEST) | REASON_BIT(REASON_MISSING_REQUESTED_AT) | \
	 REASON_BIT(REASON_REQUESTER_NOT_AUTHORIZED) | \
	 REASON_BIT(REASON_MISSING_REQUESTED_BY_ROLE))

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
char *
rr_format_lag(int64 usecs)
{
	if (usecs % USECS_PER_SEC == 0)
		return psprintf(INT64_FORMAT " seconds", usecs / USECS_PER_SEC);
	return psprintf("%.6f seconds", (double) usecs / USECS_PER_SEC);
}

/*
 * A table as every message (and every query we build) names it:
 * "schema.table", each part quoted only where SQL needs it.  The name does not
 * depend on search_path, which our functions never read.
 */
char *
rr_table_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/*
 * Whether a trigger argument ([schema.]table, as SQL writes it) names this
 * table.  A schema is compared by OID: "pg_temp" is the session's own
 * temporary schema, as in SQL.  An unqualified name matches in any schema:
 * the table itself comes from the catalog (a foreign key, FROM), never from
 * the argument through search_path.
 */
bool
rr_names_table(const char *arg, Oid relid)
{
	List	   *names;
	const char *schema;
	Oid			nsp = get_rel_namespace(relid);

	if (!SplitIdentifierString(pstrdup(arg), '.', &names) ||
		list_length(names) < 1 || list_length(names) > 2 ||
		strcmp((const char *) llast(names), get_rel_name(relid)) != 0)
		return false;
	if (list_length(names) == 1)
		return true;
	schema = (const char *) linitial(names);
	if (strcmp(schema, "pg_temp") == 0)
		return isTempNamespace(nsp);
	return get_namespace_oid(schema, true) == nsp;
}

/* Key values as text, each clipped, for messages. */
char *
rr_key_text(int nkeys, const Datum *values, const Oid *types)
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
 * The reasons of a refund recorded with a moment (written_known: not NULL).
 * It is judged at the database's clock when the row is written.  A moment
 * this statement writes (moment_written) must be the database's: the start
 * of the transaction, what DEFAULT now() writes, give or take lag
 * (backdated_request or postdated_request otherwise), and the window must
 * be open at the transaction's start too, whatever moment within the lag
 * was written: so a client cannot try moments to find a hidden value out.
 * A moment kept from earlier (an UPDATE that does not write it) must lie in
 * the window of the purchase the row names.
 */
uint32
rr_written_refund_reasons(const Purchase *p, TimestampTz written, bool written_known,
						  bool moment_written, int64 lag, RefundKind kind)
{
	TimestampTz start = GetCurrentTransactionStartTimestamp();
	uint32		reasons = rr_refund_reasons(p, GetCurrentTimestamp(), true, kind);

	if (!written_known)
		return reasons | REASON_BIT(REASON_MISSING_REQUESTED_AT);
	if (!moment_written)
		return reasons | rr_window_reasons(p, written, true, kind);
	if (written < start - lag)
		return reasons | REASON_BIT(REASON_BACKDATED_REQUEST);
	if (written > start + lag)
		return reasons | REASON_BIT(REASON_POSTDATED_REQUEST);

	/*
	 * at the transaction's start, not at the moment written: no probing
	 * within the lag
	 */
	return reasons | rr_window_reasons(p, start, true, kind);
}

/*
 * The reasons a refusal shows, as a set of reason bits (listed in the order
 * of the Reason enum).  When the user may not read the purchase, its own
 * reasons are one code, purchase_not_eligible, which stands in the enum
 * after the reasons about the moment and before the requester's, so that
 * neither the codes nor their order tell which criterion failed.
 */
uint32
rr_refusal_shown(const Refusal *f)
{
	uint32		own = f->reasons & ~REQUEST_REASONS;

	if (f->hide_all)
		return REASON_BIT(REASON_PURCHASE_NOT_ELIGIBLE);
	if (f->purchase_shown || own == 0)
		return f->reasons;
	return (f->reasons & REQUEST_REASONS) | REASON_BIT(REASON_PURCHASE_NOT_ELIGIBLE);
}

/* The deadline a refusal may show (the user may read the purchase), or false. */
bool
rr_refusal_deadline(const Refusal *f, TimestampTz *deadline)
{
	if (!f->purchase_shown || f->p == NULL || !f->kind_known || f->p->isnull[FIELD_PURCHASED_AT])
		return false;
	*deadline = rr_deadline_of(f->p->purchased_at, f->kind);
	return true;
}

/*
 * The fields every refusal carries, so that an application tells it from
 * any other error: the table (schema and name) and the constraint, which
 * for a trigger is the trigger's name.
 */
static int
refusal_fields(const Refusal *f)
{
	/*
	 * A CHECK that calls check_refund() and the moment guard beside it judge
	 * the same row: to a role that may not read the purchase their refusals
	 * must be one and the same, whatever form the CHECK takes, so neither
	 * names a table or a constraint.
	 */
	if (f->check_pattern && (f->hide_all || !f->purchase_shown))
		return 0;
	if (f->relation)
	{
		errtable(f->relation);
		if (f->constraint_name)
			err_generic_string(PG_DIAG_CONSTRAINT_NAME, f->constraint_name);
	}
	else if (f->table_name)
	{
		err_generic_string(PG_DIAG_SCHEMA_NAME, f->schema_name);
		err_generic_string(PG_DIAG_TABLE_NAME, f->table_name);
		if (f->constraint_name)
			err_generic_string(PG_DIAG_CONSTRAINT_NAME, f->constraint_name);
	}
	return 0;
}

/*
 * Raise check_violation for a refused refund (a WARNING in dry-run mode):
 * the reason codes in DETAIL (always after "Reasons: "), in HINT what to
 * do about the moment and the window that applied.  The purchase's own
 * reasons and window are shown only when the user may read them; else one
 * code stands for them.
 */
void
rr_report_refused(const Refusal *f)
{
	StringInfoData list;
	StringInfoData hint;
	bool		tax = f->kind_known && f->kind == KIND_TAX;
	bool		hidden = !f->purchase_shown && (f->reasons & ~REQUEST_REASONS);
	uint32		shown = rr_refusal_shown(f);
	TimestampTz deadline;
	int			r;

	initStringInfo(&list);
	for (r = 0; r < NUM_REASONS; r++)
		if (shown & REASON_BIT(r))
			appendStringInfo(&list, "%s%s", list.len ? ", " : "", rr_reason_codes[r]);

	initStringInfo(&hint);
	if (f->hide_all)
		hidden = true;
	else if (f->reasons & (REASON_BIT(REASON_BACKDATED_REQUEST) | REASON_BIT(REASON_POSTDATED_REQUEST)))
	{
		if (f->lag > 0)
			appendStringInfo(&hint, "Leave column \"%s\" to its default, now(): a moment written must be the start of the transaction, give or take %s.",
							 f->moment_column, rr_format_lag(f->lag));
		else
			appendStringInfo(&hint, "Leave column \"%s\" to its default, now(): a moment written must be the start of the transaction.",
							 f->moment_column);
	}
	if (hidden && f->purchases_name && !f->check_pattern)
		appendStringInfo(&hint, "%sThe purchase's own reasons are shown only to roles that may read purchases table \"%s\".",
						 hint.len ? " " : "", f->purchases_name);
	else if (hidden)
		appendStringInfo(&hint, "%sThe purchase's own reasons are shown only to roles that may read the purchase.",
						 hint.len ? " " : "");
	else if (rr_refusal_deadline(f, &deadline))
		appendStringInfo(&hint, "%s%s of this purchase are allowed from %s until %s.",
						 hint.len ? " " : "", tax ? "Tax refunds" : "Refunds",
						 format_utc(f->p->purchased_at), format_utc(deadline));

	ereport(f->dry_run ? WARNING : ERROR,
			(errcode(ERRCODE_CHECK_VIOLATION),
			 f->purchase_key
			 ? (tax ? errmsg("tax refund of purchase \"%s\" is not allowed", f->purchase_key)
				: errmsg("refund of purchase \"%s\" is not allowed", f->purchase_key))
			 : (tax ? errmsg("tax refund is not allowed")
				: errmsg("refund is not allowed")),
			 errdetail("Reasons: %s.", list.data),
			 hint.len ? errhint("%s", hint.data) : 0,
			 refusal_fields(f)));
}

/*
 * Raise check_violation for a change of a purchase whose refund request
 * was accepted (protect_refunded_purchase): its policy columns and key are
 * frozen, and it cannot come back under its key once deleted.
 */
void
rr_report_frozen(const Refusal *f)
{
	ereport(f->dry_run ? WARNING : ERROR,
			(errcode(ERRCODE_CHECK_VIOLATION),
			 errmsg("purchase \"%s\" has an accepted refund request", f->purchase_key),
			 f->frozen_column
			 ? errdetail("Reasons: purchase_refunded. Column \"%s\" cannot change once a refund of the purchase is accepted.",
						 f->frozen_column)
			 : errdetail("Reasons: purchase_refunded. A purchase with an accepted refund request cannot be inserted again."),
			 errhint("A refund request in table \"%s\" names this purchase.", f->requests_name),
			 refusal_fields(f)));
}

/* Raise check_violation for a recorded refund set back to NULL. */
void
rr_report_withdrawn(const Refusal *f)
{
	ereport(f->dry_run ? WARNING : ERROR,
			(errcode(ERRCODE_CHECK_VIOLATION),
			 errmsg("refund recorded in column \"%s\" cannot be withdrawn", f->frozen_column),
			 errdetail("Reasons: refund_withdrawn. Once refunded, always refunded: the column may change only to another allowed moment."),
			 refusal_fields(f)));
}

/* Whether the user holds SELECT on these columns of a table (or on the table). */
bool
rr_columns_granted(Oid relid, int ncols, const AttrNumber *attnums)
{
	Oid			user = GetUserId();
	int			i;

	if (pg_class_aclcheck(relid, user, ACL_SELECT) == ACLCHECK_OK)
		return true;
	for (i = 0; i < ncols; i++)
		if (attnums[i] != InvalidAttrNumber &&
			pg_attribute_aclcheck(relid, attnums[i], user, ACL_SELECT) != ACLCHECK_OK)
			return false;
	return true;
}

/*
 * Whether the user may read these columns of a table, as a foreign key's
 * error asks: granted, and no row-level security hides rows from the user.
 */
bool
rr_columns_readable(Oid relid, int ncols, const AttrNumber *attnums)
{
	return check_enable_rls(relid, InvalidOid, true) != RLS_ENABLED &&
		rr_columns_granted(relid, ncols, attnums);
}

/*
 * Whether the row of a check_refund() call is made of values written in the
 * call (constants), not of a table's columns or of parameters: a CHECK
 * built on ROW(offer, ...)::refund_rules.purchase reads the stored row, and
 * a wrapper may pass the stored values as parameters; the writer may not be
 * allowed to read them.
 */
static bool
reads_values(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var) || IsA(node, Param))
		return true;
	return expression_tree_walker(node, reads_values, context);
}

static bool
row_given(FunctionCallInfo fcinfo)
{
	Node	   *expr = fcinfo->flinfo->fn_expr;

	return expr != NULL && IsA(expr, FuncExpr) &&
		!reads_values((Node *) linitial(((FuncExpr *) expr)->args), NULL);
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
 * The name of the CHECK constraint of table relid that calls function
 * funcid, when exactly one does (the one refusing now), or NULL.
 */
char *
rr_check_constraint_of(Oid relid, Oid funcid)
{
	Relation	conrel = table_open(ConstraintRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	char	   *needle = psprintf(":funcid %u ", funcid);
	char	   *name = NULL;
	int			found = 0;

	ScanKeyInit(&key, Anum_pg_constraint_conrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(conrel, ConstraintRelidTypidNameIndexId, true, NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(tup);
		bool		isnull;
		Datum		conbin;

		if (con->contype != CONSTRAINT_CHECK)
			continue;
		conbin = heap_getattr(tup, Anum_pg_constraint_conbin, RelationGetDescr(conrel), &isnull);
		if (!isnull && strstr(TextDatumGetCString(conbin), needle) != NULL)
		{
			name = pstrdup(NameStr(con->conname));
			found++;
		}
	}
	systable_endscan(scan);
	table_close(conrel, AccessShareLock);
	return (found == 1) ? name : NULL;
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
	CallCache  *cache = rr_get_call_cache(fcinfo);
	bool		kind_known = !PG_ARGISNULL(2);
	RefundKind	kind = kind_known ? rr_kind_from_enum(&cache->ext, PG_GETARG_OID(2)) : KIND_PURCHASE;
	bool		as_of_known = !PG_ARGISNULL(1);
	Purchase	p;
	Refusal		f;
	Oid			relid;

	rr_read_purchase(fcinfo, cache, 0, rr_fields_for_kind(kind), &p);
	memset(&f, 0, sizeof(f));
	if (!kind_known)
		f.reasons = REASON_BIT(REASON_MISSING_KIND);
	else
		f.reasons = rr_refund_reasons(&p, as_of_known ? PG_GETARG_TIMESTAMPTZ(1) : 0,
									  as_of_known, kind);
	if (f.reasons)
	{
		f.kind_known = kind_known;
		f.kind = kind;
		f.p = &p;
		f.check_pattern = true;
		f.purchase_shown = row_given(fcinfo);
		relid = row_table(PG_ARGISNULL(0) ? get_fn_expr_argtype(fcinfo->flinfo, 0)
						  : HeapTupleHeaderGetTypeId(PG_GETARG_HEAPTUPLEHEADER(0)));
		if (OidIsValid(relid))
		{
			/* a table's row: named in the error, shown to who may read it */
			f.schema_name = get_namespace_name(get_rel_namespace(relid));
			f.table_name = get_rel_name(relid);
			f.purchases_name = rr_table_name(relid);
			f.constraint_name = rr_check_constraint_of(relid, fcinfo->flinfo->fn_oid);
			f.purchase_shown = rr_columns_readable(relid, NUM_FIELDS, cache->reader.attnum);
		}
		rr_report_refused(&f);
	}
	PG_RETURN_BOOL(true);
}
