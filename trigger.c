/*-------------------------------------------------------------------------
 *
 * trigger.c
 *		What the extension's triggers share: the trigger protocol, their
 *		arguments, key columns and lookups, and the state kept per trigger.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/pg_am.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_trigger.h"
#include "commands/defrem.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "parser/parse_coerce.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

#include "refund_rules.h"

/* The common protocol: a row-level BEFORE trigger for these events. */
TriggerData *
rr_trigger_data(FunctionCallInfo fcinfo, const char *funcname, bool insert_ok)
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
 * The column names of a trigger argument: one or several, separated by
 * commas, quoted like SQL identifiers.  An argument that is exactly the
 * name of a column of relid is that column (as in version 1.0).
 */
List *
rr_column_list(const Trigger *tg, int argno, Oid relid, const char *what)
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
const char *
rr_option_value(const char *arg, const char *name)
{
	size_t		len = strlen(name);

	if (strncmp(arg, name, len) == 0 && arg[len] == '=')
		return arg + len + 1;
	return NULL;
}


/* The value of option max_lag: an interval from zero to MAX_ALLOWED_LAG. */
int64
rr_parse_lag(const Trigger *tg, const char *value)
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


void
rr_report_unknown_option(const Trigger *tg, const char *arg, const char *known)
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
Oid
rr_locked_table(const Trigger *tg, int argno, Oid home_nsp, LOCKMODE lockmode, char **name)
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
Oid
rr_home_namespace(Relation rel)
{
	Oid			home = RelationGetRelid(rel);

	/* a trigger cloned onto a partition was written for the root */
	if (rel->rd_rel->relispartition)
		home = llast_oid(get_partition_ancestors(home));
	return get_rel_namespace(home);
}


char *
rr_qualified_name(Oid relid)
{
	return psprintf("%s.%s", get_namespace_name(get_rel_namespace(relid)), get_rel_name(relid));
}


/* A plain or partitioned table, or else an error. */
void
rr_require_table(const Trigger *tg, Oid relid, const char *what)
{
	char		relkind = get_rel_relkind(relid);

	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s \"%s\" of trigger \"%s\" is not a table",
						what, rr_qualified_name(relid), tg->tgname)));
}


/* The equality operator of a btree family for two types, or InvalidOid. */
static Oid
btree_equality(Oid opfamily, Oid left, Oid right)
{
	if (!OidIsValid(opfamily))
		return InvalidOid;
	return get_opfamily_member(opfamily, left, right, BTEqualStrategyNumber);
}


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
char *
rr_key_condition(int nkeys, const KeyColumn *keys, const char *const *names)
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
int
rr_setup_keys(const Trigger *tg, Relation rel, List *given, const char *given_what, Oid relid,
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
		Form_pg_attribute gatt = rr_table_column(RelationGetDescr(rel), gname);
		AttrNumber	lattnum = get_attnum(relid, lname);

		if (gatt == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("table \"%s\" has no column \"%s\"", RelationGetRelationName(rel), gname),
					 errhint("Trigger \"%s\" names it as a %s.", tg->tgname, given_what)));
		if (lattnum == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("table \"%s\" has no column \"%s\"", rr_qualified_name(relid), lname),
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
int
rr_read_key(int nkeys, const KeyColumn *keys, HeapTuple tuple, TupleDesc tupdesc,
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
void
rr_run_lookup(SPIPlanPtr plan, Datum *params, Oid owner, long limit, bool latest)
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
uint64 rr_trigger_generation = 1;


static void
trigger_states_relcache_changed(Datum arg pg_attribute_unused(), Oid relid pg_attribute_unused())
{
	rr_trigger_generation++;
}


static void
trigger_states_syscache_changed(Datum arg pg_attribute_unused(), int cacheid pg_attribute_unused(),
								uint32 hashvalue pg_attribute_unused())
{
	rr_trigger_generation++;
}


/* One table of states per trigger function, each entry of its size. */
HTAB *
rr_kept_states(HTAB **table, const char *name, Size entrysize)
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
		if (ks->tgoid != keep && ks->generation != rr_trigger_generation &&
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
KeptState *
rr_kept_state(HTAB *table, Size entrysize, TriggerData *td, bool *stale)
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
		*stale = (ks->generation != rr_trigger_generation);
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
SPIPlanPtr
rr_kept_plan(KeptState *ks, const char *query, int nargs, Oid *argtypes)
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
char *
rr_typed_query(const char *query, int nkeys, const KeyColumn *keys)
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


bool
rr_is_timestamptz_type(Oid base)
{
	return base == TIMESTAMPTZOID;
}


bool
rr_is_label_type(Oid base)
{
	return base == TEXTOID || base == VARCHAROID || type_is_enum(base);
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
bool
rr_is_citus_shard_of(Oid relid, Oid logical)
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
void
rr_bind_table(const Trigger *tg, Relation rel, Oid named, const char *name, const char *what,
		   Oid fk_bound)
{
	Oid			bound = OidIsValid(fk_bound) ? fk_bound : bound_table(tg->tgoid, RelationGetRelid(rel));

	if (OidIsValid(bound) && bound != named)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" names %s \"%s\", but is bound to table \"%s\"",
						tg->tgname, what, name, rr_qualified_name(bound)),
				 OidIsValid(fk_bound)
				 ? errdetail("The foreign key of table \"%s\" on the reference references \"%s\".",
							 RelationGetRelationName(rel), rr_qualified_name(bound))
				 : errdetail("The trigger was first used with \"%s\"; that table was renamed or another table took its name since.",
							 rr_qualified_name(bound)),
				 errhint("Recreate the trigger naming the table it should read.")));
	if (!OidIsValid(bound))
		record_binding(tg->tgoid, named);
}


/* The table a companion trigger names, locked and bound by identity. */
Oid
rr_bound_named_table(const Trigger *tg, Relation rel, int argno, const char *what)
{
	char	   *named;
	Oid			relid = rr_locked_table(tg, argno, rr_home_namespace(rel), RowShareLock, &named);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s \"%s\" of trigger \"%s\" does not exist", what, named, tg->tgname),
				 errhint("An unqualified name is looked up in the schema of the table the trigger is on.")));
	rr_require_table(tg, relid, what);
	rr_bind_table(tg, rel, relid, named, what, InvalidOid);
	return relid;
}

