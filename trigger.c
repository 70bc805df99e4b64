/*-------------------------------------------------------------------------
 *
 * trigger.c
 *		What the extension's triggers share: the trigger protocol, their
 *		options, the foreign key they are bound by, the lookups they run as
 *		the looked-up table's owner, and the state kept per trigger.
 *
 * The model is PostgreSQL's own foreign-key triggers (ri_triggers.c).  A
 * trigger is bound by OIDs that PostgreSQL keeps (a foreign key, a
 * constraint trigger's FROM table), never by a name found at run time,
 * and nothing is written to a catalog.  What a trigger works out is kept
 * per trigger OID, built whole in its own memory context and swapped in;
 * invalidation marks an entry invalid, by relation, constraint or schema,
 * and never frees it: a state (or plan) replaced while a call may still
 * hold it is retired and freed at the end of the transaction, when no
 * call can.  User code that a lookup runs (a cast, an operator, a domain
 * check) may do anything, even DDL and a nested request into the same
 * trigger; the outer call then finds its state invalid and stops.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_trigger.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

#include "refund_rules.h"

/* ---- the trigger protocol ---- */

/*
 * Check that a trigger is declared as the extension's triggers must be:
 * AFTER INSERT OR UPDATE, FOR EACH ROW, on every such
 * event (no column list, no WHEN), and checked when the row is written
 * (not deferred).  An AFTER trigger sees the row as stored, after every
 * BEFORE trigger and generated column, as PostgreSQL's own constraint
 * checks do.
 */
void
rr_check_declaration(const Trigger *tg, Relation rel, const char *funcname)
{
	bool		needs_from = (strcmp(funcname, "protect_refunded_purchase()") == 0);

	if (!TRIGGER_FOR_ROW(tg->tgtype) || !TRIGGER_FOR_AFTER(tg->tgtype) ||
		!TRIGGER_FOR_INSERT(tg->tgtype) || !TRIGGER_FOR_UPDATE(tg->tgtype) ||
		TRIGGER_FOR_DELETE(tg->tgtype) || TRIGGER_FOR_TRUNCATE(tg->tgtype) ||
		tg->tgnattr > 0 || tg->tgqual != NULL || tg->tgdeferrable)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" must be declared AFTER INSERT OR UPDATE ... FOR EACH ROW",
						tg->tgname),
				 errdetail("%s checks every row as stored, when it is written: no column list, no WHEN condition, not deferrable.",
						   funcname),
				 errhint("Recreate it: CREATE %sTRIGGER %s AFTER INSERT OR UPDATE ON %s%s FOR EACH ROW EXECUTE FUNCTION refund_rules.%.*s(...).",
						 needs_from ? "CONSTRAINT " : "", quote_identifier(tg->tgname),
						 rr_table_name(RelationGetRelid(rel)),
						 needs_from ? " FROM <refund request table>" : "",
						 (int) strlen(funcname) - 2, funcname)));
}

/*
 * The trigger data of a call of one of the extension's trigger functions,
 * checked as ri_triggers.c checks its own: called by the trigger manager,
 * declared as it must be (above), fired for a row after INSERT or UPDATE.
 */
