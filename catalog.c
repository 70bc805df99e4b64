/*-------------------------------------------------------------------------
 *
 * catalog.c
 *		The extension's own catalog objects in this database: its types and
 *		their labels, the functions the planner support rewrites calls into,
 *		and the operators it uses, in one cache per backend.
 *
 * Everything is looked up in the schema of the extension (the schema of the
 * function being called), never through search_path, and with no
 * privilege check: planning a query must not depend on who plans it.  The
 * cache is forgotten whenever pg_proc, pg_type, pg_enum or pg_namespace
 * change (DROP and CREATE EXTENSION give new OIDs); callers copy what they
 * keep.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_am.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_proc.h"
#include "commands/defrem.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "refund_rules.h"

/* The whole-row functions and the column forms the planner rewrites them into. */
const Rewrite rr_rewrites[NUM_REWRITES] = {
	{"refund_eligible", "_refund_eligible", "refund_eligible_columns", FIELDS_REFUND, false, KIND_PURCHASE},
	{"tax_refund_eligible", "_tax_refund_eligible", "tax_refund_eligible_columns", FIELDS_TAX, false, KIND_TAX},
	{"refund_ineligibility_reasons", "_refund_ineligibility_reasons", "refund_ineligibility_reasons_columns", FIELDS_ALL, true, -1},
	{"refund_status", "_refund_status", "refund_status_columns", FIELDS_ALL, false, -1},
};

static RRCatalog catalog;
static uint64 catalog_generation = 0;	/* counts invalidations */
static bool callbacks_registered = false;

static void
catalog_changed(Datum arg pg_attribute_unused(), int cacheid pg_attribute_unused(),
				uint32 hashvalue pg_attribute_unused())
{
	catalog.valid = false;
	catalog_generation++;
}

static Oid
enum_label_oid(Oid enumtype, const char *label)
{
	HeapTuple	tup;
	Oid			result;

	tup = SearchSysCache2(ENUMTYPOIDNAME, ObjectIdGetDatum(enumtype),
						  CStringGetDatum(label));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "label \"%s\" of enum %u not found", label, enumtype);
	result = ((Form_pg_enum) GETSTRUCT(tup))->oid;
	ReleaseSysCache(tup);
	return result;
}

static Oid
extension_type_oid(Oid nsp, const char *name)
{
	Oid			typid = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
										CStringGetDatum(name), ObjectIdGetDatum(nsp));

	if (!OidIsValid(typid))
		elog(ERROR, "type \"%s\" of extension refund_rules not found", name);
	return typid;
}

/* The extension's types and their labels, in its schema nsp. */
static void
lookup_types(ExtensionTypes *ext, Oid nsp)
{
	int			i;

	ext->nsp = nsp;
	ext->mpn_offer = extension_type_oid(nsp, "mpn_offer");
	for (i = 0; i < NUM_OFFERS; i++)
		ext->offer_label[i] = enum_label_oid(ext->mpn_offer, rr_offer_labels[i]);
	ext->refund_kind = extension_type_oid(nsp, "refund_kind");
	for (i = 0; i < NUM_KINDS; i++)
		ext->kind_label[i] = enum_label_oid(ext->refund_kind, rr_kind_labels[i]);
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

/* The built-in btree operator of a type (timestamptz, anyenum) for a strategy. */
static Oid
btree_operator(Oid type, int strategy)
{
	Oid			opfamily = get_opclass_family(GetDefaultOpClass(type, BTREE_AM_OID));
	Oid			opno = get_opfamily_member(opfamily, type, type, strategy);

	if (!OidIsValid(opno))
		elog(ERROR, "no comparison of type %u for strategy %d", type, strategy);
	return opno;
}

/*
 * The functions the planner support rewrites calls between.  False while
 * one is missing (in the middle of CREATE EXTENSION) or is not this
 * library's (an older version's script, before ALTER EXTENSION UPDATE):
 * then nothing is rewritten, and the calls work as they are.
 */
static bool
lookup_rewrites(RRCatalog *cat)
{
	Oid			argtypes[FUNC_MAX_ARGS];
	int			r,
				i;

	for (r = 0; r < NUM_REWRITES; r++)
	{
		const Rewrite *rw = &rr_rewrites[r];
		int			ncols = pg_popcount32(rw->layout);

		argtypes[0] = RECORDOID;
		argtypes[1] = TIMESTAMPTZOID;
		argtypes[2] = cat->ext.refund_kind;
		cat->row_form[r] = extension_function(cat->nsp, rw->row_form, rw->takes_kind ? 3 : 2, argtypes);
		for (i = 0; i < ncols; i++)
			argtypes[i] = ANYOID;
		argtypes[ncols] = TIMESTAMPTZOID;
		argtypes[ncols + 1] = cat->ext.refund_kind;
		cat->column_form[r] = extension_function(cat->nsp, rw->column_form,
												 ncols + (rw->takes_kind ? 2 : 1), argtypes);
		if (!OidIsValid(cat->row_form[r]) || !OidIsValid(cat->column_form[r]) ||
			!function_is_symbol(cat->column_form[r], rw->symbol))
			return false;
	}
	argtypes[0] = TIMESTAMPTZOID;
	argtypes[1] = cat->ext.refund_kind;
	cat->window_start = extension_function(cat->nsp, "refund_window_start", 2, argtypes);
	return OidIsValid(cat->window_start);
}

/* check_refund(record, timestamptz, refund_kind), or InvalidOid. */
static Oid
lookup_check_refund(const RRCatalog *cat)
{
	Oid			argtypes[3] = {RECORDOID, TIMESTAMPTZOID, cat->ext.refund_kind};

	return extension_function(cat->nsp, "check_refund", 3, argtypes);
}

/*
 * The extension's catalog objects, nsp being its schema (that of the
 * function being called).  Kept for the next call only when no
 * invalidation arrived while they were looked up.
 */
const RRCatalog *
rr_catalog(Oid nsp)
{
	RRCatalog	cat;
	uint64		generation;

	if (catalog.valid && catalog.nsp == nsp)
		return &catalog;
	if (!callbacks_registered)
	{
		CacheRegisterSyscacheCallback(PROCOID, catalog_changed, (Datum) 0);
		CacheRegisterSyscacheCallback(TYPEOID, catalog_changed, (Datum) 0);
		CacheRegisterSyscacheCallback(ENUMOID, catalog_changed, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, catalog_changed, (Datum) 0);
		callbacks_registered = true;
	}
	generation = catalog_generation;
	memset(&cat, 0, sizeof(cat));
	cat.nsp = nsp;
	lookup_types(&cat.ext, nsp);
	cat.rewrites_ok = lookup_rewrites(&cat);
	cat.check_refund = lookup_check_refund(&cat);
	cat.tstz_le = btree_operator(TIMESTAMPTZOID, BTLessEqualStrategyNumber);
	cat.tstz_le_func = get_opcode(cat.tstz_le);
	cat.tstz_ge = btree_operator(TIMESTAMPTZOID, BTGreaterEqualStrategyNumber);
	cat.tstz_ge_func = get_opcode(cat.tstz_ge);
	cat.enum_eq = btree_operator(ANYENUMOID, BTEqualStrategyNumber);
	cat.enum_eq_func = get_opcode(cat.enum_eq);
	catalog = cat;
	catalog.valid = (generation == catalog_generation);
	return &catalog;
}
