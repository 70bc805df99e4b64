/*-------------------------------------------------------------------------
 *
 * request.c
 *		The request trigger enforce_refund_policy() and its pre-check
 *		refund_request_status().
 *
 * The trigger is an AFTER INSERT OR UPDATE row trigger on a table of
 * refund requests (best made a constraint trigger):
 *
 *		CREATE CONSTRAINT TRIGGER enforce_refund_policy
 *			AFTER INSERT OR UPDATE ON refund_requests FOR EACH ROW
 *			EXECUTE FUNCTION refund_rules.enforce_refund_policy(
 *				'purchases', 'purchase_id' [, 'id'] [, option=value ...]);
 *
 * The purchases table and its key are those of the request table's
 * foreign key on the reference column(s); the arguments must agree with
 * it.  The purchase is read and locked FOR SHARE as the purchases table's
 * owner, with the foreign key's own operators, and judged at the
 * database's clock.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/pg_auth_members.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_trigger.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/catcache.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "refund_rules.h"

static const char *const request_column_names[NUM_REQUEST_COLUMNS] = {
	"requested_at", "kind", "requested_by_role"
};

/* The roles a refund may be requested in. */
static const char *const authorized_roles[NUM_AUTHORIZED] = {"mpn_partner_admin", "account_admin"};

/* The options of enforce_refund_policy(), in the order of options[] */
enum
{
	OPT_REQUESTER,
	OPT_PARTNER_ADMIN_ROLE,
	OPT_ACCOUNT_ADMIN_ROLE,
	OPT_MAX_LAG,
	OPT_MODE,
	NUM_OPTIONS
};

static const char *const requester_choices[] = {"column", "session", NULL};

static const RROption options[NUM_OPTIONS] = {
	{"requester", RR_OPTION_CHOICE, requester_choices},
	{"mpn_partner_admin_role", RR_OPTION_ROLE, NULL},
	{"account_admin_role", RR_OPTION_ROLE, NULL},
	{"max_lag", RR_OPTION_LAG, NULL},
	{"mode", RR_OPTION_CHOICE, rr_mode_choices},
};

/* Find a column of the request table, checking its type. */
static void
request_column(RRTriggerInfo *info, Relation rel, RequestColumn c, bool required,
			   bool (*type_ok) (Oid), const char *expected)
{
	const char *name = request_column_names[c];
	Form_pg_attribute att = rr_table_column(RelationGetDescr(rel), name);

	info->req_attnum[c] = InvalidAttrNumber;
	info->req_type[c] = InvalidOid;
	if (att == NULL)
	{
		if (required)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("refund request table \"%s\" has no column \"%s\"",
							rr_table_name(RelationGetRelid(rel)), name),
					 errhint("enforce_refund_policy() reads the columns requested_at, requested_by_role (unless the session is the requester) and optionally kind.")));
		return;
	}
	if (!type_ok(getBaseType(att->atttypid)))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of refund request table \"%s\" is of type %s",
						name, rr_table_name(RelationGetRelid(rel)), format_type_be(att->atttypid)),
				 errdetail("Column \"%s\" must be of type %s.", name, expected)));
	info->req_attnum[c] = att->attnum;
	info->req_type[c] = att->atttypid;
}

static bool
is_timestamptz_type(Oid base)
{
	return base == TIMESTAMPTZOID;
}