TriggerData *
rr_check_trigger(FunctionCallInfo fcinfo, const char *funcname)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s was not called by the trigger manager", funcname)));
	rr_check_declaration(td->tg_trigger, td->tg_relation, funcname);
	if (!TRIGGER_FIRED_FOR_ROW(td->tg_event) || !TRIGGER_FIRED_AFTER(td->tg_event) ||
		!(TRIGGER_FIRED_BY_INSERT(td->tg_event) || TRIGGER_FIRED_BY_UPDATE(td->tg_event)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s must be fired AFTER INSERT OR UPDATE FOR EACH ROW", funcname)));
	return td;
}

/* The row an INSERT or UPDATE event stored. */
HeapTuple
rr_stored_row(const TriggerData *td)
{
	return TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
}

/* Whether a column's value differs between two versions of a row, bit for bit. */
bool
rr_column_changed(TupleDesc tupdesc, AttrNumber attnum, HeapTuple oldtup, HeapTuple newtup)
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
 * The columns of relid that a trigger argument names: one or several,
 * separated by commas, quoted like SQL identifiers; ordinary columns only.
 * An argument that is exactly the name of a column is that column.
 */
int
rr_column_list(const Trigger *tg, int argno, Oid relid, const char *what, AttrNumber *attnums)
{
	const char *arg = tg->tgargs[argno];
	List	   *names;
	ListCell   *lc;
	int			n = 0;

	if (get_attnum(relid, arg) > 0)
		names = list_make1(pstrdup(arg));
	else if (!SplitIdentifierString(pstrdup(arg), ',', &names) ||
			 list_length(names) < 1 || list_length(names) > INDEX_MAX_KEYS)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" names %s as \"%s\", which is not a list of column names",
						tg->tgname, what, arg),
				 errhint("Pass one column, or several separated by commas, quoted like SQL identifiers.")));
	foreach(lc, names)
	{
		const char *name = (const char *) lfirst(lc);
		AttrNumber	attnum = get_attnum(relid, name);

		if (attnum == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("table \"%s\" has no column \"%s\"", rr_table_name(relid), name),
					 errhint("Trigger \"%s\" names it as %s.", tg->tgname, what)));
		if (attnum < 0)
			ereport(ERROR,
					(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
					 errmsg("trigger \"%s\" names system column \"%s\" as %s",
							tg->tgname, name, what),
					 errhint("A key is made of ordinary columns, as a foreign key's is.")));
		attnums[n++] = attnum;
	}
	return n;
}

/* ---- options: one table-driven parser for every trigger ---- */

/* The values of option mode, which every trigger takes. */
const char *const rr_mode_choices[] = {"enforce", "dry_run", NULL};

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
						   rr_format_lag(MAX_ALLOWED_LAG))));
	return span->time;
}

/* "a, b and c" */
static char *
name_list(const char *const *names, int n)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < n; i++)
		appendStringInfo(&buf, "%s%s", i == 0 ? "" : (i == n - 1 ? " and " : ", "), names[i]);
	return buf.data;
}

/*
 * Parse the options of a trigger (its arguments from first on, each
 * "name=value") against the options valid for it.  values[i] receives the
 * parsed value of valid[i], which keeps its default when not given.
 */
void
rr_parse_options(const Trigger *tg, int first, const RROption *valid, int nvalid,
				 RROptionValue *values)
{
	int			i,
				v;

	for (i = first; i < tg->tgnargs; i++)
	{
		const char *arg = tg->tgargs[i];
		const char *eq = strchr(arg, '=');
		const RROption *opt = NULL;
		const char *value;

		for (v = 0; eq && v < nvalid && !opt; v++)
			if (strlen(valid[v].name) == (size_t) (eq - arg) &&
				strncmp(arg, valid[v].name, eq - arg) == 0)
				opt = &valid[v];
		if (opt == NULL)
		{
			const char *names[RR_MAX_OPTIONS];

			for (v = 0; v < nvalid; v++)
				names[v] = valid[v].name;
			ereport(ERROR,
					(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
					 errmsg("trigger \"%s\" passes unknown option \"%s\"", tg->tgname, arg),
					 errhint("Valid options are %s, each written name=value.",
							 name_list(names, nvalid))));
		}
		v = opt - valid;
		value = eq + 1;
		switch (opt->type)
		{
			case RR_OPTION_CHOICE:
				for (values[v].choice = 0; opt->choices[values[v].choice]; values[v].choice++)
					if (strcmp(value, opt->choices[values[v].choice]) == 0)
						break;
				if (opt->choices[values[v].choice] == NULL)
				{
					int			n = 0;

					while (opt->choices[n])
						n++;
					ereport(ERROR,
							(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
							 errmsg("trigger \"%s\" passes invalid value \"%s\" for option \"%s\"",
									tg->tgname, value, opt->name),
							 errhint("Valid values are %s.", name_list(opt->choices, n))));
				}
				break;
			case RR_OPTION_LAG:
				values[v].lag = parse_lag(tg, value);
				break;
			case RR_OPTION_ROLE:
				values[v].role = get_role_oid(value, true);
				if (!OidIsValid(values[v].role))
					ereport(ERROR,
							(errcode(ERRCODE_UNDEFINED_OBJECT),
							 errmsg("role \"%s\" named by trigger \"%s\" does not exist",
									value, tg->tgname)));
				break;
		}
		values[v].given = true;
	}
}

