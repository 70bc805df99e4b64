/*-------------------------------------------------------------------------
 *
 * validate.c
 *		forbidden_refunds(): the recorded refunds of a table that the
 *		policy forbids, for a table that already has years of rows.
 *
 * The table is found through its trigger: a table of refund requests
 * through its enforce_refund_policy() trigger and that trigger's foreign
 * key, a purchases table checked by check_refund() through its
 * enforce_refund_moment() trigger (the moment column and the kind).  A
 * trigger in mode=dry_run serves, so history can be checked before
 * anything is refused.
 *
 * Every row is judged at the moment it records.  The rows are read by
 * one query run as the caller, with the caller's privileges (row-level
 * security included), through a cursor: the result streams, batch by
 * batch.  The query filters with refund_eligible(p, t), which the planner
 * support turns into its column form, so only rows it does not prove
 * allowed reach the C code, which judges them as the trigger does.  When
 * the caller may not read the purchases' policy columns, the purchases
 * are looked up one by one as their owner, as the trigger does, and
 * their own reasons are shown as purchase_not_eligible.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/index.h"
#include "catalog/pg_index.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "refund_rules.h"

/* How many rows a cursor fetch reads. */
#define VALIDATION_BATCH 1000

/* One call of forbidden_refunds(), across the rows it returns. */
typedef struct Validation
{
	RRTriggerInfo *info;		/* the trigger's state (retired, never freed,
								 * until the transaction ends) */
	bool		requests;		/* a request table; else a purchases table */
	bool		joined;			/* the purchases are read by the query */
	bool		shown;			/* their own reasons are shown */
	char	   *portal_name;
	int			nrowkeys;		/* the table's primary key */
	Oid			rowkey_types[INDEX_MAX_KEYS];
	int			first_ref;		/* query column of the foreign key's first */
	int			first_req;		/* of requested_at, kind, requested_by_role */
	PurchaseReader reader;		/* the purchase's columns in the result */
	bool		reader_ready;
	MemoryContext mcxt;			/* lives as long as the call */
	CallCache  *reason_sets;	/* each set of reasons' array, built once */
	TupleDesc	result_desc;
	MemoryContext batch_cxt;	/* the current batch's results */
	HeapTuple  *results;
	int			nresults;
	int			next;
	bool		done;
} Validation;

/* The primary key's columns of a table; an error when it has none. */
static int
primary_key_columns(Relation rel, AttrNumber *attnums, Oid *types)
{
	Oid			index = RR_PRIMARY_KEY_INDEX(rel);
	HeapTuple	tup;
	Form_pg_index form;
	int			i;

	if (!OidIsValid(index))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" has no primary key", rr_table_name(RelationGetRelid(rel))),
				 errdetail("forbidden_refunds() names and orders the rows it returns by the table's primary key.")));
	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(index));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for index %u", index);
	form = (Form_pg_index) GETSTRUCT(tup);
	for (i = 0; i < form->indnkeyatts; i++)
	{
		attnums[i] = form->indkey.values[i];
		types[i] = TupleDescAttr(RelationGetDescr(rel), attnums[i] - 1)->atttypid;
	}
	ReleaseSysCache(tup);
	return i;
}

/* "x.column", quoted */
static char *
column_of(const char *alias, Oid relid, AttrNumber attnum)
{
	return psprintf("%s.%s", alias, quote_identifier(get_attname(relid, attnum, false)));
}

/*
 * A label column's text, read without a cast of the user's: an enum's
 * label by enum_out, a text's as it is, compared in the "C" collation as
 * the trigger compares them.
 */
static char *
label_of(const char *column, Oid type)
{
	if (type_is_enum(getBaseType(type)))
		return psprintf("pg_catalog.textin(pg_catalog.enum_out(%s)) COLLATE pg_catalog.\"C\"", column);
	return psprintf("(%s)::pg_catalog.text COLLATE pg_catalog.\"C\"", column);
}

/* The purchase's policy columns of a table aliased alias, by name. */
static void
append_fields(StringInfo q, const AttrNumber *attnums, Oid relid, const char *alias)
{
	int			f;

	for (f = 0; f < NUM_FIELDS; f++)
		if (attnums[f] != InvalidAttrNumber)
			appendStringInfo(q, ", %s", column_of(alias, relid, attnums[f]));
}