/* Options: the requester, its roles, the lag, the mode. */
static void
request_trigger_options(const Trigger *tg, int first, RRTriggerInfo *info)
{
	RROptionValue v[NUM_OPTIONS];
	int			r;

	memset(v, 0, sizeof(v));
	rr_parse_options(tg, first, options, NUM_OPTIONS, v);
	info->session_requester = (v[OPT_REQUESTER].given && v[OPT_REQUESTER].choice == 1);
	info->role[0] = v[OPT_PARTNER_ADMIN_ROLE].role;
	info->role[1] = v[OPT_ACCOUNT_ADMIN_ROLE].role;
	info->max_lag = v[OPT_MAX_LAG].lag;
	info->dry_run = (v[OPT_MODE].given && v[OPT_MODE].choice == 1);
	for (r = 0; r < NUM_AUTHORIZED; r++)
		info->names_roles |= OidIsValid(info->role[r]);
	if (info->session_requester && !info->names_roles)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" makes the session the requester but names no role", tg->tgname),
				 errhint("Add mpn_partner_admin_role=ROLE, account_admin_role=ROLE or both.")));
	if (!info->session_requester && info->names_roles)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" names roles but takes the requester from a column", tg->tgname),
				 errhint("Add requester=session to have the current user's roles decide.")));
}

/*
 * Whether the first argument names the table the foreign key references
 * ([schema.]table, compared by name: the table itself comes from the
 * foreign key).  On a Citus node the foreign key of a shard references a
 * shard, whose name Citus chooses: there the foreign key alone decides.
 */
static bool
names_referenced_table(const char *arg, Oid pkrel)
{
	return rr_names_table(arg, pkrel) ||
		OidIsValid(get_relname_relid("pg_dist_shard", PG_CATALOG_NAMESPACE));
}

/*
 * Bind the trigger to the foreign key of its reference columns, and check
 * that the other arguments agree with it.
 */
static void
bind_foreign_key(const Trigger *tg, Relation rel, RRTriggerInfo *info, int *nargs_fixed)
{
	AttrNumber	refcols[INDEX_MAX_KEYS];
	AttrNumber	keycols[INDEX_MAX_KEYS];
	int			nref = rr_column_list(tg, 1, RelationGetRelid(rel), "a reference column", refcols);
	RRForeignKey *fk = &info->fk;
	int			i;

	if (!rr_find_foreign_key(RelationGetRelid(rel), nref, refcols, InvalidOid, fk))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("refund request table \"%s\" has no foreign key on the reference of trigger \"%s\"",
						rr_table_name(RelationGetRelid(rel)), tg->tgname),
				 errdetail("The purchase a request names is found through the foreign key of its reference column(s), \"%s\".",
						   tg->tgargs[1]),
				 errhint("Add FOREIGN KEY (%s) REFERENCES the purchases table's key.", tg->tgargs[1])));
	if ((fk->deltype != FKCONSTR_ACTION_NOACTION && fk->deltype != FKCONSTR_ACTION_RESTRICT) ||
		(fk->updtype != FKCONSTR_ACTION_NOACTION && fk->updtype != FKCONSTR_ACTION_RESTRICT))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("foreign key \"%s\" of refund request table \"%s\" changes requests when their purchase changes",
						fk->name, rr_table_name(RelationGetRelid(rel))),
				 errdetail("A refund request must keep its purchase: ON DELETE and ON UPDATE must be NO ACTION or RESTRICT."),
				 errhint("Recreate the foreign key without CASCADE, SET NULL or SET DEFAULT.")));

	/* the purchases table: locked before anything is read of it */
	LockRelationOid(fk->pkrel, RowShareLock);
	if (!names_referenced_table(tg->tgargs[0], fk->pkrel) ||
		(OidIsValid(tg->tgconstrrelid) && tg->tgconstrrelid != fk->pkrel))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" names purchases table \"%s\", but foreign key \"%s\" references \"%s\"",
						tg->tgname, tg->tgargs[0], fk->name, rr_table_name(fk->pkrel)),
				 errhint("Recreate the trigger naming the table the foreign key references.")));

	/* the key columns, when given, are the ones the foreign key references */
	*nargs_fixed = (tg->tgnargs >= 3 && strchr(tg->tgargs[2], '=') == NULL) ? 3 : 2;
	if (*nargs_fixed == 3)
	{
		int			nkey = rr_column_list(tg, 2, fk->pkrel, "a key column", keycols);

		for (i = 0; i < fk->nkeys; i++)
		{
			int			j;

			for (j = 0; j < nref && refcols[j] != fk->fk_attnums[i]; j++)
				;
			if (nkey != nref || keycols[j] != fk->pk_attnums[i])
				ereport(ERROR,
						(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						 errmsg("trigger \"%s\" looks purchases up by column(s) \"%s\", but foreign key \"%s\" references other columns",
								tg->tgname, tg->tgargs[2], fk->name),
						 errhint("Pass the referenced columns as the key columns of enforce_refund_policy(), in the order of the reference columns.")));
		}
	}
	rr_foreign_key_columns(info);
}