/* ---- the foreign key a trigger is bound by ---- */

/* Whether two lists of columns hold the same columns, in any order. */
static bool
same_columns(int n, const AttrNumber *a, int m, const AttrNumber *b)
{
	int			i,
				j;

	if (n != m)
		return false;
	for (i = 0; i < n; i++)
	{
		for (j = 0; j < m && a[i] != b[j]; j++)
			;
		if (j == m)
			return false;
	}
	return true;
}

/*
 * Whether a foreign key of relid is one PostgreSQL made for a partition of
 * the referenced table (its parent is a foreign key of the same table).
 */
static bool
derived_for_referenced_partition(Form_pg_constraint con)
{
	HeapTuple	tup;
	bool		result;

	if (!OidIsValid(con->conparentid))
		return false;
	tup = SearchSysCache1(CONSTROID, ObjectIdGetDatum(con->conparentid));
	if (!HeapTupleIsValid(tup))
		return false;
	result = ((Form_pg_constraint) GETSTRUCT(tup))->conrelid == con->conrelid;
	ReleaseSysCache(tup);
	return result;
}

/*
 * The foreign key of table relid on exactly these columns (in any order),
 * referencing confrelid when that is valid; false when there is none.
 * Everything is copied out of the catalog: nothing is held across the
 * caller's later catalog access.
 */