/*
 * The condition under which a request r of a purchase x is allowed, as the
 * query functions say it: a purchase found, a kind, the window and the
 * flags at the moment recorded (refund_eligible(), which the planner
 * support turns into its column form), an authorized requester.  NULL or
 * false: the C code judges the row.
 */
static char *
allowed_condition(const RRTriggerInfo *info, Oid relid)
{
	const char *nsp = quote_identifier(get_namespace_name(info->ext.nsp));
	char	   *moment = column_of("r", relid, info->req_attnum[REQ_REQUESTED_AT]);
	StringInfoData ok;

	initStringInfo(&ok);
	appendStringInfo(&ok, "%s IS NOT NULL", column_of("x", info->fk.pkrel, info->fk.pk_attnums[0]));
	if (info->req_attnum[REQ_KIND] != InvalidAttrNumber)
	{
		char	   *kind = label_of(column_of("r", relid, info->req_attnum[REQ_KIND]),
									info->req_type[REQ_KIND]);

		appendStringInfo(&ok, " AND CASE WHEN %s OPERATOR(pg_catalog.=) 'purchase' THEN %s.refund_eligible(x, %s)"
						 " WHEN %s OPERATOR(pg_catalog.=) 'tax' THEN %s.tax_refund_eligible(x, %s) END",
						 kind, nsp, moment, kind, nsp, moment);
	}
	else
		appendStringInfo(&ok, " AND %s.refund_eligible(x, %s)", nsp, moment);
	if (info->req_attnum[REQ_REQUESTED_BY_ROLE] != InvalidAttrNumber)
		appendStringInfo(&ok, " AND %s OPERATOR(pg_catalog.=) ANY ('{mpn_partner_admin,account_admin}'::pg_catalog.text[])",
						 label_of(column_of("r", relid, info->req_attnum[REQ_REQUESTED_BY_ROLE]),
								  info->req_type[REQ_REQUESTED_BY_ROLE]));
	return ok.data;
}

/*
 * The query over a request table r: its key, its reference, its request
 * columns and, when joined, its purchase p's policy columns; only rows the
 * filter does not prove allowed, in the order of the key.
 */
static char *
request_query(Validation *v, Relation rel, const AttrNumber *rowkey)
{
	RRTriggerInfo *info = v->info;
	Oid			relid = RelationGetRelid(rel);
	StringInfoData q;
	int			i;

	initStringInfo(&q);
	appendStringInfoString(&q, "SELECT ");
	for (i = 0; i < v->nrowkeys; i++)
		appendStringInfo(&q, "%s%s AS rr_key%d", i ? ", " : "", column_of("r", relid, rowkey[i]), i);
	v->first_ref = v->nrowkeys;
	for (i = 0; i < info->fk.nkeys; i++)
		appendStringInfo(&q, ", %s AS rr_ref%d", column_of("r", relid, info->fk.fk_attnums[i]), i);
	v->first_req = v->first_ref + info->fk.nkeys;
	for (i = 0; i < NUM_REQUEST_COLUMNS; i++)
		appendStringInfo(&q, ", %s AS rr_req%d", info->req_attnum[i] != InvalidAttrNumber
						 ? column_of("r", relid, info->req_attnum[i]) : "NULL", i);
	if (v->joined)
	{
		appendStringInfo(&q, ", %s IS NOT NULL AS rr_found",
						 column_of("x", info->fk.pkrel, info->fk.pk_attnums[0]));
		append_fields(&q, info->field_attnum, info->fk.pkrel, "x");
	}
	appendStringInfo(&q, " FROM %s%s r", rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE ? "" : "ONLY ",
					 rr_table_name(relid));
	if (v->joined)
	{
		/* the lookup's own condition, on the request's columns */
		StringInfoData cond;

		initStringInfo(&cond);
		rr_key_condition(&cond, info, true, "r");
		appendStringInfo(&q, " LEFT JOIN %s%s x ON %s",
						 get_rel_relkind(info->fk.pkrel) == RELKIND_PARTITIONED_TABLE ? "" : "ONLY ",
						 rr_table_name(info->fk.pkrel), cond.data + strlen(" WHERE "));
		appendStringInfo(&q, " WHERE (%s) IS NOT TRUE", allowed_condition(info, relid));
	}
	appendStringInfoString(&q, " ORDER BY ");
	for (i = 0; i < v->nrowkeys; i++)
		appendStringInfo(&q, "%s%s", i ? ", " : "", column_of("r", relid, rowkey[i]));
	return q.data;
}