/*
 * The lookups: the policy columns the purchases table has, by name, of the
 * purchase the foreign key's operators find; FOR SHARE for the trigger.
 */
static void
request_lookups(RRTriggerInfo *info)
{
	StringInfoData query;
	int			f,
				n = 0,
				l;

	initStringInfo(&query);
	appendStringInfoString(&query, "SELECT ");
	for (f = 0; f < NUM_FIELDS; f++)
	{
		AttrNumber	attnum = get_attnum(info->fk.pkrel, rr_field_names[f]);

		info->field_attnum[f] = (attnum > 0) ? attnum : InvalidAttrNumber;
		if (attnum > 0)
			appendStringInfo(&query, "%sx.%s", n++ ? ", " : "", quote_identifier(rr_field_names[f]));
	}
	if (n == 0)
		appendStringInfoString(&query, "NULL");
	rr_append_from(&query, info->fk.pkrel);
	rr_key_condition(&query, info, true, NULL);
	info->lookups[RR_LOOKUP_ASK].query = pstrdup(query.data);
	appendStringInfoString(&query, " FOR SHARE OF x");
	info->lookups[RR_LOOKUP_LOCKED].query = query.data;
	for (l = 0; l < RR_NUM_LOOKUPS; l++)
	{
		info->lookups[l].nargs = info->fk.nkeys;
		memcpy(info->lookups[l].argtypes, info->fk_types, sizeof(Oid) * info->fk.nkeys);
	}
}

/* Work out what an enforce_refund_policy() trigger reads (an RRBuildInfo). */
static void
build_request_trigger(TriggerData *td, RRTriggerInfo *info)
{
	Trigger    *tg = td->tg_trigger;
	Relation	rel = td->tg_relation;
	int			nargs_fixed;

	if (tg->tgnargs < 2)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg_plural("trigger \"%s\" passes %d argument to enforce_refund_policy()",
							   "trigger \"%s\" passes %d arguments to enforce_refund_policy()",
							   tg->tgnargs, tg->tgname, tg->tgnargs),
				 errhint("Pass the purchases table, the column(s) of the refund requests that reference it, optionally the key column(s) of the purchases table, then options.")));
	bind_foreign_key(tg, rel, info, &nargs_fixed);
	info->lock_relid = info->lookup_relid = info->fk.pkrel;
	info->lockmode = RowShareLock;
	info->lookup_owner = rr_relation_owner(info->fk.pkrel);
	info->purchases_name = rr_table_name(info->fk.pkrel);

	/*
	 * Like a foreign key: the request table's owner must be allowed to read
	 * the purchases and to lock them (REFERENCES), since the lookup runs as
	 * the purchases table's owner.
	 */
	if (pg_class_aclcheck(info->fk.pkrel, rel->rd_rel->relowner, ACL_SELECT) != ACLCHECK_OK ||
		pg_class_aclcheck(info->fk.pkrel, rel->rd_rel->relowner, ACL_REFERENCES) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", rr_table_name(info->fk.pkrel)),
				 errdetail("The owner of refund request table \"%s\" needs SELECT and REFERENCES on purchases table \"%s\".",
						   rr_table_name(RelationGetRelid(rel)), info->purchases_name)));

	request_trigger_options(tg, nargs_fixed, info);
	request_column(info, rel, REQ_REQUESTED_AT, true, is_timestamptz_type,
				   "timestamp with time zone");
	request_column(info, rel, REQ_KIND, false, rr_is_label_type,
				   "refund_rules.refund_kind (or another enum), text or character varying");
	request_column(info, rel, REQ_REQUESTED_BY_ROLE, !info->session_requester, rr_is_label_type,
				   "text, character varying or an enum");
	request_lookups(info);
}

