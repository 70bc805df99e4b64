/*-------------------------------------------------------------------------
 *
 * protect.c
 *		The purchases table's triggers: protect_refunded_purchase(), the
 *		companion of the request trigger, and enforce_refund_moment(), the
 *		companion of a check_refund() constraint.
 *
 * Both are AFTER INSERT OR UPDATE row triggers: they see the row as
 * stored, generated columns and every BEFORE trigger included.
 *
 *		CREATE CONSTRAINT TRIGGER protect_refunded_purchase
 *			AFTER INSERT OR UPDATE ON purchases FROM refund_requests
 *			FOR EACH ROW EXECUTE FUNCTION
 *			refund_rules.protect_refunded_purchase('refund_requests', 'purchase_id');
 *
 * The request table is the constraint trigger's FROM table, and the key
 * the one its foreign key references, as PostgreSQL binds them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "refund_rules.h"


/* The option of protect_refunded_purchase(). */
static const RROption protect_option = {"mode", RR_OPTION_CHOICE, rr_mode_choices};

/* The purchases' policy columns, which an accepted refund freezes. */
static void
policy_columns(const TriggerData *td, RRTriggerInfo *info)
{
	TupleDesc	tupdesc = RelationGetDescr(td->tg_relation);
	int			f;

	for (f = 0; f < NUM_FIELDS; f++)
	{
		Form_pg_attribute att = rr_table_column(tupdesc, rr_field_names[f]);

		info->field_attnum[f] = att ? att->attnum : InvalidAttrNumber;
		/* a virtual column stores nothing an AFTER trigger could compare */
		if (att && RR_VIRTUAL_GENERATED(att))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("column \"%s\" of purchases table \"%s\" is a virtual generated column",
							rr_field_names[f], rr_table_name(RelationGetRelid(td->tg_relation))),
					 errhint("Make it a STORED generated column, so that a change of it can be seen.")));
	}
}

/*
 * The arguments of a protect_refunded_purchase() trigger: the request table
 * (its FROM table, locked), then options.  Returns how many arguments come
 * before the options.
 */
static int
protect_arguments(const Trigger *tg, Relation rel, RRTriggerInfo *info)
{
	int			nfixed = 0;
	RROptionValue mode;

	while (nfixed < tg->tgnargs && strchr(tg->tgargs[nfixed], '=') == NULL)
		nfixed++;
	memset(&mode, 0, sizeof(mode));
	rr_parse_options(tg, nfixed, &protect_option, 1, &mode);
	info->dry_run = (mode.given && mode.choice == 1);
	if (nfixed < 2 || nfixed > 3)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg_plural("trigger \"%s\" passes %d argument to protect_refunded_purchase()",
							   "trigger \"%s\" passes %d arguments to protect_refunded_purchase()",
							   nfixed, tg->tgname, nfixed),
				 errhint("Pass the refund request table, its column(s) that reference the purchase, optionally the key column(s) of the purchases, then options.")));
	if (!OidIsValid(tg->tgconstrrelid))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" has no FROM table", tg->tgname),
				 errdetail("protect_refunded_purchase() reads the refund request table that a constraint trigger names in FROM."),
				 errhint("Recreate it: CREATE CONSTRAINT TRIGGER %s AFTER INSERT OR UPDATE ON %s FROM %s FOR EACH ROW EXECUTE FUNCTION refund_rules.protect_refunded_purchase(...).",
						 quote_identifier(tg->tgname), rr_table_name(RelationGetRelid(rel)), tg->tgargs[0])));
	LockRelationOid(tg->tgconstrrelid, AccessShareLock);
	if (!rr_names_table(tg->tgargs[0], tg->tgconstrrelid))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" names refund request table \"%s\", but its FROM table is \"%s\"",
						tg->tgname, tg->tgargs[0], rr_table_name(tg->tgconstrrelid)),
				 errhint("Recreate the trigger naming its FROM table.")));
	return nfixed;
}

/*
 * Refuse a purchases relation that is the copy of a Citus reference table:
 * its requests are spread over every shard of the request table, which no
 * trigger on one node sees.  Within SPI_connect().
 */