/*
 * The query over a purchases table x checked by check_refund(): its key,
 * the moment and the policy columns of the rows with a moment that
 * refund_eligible() does not prove allowed, in the order of the key.
 */
static char *
moment_query(Validation *v, Relation rel, const AttrNumber *rowkey)
{
	RRTriggerInfo *info = v->info;
	Oid			relid = RelationGetRelid(rel);
	const char *moment = quote_identifier(info->moment_column);
	StringInfoData q;
	int			i;

	initStringInfo(&q);
	appendStringInfoString(&q, "SELECT ");
	for (i = 0; i < v->nrowkeys; i++)
		appendStringInfo(&q, "%s%s AS rr_key%d", i ? ", " : "", column_of("x", relid, rowkey[i]), i);
	v->first_ref = v->first_req = v->nrowkeys;
	appendStringInfo(&q, ", x.%s AS rr_moment", moment);
	append_fields(&q, info->reader.attnum, relid, "x");
	rr_append_from(&q, relid);
	appendStringInfo(&q, " WHERE x.%s IS NOT NULL AND %s.%s(x, x.%s) IS NOT TRUE ORDER BY ",
					 moment, quote_identifier(get_namespace_name(info->ext.nsp)),
					 info->kind == KIND_TAX ? "tax_refund_eligible" : "refund_eligible", moment);
	for (i = 0; i < v->nrowkeys; i++)
		appendStringInfo(&q, "%s%s", i ? ", " : "", column_of("x", relid, rowkey[i]));
	return q.data;
}

/*
 * The caller must be allowed to read the columns the query reads from the
 * table validated (said here, not by the query's error, which would show
 * the query).
 */
static void
caller_reads_rows(const Validation *v, Relation rel, const AttrNumber *rowkey)
{
	const RRTriggerInfo *info = v->info;
	AttrNumber	cols[2 * INDEX_MAX_KEYS + NUM_REQUEST_COLUMNS + NUM_FIELDS];
	int			n = 0;
	int			i;

	for (i = 0; i < v->nrowkeys; i++)
		cols[n++] = rowkey[i];
	if (v->requests)
	{
		for (i = 0; i < info->fk.nkeys; i++)
			cols[n++] = info->fk.fk_attnums[i];
		for (i = 0; i < NUM_REQUEST_COLUMNS; i++)
			if (info->req_attnum[i] != InvalidAttrNumber)
				cols[n++] = info->req_attnum[i];
	}
	else
	{
		cols[n++] = info->moment_attnum;
		for (i = 0; i < NUM_FIELDS; i++)
			if (info->reader.attnum[i] != InvalidAttrNumber)
				cols[n++] = info->reader.attnum[i];
	}
	if (!rr_columns_granted(RelationGetRelid(rel), n, cols))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", rr_table_name(RelationGetRelid(rel))),
				 errdetail("forbidden_refunds() reads the table's key, reference, moment and policy columns as the caller.")));
}

/*
 * Whether the caller reads the purchases in the query: it may read their
 * key and policy columns, and no row-level security hides some of them
 * (the trigger's lookup would see them).  Otherwise the caller must be
 * one who may ask the trigger, as refund_request_status() requires.
 */
static bool
caller_reads_purchases(const RRTriggerInfo *info, Oid relid)
{
	if (rr_columns_readable(info->fk.pkrel, NUM_FIELDS, info->field_attnum) &&
		rr_columns_readable(info->fk.pkrel, info->fk.nkeys, info->fk.pk_attnums))
		return true;
	if (pg_class_aclcheck(relid, GetUserId(), ACL_INSERT) != ACLCHECK_OK &&
		pg_attribute_aclcheck_all(relid, GetUserId(), ACL_INSERT, ACLMASK_ANY) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", rr_table_name(info->fk.pkrel)),
				 errdetail("Validating the refund requests of table \"%s\" needs SELECT on the purchases' key and policy columns, or INSERT on the request table.",
						   rr_table_name(relid))));
	return false;
}