/* On UPDATE, whether any column the check reads has changed. */
static bool
request_changed(const RRTriggerInfo *info, TupleDesc tupdesc, HeapTuple oldtup, HeapTuple newtup)
{
	int			c;

	for (c = 0; c < info->fk.nkeys; c++)
		if (rr_column_changed(tupdesc, info->fk.fk_attnums[c], oldtup, newtup))
			return true;
	for (c = 0; c < NUM_REQUEST_COLUMNS; c++)
		if (info->req_attnum[c] != InvalidAttrNumber &&
			rr_column_changed(tupdesc, info->req_attnum[c], oldtup, newtup))
			return true;
	return false;
}

#if PG_VERSION_NUM < 160000
/* Whether a role inherits the privileges of the roles it is a member of (15). */
bool
rr_role_inherits(Oid roleid)
{
	HeapTuple	tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(roleid));
	bool		result = false;

	if (HeapTupleIsValid(tup))
	{
		result = ((Form_pg_authid) GETSTRUCT(tup))->rolinherit;
		ReleaseSysCache(tup);
	}
	return result;
}
#endif

/*
 * Whether role member can act as role: it has the role's privileges
 * through memberships it inherits, as has_privs_of_role() decides, except
 * that a superuser is not every role: it counts only through memberships
 * of its own.  A membership without INHERIT (16 on: granted WITH INHERIT
 * FALSE; 15: a member role with NOINHERIT) does not count, whatever SET
 * allows, because the session does not hold that role's privileges.
 */
static bool
acts_as_role(Oid member, Oid role)
{
	List	   *pending = list_make1_oid(member);
	List	   *seen = NIL;
	bool		found = false;

	while (pending != NIL && !found)
	{
		Oid			current = linitial_oid(pending);
		CatCList   *grants;
		int			i;

		pending = list_delete_first(pending);
		if (current == role)
			found = true;
		if (found || list_member_oid(seen, current))
			continue;
		seen = lappend_oid(seen, current);
		if (!RR_ROLE_INHERITS(current))
			continue;
		grants = SearchSysCacheList1(AUTHMEMMEMROLE, ObjectIdGetDatum(current));
		for (i = 0; i < grants->n_members; i++)
		{
			Form_pg_auth_members form = (Form_pg_auth_members) GETSTRUCT(&grants->members[i]->tuple);

			if (RR_GRANT_INHERITS(form))
				pending = lappend_oid(pending, form->roleid);
		}
		ReleaseSysCacheList(grants);
	}
	list_free(pending);
	list_free(seen);
	return found;
}

/*
 * The requester's reasons.  With the session as the requester, the roles
 * the current user acts as decide; a requested_by_role column, when there
 * is one, must name the capacity used, so that the row records only a
 * role the person holds.  Otherwise the column decides, as the
 * application asserts it.  Judging a recorded request (session_known
 * false), the session that wrote it is gone: only the column is judged.
 */
static uint32
requester_reasons(const RRTriggerInfo *info, const Datum *value, const bool *isnull,
				  bool session_known)
{
	bool		has_column = info->req_attnum[REQ_REQUESTED_BY_ROLE] != InvalidAttrNumber;
	char	   *label = NULL;
	int			r;

	if (has_column && isnull[REQ_REQUESTED_BY_ROLE])
		return REASON_BIT(REASON_MISSING_REQUESTED_BY_ROLE);
	if (has_column)
		label = rr_label_value(value[REQ_REQUESTED_BY_ROLE], info->req_type[REQ_REQUESTED_BY_ROLE]);
	for (r = 0; r < NUM_AUTHORIZED; r++)
	{
		if (label && strcmp(label, authorized_roles[r]) != 0)
			continue;
		if (!info->session_requester || !session_known ||
			(OidIsValid(info->role[r]) && acts_as_role(GetUserId(), info->role[r])))
			return 0;
	}
	return REASON_BIT(REASON_REQUESTER_NOT_AUTHORIZED);
}

