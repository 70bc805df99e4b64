/*-------------------------------------------------------------------------
 *
 * support.c
 *		Planner support: the whole-row rewrite into the column form, the
 *		window as an index range on purchased_at, and selectivity.
 *
 * refund_eligible(p, as_of) on a table's whole row (or on a typed ROW())
 * makes PostgreSQL build the whole row for every row scanned.  The
 * simplification rewrites it into the column form on the needed columns
 * only, and adds the window as a plain range on purchased_at,
 *
 *		_refund_eligible(offer, purchased_at, ..., as_of)
 *		AND purchased_at <= as_of AND purchased_at >= refund_window_start(as_of)
 *
 * which btree and BRIN indexes on purchased_at can use.  The range is
 * implied by the call (it is false only when the call is false, NULL only
 * when the call is NULL or false), so the result is the same in
 * three-valued logic, under NOT and in outer joins.
 *
 * The column Vars must mean what the whole-row Var meant wherever the
 * expression ends up: they carry its varnullingrels (the outer joins that
 * can null it, PostgreSQL 16 on) and its varreturningtype (old or new in
 * RETURNING, 18 on).  Grouping sets null a grouped whole row above the
 * grouping step without nulling its columns, so a row that grouping sets
 * can null is left alone.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_am.h"
#include "catalog/pg_proc.h"
#include "commands/defrem.h"
#include "nodes/makefuncs.h"
#include "nodes/supportnodes.h"
#include "optimizer/clauses.h"
#include "optimizer/optimizer.h"
#include "parser/parsetree.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/selfuncs.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "refund_rules.h"

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


static const Rewrite rewrites[NUM_REWRITES] = {
	{"refund_eligible", "_refund_eligible", "refund_eligible_columns", FIELDS_REFUND, false, KIND_PURCHASE},
	{"tax_refund_eligible", "_tax_refund_eligible", "tax_refund_eligible_columns", FIELDS_TAX, false, KIND_TAX},
	{"refund_ineligibility_reasons", "_refund_ineligibility_reasons", "refund_ineligibility_reasons_columns", FIELDS_ALL, true, -1},
	{"refund_status", "_refund_status", "refund_status_columns", FIELDS_ALL, false, -1},
};


/*
 * The extension's catalog entries the planner support uses, looked up once
 * per backend and forgotten whenever pg_proc, pg_type, pg_enum or
 * pg_namespace change (DROP and CREATE EXTENSION give new OIDs).
 */
typedef struct SupportCatalog
{
	bool		valid;
	ExtensionTypes ext;
	Oid			row_form[NUM_REWRITES];
	Oid			column_form[NUM_REWRITES];
	Oid			window_start;	/* refund_window_start(timestamptz, refund_kind) */
	Oid			tstz_le;		/* timestamptz <= timestamptz, and its function */
	Oid			tstz_le_func;
	Oid			tstz_ge;		/* timestamptz >= timestamptz, and its function */
	Oid			tstz_ge_func;
} SupportCatalog;


static SupportCatalog support_catalog;
static uint64 support_catalog_generation = 0;	/* counts invalidations */
static bool support_callbacks_registered = false;


static void
support_catalog_changed(Datum arg pg_attribute_unused(), int cacheid pg_attribute_unused(),
						uint32 hashvalue pg_attribute_unused())
{
	support_catalog.valid = false;
	support_catalog_generation++;
}


/* A function of the extension by name and argument types, or InvalidOid. */
static Oid
extension_function(Oid nsp, const char *name, int nargs, const Oid *argtypes)
{
	return GetSysCacheOid3(PROCNAMEARGSNSP, Anum_pg_proc_oid,
						   CStringGetDatum(name),
						   PointerGetDatum(buildoidvector(argtypes, nargs)),
						   ObjectIdGetDatum(nsp));
}


