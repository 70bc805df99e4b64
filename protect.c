/*-------------------------------------------------------------------------
 *
 * protect.c
 *		The purchases table's triggers: protect_refunded_purchase(), the
 *		companion of the request trigger, and enforce_refund_moment(), the
 *		companion of a check_refund() constraint.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_namespace.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "refund_rules.h"

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
	ts->requests = ts->kept.locked = rr_bound_named_table(tg, rel, 0, "refund request table");
	generation = rr_trigger_generation;
	ts->requests_owner = rr_relation_owner(ts->requests);

	/* as for a foreign key: the purchases' owner may read the requests */
	if (pg_class_aclcheck(ts->requests, rel->rd_rel->relowner, ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", get_rel_name(ts->requests)),
				 errdetail("The owner of purchases table \"%s\" needs SELECT on refund request table \"%s\".",
						   RelationGetRelationName(rel), rr_qualified_name(ts->requests))));

	refcols = rr_column_list(tg, 1, ts->requests, "the reference columns");
	keycols = (tg->tgnargs == 3) ? rr_column_list(tg, 2, RelationGetRelid(rel), "the key columns")
		: list_make1("id");
	ts->nkeys = rr_setup_keys(tg, rel, keycols, "key column", ts->requests, refcols,
						   "reference column", ts->keys,
						   psprintf("purchases table \"%s\", refund request table \"%s\"",
									RelationGetRelationName(rel), rr_qualified_name(ts->requests)));
	for (f = 0; f < NUM_FIELDS; f++)
	{
		Form_pg_attribute att = rr_table_column(RelationGetDescr(rel), rr_field_names[f]);

		ts->field_attnum[f] = att ? att->attnum : InvalidAttrNumber;
	}
	for (i = 0; i < ts->nkeys; i++)
		names[i] = (const char *) list_nth(refcols, i);
	ts->query = rr_typed_query(psprintf("SELECT 1 FROM %s%s t WHERE %s LIMIT 1",
									 get_rel_relkind(ts->requests) == RELKIND_RELATION ? "ONLY " : "",
									 quote_qualified_identifier(get_namespace_name(get_rel_namespace(ts->requests)),
																get_rel_name(ts->requests)),
									 rr_key_condition(ts->nkeys, ts->keys, names)),
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
	TriggerData *td = rr_trigger_data(fcinfo, "protect_refunded_purchase()", false);
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

	ts = (ProtectTriggerState *) rr_kept_state(rr_kept_states(&protect_trigger_states,
														"refund_rules purchase triggers",
														sizeof(ProtectTriggerState)),
											sizeof(ProtectTriggerState), td, &stale);
	if (stale)
		protect_trigger_setup(td, ts);

	for (f = 0; f < NUM_FIELDS && !changed; f++)
		if (ts->field_attnum[f] != InvalidAttrNumber &&
			rr_column_changed(tupdesc, ts->field_attnum[f], oldtup, newtup))
			changed = rr_field_names[f];
	for (i = 0; i < ts->nkeys && !changed; i++)
		if (rr_column_changed(tupdesc, ts->keys[i].given, oldtup, newtup))
			changed = NameStr(TupleDescAttr(tupdesc, ts->keys[i].given - 1)->attname);
	if (!changed || rr_read_key(ts->nkeys, ts->keys, oldtup, tupdesc, given, given_types, params) >= 0)
		return PointerGetDatum(newtup);

	/* Requests committed since this transaction's snapshot count too. */
	for (i = 0; i < ts->nkeys; i++)
		argtypes[i] = ts->keys[i].param_type;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rr_run_lookup(rr_kept_plan(&ts->kept, ts->query, ts->nkeys, argtypes), params,
			   ts->requests_owner, 1, true);
	requested = (SPI_processed > 0);
	SPI_finish();

	if (requested)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("purchase \"%s\" has an accepted refund request",
						rr_key_text(ts->nkeys, given, given_types)),
				 errdetail("Column \"%s\" cannot change once a refund of the purchase is accepted.",
						   changed),
				 errhint("A refund request in table \"%s\" names this purchase.",
						 rr_qualified_name(ts->requests)),
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

		if ((v = rr_option_value(tg->tgargs[i], "max_lag")) != NULL)
			g->max_lag = rr_parse_lag(tg, v);
		else if ((v = rr_option_value(tg->tgargs[i], "kind")) != NULL &&
				 (strcmp(v, rr_kind_labels[KIND_PURCHASE]) == 0 || strcmp(v, rr_kind_labels[KIND_TAX]) == 0))
			g->kind = (strcmp(v, rr_kind_labels[KIND_TAX]) == 0) ? KIND_TAX : KIND_PURCHASE;
		else
			rr_report_unknown_option(tg, tg->tgargs[i], MOMENT_OPTIONS);
	}
	att = rr_table_column(RelationGetDescr(rel), g->column);
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
	rr_lookup_extension_types(&g->ext, get_func_namespace(fcinfo->flinfo->fn_oid));
	rr_reader_init_row(&g->reader, &g->ext, RelationGetDescr(rel), RelationGetForm(rel)->reltype, -1,
					psprintf("table \"%s\"", RelationGetRelationName(rel)), fcinfo->flinfo->fn_mcxt);
	rr_reader_require(&g->reader, rr_fields_for_kind(g->kind));
	g->purchase_shown = rr_columns_readable(RelationGetRelid(rel), NUM_FIELDS, g->reader.attnum);
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
	TriggerData *td = rr_trigger_data(fcinfo, "enforce_refund_moment()", true);
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
	if (isnull || (is_update && !rr_column_changed(tupdesc, g->attnum, td->tg_trigtuple, newtup)))
		return PointerGetDatum(newtup);

	rr_read_purchase_tuple(&g->reader, &g->ext, newtup, rr_fields_for_kind(g->kind), &p);
	memset(&f, 0, sizeof(f));
	f.reasons = rr_written_refund_reasons(&p, DatumGetTimestampTz(written), true, g->max_lag, g->kind);
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
		rr_report_refused(&f);
	}
	return PointerGetDatum(newtup);
}

