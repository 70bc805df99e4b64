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
 * three-valued logic, under NOT and in outer joins.  Where the columns are
 * the extension's offer enum and booleans and the moment is never NULL,
 * refund_eligible() becomes the plain conditions of a hand-written
 * predicate instead (plain_refund_eligible): through an index, only the
 * flags are left to check on each row.
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

#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/supportnodes.h"
#include "optimizer/clauses.h"
#include "optimizer/optimizer.h"
#include "parser/parsetree.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/selfuncs.h"
#include "utils/typcache.h"

#include "refund_rules.h"

/* The rewrite whose row form funcid is, or -1. */
static int
rewrite_of(const RRCatalog *cat, Oid funcid)
{
	int			r;

	for (r = 0; r < NUM_REWRITES; r++)
		if (cat->row_form[r] == funcid)
			return r;
	return -1;
}

#if RR_HAS_GROUP_RTE
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
#if RR_HAS_GROUP_RTE

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
	 * Before 18 nothing marks what grouping sets null: refuse when the row is
	 * a grouping expression (the whole-row Var compared by relation alone),
	 * wherever in the query the call is.  A row that is not grouped is only
	 * allowed above the grouping step when it depends on columns grouped in
	 * every set, which are never nulled.
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
row_source(PlannerInfo *root, Node *row, Var **var, RowExpr **rowexpr, Oid *rowtype)
{
	*var = NULL;
	*rowexpr = NULL;
	if (IsA(row, Var))
	{
		Var		   *v = (Var *) row;

		if (v->varattno != 0 || v->varlevelsup != 0 ||
			!OidIsValid(get_typ_typrelid(v->vartype)))
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

			if (v->varno < 1 || v->varno > list_length(root->parse->rtable))
				return false;
			rte = rt_fetch(v->varno, root->parse->rtable);
			if (rte->rtekind != RTE_RELATION || get_rel_type_id(rte->relid) != v->vartype)
				return false;
		}
		*var = v;
		*rowtype = v->vartype;
	}
	else if (IsA(row, RowExpr))
	{
		*rowexpr = (RowExpr *) row;
		if ((*rowexpr)->row_typeid == RECORDOID)
			return false;
		*rowtype = (*rowexpr)->row_typeid;
	}
	else
		return false;
	return !row_nullable_by_grouping(root, row);
}

/*
 * The expression of one column of the row: a Var that means what the
 * whole-row Var meant (nulled by the same outer joins, the same old or new
 * row in RETURNING), or the RowExpr's argument.  NULL for a column that
 * stores nothing (a virtual generated column, 18 on).
 */
static Node *
row_column(Var *var, RowExpr *rowexpr, Form_pg_attribute att)
{
	Var		   *colvar;

	if (rowexpr)
		return copyObject(list_nth(rowexpr->args, att->attnum - 1));
	if (RR_VIRTUAL_GENERATED(att))
		return NULL;
	colvar = makeVar(var->varno, att->attnum, att->atttypid, att->atttypmod,
					 att->attcollation, 0);
	rr_copy_var_markings(colvar, var);
	colvar->location = var->location;
	return (Node *) colvar;
}