bool
rr_find_foreign_key(Oid relid, int ncols, const AttrNumber *cols, Oid confrelid, RRForeignKey *fk)
{
	Relation	conrel = table_open(ConstraintRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	ScanKeyInit(&key, Anum_pg_constraint_conrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(conrel, ConstraintRelidTypidNameIndexId, true, NULL, 1, &key);
	while (!found && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(tup);
		Oid			pp_eq[INDEX_MAX_KEYS];
		Oid			ff_eq[INDEX_MAX_KEYS];

		if (con->contype != CONSTRAINT_FOREIGN ||
			(OidIsValid(confrelid) && con->confrelid != confrelid) ||
			(!OidIsValid(confrelid) && derived_for_referenced_partition(con)))
			continue;
		DeconstructFkConstraintRow(tup, &fk->nkeys, fk->fk_attnums, fk->pk_attnums,
								   fk->pf_eq_oprs, pp_eq, ff_eq, NULL, NULL);
		if (!same_columns(ncols, cols, fk->nkeys, fk->fk_attnums))
			continue;
		fk->oid = con->oid;
		fk->name = pstrdup(NameStr(con->conname));
		fk->fkrel = con->conrelid;
		fk->pkrel = con->confrelid;
		fk->deltype = con->confdeltype;
		fk->updtype = con->confupdtype;
		found = true;
	}
	systable_endscan(scan);
	table_close(conrel, AccessShareLock);
	return found;
}

/*
 * The key columns of a foreign key, for a lookup: their types and names,
 * and the purchases' key as a message names it.
 */
void
rr_foreign_key_columns(RRTriggerInfo *info)
{
	RRForeignKey *fk = &info->fk;
	StringInfoData names;
	int			i;

	initStringInfo(&names);
	for (i = 0; i < fk->nkeys; i++)
	{
		info->fk_types[i] = get_atttype(fk->fkrel, fk->fk_attnums[i]);
		info->pk_types[i] = get_atttype(fk->pkrel, fk->pk_attnums[i]);
		appendStringInfo(&names, "%s%s", i ? ", " : "",
						 get_attname(fk->pkrel, fk->pk_attnums[i], false));
	}
	info->key_names = names.data;
}

/* The collation of a column. */
static Oid
attribute_collation(Oid relid, AttrNumber attnum)
{
	Oid			type;
	int32		typmod;
	Oid			collation;

	get_atttypetypmodcoll(relid, attnum, &type, &typmod, &collation);
	return collation;
}

/* " COLLATE schema.name" */
static void
append_collation(StringInfo buf, Oid collation)
{
	HeapTuple	tup = SearchSysCache1(COLLOID, ObjectIdGetDatum(collation));
	Form_pg_collation coll;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for collation %u", collation);
	coll = (Form_pg_collation) GETSTRUCT(tup);
	appendStringInfo(buf, " COLLATE %s",
					 quote_qualified_identifier(get_namespace_name(coll->collnamespace),
												NameStr(coll->collname)));
	ReleaseSysCache(tup);
}

/*
 * Append the condition of a lookup on the foreign key's columns: column i
 * of the table read (alias x) compared with parameter $i+1 by the foreign
 * key's own operator, with the casts PostgreSQL's foreign key would use.
 * reading_pk: the table read is the referenced one (parameters are the
 * referencing values), else the referencing one.  With other_alias, the
 * other table's columns (under that alias) stand for the parameters.
 */
void
rr_key_condition(StringInfo buf, const RRTriggerInfo *info, bool reading_pk,
				 const char *other_alias)
{
	const RRForeignKey *fk = &info->fk;
	int			i;

	for (i = 0; i < fk->nkeys; i++)
	{
		char	   *other;
		Oid			table_rel = reading_pk ? fk->pkrel : fk->fkrel;
		AttrNumber	attnum = reading_pk ? fk->pk_attnums[i] : fk->fk_attnums[i];
		char	   *column = psprintf("x.%s", quote_identifier(get_attname(table_rel, attnum, false)));

		if (other_alias)
			other = psprintf("%s.%s", other_alias,
							 quote_identifier(get_attname(reading_pk ? fk->fkrel : fk->pkrel,
														  reading_pk ? fk->fk_attnums[i] : fk->pk_attnums[i],
														  false)));
		else
			other = psprintf("$%d", i + 1);
		appendStringInfoString(buf, i ? " AND " : " WHERE ");
		if (reading_pk)
			generate_operator_clause(buf, column, info->pk_types[i], fk->pf_eq_oprs[i],
									 other, info->fk_types[i]);
		else
		{
			Oid			pk_coll = attribute_collation(fk->pkrel, fk->pk_attnums[i]);
			Oid			fk_coll = attribute_collation(fk->fkrel, fk->fk_attnums[i]);

			generate_operator_clause(buf, other, info->pk_types[i], fk->pf_eq_oprs[i],
									 column, info->fk_types[i]);

			/*
			 * as a foreign key's action: the referenced column's collation
			 * decides
			 */
			if (OidIsValid(pk_coll) && pk_coll != fk_coll && !get_collation_isdeterministic(pk_coll))
				append_collation(buf, pk_coll);
		}
	}
}

/*
 * Read the key columns of a row (attnums) into values; returns the index of
 * a key column that is NULL, or -1.
 */
int
rr_read_key(const RRTriggerInfo *info, bool pk_side, HeapTuple tuple, TupleDesc tupdesc,
			Datum *values)
{
	int			i;

	for (i = 0; i < info->fk.nkeys; i++)
	{
		bool		isnull;

		values[i] = heap_getattr(tuple, pk_side ? info->fk.pk_attnums[i] : info->fk.fk_attnums[i],
								 tupdesc, &isnull);
		if (isnull)
			return i;
	}
	return -1;
}

/* ---- kept state: one entry per trigger, invalidated per entry ---- */

typedef struct TriggerEntry
{
	Oid			tgoid;			/* hash key */
	RRTriggerInfo *info;		/* the current state, or NULL */
} TriggerEntry;

static HTAB *trigger_entries = NULL;

/* States and plans replaced while a call may hold them: freed at transaction end. */
static List *retired_states = NIL;
static List *retired_plans = NIL;

/* Counts invalidations, to tell a state built while one arrived. */
static uint64 invalidation_count = 0;

static void
retire_plan(SPIPlanPtr plan)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	retired_plans = lappend(retired_plans, plan);
	MemoryContextSwitchTo(old);
}

static void
retire_state(RRTriggerInfo *info)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	retired_states = lappend(retired_states, info);
	MemoryContextSwitchTo(old);
}