/* Whether a C function's catalog entry names this symbol of the library. */
static bool
function_is_symbol(Oid funcid, const char *symbol)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	bool		isnull;
	Datum		prosrc;
	bool		result;

	if (!HeapTupleIsValid(tup))
		return false;
	prosrc = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_prosrc, &isnull);
	result = !isnull && strcmp(TextDatumGetCString(prosrc), symbol) == 0;
	ReleaseSysCache(tup);
	return result;
}


static Oid
timestamptz_operator(int strategy)
{
	Oid			opfamily = get_opclass_family(GetDefaultOpClass(TIMESTAMPTZOID, BTREE_AM_OID));
	Oid			opno = get_opfamily_member(opfamily, TIMESTAMPTZOID, TIMESTAMPTZOID, strategy);

	if (!OidIsValid(opno))
		elog(ERROR, "no timestamptz comparison for strategy %d", strategy);
	return opno;
}


/*
 * The catalog entries, from the schema of the function being simplified
 * (every function that names this support function is the extension's).
 * No privilege checks: planning a query must not depend on who plans it
 * (index predicates and constraints are simplified by whoever comes first).
 * NULL while a function is missing (in the middle of CREATE EXTENSION) or
 * is not this library's (an older version's script, before ALTER EXTENSION
 * UPDATE): then nothing is rewritten, and the calls work as they are.
 */
static const SupportCatalog *
get_support_catalog(Oid funcid)
{
	SupportCatalog cat;
	uint64		generation;
	Oid			nsp;
	Oid			argtypes[FUNC_MAX_ARGS];
	int			r;
	int			i;

	if (support_catalog.valid)
		return &support_catalog;
	if (!support_callbacks_registered)
	{
		CacheRegisterSyscacheCallback(PROCOID, support_catalog_changed, (Datum) 0);
		CacheRegisterSyscacheCallback(TYPEOID, support_catalog_changed, (Datum) 0);
		CacheRegisterSyscacheCallback(ENUMOID, support_catalog_changed, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, support_catalog_changed, (Datum) 0);
		support_callbacks_registered = true;
	}

	generation = support_catalog_generation;
	memset(&cat, 0, sizeof(cat));
	nsp = get_func_namespace(funcid);
	if (!OidIsValid(nsp))
		return NULL;
	rr_lookup_extension_types(&cat.ext, nsp);
	for (r = 0; r < NUM_REWRITES; r++)
	{
		const Rewrite *rw = &rewrites[r];
		int			ncols = pg_popcount32(rw->layout);

		argtypes[0] = RECORDOID;
		argtypes[1] = TIMESTAMPTZOID;
		argtypes[2] = cat.ext.refund_kind;
		cat.row_form[r] = extension_function(nsp, rw->row_form, rw->takes_kind ? 3 : 2, argtypes);

		for (i = 0; i < ncols; i++)
			argtypes[i] = ANYOID;
		argtypes[ncols] = TIMESTAMPTZOID;
		argtypes[ncols + 1] = cat.ext.refund_kind;
		cat.column_form[r] = extension_function(nsp, rw->column_form,
												ncols + (rw->takes_kind ? 2 : 1), argtypes);
		if (!OidIsValid(cat.row_form[r]) || !OidIsValid(cat.column_form[r]) ||
			!function_is_symbol(cat.column_form[r], rw->symbol))
			return NULL;
	}
	argtypes[0] = TIMESTAMPTZOID;
	argtypes[1] = cat.ext.refund_kind;
	cat.window_start = extension_function(nsp, "refund_window_start", 2, argtypes);
	if (!OidIsValid(cat.window_start))
		return NULL;
	cat.tstz_le = timestamptz_operator(BTLessEqualStrategyNumber);
	cat.tstz_le_func = get_opcode(cat.tstz_le);
	cat.tstz_ge = timestamptz_operator(BTGreaterEqualStrategyNumber);
	cat.tstz_ge_func = get_opcode(cat.tstz_ge);

	/*
	 * Good for this call either way; kept for the next ones only when no
	 * invalidation arrived during the lookups.
	 */
	support_catalog = cat;
	support_catalog.valid = (generation == support_catalog_generation);
	return &support_catalog;
}