/*
 * The refund kind a request asks for; *known is false when the column is
 * NULL.  A label other than the two is bad data.
 */
RefundKind
rr_request_kind(const RRTriggerInfo *info, const Datum *value, const bool *isnull, bool *known)
{
	char	   *label;

	*known = true;
	if (info->req_attnum[REQ_KIND] == InvalidAttrNumber)
		return KIND_PURCHASE;
	*known = !isnull[REQ_KIND];
	if (!*known)
		return KIND_PURCHASE;
	label = rr_label_value(value[REQ_KIND], info->req_type[REQ_KIND]);
	if (strcmp(label, rr_kind_labels[KIND_TAX]) == 0)
		return KIND_TAX;
	if (strcmp(label, rr_kind_labels[KIND_PURCHASE]) != 0)
		rr_report_invalid_kind(label);
	return KIND_PURCHASE;
}

/*
 * Fetch the purchase of a key (the request's values, the foreign key's
 * types), locked FOR SHARE unless only asked about; false when there is
 * none.  The result is read by its own descriptor.  A stored value that
 * is bad data is shown only to who may read the purchase.
 */
bool
rr_fetch_purchase(RRTriggerInfo *info, Datum *key, RefundKind kind, bool lock, bool shown,
				  Purchase *p)
{
	PurchaseReader reader;
	bool		found;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rr_run_lookup(info, lock ? RR_LOOKUP_LOCKED : RR_LOOKUP_ASK, key, 1, false);
	found = (SPI_processed > 0);
	if (found)
	{
		memset(&reader, 0, sizeof(reader));
		rr_reader_init_row(&reader, &info->ext, SPI_tuptable->tupdesc, RECORDOID, -1,
						   psprintf("purchases table \"%s\"", info->purchases_name),
						   CurrentMemoryContext);
		reader.values_hidden = !shown;
		rr_reader_require(&reader, rr_fields_for_kind(kind));
		rr_read_purchase_tuple(&reader, &info->ext, SPI_tuptable->vals[0],
							   rr_fields_for_kind(kind), p);
	}
	SPI_finish();
	return found;
}

/* The state of an enforce_refund_policy() trigger, worked out or kept. */
RRTriggerInfo *
rr_request_state(TriggerData *td)
{
	return rr_trigger_info(td, build_request_trigger);
}

/*
 * The reasons of a recorded request (value and isnull: its columns, in
 * the order of RequestColumn; kind: rr_request_kind()'s) with its purchase
 * p, judged at the moment it records, as forbidden_refunds() does.  The
 * moment guard does not apply: the database's clock when the row was
 * written is not known.
 */
uint32
rr_recorded_request_reasons(const RRTriggerInfo *info, const Datum *value, const bool *isnull,
							const Purchase *p, RefundKind kind, bool kind_known)
{
	uint32		reasons;

	if (!kind_known)
		reasons = REASON_BIT(REASON_MISSING_KIND);
	else
		reasons = rr_refund_reasons(p, isnull[REQ_REQUESTED_AT] ? 0 : DatumGetTimestampTz(value[REQ_REQUESTED_AT]),
									!isnull[REQ_REQUESTED_AT], kind);
	return reasons | requester_reasons(info, value, isnull, false);
}

/* What the request trigger decided about one row. */
typedef struct RequestJudgement
{
	RRTriggerInfo *info;
	bool		judged;			/* false: an UPDATE that changes nothing
								 * checked */
	Refusal		f;				/* f.reasons == 0: allowed */
	Purchase	p;
	Datum		key[INDEX_MAX_KEYS];	/* the key as the request wrote it */
} RequestJudgement;