static void
free_state(RRTriggerInfo *info)
{
	int			i;

	for (i = 0; i < RR_NUM_LOOKUPS; i++)
		if (info->lookups[i].plan)
			SPI_freeplan(info->lookups[i].plan);
	MemoryContextDelete(info->mcxt);
}

/*
 * When a transaction commits no call holds a state, and no plan is in use:
 * free what was retired, and the states made invalid (a dropped trigger's
 * among them).  After an abort a plan may still be referenced until the
 * abort's cleanup is done: what was retired then waits for the next commit.
 */
static void
trigger_states_xact_end(XactEvent event, void *arg pg_attribute_unused())
{
	HASH_SEQ_STATUS seq;
	TriggerEntry *entry;
	ListCell   *lc;

	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_PARALLEL_COMMIT &&
		event != XACT_EVENT_PREPARE)
		return;
	foreach(lc, retired_plans)
		SPI_freeplan((SPIPlanPtr) lfirst(lc));
	list_free(retired_plans);
	retired_plans = NIL;
	foreach(lc, retired_states)
		free_state((RRTriggerInfo *) lfirst(lc));
	list_free(retired_states);
	retired_states = NIL;
	if (trigger_entries == NULL)
		return;
	hash_seq_init(&seq, trigger_entries);
	while ((entry = (TriggerEntry *) hash_seq_search(&seq)) != NULL)
	{
		if (entry->info && !entry->info->valid)
		{
			free_state(entry->info);
			entry->info = NULL;
		}
		if (entry->info == NULL)
			hash_search(trigger_entries, &entry->tgoid, HASH_REMOVE, NULL);
	}
}

/* Mark invalid every state that this test says is affected. */
static void
invalidate_states(bool (*affected) (const RRTriggerInfo *info, uint32 value), uint32 value)
{
	HASH_SEQ_STATUS seq;
	TriggerEntry *entry;

	invalidation_count++;
	hash_seq_init(&seq, trigger_entries);
	while ((entry = (TriggerEntry *) hash_seq_search(&seq)) != NULL)
		if (entry->info && entry->info->valid && affected(entry->info, value))
			entry->info->valid = false;
}

static bool
uses_relation(const RRTriggerInfo *info, uint32 relid)
{
	return relid == InvalidOid || relid == info->relid ||
		relid == info->fk.fkrel || relid == info->fk.pkrel;
}

static bool
uses_constraint(const RRTriggerInfo *info, uint32 hashvalue)
{
	return hashvalue == 0 || hashvalue == info->fk_hash;
}

static bool
uses_namespace(const RRTriggerInfo *info, uint32 hashvalue)
{
	return hashvalue == 0 || hashvalue == info->namespace_hash[0] ||
		hashvalue == info->namespace_hash[1];
}

static bool
uses_roles(const RRTriggerInfo *info, uint32 hashvalue pg_attribute_unused())
{
	return info->names_roles;
}

static void
relcache_changed(Datum arg pg_attribute_unused(), Oid relid)
{
	invalidate_states(uses_relation, relid);
}

static void
syscache_changed(Datum arg pg_attribute_unused(), int cacheid, uint32 hashvalue)
{
	switch (cacheid)
	{
		case CONSTROID:
			invalidate_states(uses_constraint, hashvalue);
			break;
		case NAMESPACEOID:
			invalidate_states(uses_namespace, hashvalue);
			break;
		default:
			invalidate_states(uses_roles, hashvalue);
			break;
	}
}

static void
init_trigger_entries(void)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(TriggerEntry);
	trigger_entries = hash_create("refund_rules triggers", 16, &ctl, HASH_ELEM | HASH_BLOBS);
	CacheRegisterRelcacheCallback(relcache_changed, (Datum) 0);
	CacheRegisterSyscacheCallback(CONSTROID, syscache_changed, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, syscache_changed, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHOID, syscache_changed, (Datum) 0);
	RegisterXactCallback(trigger_states_xact_end, NULL);
}

/*
 * The state of a trigger, valid for this call.  A kept state is used once
 * the table it looks up is locked (as a foreign key check locks the
 * referenced table first), so invalidations that came before are seen;
 * otherwise build() works it out anew in a new memory context, and it
 * replaces the kept one (which is retired, not freed).
 */