/* Set up: the trigger, the query, the cursor. */
static Validation *
start_validation(FunctionCallInfo fcinfo, Oid relid)
{
	Oid			nsp = get_func_namespace(fcinfo->flinfo->fn_oid);
	MemoryContext mcxt = CurrentMemoryContext;
	Validation *v = palloc0(sizeof(Validation));
	AttrNumber	rowkey[INDEX_MAX_KEYS];
	TriggerData td;
	Relation	rel;
	char	   *query;
	Portal		portal;

	if (get_call_result_type(fcinfo, NULL, &v->result_desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	v->result_desc = BlessTupleDesc(CreateTupleDescCopy(v->result_desc));
	rel = table_open(relid, AccessShareLock);
	if (rel->rd_rel->relkind != RELKIND_RELATION && rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", rr_table_name(RelationGetRelid(rel)))));
	memset(&td, 0, sizeof(td));
	td.type = T_TriggerData;
	td.tg_event = TRIGGER_EVENT_INSERT | TRIGGER_EVENT_ROW;
	td.tg_relation = rel;
	td.tg_trigger = rr_firing_trigger(rel, nsp, "enforce_refund_policy");
	v->requests = (td.tg_trigger != NULL);
	if (!v->requests)
		td.tg_trigger = rr_firing_trigger(rel, nsp, "enforce_refund_moment");
	if (td.tg_trigger == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("table \"%s\" has no enforce_refund_policy() or enforce_refund_moment() trigger that fires",
						rr_table_name(RelationGetRelid(rel))),
				 errhint("Create the trigger with the option mode=dry_run to validate the rows before it refuses any.")));
	v->info = v->requests ? rr_request_state(&td) : rr_moment_state(&td);
	v->nrowkeys = primary_key_columns(rel, rowkey, v->rowkey_types);
	caller_reads_rows(v, rel, rowkey);
	v->joined = !v->requests || caller_reads_purchases(v->info, relid);
	v->shown = v->joined;
	query = v->requests ? request_query(v, rel, rowkey) : moment_query(v, rel, rowkey);
	table_close(rel, NoLock);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	portal = SPI_cursor_open_with_args(NULL, query, 0, NULL, NULL, NULL, true, 0);
	if (portal == NULL)
		elog(ERROR, "SPI_cursor_open failed: %s", SPI_result_code_string(SPI_result));
	v->portal_name = MemoryContextStrdup(mcxt, portal->name);
	SPI_finish();
	v->batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "forbidden_refunds batch",
										 ALLOCSET_DEFAULT_SIZES);
	return v;
}

/* The cursor, which user code could have closed meanwhile. */
static Portal
validation_portal(const Validation *v)
{
	Portal		portal = GetPortalByName(v->portal_name);

	if (!PortalIsValid(portal))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_CURSOR_STATE),
				 errmsg("the cursor of forbidden_refunds() was closed")));
	return portal;
}

/*
 * Judge one row of the query into result and nulls (row_key, purchase_key,
 * requested_at, reasons); false when the policy allows it.  A request
 * whose purchase is missing is returned with NULL reasons: the trigger
 * would refuse it (foreign_key_violation).
 */
static bool
judge_row(Validation *v, HeapTuple tuple, TupleDesc tupdesc, Datum *result, bool *nulls)
{
	RRTriggerInfo *info = v->info;
	Datum		value[2 * INDEX_MAX_KEYS + NUM_REQUEST_COLUMNS + 1] = {0};
	bool		isnull[2 * INDEX_MAX_KEYS + NUM_REQUEST_COLUMNS + 1] = {false};
	Datum	   *req = value + v->first_req;
	bool	   *reqnull = isnull + v->first_req;
	int			nref = v->requests ? info->fk.nkeys : 0;
	int			ncols = v->first_req + (v->requests ? NUM_REQUEST_COLUMNS + v->joined : 1);
	Refusal		f;
	Purchase	p;
	bool		found = true;
	int			i;

	for (i = 0; i < ncols; i++)
		value[i] = SPI_getbinval(tuple, tupdesc, i + 1, &isnull[i]);
	memset(&f, 0, sizeof(f));
	memset(&p, 0, sizeof(p));
	memset(nulls, 0, sizeof(bool) * 4);
	result[0] = CStringGetTextDatum(rr_key_text(v->nrowkeys, value, v->rowkey_types));
	result[1] = result[0];
	for (i = 0; i < nref; i++)
		found &= !isnull[v->first_ref + i];
	if (v->requests && found)
		result[1] = CStringGetTextDatum(rr_key_text(nref, value + v->first_ref, info->fk_types));
	nulls[1] = !found;
	result[2] = req[0];
	nulls[2] = reqnull[0];

	if (v->joined && !v->reader_ready)
	{
		MemoryContext old = MemoryContextSwitchTo(v->mcxt);

		rr_reader_init_row(&v->reader, &info->ext, tupdesc, RECORDOID, -1,
						   info->purchases_name, v->mcxt);
		v->reader_ready = true;
		MemoryContextSwitchTo(old);
	}
	if (!v->requests)
	{
		f.kind = info->kind;
		f.kind_known = true;
		rr_read_purchase_tuple(&v->reader, &info->ext, tuple, rr_fields_for_kind(f.kind), &p);
		f.reasons = rr_refund_reasons(&p, DatumGetTimestampTz(req[0]), true, f.kind);
	}
	else
	{
		/* the kind first: it says which of the purchase's fields count */
		f.kind = rr_request_kind(info, req, reqnull, &f.kind_known);
		if (found && v->joined)
		{
			found = DatumGetBool(req[NUM_REQUEST_COLUMNS]);
			if (found)
				rr_read_purchase_tuple(&v->reader, &info->ext, tuple, rr_fields_for_kind(f.kind), &p);
		}
		else if (found)
			found = rr_fetch_purchase(info, value + v->first_ref, f.kind, false, false, &p);
		rr_recheck_state(info, "forbidden_refunds()");
		f.reasons = rr_recorded_request_reasons(info, req, reqnull, &p, f.kind, f.kind_known);
	}
	nulls[3] = !found;
	if (!found)
		return true;
	if (f.reasons == 0)
		return false;
	f.purchase_shown = v->shown;
	result[3] = rr_reasons_array(rr_refusal_shown(&f), v->reason_sets, v->mcxt);
	return true;
}