/* What a refusal of this trigger names: the purchase, the table, the trigger. */
static void
refusal_context(RequestJudgement *j, TriggerData *td)
{
	j->f.p = &j->p;
	j->f.purchases_name = j->info->purchases_name;
	j->f.moment_column = request_column_names[REQ_REQUESTED_AT];
	j->f.lag = j->info->max_lag;
	j->f.relation = td->tg_relation;
	j->f.constraint_name = j->info->tgname;
	j->f.dry_run = j->info->dry_run;
}

/*
 * Judge the stored row of a request trigger's event: everything but
 * raising the refusal.  The purchase is judged at the database's clock
 * when the row is written; the trigger locks it FOR SHARE.  Asking (the
 * pre-check) does not lock, and judges a request made now, whatever moment
 * the row says.  Missing purchases and bad data raise here.
 */
static void
judge_request(TriggerData *td, bool asking, RequestJudgement *j)
{
	bool		is_update = TRIGGER_FIRED_BY_UPDATE(td->tg_event);
	TupleDesc	tupdesc = RelationGetDescr(td->tg_relation);
	HeapTuple	newtup = rr_stored_row(td);
	RRTriggerInfo *info;
	Datum		value[NUM_REQUEST_COLUMNS];
	bool		isnull[NUM_REQUEST_COLUMNS];
	bool		kind_known;
	RefundKind	kind;
	bool		moment_written;
	int			c;

	memset(j, 0, sizeof(RequestJudgement));
	info = j->info = rr_trigger_info(td, build_request_trigger);
	if (is_update && !request_changed(info, tupdesc, td->tg_trigtuple, newtup))
		return;
	j->judged = true;

	for (c = 0; c < NUM_REQUEST_COLUMNS; c++)
	{
		value[c] = (Datum) 0;
		isnull[c] = true;
		if (info->req_attnum[c] != InvalidAttrNumber)
			value[c] = heap_getattr(newtup, info->req_attnum[c], tupdesc, &isnull[c]);
	}
	moment_written = !is_update ||
		rr_column_changed(tupdesc, info->req_attnum[REQ_REQUESTED_AT], td->tg_trigtuple, newtup);
	if (asking)
	{
		/*
		 * a request made now: what DEFAULT now() writes, whatever the row
		 * says
		 */
		value[REQ_REQUESTED_AT] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
		isnull[REQ_REQUESTED_AT] = false;
		moment_written = true;
	}
	kind = rr_request_kind(info, value, isnull, &kind_known);

	c = rr_read_key(info, false, newtup, tupdesc, j->key);
	if (c >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 errmsg("refund request does not name a purchase"),
				 errdetail("Column \"%s\" is NULL.",
						   NameStr(TupleDescAttr(tupdesc, info->fk.fk_attnums[c] - 1)->attname)),
				 errtableconstraint(td->tg_relation, info->tgname)));

	j->f.purchase_shown = rr_columns_readable(info->fk.pkrel, NUM_FIELDS, info->field_attnum);
	if (!rr_fetch_purchase(info, j->key, kind, !asking, j->f.purchase_shown, &j->p))
	{
		char	   *key = rr_key_text(info->fk.nkeys, j->key, info->fk_types);

		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 errmsg("purchase \"%s\" does not exist", key),
				 errdetail("Key (%s)=(%s) is not present in purchases table \"%s\".",
						   info->key_names, key, info->purchases_name),
				 errtableconstraint(td->tg_relation, info->tgname)));
	}
	rr_recheck_state(info, "enforce_refund_policy()");

	/* The moment is the database's, read once the purchase is locked. */
	if (!kind_known)
		j->f.reasons = REASON_BIT(REASON_MISSING_KIND);
	else
		j->f.reasons = rr_written_refund_reasons(&j->p, DatumGetTimestampTz(value[REQ_REQUESTED_AT]),
												 !isnull[REQ_REQUESTED_AT], moment_written,
												 info->max_lag, kind);
	j->f.reasons |= requester_reasons(info, value, isnull, true);
	j->f.kind_known = kind_known;
	j->f.kind = kind;
	refusal_context(j, td);
}