RRTriggerInfo *
rr_trigger_info(TriggerData *td, RRBuildInfo build)
{
	Oid			tgoid = td->tg_trigger->tgoid;
	TriggerEntry *entry;
	RRTriggerInfo *info;
	MemoryContext mcxt;
	MemoryContext old;
	uint64		count;
	bool		found;

	if (trigger_entries == NULL)
		init_trigger_entries();
	entry = (TriggerEntry *) hash_search(trigger_entries, &tgoid, HASH_FIND, NULL);
	if (entry && entry->info && entry->info->valid && !entry->info->rebuild)
	{
		info = entry->info;
		LockRelationOid(info->lock_relid, info->lockmode);
		if (info->valid)
			return info;
	}

	count = invalidation_count;
	mcxt = AllocSetContextCreate(CurrentMemoryContext, "refund_rules trigger",
								 ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(mcxt);
	info = palloc0(sizeof(RRTriggerInfo));
	info->tgoid = tgoid;
	info->relid = RelationGetRelid(td->tg_relation);
	info->mcxt = mcxt;
	info->tgname = pstrdup(td->tg_trigger->tgname);
	info->ext = rr_catalog(get_func_namespace(td->tg_trigger->tgfoid))->ext;
	build(td, info);
	MemoryContextSwitchTo(old);
	info->fk_hash = OidIsValid(info->fk.oid)
		? GetSysCacheHashValue1(CONSTROID, ObjectIdGetDatum(info->fk.oid)) : 0;
	info->namespace_hash[0] = GetSysCacheHashValue1(NAMESPACEOID,
													ObjectIdGetDatum(get_rel_namespace(info->relid)));
	info->namespace_hash[1] = OidIsValid(info->lookup_relid)
		? GetSysCacheHashValue1(NAMESPACEOID,
								ObjectIdGetDatum(get_rel_namespace(info->lookup_relid))) : 0;
	info->valid = true;

	/* kept (and owned by the cache) once complete */
	MemoryContextSetParent(mcxt, CacheMemoryContext);
	entry = (TriggerEntry *) hash_search(trigger_entries, &tgoid, HASH_ENTER, &found);
	if (found && entry->info)
		retire_state(entry->info);
	entry->info = info;

	/*
	 * An invalidation that arrived while it was worked out may have been
	 * about its tables before they were known: good for this call (its tables
	 * are locked and no user code ran), worked out again for the next.
	 */
	info->rebuild = (count != invalidation_count);
	return info;
}

/*
 * Stop when the state a call holds was made invalid while the call ran
 * user code (a cast or an operator of the lookup): the tables or roles it
 * was worked out from may have changed under it.
 */
void
rr_recheck_state(const RRTriggerInfo *info, const char *funcname)
{
	if (!info->valid)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the tables of trigger \"%s\" changed while %s checked a row",
						info->tgname, funcname),
				 errhint("Retry the statement.")));
}

/* ---- lookups, run as the owner of the table they read ---- */

/*
 * Run one of a state's lookups with these parameters, as the owner of the
 * table it reads (as PostgreSQL's foreign keys do, so neither the caller's
 * privileges nor the backend's history change a decision), with no user
 * code allowed to change the session (security-restricted).  The plan is
 * prepared as that owner too, and again whenever it is no longer valid;
 * the old one is retired, since an outer call may be running it.  Under
 * REPEATABLE READ or SERIALIZABLE, latest says to see rows committed since
 * the transaction's snapshot, as a foreign key's check does.  An error
 * keeps its message but not its context, which would show the query.
 * Call within SPI_connect().
 */
