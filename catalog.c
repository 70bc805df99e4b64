/*-------------------------------------------------------------------------
 *
 * catalog.c
 *		The extension's own catalog objects: its types and their labels,
 *		looked up in the schema of the function being called.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_enum.h"
#include "utils/syscache.h"

#include "refund_rules.h"

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


/* Look the extension's types up in the schema of one of its functions. */
void
rr_lookup_extension_types(ExtensionTypes *ext, Oid nsp)
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