/*
 * enforce_refund_policy() is an AFTER INSERT OR UPDATE row trigger for a
 * table of refund requests.  Arguments: the purchases table, the column(s)
 * of the request that reference it, the purchases' key column(s) (default:
 * those of the foreign key), then options: requester=column|session,
 * mpn_partner_admin_role=ROLE, account_admin_role=ROLE, max_lag=INTERVAL,
 * mode=enforce|dry_run.  It raises check_violation when the refund is not
 * allowed (a warning with mode=dry_run).
 */
PG_FUNCTION_INFO_V1(enforce_refund_policy);
Datum
enforce_refund_policy(PG_FUNCTION_ARGS)
{
	TriggerData *td = rr_check_trigger(fcinfo, "enforce_refund_policy()");
	RequestJudgement j;

	judge_request(td, false, &j);
	if (j.judged && j.f.reasons)
	{
		j.f.purchase_key = rr_key_text(j.info->fk.nkeys, j.key, j.info->fk_types);
		rr_report_refused(&j.f);
	}
	return PointerGetDatum(NULL);
}

/*
 * refund_request_status(request anyelement) returns (allowed boolean,
 * reasons text[], deadline timestamptz): what the enforce_refund_policy()
 * trigger of the request's table would decide for inserting this row now,
 * without inserting it or locking the purchase.  The row's requested_at is
 * ignored: the request is one made now.  The caller must be allowed to
 * insert into the table; the purchase's own reasons and its deadline are
 * shown as in the trigger's refusals.  Other errors are the trigger's.
 * Writes nothing: works in a read-only transaction and on a standby.
 */
PG_FUNCTION_INFO_V1(refund_request_status);
Datum
refund_request_status(PG_FUNCTION_ARGS)
{
	Oid			rowtype = get_fn_expr_argtype(fcinfo->flinfo, 0);
	Oid			relid = OidIsValid(rowtype) ? get_typ_typrelid(getBaseType(rowtype)) : InvalidOid;
	char		relkind = OidIsValid(relid) ? get_rel_relkind(relid) : '\0';
	Relation	rel;
	TriggerData td;
	HeapTupleData tuple;
	RequestJudgement j;
	TupleDesc	result_desc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	TimestampTz deadline;

	if ((relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE) ||
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
				 errmsg("permission denied for table %s", rr_table_name(relid)),
				 errdetail("Asking whether a refund request would be accepted needs INSERT on its table.")));
	if (get_call_result_type(fcinfo, NULL, &result_desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	rel = table_open(relid, AccessShareLock);
	memset(&td, 0, sizeof(td));
	td.type = T_TriggerData;
	td.tg_event = TRIGGER_EVENT_INSERT | TRIGGER_EVENT_ROW;
	td.tg_relation = rel;
	td.tg_trigger = rr_firing_trigger(rel, get_func_namespace(fcinfo->flinfo->fn_oid),
									  "enforce_refund_policy");
	if (td.tg_trigger == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("table \"%s\" has no enforce_refund_policy() trigger that fires",
						rr_table_name(RelationGetRelid(rel))),
				 errhint("refund_request_status() answers for a table whose refund requests the trigger checks.")));
	tuple.t_data = PG_GETARG_HEAPTUPLEHEADER(0);
	tuple.t_len = HeapTupleHeaderGetDatumLength(tuple.t_data);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = relid;
	td.tg_trigtuple = &tuple;

	judge_request(&td, true, &j);
	values[0] = BoolGetDatum(j.f.reasons == 0);
	values[1] = rr_reasons_array(rr_refusal_shown(&j.f), NULL, NULL);
	if (rr_refusal_deadline(&j.f, &deadline))
		values[2] = TimestampTzGetDatum(deadline);
	else
		nulls[2] = true;
	table_close(rel, AccessShareLock);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(result_desc), values, nulls)));
}