/* The rewrite whose row form funcid is, or -1. */
static int
rewrite_of(const SupportCatalog *cat, Oid funcid)
{
	int			r;

	for (r = 0; r < NUM_REWRITES; r++)
		if (cat->row_form[r] == funcid)
			return r;
	return -1;
}


#if PG_VERSION_NUM >= 180000
/*
 * PostgreSQL 18 on: whether an expression holds a Var (or placeholder)
 * marked as nulled by the grouping step (the grouping RTE in its nulling
 * relids).
 */
static bool
nulled_by_grouping_walker(Node *node, void *context)
{
	PlannerInfo *root = (PlannerInfo *) context;

	if (node == NULL)
		return false;
	if (IsA(node, Var))
		return bms_is_member(root->group_rtindex, ((Var *) node)->varnullingrels);
	if (IsA(node, PlaceHolderVar) &&
		bms_is_member(root->group_rtindex, ((PlaceHolderVar *) node)->phnullingrels))
		return true;
	return expression_tree_walker(node, nulled_by_grouping_walker, context);
}
#endif


/*
 * Whether grouping sets may null the row argument above the grouping step,
 * where column Vars would keep the values of some row of the group.
 */
static bool
row_nullable_by_grouping(PlannerInfo *root, Node *row)
{
	if (root == NULL || root->parse->groupingSets == NIL)
		return false;
#if PG_VERSION_NUM >= 180000

	/*
	 * From 18 on, the target list and HAVING are simplified while a grouped
	 * row is still a Var of the grouping RTE, not of a relation (so
	 * row_columns leaves it alone); they are replaced by the grouping
	 * expressions afterwards, marked with the grouping RTE where grouping
	 * sets null them.  A row so marked is refused all the same.
	 */
	if (root->group_rtindex <= 0)
		return false;
	return nulled_by_grouping_walker(row, root);
#else

	/*
	 * Before 18 nothing marks what grouping sets null: refuse when the row
	 * is a grouping expression (the whole-row Var compared by relation
	 * alone), wherever in the query the call is.  A row that is not grouped
	 * is only allowed above the grouping step when it depends on columns
	 * grouped in every set, which are never nulled.
	 */
	{
		ListCell   *lc;

		foreach(lc, root->parse->groupClause)
		{
			Node	   *expr = get_sortgroupclause_expr((SortGroupClause *) lfirst(lc),
														root->parse->targetList);

			if (IsA(row, Var) && IsA(expr, Var))
			{
				if (((Var *) expr)->varno == ((Var *) row)->varno &&
					((Var *) expr)->varattno == 0 && ((Var *) expr)->varlevelsup == 0)
					return true;
			}
			else if (equal(expr, row))
				return true;
		}
		return false;
	}
#endif
}


/*
 * The expressions of the needed columns of a row argument: a whole-row Var
 * of a plain relation of this query level, or a ROW() of a named type.
 * False when it cannot be proven safe; then the call stays as it is.
 */
