/*-------------------------------------------------------------------------
 *
 * request.c
 *		The request trigger enforce_refund_policy() and its pre-check
 *		refund_request_status().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_trigger.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "refund_rules.h"

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
	Form_pg_attribute att = rr_table_column(RelationGetDescr(rel), name);

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

	if (fk && fk->confrelid != named && rr_is_citus_shard_of(fk->confrelid, named))
	{
		target = fk->confrelid;
		LockRelationOid(target, RowShareLock);
	}
	rr_bind_table(tg, rel, target, name, "purchases table", fk ? fk->confrelid : InvalidOid);
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

		if ((v = rr_option_value(arg, "requester")) != NULL)
		{
			if (strcmp(v, "session") != 0 && strcmp(v, "column") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						 errmsg("trigger \"%s\" passes invalid option \"%s\"", tg->tgname, arg),
						 errhint("The requester is \"column\" (column requested_by_role) or \"session\" (the current user's roles).")));
			ts->session_requester = (strcmp(v, "session") == 0);
			known = true;
		}
		else if ((v = rr_option_value(arg, "max_lag")) != NULL)
		{
			ts->max_lag = rr_parse_lag(tg, v);
			known = true;
		}
		for (r = 0; r < NUM_AUTHORIZED && !known; r++)
			if ((v = rr_option_value(arg, authorized_role_options[r])) != NULL)
			{
				ts->role[r] = get_role_oid(v, true);
				if (!OidIsValid(ts->role[r]))
					ereport(ERROR,
							(errcode(ERRCODE_UNDEFINED_OBJECT),
							 errmsg("role \"%s\" named by trigger \"%s\" does not exist", v, tg->tgname)));
				named_role = known = true;
			}
		if (!known)
			rr_report_unknown_option(tg, arg, REQUEST_OPTIONS);
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
	purchases = rr_locked_table(tg, 0, rr_home_namespace(rel), RowShareLock, &named);
	generation = rr_trigger_generation;
	if (!OidIsValid(purchases))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("purchases table \"%s\" of trigger \"%s\" does not exist", named, tg->tgname),
				 errhint("An unqualified name is looked up in the schema of the table the trigger is on.")));
	ts->purchases = ts->kept.locked = purchases;
	ts->purchases_name = rr_qualified_name(purchases);
	rr_require_table(tg, purchases, "purchases table");
	rr_lookup_extension_types(&ts->ext, get_func_namespace(fcinfo->flinfo->fn_oid));

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
	refcols = rr_column_list(tg, 1, RelationGetRelid(rel), "the reference columns");
	nargs_fixed = (tg->tgnargs >= 3 && strchr(tg->tgargs[2], '=') == NULL) ? 3 : 2;
	keycols = (nargs_fixed == 3) ? rr_column_list(tg, 2, purchases, "the key columns") : list_make1("id");
	ts->nkeys = rr_setup_keys(tg, rel, refcols, "reference column", purchases, keycols,
						   "key column", ts->keys,
						   psprintf("refund request table \"%s\", purchases table \"%s\"",
									RelationGetRelationName(rel), ts->purchases_name));
	target = bind_purchases(tg, rel, purchases, named, ts);
	if (target != purchases)
	{
		/* a Citus shard: its own columns, its own owner; messages keep the name */
		purchases = ts->purchases = ts->kept.locked = target;
		ts->nkeys = rr_setup_keys(tg, rel, refcols, "reference column", purchases, keycols,
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

	request_column(ts, rel, REQ_REQUESTED_AT, true, rr_is_timestamptz_type,
				   "timestamp with time zone");
	request_column(ts, rel, REQ_KIND, false, rr_is_label_type,
				   "refund_rules.refund_kind (or another enum), text or character varying");
	request_column(ts, rel, REQ_REQUESTED_BY_ROLE, !ts->session_requester, rr_is_label_type,
				   "text, character varying or an enum");
	ts->purchases_owner = rr_relation_owner(purchases);

	/*
	 * The query: the policy columns the table has, by name; ONLY for a
	 * plain table, as foreign keys do (a partitioned one has no rows of its
	 * own).  A column the table lacks is reported when a refund needs it.
	 */
	initStringInfo(&query);
	appendStringInfoString(&query, "SELECT ");
	for (f = 0; f < NUM_FIELDS; f++)
	{
		AttrNumber	attnum = get_attnum(purchases, rr_field_names[f]);

		ts->field_attnum[f] = (attnum > 0) ? attnum : InvalidAttrNumber;
		if (ts->field_attnum[f] != InvalidAttrNumber)
			appendStringInfo(&query, "%st.%s", query.len > 7 ? ", " : "",
							 quote_identifier(rr_field_names[f]));
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
					 rr_key_condition(ts->nkeys, ts->keys, names));
	ts->query_unlocked = pstrdup(query.data);
	appendStringInfoString(&query, " FOR SHARE OF t");
	ts->query = rr_typed_query(query.data, ts->nkeys, ts->keys);
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
		if (rr_column_changed(tupdesc, ts->keys[c].given, oldtup, newtup))
			return true;
	for (c = 0; c < NUM_REQUEST_COLUMNS; c++)
		if (ts->attnum[c] != InvalidAttrNumber &&
			rr_column_changed(tupdesc, ts->attnum[c], oldtup, newtup))
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
		label = rr_label_value(value[REQ_REQUESTED_BY_ROLE], ts->atttype[REQ_REQUESTED_BY_ROLE]);
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
	label = rr_label_value(value[REQ_KIND], ts->atttype[REQ_KIND]);
	if (strcmp(label, rr_kind_labels[KIND_TAX]) == 0)
		return KIND_TAX;
	if (strcmp(label, rr_kind_labels[KIND_PURCHASE]) != 0)
		rr_report_invalid_kind(label);
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
	plan = lock ? rr_kept_plan(&ts->kept, ts->query, ts->nkeys, argtypes)
		: SPI_prepare(ts->query_unlocked, ts->nkeys, argtypes);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	/* two rows are asked for, to tell a key that is not unique */
	rr_run_lookup(plan, params, ts->purchases_owner, 2, false);
	if (SPI_processed > 1)
	{
		char	   *key = rr_key_text(ts->nkeys, given, given_types);

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
	if (!rr_reader_fits(&ts->reader, result))
		rr_reader_init_row(&ts->reader, &ts->ext, result, RECORDOID, -1,
						psprintf("purchases table \"%s\"", ts->purchases_name), ts->kept.mcxt);
	rr_reader_require(&ts->reader, rr_fields_for_kind(kind));
	rr_read_purchase_tuple(&ts->reader, &ts->ext, SPI_tuptable->vals[0], rr_fields_for_kind(kind), p);
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
	ts = (RequestTriggerState *) rr_kept_state(rr_kept_states(&request_trigger_states,
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
	c = rr_read_key(ts->nkeys, ts->keys, newtup, tupdesc, j->given, j->given_types, params);
	if (c >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 errmsg("refund request does not name a purchase"),
				 errdetail("Column \"%s\" is NULL.",
						   NameStr(TupleDescAttr(tupdesc, ts->keys[c].given - 1)->attname)),
				 errtable(td->tg_relation)));

	if (!fetch_purchase(ts, params, j->given, j->given_types, kind, !asking, &j->p))
	{
		char	   *key = rr_key_text(ts->nkeys, j->given, j->given_types);

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
		j->f.reasons = rr_refund_reasons(&j->p, 0, false, kind);
	else
		j->f.reasons = rr_written_refund_reasons(&j->p, DatumGetTimestampTz(value[REQ_REQUESTED_AT]),
											  !is_update || rr_column_changed(tupdesc, ts->attnum[REQ_REQUESTED_AT],
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
	TriggerData *td = rr_trigger_data(fcinfo, "enforce_refund_policy()", true);
	HeapTuple	newtup = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	RequestJudgement j;
	RequestTriggerState *ts;

	judge_request(fcinfo, td, false, &j);
	ts = j.ts;
	if (!j.judged)
		return PointerGetDatum(newtup);
	if (j.f.reasons)
	{
		j.f.purchase_shown = rr_columns_readable(ts->purchases, NUM_FIELDS, ts->field_attnum);
		j.f.purchase_key = rr_key_text(ts->nkeys, j.given, j.given_types);
		rr_report_refused(&j.f);
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
	j.f.purchase_shown = rr_columns_readable(j.ts->purchases, NUM_FIELDS, j.ts->field_attnum);
	n = rr_refusal_codes(&j.f, codes);
	for (i = 0; i < n; i++)
		elems[i] = CStringGetTextDatum(codes[i]);
	values[0] = BoolGetDatum(j.f.reasons == 0);
	values[1] = PointerGetDatum(n ? construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT)
								: construct_empty_array(TEXTOID));
	if (rr_refusal_deadline(&j.f, &deadline))
		values[2] = TimestampTzGetDatum(deadline);
	else
		nulls[2] = true;
	table_close(rel, AccessShareLock);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(result_desc), values, nulls)));
}