/* When the call ends early (a LIMIT), close its cursor now. */
static void
close_cursor(Datum arg)
{
	Validation *v = (Validation *) DatumGetPointer(arg);
	Portal		portal = v->done ? NULL : GetPortalByName(v->portal_name);

	if (PortalIsValid(portal) && portal->status != PORTAL_ACTIVE)
		SPI_cursor_close(portal);
	v->done = true;
}

/* Fill the next batch of results from the cursor; false at its end. */
static bool
next_batch(Validation *v)
{
	MemoryContext old;
	uint64		n;
	uint64		i;

	MemoryContextReset(v->batch_cxt);
	v->nresults = v->next = 0;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	SPI_cursor_fetch(validation_portal(v), true, VALIDATION_BATCH);
	n = SPI_processed;
	old = MemoryContextSwitchTo(v->batch_cxt);
	v->results = palloc(sizeof(HeapTuple) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		Datum		result[4];
		bool		nulls[4];

		if (judge_row(v, SPI_tuptable->vals[i], SPI_tuptable->tupdesc, result, nulls))
			v->results[v->nresults++] = heap_form_tuple(v->result_desc, result, nulls);
	}
	MemoryContextSwitchTo(old);
	if (n == 0)
		SPI_cursor_close(validation_portal(v));
	SPI_finish();
	return n > 0;
}

/*
 * forbidden_refunds(refund_table regclass) returns setof (row_key text,
 * purchase_key text, requested_at timestamptz, reasons text[]): the rows
 * of a table of refund requests (or of a purchases table checked by
 * check_refund()) that the policy forbids at the moment each records, in
 * the order of the table's primary key.  No row: the history obeys the
 * policy.
 */
PG_FUNCTION_INFO_V1(forbidden_refunds);
Datum
forbidden_refunds(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;
	Validation *v;

	if (SRF_IS_FIRSTCALL())
	{
		MemoryContext old;

		funcctx = SRF_FIRSTCALL_INIT();
		old = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		v = start_validation(fcinfo, PG_GETARG_OID(0));
		v->mcxt = funcctx->multi_call_memory_ctx;
		v->reason_sets = palloc0(sizeof(CallCache));
		funcctx->user_fctx = v;
		RegisterExprContextCallback(((ReturnSetInfo *) fcinfo->resultinfo)->econtext,
									close_cursor, PointerGetDatum(v));
		MemoryContextSwitchTo(old);
	}
	funcctx = SRF_PERCALL_SETUP();
	v = (Validation *) funcctx->user_fctx;
	while (v->next >= v->nresults && !v->done)
		v->done = !next_batch(v);
	if (v->next < v->nresults)
		SRF_RETURN_NEXT(funcctx, HeapTupleGetDatum(v->results[v->next++]));
	SRF_RETURN_DONE(funcctx);
}