static void
reference_table_refused(Oid shell, Oid purchases)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(purchases)};

	if (SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_dist_shard s"
							  " JOIN pg_catalog.pg_dist_partition p ON p.logicalrelid OPERATOR(pg_catalog.=) s.logicalrelid"
							  " WHERE p.partmethod OPERATOR(pg_catalog.=) 'n'"
							  " AND pg_catalog.to_regclass(pg_catalog.shard_name(s.logicalrelid, s.shardid, false))::pg_catalog.oid"
							  " OPERATOR(pg_catalog.=) $1",
							  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed");
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("purchases table \"%s\" is a copy of a Citus reference table",
						rr_table_name(purchases)),
				 errdetail("protect_refunded_purchase() guards a distributed purchases table from the co-located shard of refund request table \"%s\"; the requests of a reference table are not all on one node.",
						   rr_table_name(shell)),
				 errhint("Distribute the purchases table and the request table, co-located.")));
}

/*
 * On a Citus node, the request shard co-located with purchases shard
 * "purchases" when the trigger's FROM table is the request table's shell:
 * Citus copies a constraint trigger to the shards with its FROM table as
 * written.  The shards of the FROM table are those pg_dist_shard lists,
 * named by Citus's own shard_name() (no name parsing here); the one whose
 * foreign key on the same columns (by name) references this shard is it.
 * Returns InvalidOid when there is none; sets refcols to its attnums.  More
 * than one (the copy of a reference table on a node) is refused.
 */
static Oid
citus_colocated_request_shard(Oid shell, Oid purchases, int nref, AttrNumber *refcols,
							  RRForeignKey *fk)
{
	Oid			found = InvalidOid;
	Oid			argtypes[1] = {REGCLASSOID};
	Datum		args[1];
	uint64		i;

	if (!OidIsValid(get_relname_relid("pg_dist_shard", PG_CATALOG_NAMESPACE)))
		return InvalidOid;
	args[0] = ObjectIdGetDatum(shell);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	reference_table_refused(shell, purchases);
	if (SPI_execute_with_args("SELECT pg_catalog.to_regclass(pg_catalog.shard_name($1, s.shardid, false))::pg_catalog.oid"
							  " FROM pg_catalog.pg_dist_shard s WHERE s.logicalrelid = $1",
							  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed");
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Oid			shard = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
														   SPI_tuptable->tupdesc, 1, &isnull));
		AttrNumber	cols[INDEX_MAX_KEYS] = {0};
		int			c;

		if (isnull)
			continue;			/* a shard placed on another node */
		for (c = 0; c < nref; c++)
			if ((cols[c] = get_attnum(shard, get_attname(shell, refcols[c], false))) == InvalidAttrNumber)
				break;
		if (c == nref && rr_find_foreign_key(shard, nref, cols, purchases, fk))
		{
			/* several: a reference table's copy, which no one shard guards */
			if (OidIsValid(found))
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("several shards of refund request table \"%s\" reference purchases table \"%s\"",
								rr_table_name(shell), rr_table_name(purchases)),
						 errdetail("protect_refunded_purchase() guards a purchases shard whose requests are in one co-located shard."),
						 errhint("Distribute the purchases table and the request table, co-located.")));
			found = shard;
			memcpy(refcols, cols, sizeof(AttrNumber) * nref);
		}
	}
	SPI_finish();
	return found;
}