static bool
row_columns(PlannerInfo *root, Node *row, uint32 layout, const ExtensionTypes *ext,
			List **columns, Node **purchased_at)
{
	Var		   *var = NULL;
	RowExpr    *rowexpr = NULL;
	Oid			rowtype;
	TupleDesc	tupdesc;
	bool		ok = true;
	int			f;

	if (IsA(row, Var))
	{
		var = (Var *) row;
		if (var->varattno != 0 || var->varlevelsup != 0 ||
			!OidIsValid(get_typ_typrelid(var->vartype)))
			return false;

		/*
		 * In a query, only a plain relation's row.  Without a query (index
		 * predicates and expressions, CHECK constraints, trigger WHEN), the
		 * Var is the row of the table itself.  Either way the row type's
		 * attribute numbers are the relation's column numbers.
		 */
		if (root != NULL)
		{
			RangeTblEntry *rte;

			if (var->varno < 1 || var->varno > list_length(root->parse->rtable))
				return false;
			rte = rt_fetch(var->varno, root->parse->rtable);
			if (rte->rtekind != RTE_RELATION || get_rel_type_id(rte->relid) != var->vartype)
				return false;
		}
		rowtype = var->vartype;
	}
	else if (IsA(row, RowExpr))
	{
		rowexpr = (RowExpr *) row;
		if (rowexpr->row_typeid == RECORDOID)
			return false;
		rowtype = rowexpr->row_typeid;
	}
	else
		return false;

	if (row_nullable_by_grouping(root, row))
		return false;

	tupdesc = lookup_rowtype_tupdesc(rowtype, -1);
	if (rowexpr && list_length(rowexpr->args) != tupdesc->natts)
		ok = false;
	for (f = 0; ok && f < NUM_FIELDS; f++)
	{
		Form_pg_attribute att;
		Node	   *col;

		if (!(layout & FIELD_BIT(f)))
			continue;
		att = rr_find_field_column(tupdesc, (PurchaseField) f);
		if (att == NULL || rr_value_kind_for(ext, (PurchaseField) f, att->atttypid) == VALUE_UNUSABLE)
		{
			ok = false;			/* the call raises the error at run time */
			break;
		}
		if (var)
		{
			Var		   *colvar;

#ifdef ATTRIBUTE_GENERATED_VIRTUAL

			/*
			 * PostgreSQL 18's virtual generated columns store nothing: a Var
			 * made here, after the rewriter expanded them, would read NULL.
			 */
			if (att->attgenerated == ATTRIBUTE_GENERATED_VIRTUAL)
			{
				ok = false;
				break;
			}
#endif
			colvar = makeVar(var->varno, att->attnum, att->atttypid,
							 att->atttypmod, att->attcollation, 0);
#if PG_VERSION_NUM >= 160000
			/* nulled by the same outer joins as the row */
			colvar->varnullingrels = bms_copy(var->varnullingrels);
#endif
#if PG_VERSION_NUM >= 180000
			/* the old or the new row in RETURNING, as the row */
			colvar->varreturningtype = var->varreturningtype;
#endif
			colvar->location = var->location;
			col = (Node *) colvar;
		}
		else
			col = copyObject(list_nth(rowexpr->args, att->attnum - 1));
		*columns = lappend(*columns, col);
		if (f == FIELD_PURCHASED_AT)
			*purchased_at = col;
	}
	ReleaseTupleDesc(tupdesc);
	return ok;
}


static Expr *
timestamptz_comparison(Oid opno, Oid opfuncid, Node *left, Node *right)
{
	OpExpr	   *op;

	op = (OpExpr *) make_opclause(opno, BOOLOID, false, (Expr *) copyObject(left),
								  (Expr *) copyObject(right), InvalidOid, InvalidOid);
	op->opfuncid = opfuncid;
	return (Expr *) op;
}