static bool
row_columns(PlannerInfo *root, Node *row, uint32 layout, const ExtensionTypes *ext,
			List **columns, Node **purchased_at)
{
	Var		   *var;
	RowExpr    *rowexpr;
	Oid			rowtype;
	TupleDesc	tupdesc;
	bool		ok = true;
	int			f;

	if (!row_source(root, row, &var, &rowexpr, &rowtype))
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
		/* a column that is missing or unusable: the call raises at run time */
		col = (att == NULL || rr_value_kind_for(ext, (PurchaseField) f, att->atttypid) == VALUE_UNUSABLE)
			? NULL : row_column(var, rowexpr, att);
		if (col == NULL)
		{
			ok = false;
			break;
		}
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
window_range(const RRCatalog *cat, PlannerInfo *root, Node *purchased_at, Node *as_of,
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

/*
 * Whether a moment is never NULL: a constant, or the start of the
 * transaction or statement (now(), CURRENT_TIMESTAMP and the like).
 */
static bool
moment_never_null(Node *as_of)
{
	if (IsA(as_of, Const))
		return !((Const *) as_of)->constisnull;
	if (IsA(as_of, FuncExpr))
	{
		Oid			f = ((FuncExpr *) as_of)->funcid;

		return f == F_NOW || f == F_STATEMENT_TIMESTAMP || f == F_TRANSACTION_TIMESTAMP;
	}
	if (IsA(as_of, SQLValueFunction))
		return ((SQLValueFunction *) as_of)->op == SVFOP_CURRENT_TIMESTAMP ||
			((SQLValueFunction *) as_of)->op == SVFOP_CURRENT_TIMESTAMP_N;
	return false;
}

/*
 * refund_eligible() as plain conditions, the ones a hand-written predicate
 * has, where they say exactly what the call says in three-valued logic:
 *
 *		purchased_at >= refund_window_start(as_of) AND purchased_at <= as_of
 *		AND NOT benefits_activated AND NOT product_keys_viewed
 *		AND NOT (offer = 'silver' AND upgraded_with_gold_discount)
 *
 * The purchase window is exactly that range (rr_window_start_of), a NULL
 * column makes its criterion NULL as missing_<column> makes it undecided,
 * and AND gives false before NULL as the verdict does.  Only for the
 * extension's offer enum and boolean flags (a text offer must be checked
 * for bad labels) and a moment that is never NULL (a NULL as_of gives
 * NULL whatever the flags).  Through an index on purchased_at, only the
 * flags are then left to check on each row.  NULL when it does not apply.
 */
static Node *
plain_refund_eligible(const RRCatalog *cat, List *columns, Node *as_of, List *range)
{
	Node	   *offer = list_nth(columns, FIELD_OFFER);
	Node	   *benefits = list_nth(columns, FIELD_BENEFITS_ACTIVATED);
	Node	   *keys = list_nth(columns, FIELD_PRODUCT_KEYS_VIEWED);
	Node	   *upgraded = list_nth(columns, FIELD_UPGRADED_WITH_GOLD_DISCOUNT);
	Const	   *silver;
	OpExpr	   *is_silver;
	List	   *silver_upgraded;
	List	   *conditions;

	if (exprType(offer) != cat->ext.mpn_offer || exprType(benefits) != BOOLOID ||
		exprType(keys) != BOOLOID || exprType(upgraded) != BOOLOID || !moment_never_null(as_of))
		return NULL;
	silver = makeConst(cat->ext.mpn_offer, -1, InvalidOid, sizeof(Oid),
					   ObjectIdGetDatum(cat->ext.offer_label[OFFER_SILVER]), false, true);
	is_silver = (OpExpr *) make_opclause(cat->enum_eq, BOOLOID, false, (Expr *) copyObject(offer),
										 (Expr *) silver, InvalidOid, InvalidOid);
	is_silver->opfuncid = cat->enum_eq_func;

	/* the lower end first, as a hand-written range is usually written */
	conditions = lappend(lappend(NIL, lsecond(range)), linitial(range));
	conditions = lappend(conditions, make_notclause((Expr *) copyObject(benefits)));
	conditions = lappend(conditions, make_notclause((Expr *) copyObject(keys)));
	silver_upgraded = lappend(lappend(NIL, is_silver), copyObject(upgraded));
	conditions = lappend(conditions, make_notclause(make_andclause(silver_upgraded)));
	return (Node *) make_andclause(conditions);
}

static Node *
simplify_call(SupportRequestSimplify *req)
{
	FuncExpr   *fexpr = req->fcall;
	const RRCatalog *cat = rr_catalog(get_func_namespace(fexpr->funcid));
	const Rewrite *rw;
	int			r;
	List	   *args = NIL;
	List	   *columns;
	Node	   *purchased_at = NULL;
	Node	   *as_of;
	FuncExpr   *call;

	if (!cat->rewrites_ok || (r = rewrite_of(cat, fexpr->funcid)) < 0)
		return NULL;
	rw = &rr_rewrites[r];
	if (list_length(fexpr->args) != (rw->takes_kind ? 3 : 2))
		return NULL;
	if (contain_volatile_functions((Node *) fexpr->args))
		return NULL;

	if (!row_columns(req->root, linitial(fexpr->args), rw->layout, &cat->ext, &args, &purchased_at))
		return NULL;

	as_of = lsecond(fexpr->args);
	columns = list_copy(args);
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
	{
		List	   *range = window_range(cat, req->root, purchased_at, as_of,
										 (RefundKind) rw->window_kind);
		Node	   *plain = (r == REWRITE_REFUND_ELIGIBLE)
		? plain_refund_eligible(cat, columns, as_of, range) : NULL;

		if (plain)
			return plain;
		return (Node *) make_andclause(list_concat(list_make1(call), range));
	}
	return (Node *) call;
}

/*
 * Selectivity of the column forms, beside the range the rewrite adds: the
 * share of rows whose flags allow the refund, from the columns' statistics.
 */
static bool
estimate_selectivity(SupportRequestSelectivity *req)
{
	const RRCatalog *cat;
	List	   *conditions = NIL;
	Selectivity s = 1.0;
	ListCell   *lc;

	if (req->is_join || !(cat = rr_catalog(get_func_namespace(req->funcid)))->rewrites_ok)
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