/* Work out what a protect_refunded_purchase() trigger reads (an RRBuildInfo). */
static void
build_protect_trigger(TriggerData *td, RRTriggerInfo *info)
{
	Trigger    *tg = td->tg_trigger;
	Relation	rel = td->tg_relation;
	AttrNumber	refcols[INDEX_MAX_KEYS];
	int			nref;
	Oid			requests;
	StringInfoData query;
	int			nfixed = protect_arguments(tg, rel, info);

	nref = rr_column_list(tg, 1, tg->tgconstrrelid, "a reference column", refcols);
	requests = tg->tgconstrrelid;
	if (!rr_find_foreign_key(requests, nref, refcols, RelationGetRelid(rel), &info->fk) &&
		!OidIsValid(requests = citus_colocated_request_shard(tg->tgconstrrelid, RelationGetRelid(rel),
															 nref, refcols, &info->fk)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("refund request table \"%s\" has no foreign key on \"%s\" that references \"%s\"",
						rr_table_name(tg->tgconstrrelid), tg->tgargs[1],
						rr_table_name(RelationGetRelid(rel))),
				 errhint("The requests of a purchase are found through that foreign key, as the request trigger finds their purchase.")));
	if (nfixed == 3)
	{
		AttrNumber	keycols[INDEX_MAX_KEYS];
		int			nkey = rr_column_list(tg, 2, RelationGetRelid(rel), "a key column", keycols);
		int			i;

		for (i = 0; i < info->fk.nkeys; i++)
			if (nkey != nref || keycols[i] != info->fk.pk_attnums[i] || refcols[i] != info->fk.fk_attnums[i])
				ereport(ERROR,
						(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						 errmsg("trigger \"%s\" pairs columns \"%s\" with \"%s\", but foreign key \"%s\" does not",
								tg->tgname, tg->tgargs[1], tg->tgargs[2], info->fk.name),
						 errhint("Pass the foreign key's columns, in its order.")));
	}
	rr_foreign_key_columns(info);
	if (requests != tg->tgconstrrelid)
		LockRelationOid(requests, AccessShareLock);
	info->lock_relid = info->lookup_relid = requests;
	info->lockmode = AccessShareLock;
	info->lookup_owner = rr_relation_owner(requests);
	info->requests_name = rr_table_name(requests);

	/* as for a foreign key: the purchases' owner may read the requests */
	if (pg_class_aclcheck(requests, rel->rd_rel->relowner, ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", rr_table_name(requests)),
				 errdetail("The owner of purchases table \"%s\" needs SELECT on refund request table \"%s\".",
						   rr_table_name(RelationGetRelid(rel)), info->requests_name)));
	policy_columns(td, info);

	initStringInfo(&query);
	appendStringInfoString(&query, "SELECT 1");
	rr_append_from(&query, requests);
	rr_key_condition(&query, info, false, NULL);
	appendStringInfoString(&query, " LIMIT 1");
	info->lookups[RR_LOOKUP_LOCKED].query = query.data;
	info->lookups[RR_LOOKUP_LOCKED].nargs = info->fk.nkeys;
	memcpy(info->lookups[RR_LOOKUP_LOCKED].argtypes, info->pk_types, sizeof(Oid) * info->fk.nkeys);
}

/* The first policy or key column an UPDATE changed, or NULL. */
static const char *
changed_column(const RRTriggerInfo *info, TupleDesc tupdesc, HeapTuple oldtup, HeapTuple newtup)
{
	int			f,
				i;

	for (f = 0; f < NUM_FIELDS; f++)
		if (info->field_attnum[f] != InvalidAttrNumber &&
			rr_column_changed(tupdesc, info->field_attnum[f], oldtup, newtup))
			return rr_field_names[f];
	for (i = 0; i < info->fk.nkeys; i++)
		if (rr_column_changed(tupdesc, info->fk.pk_attnums[i], oldtup, newtup))
			return NameStr(TupleDescAttr(tupdesc, info->fk.pk_attnums[i] - 1)->attname);
	return NULL;
}

/*
 * protect_refunded_purchase() is an AFTER INSERT OR UPDATE row trigger for
 * the purchases table, the companion of enforce_refund_policy(), made as a
 * constraint trigger FROM the refund request table.  Arguments: the
 * refund request table, its column(s) that reference the purchase, the
 * purchases' key column(s) (default: the foreign key's).  Once a refund
 * request of a purchase is accepted, the purchase's policy columns and
 * its key cannot change, and a purchase deleted in the meantime cannot
 * come back under its key: it raises check_violation.
 */