/* The range on purchased_at that the window of this kind implies. */
static List *
window_range(const SupportCatalog *cat, PlannerInfo *root, Node *purchased_at, Node *as_of,
			 RefundKind kind)
{
	Const	   *kindconst = makeConst(cat->ext.refund_kind, -1, InvalidOid, sizeof(Oid),
									  ObjectIdGetDatum(cat->ext.kind_label[kind]), false, true);
	Node	   *as_of_copy = copyObject(as_of);
	Node	   *start;
	Expr	   *upper;
	Expr	   *lower;

	start = (Node *) makeFuncExpr(cat->window_start, TIMESTAMPTZOID,
								  lappend(lappend(NIL, as_of_copy), kindconst),
								  InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
	start = eval_const_expressions(root, start);	/* folds a constant as_of */
	upper = timestamptz_comparison(cat->tstz_le, cat->tstz_le_func, purchased_at, as_of);
	lower = timestamptz_comparison(cat->tstz_ge, cat->tstz_ge_func, purchased_at, start);
	return lappend(lappend(NIL, upper), lower);
}


static Node *
simplify_call(SupportRequestSimplify *req)
{
	FuncExpr   *fexpr = req->fcall;
	const SupportCatalog *cat = get_support_catalog(fexpr->funcid);
	const Rewrite *rw;
	int			r;
	List	   *args = NIL;
	Node	   *purchased_at = NULL;
	Node	   *as_of;
	FuncExpr   *call;

	if (cat == NULL || (r = rewrite_of(cat, fexpr->funcid)) < 0)
		return NULL;
	rw = &rewrites[r];
	if (list_length(fexpr->args) != (rw->takes_kind ? 3 : 2))
		return NULL;
	if (contain_volatile_functions((Node *) fexpr->args))
		return NULL;

	if (!row_columns(req->root, linitial(fexpr->args), rw->layout, &cat->ext, &args, &purchased_at))
		return NULL;

	as_of = lsecond(fexpr->args);
	args = lappend(args, copyObject(as_of));
	if (rw->takes_kind)
		args = lappend(args, copyObject(lthird(fexpr->args)));

	call = makeFuncExpr(cat->column_form[r], fexpr->funcresulttype, args,
						fexpr->funccollid, fexpr->inputcollid, COERCE_EXPLICIT_CALL);
	call->location = fexpr->location;

	/*
	 * The range only where an index could use it: a timestamptz column, and
	 * an as_of without a subquery (it is evaluated three times then).  The
	 * call comes first, so where the AND is evaluated as written (a select
	 * list) every row is read and checked as without the rewrite; in WHERE,
	 * the planner orders the conditions by cost and the range goes first.
	 */
	if (rw->window_kind >= 0 && purchased_at && IsA(purchased_at, Var) &&
		((Var *) purchased_at)->vartype == TIMESTAMPTZOID && !contain_subplans(as_of))
		return (Node *) make_andclause(list_concat(list_make1(call),
												   window_range(cat, req->root, purchased_at,
																as_of, (RefundKind) rw->window_kind)));
	return (Node *) call;
}


/*
 * Selectivity of the column forms, beside the range the rewrite adds: the
 * share of rows whose flags allow the refund, from the columns' statistics.
 */
static bool
estimate_selectivity(SupportRequestSelectivity *req)
{
	const SupportCatalog *cat;
	List	   *conditions = NIL;
	Selectivity s = 1.0;
	ListCell   *lc;

	if (req->is_join || (cat = get_support_catalog(req->funcid)) == NULL)
		return false;
	if (req->funcid == cat->column_form[REWRITE_REFUND_ELIGIBLE] && list_length(req->args) == 6)
	{
		/* neither benefits_activated nor product_keys_viewed */
		conditions = lappend(conditions, make_notclause(list_nth(req->args, 2)));
		conditions = lappend(conditions, make_notclause(list_nth(req->args, 3)));
	}
	else if (req->funcid == cat->column_form[REWRITE_TAX_REFUND_ELIGIBLE] &&
			 list_length(req->args) == 3)
		conditions = lappend(conditions, list_nth(req->args, 1));	/* tax_exempt */
	else
		return false;

	foreach(lc, conditions)
		s *= clause_selectivity(req->root, (Node *) lfirst(lc), req->varRelid,
								req->jointype, req->sjinfo);
	CLAMP_PROBABILITY(s);
	req->selectivity = s;
	return true;
}


/*
 * refund_rules_support(internal) returns internal: the planner support
 * function of the query functions (simplification and selectivity).
 */
PG_FUNCTION_INFO_V1(refund_rules_support);
Datum
refund_rules_support(PG_FUNCTION_ARGS)
{
	Node	   *rawreq = (Node *) PG_GETARG_POINTER(0);
	Node	   *ret = NULL;

	if (IsA(rawreq, SupportRequestSimplify))
		ret = simplify_call((SupportRequestSimplify *) rawreq);
	else if (IsA(rawreq, SupportRequestSelectivity))
	{
		if (estimate_selectivity((SupportRequestSelectivity *) rawreq))
			ret = rawreq;
	}
	PG_RETURN_POINTER(ret);
}