void
rr_run_lookup(RRTriggerInfo *info, int which, Datum *params, long limit, bool latest)
{
	RRLookup   *lookup = &info->lookups[which];
	Oid			save_userid;
	int			save_sec_context;
	MemoryContext caller = CurrentMemoryContext;
	int			rc = 0;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(info->lookup_owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION | SECURITY_NOFORCE_RLS);
	PG_TRY();
	{
		if (lookup->plan && !SPI_plan_is_valid(lookup->plan))
		{
			retire_plan(lookup->plan);
			lookup->plan = NULL;
		}
		if (lookup->plan == NULL)
		{
			SPIPlanPtr	plan = SPI_prepare(lookup->query, lookup->nargs, lookup->argtypes);

			if (plan == NULL)
				elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
			SPI_keepplan(plan);
			lookup->plan = plan;
		}
		if (latest && IsolationUsesXactSnapshot())
		{
			CommandCounterIncrement();
			rc = SPI_execute_snapshot(lookup->plan, params, NULL, GetLatestSnapshot(),
									  InvalidSnapshot, false, false, limit);
		}
		else
			rc = SPI_execute_plan(lookup->plan, params, NULL, false, limit);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(caller);
		edata = CopyErrorData();
		FlushErrorState();
		edata->context = NULL;
		edata->internalquery = NULL;
		edata->internalpos = 0;
		ReThrowError(edata);
	}
	PG_END_TRY();
	SetUserIdAndSecContext(save_userid, save_sec_context);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI lookup failed: %s", SPI_result_code_string(rc));
}

/*
 * A copy of the trigger of a table that calls the function of this name in
 * the extension's schema nsp and would fire in this session (its
 * declaration checked), or NULL when there is none; more than one is an
 * error.  Copied, since the relcache entry may be rebuilt by what follows.
 */
Trigger *
rr_firing_trigger(Relation rel, Oid nsp, const char *funcname)
{
	TriggerDesc *trigdesc = rel->trigdesc;
	Oid			noargs[1] = {InvalidOid};
	Oid			funcoid = GetSysCacheOid3(PROCNAMEARGSNSP, Anum_pg_proc_oid,
										  CStringGetDatum(funcname),
										  PointerGetDatum(buildoidvector(noargs, 0)),
										  ObjectIdGetDatum(nsp));
	char	   *called = psprintf("%s()", funcname);
	Trigger    *found = NULL;
	Trigger    *copy;
	int			i;

	for (i = 0; trigdesc && i < trigdesc->numtriggers; i++)
	{
		Trigger    *tg = &trigdesc->triggers[i];
		bool		fires = (SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA)
		? (tg->tgenabled == TRIGGER_FIRES_ON_REPLICA || tg->tgenabled == TRIGGER_FIRES_ALWAYS)
		: (tg->tgenabled == TRIGGER_FIRES_ON_ORIGIN || tg->tgenabled == TRIGGER_FIRES_ALWAYS);

		if (tg->tgfoid != funcoid || !fires || !TRIGGER_FOR_ROW(tg->tgtype) ||
			!TRIGGER_FOR_INSERT(tg->tgtype))
			continue;
		if (found)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("table \"%s\" has more than one %s trigger",
							rr_table_name(RelationGetRelid(rel)), called)));
		found = tg;
	}
	if (found == NULL)
		return NULL;
	rr_check_declaration(found, rel, called);
	copy = palloc(sizeof(Trigger));
	memcpy(copy, found, sizeof(Trigger));
	copy->tgname = pstrdup(found->tgname);
	copy->tgargs = palloc(sizeof(char *) * Max(found->tgnargs, 1));
	for (i = 0; i < found->tgnargs; i++)
		copy->tgargs[i] = pstrdup(found->tgargs[i]);
	copy->tgattr = NULL;
	copy->tgnattr = 0;
	copy->tgqual = NULL;
	copy->tgoldtable = copy->tgnewtable = NULL;
	return copy;
}

/* The owner of a relation. */
Oid
rr_relation_owner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/* "FROM [ONLY] schema.table x": ONLY for a plain table, as foreign keys do. */
void
rr_append_from(StringInfo buf, Oid relid)
{
	appendStringInfo(buf, " FROM %s%s x",
					 get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE ? "" : "ONLY ",
					 rr_table_name(relid));
}

/* The text of a label-typed value (text, varchar or enum). */
char *
rr_label_value(Datum value, Oid type)
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

bool
rr_is_label_type(Oid base)
{
	return base == TEXTOID || base == VARCHAROID || type_is_enum(base);
}