PG_FUNCTION_INFO_V1(protect_refunded_purchase);
Datum
protect_refunded_purchase(PG_FUNCTION_ARGS)
{
	TriggerData *td = rr_check_trigger(fcinfo, "protect_refunded_purchase()");
	TupleDesc	tupdesc = RelationGetDescr(td->tg_relation);
	bool		is_update = TRIGGER_FIRED_BY_UPDATE(td->tg_event);
	HeapTuple	row = td->tg_trigtuple; /* the old row of an UPDATE */
	RRTriggerInfo *info = rr_trigger_info(td, build_protect_trigger);
	const char *changed;
	Datum		key[INDEX_MAX_KEYS];
	bool		requested;

	changed = is_update ? changed_column(info, tupdesc, row, td->tg_newtuple) : NULL;
	if ((is_update && !changed) || rr_read_key(info, true, row, tupdesc, key) >= 0)
		return PointerGetDatum(NULL);

	/* Requests committed since this transaction's snapshot count too. */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rr_run_lookup(info, RR_LOOKUP_LOCKED, key, 1, true);
	requested = (SPI_processed > 0);
	SPI_finish();
	rr_recheck_state(info, "protect_refunded_purchase()");

	if (requested)
	{
		Refusal		f;

		memset(&f, 0, sizeof(f));
		f.relation = td->tg_relation;
		f.constraint_name = info->tgname;
		f.purchase_key = rr_key_text(info->fk.nkeys, key, info->pk_types);
		f.frozen_column = changed;
		f.requests_name = info->requests_name;
		f.dry_run = info->dry_run;
		rr_report_frozen(&f);
	}
	return PointerGetDatum(NULL);
}

/* ---- enforce_refund_moment() ---- */

enum
{
	MOPT_KIND,
	MOPT_MAX_LAG,
	MOPT_MODE,
	NUM_MOMENT_OPTIONS
};

/* The refund kinds, in the order of RefundKind. */
static const char *const kind_choices[] = {"purchase", "tax", NULL};

static const RROption moment_options[NUM_MOMENT_OPTIONS] = {
	{"kind", RR_OPTION_CHOICE, kind_choices},
	{"max_lag", RR_OPTION_LAG, NULL},
	{"mode", RR_OPTION_CHOICE, rr_mode_choices},
};

/* Work out what an enforce_refund_moment() trigger reads (an RRBuildInfo). */
static void
build_moment_trigger(TriggerData *td, RRTriggerInfo *info)
{
	Trigger    *tg = td->tg_trigger;
	Relation	rel = td->tg_relation;
	RROptionValue v[NUM_MOMENT_OPTIONS];
	Form_pg_attribute att;
	int			first = 0;

	info->lock_relid = RelationGetRelid(rel);
	info->lockmode = AccessShareLock;
	info->moment_column = "refunded_at";
	if (tg->tgnargs > 0 && strchr(tg->tgargs[0], '=') == NULL)
		info->moment_column = pstrdup(tg->tgargs[first++]);
	memset(v, 0, sizeof(v));
	rr_parse_options(tg, first, moment_options, NUM_MOMENT_OPTIONS, v);
	info->kind = v[MOPT_KIND].given ? (RefundKind) v[MOPT_KIND].choice : KIND_PURCHASE;
	info->max_lag = v[MOPT_MAX_LAG].lag;
	info->dry_run = (v[MOPT_MODE].given && v[MOPT_MODE].choice == 1);

	att = rr_table_column(RelationGetDescr(rel), info->moment_column);
	if (att == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("table \"%s\" has no column \"%s\"", rr_table_name(RelationGetRelid(rel)), info->moment_column),
				 errhint("The first argument of enforce_refund_moment() names the column of the refund's moment (default refunded_at).")));
	if (getBaseType(att->atttypid) != TIMESTAMPTZOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of table \"%s\" is of type %s",
						info->moment_column, rr_table_name(RelationGetRelid(rel)), format_type_be(att->atttypid)),
				 errdetail("Column \"%s\" must be of type timestamp with time zone.", info->moment_column)));
	info->moment_attnum = att->attnum;
	info->check_constraint_func = rr_catalog(info->ext.nsp)->check_refund;
	info->purchases_name = rr_table_name(RelationGetRelid(rel));
	rr_reader_init_row(&info->reader, &info->ext, RelationGetDescr(rel), RelationGetForm(rel)->reltype, -1,
					   psprintf("table \"%s\"", rr_table_name(RelationGetRelid(rel))), CurrentMemoryContext);
	rr_reader_require(&info->reader, rr_fields_for_kind(info->kind));
}

/* The state of an enforce_refund_moment() trigger, worked out or kept. */
RRTriggerInfo *
rr_moment_state(TriggerData *td)
{
	return rr_trigger_info(td, build_moment_trigger);
}

/*
 * enforce_refund_moment() is an AFTER INSERT OR UPDATE row trigger for a
 * purchases table whose CHECK constraint calls check_refund() on a moment
 * column.  Arguments: the column (default refunded_at), then options
 * kind=purchase|tax, max_lag=INTERVAL and mode=enforce|dry_run.  A moment
 * the statement writes must be the database's: the start of the
 * transaction (what now() gives), give or take max_lag; the refund is
 * judged at the database's clock too.  A recorded refund cannot be
 * withdrawn.
 */
PG_FUNCTION_INFO_V1(enforce_refund_moment);
Datum
enforce_refund_moment(PG_FUNCTION_ARGS)
{
	TriggerData *td = rr_check_trigger(fcinfo, "enforce_refund_moment()");
	bool		is_update = TRIGGER_FIRED_BY_UPDATE(td->tg_event);
	TupleDesc	tupdesc = RelationGetDescr(td->tg_relation);
	HeapTuple	newtup = rr_stored_row(td);
	RRTriggerInfo *info = rr_trigger_info(td, build_moment_trigger);
	bool		isnull;
	Datum		written = heap_getattr(newtup, info->moment_attnum, tupdesc, &isnull);
	PurchaseReader reader;
	Purchase	p;
	Refusal		f;

	memset(&f, 0, sizeof(f));
	f.relation = td->tg_relation;
	f.constraint_name = info->tgname;
	f.dry_run = info->dry_run;

	/* Once refunded, always refunded: the moment cannot be withdrawn. */
	if (isnull && is_update && !heap_attisnull(td->tg_trigtuple, info->moment_attnum, tupdesc))
	{
		f.frozen_column = info->moment_column;
		rr_report_withdrawn(&f);
		return PointerGetDatum(NULL);
	}

	/* Only a moment this statement writes; the CHECK judges the rest. */
	if (isnull || (is_update && !rr_column_changed(tupdesc, info->moment_attnum, td->tg_trigtuple, newtup)))
		return PointerGetDatum(NULL);

	f.purchase_shown = rr_columns_readable(RelationGetRelid(td->tg_relation), NUM_FIELDS,
										   info->reader.attnum);
	reader = info->reader;		/* a copy: the kept state is never changed */
	reader.values_hidden = !f.purchase_shown;
	rr_read_purchase_tuple(&reader, &info->ext, newtup, rr_fields_for_kind(info->kind), &p);
	f.reasons = rr_written_refund_reasons(&p, DatumGetTimestampTz(written), true, true,
										  info->max_lag, info->kind);
	if (f.reasons)
	{
		f.kind_known = true;
		f.kind = info->kind;
		f.p = &p;
		f.purchases_name = info->purchases_name;
		f.moment_column = info->moment_column;
		f.lag = info->max_lag;

		/*
		 * The CHECK it guards judged the moment written before this AFTER
		 * trigger: to a role that may not read the purchase, a refusal here
		 * looks exactly like the CHECK's (one code, its constraint name), or
		 * trying moments would tell the window.
		 */
		f.hide_all = !f.purchase_shown;
		f.check_pattern = true;
		if (OidIsValid(info->check_constraint_func))
			f.constraint_name = rr_check_constraint_of(RelationGetRelid(td->tg_relation),
													   info->check_constraint_func);
		if (f.constraint_name == NULL)
			f.constraint_name = info->tgname;
		rr_report_refused(&f);
	}
	return PointerGetDatum(NULL);
}
