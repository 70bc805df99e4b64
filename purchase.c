/*-------------------------------------------------------------------------
 *
 * purchase.c
 *		Reading a purchase: from a row value of any row type, its columns
 *		found by name, or from separate arguments (the column form).
 *
 * What is derived from a row type is cached per call site in fn_extra,
 * keyed by the row type and its typcache identifier.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_enum.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "refund_rules.h"

CallCache *
rr_get_call_cache(FunctionCallInfo fcinfo)
{
	CallCache  *cache = (CallCache *) fcinfo->flinfo->fn_extra;

	if (cache == NULL)
	{
		cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(CallCache));
		cache->ext = rr_catalog(get_func_namespace(fcinfo->flinfo->fn_oid))->ext;
		fcinfo->flinfo->fn_extra = cache;
	}
	return cache;
}

/* How a value of type typid can supply field f. */
ValueKind
rr_value_kind_for(const ExtensionTypes *ext, PurchaseField f, Oid typid)
{
	Oid			base = getBaseType(typid);

	switch (f)
	{
		case FIELD_OFFER:
			if (base == ext->mpn_offer)
				return VALUE_OFFER_ENUM;
			if (base == TEXTOID || base == VARCHAROID)
				return VALUE_OFFER_TEXT;
			break;
		case FIELD_PURCHASED_AT:
			if (base == TIMESTAMPTZOID || base == TIMESTAMPOID)
				return VALUE_TIMESTAMP;
			break;
		default:
			if (base == BOOLOID)
				return VALUE_BOOL;
			break;
	}
	return VALUE_UNUSABLE;
}

static const char *
field_expected_type(PurchaseField f)
{
	switch (f)
	{
		case FIELD_OFFER:
			return "refund_rules.mpn_offer, text or character varying";
		case FIELD_PURCHASED_AT:
			return "timestamp with time zone or timestamp without time zone";
		default:
			return "boolean";
	}
}

/* The column of a row type with this name (not dropped), or NULL. */
Form_pg_attribute
rr_table_column(TupleDesc tupdesc, const char *name)
{
	int			i;

	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return att;
	}
	return NULL;
}

/* The attribute of a row type that holds field f, or NULL. */
Form_pg_attribute
rr_find_field_column(TupleDesc tupdesc, PurchaseField f)
{
	return rr_table_column(tupdesc, rr_field_names[f]);
}

static void
reader_set_field(PurchaseReader *r, const ExtensionTypes *ext, PurchaseField f,
				 AttrNumber attnum, Oid coltype)
{
	r->attnum[f] = attnum;
	r->coltype[f] = coltype;
	r->kind[f] = OidIsValid(coltype) ? rr_value_kind_for(ext, f, coltype) : VALUE_UNUSABLE;
	if (r->kind[f] != VALUE_UNUSABLE)
		r->usable |= FIELD_BIT(f);
}

/* Point a reader at the columns of a row type. */
void
rr_reader_init_row(PurchaseReader *r, const ExtensionTypes *ext, TupleDesc tupdesc,
				   Oid rowtype, int32 rowtypmod, const char *rowname, MemoryContext mcxt)
{
	MemoryContext old = MemoryContextSwitchTo(mcxt);
	int			f;

	if (r->tupdesc)
		FreeTupleDesc(r->tupdesc);
	if (r->rowname)
		pfree((char *) r->rowname);
	memset(r, 0, sizeof(PurchaseReader));
	r->rowtype = rowtype;
	r->rowtypmod = rowtypmod;
	r->rowname = pstrdup(rowname);
	r->tupdesc = CreateTupleDescCopyConstr(tupdesc);	/* keeps missing-value
														 * defaults */
	for (f = 0; f < NUM_FIELDS; f++)
	{
		Form_pg_attribute att = rr_find_field_column(tupdesc, (PurchaseField) f);

		reader_set_field(r, ext, (PurchaseField) f, att ? att->attnum : InvalidAttrNumber,
						 att ? att->atttypid : InvalidOid);
	}
	r->valid = true;
	MemoryContextSwitchTo(old);
}

/* Point a reader at the arguments of a column-form call (layout: fields). */
static void
reader_init_args(PurchaseReader *r, const ExtensionTypes *ext, FmgrInfo *flinfo, uint32 layout)
{
	int			f;
	int			argno = 0;

	memset(r, 0, sizeof(PurchaseReader));
	r->rowname = NULL;			/* not named in messages: see reader_require */
	for (f = 0; f < NUM_FIELDS; f++)
	{
		if (!(layout & FIELD_BIT(f)))
			continue;
		reader_set_field(r, ext, (PurchaseField) f, argno,
						 get_fn_expr_argtype(flinfo, argno));
		argno++;
	}
	r->valid = true;
}

/* Raise the error for the first needed field the reader cannot read. */
void
rr_reader_require(const PurchaseReader *r, uint32 fields)
{
	int			f;

	if ((fields & ~r->usable) == 0)
		return;
	for (f = 0; f < NUM_FIELDS; f++)
	{
		if (!(fields & FIELD_BIT(f)) || (r->usable & FIELD_BIT(f)))
			continue;
		if (!OidIsValid(r->coltype[f]))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("purchase has no column \"%s\"", rr_field_names[f]),
					 errdetail("The refund rules read column \"%s\" of type %s; %s has none.",
							   rr_field_names[f], field_expected_type(f),
							   r->rowname ? r->rowname : "the argument list")));
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of the purchase is of type %s",
						rr_field_names[f], format_type_be(r->coltype[f])),
				 errdetail("Column \"%s\" must be of type %s.",
						   rr_field_names[f], field_expected_type(f))));
	}
}

/*
 * An offer that is not one of the labels: bad data.  The value is shown
 * unless the reader hides values (a trigger reading a table the user may
 * not read).
 */
static void
report_invalid_offer(const PurchaseReader *r, const char *value)
{
	int			len = strlen(value);
	int			clip = pg_mbcliplen(value, len, 64);

	if (r->values_hidden)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid offer in %s", r->rowname ? r->rowname : "the purchase"),
				 errdetail("Column \"offer\" must hold one of \"action_pack\", \"silver\" or \"gold\".")));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid offer \"%.*s%s\"", clip, value, clip < len ? "..." : ""),
			 errdetail("Column \"offer\" must hold one of \"action_pack\", \"silver\" or \"gold\".")));
}

void
rr_report_invalid_kind(const char *value)
{
	int			len = strlen(value);
	int			clip = pg_mbcliplen(value, len, 64);

	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid refund kind \"%.*s%s\"", clip, value, clip < len ? "..." : ""),
			 errdetail("A refund kind must be \"purchase\" or \"tax\".")));
}

static MpnOffer
offer_from_enum(const PurchaseReader *r, const ExtensionTypes *ext, Oid label)
{
	int			i;
	HeapTuple	tup;

	for (i = 0; i < NUM_OFFERS; i++)
		if (ext->offer_label[i] == label)
			return (MpnOffer) i;

	/* A label added to the enum after this version: bad data. */
	tup = SearchSysCache1(ENUMOID, ObjectIdGetDatum(label));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "enum label %u not found", label);
	report_invalid_offer(r, NameStr(((Form_pg_enum) GETSTRUCT(tup))->enumlabel));
	pg_unreachable();
}

static MpnOffer
offer_from_text(const PurchaseReader *r, Datum value)
{
	text	   *t = DatumGetTextPP(value);
	const char *s = VARDATA_ANY(t);
	size_t		len = VARSIZE_ANY_EXHDR(t);
	int			i;

	for (i = 0; i < NUM_OFFERS; i++)
	{
		if (len == strlen(rr_offer_labels[i]) && memcmp(s, rr_offer_labels[i], len) == 0)
		{
			if ((Pointer) t != DatumGetPointer(value))
				pfree(t);
			return (MpnOffer) i;
		}
	}
	report_invalid_offer(r, text_to_cstring(t));
	pg_unreachable();
}

/* Store one field's value into a Purchase. */
static void
store_field(const PurchaseReader *r, const ExtensionTypes *ext, PurchaseField f,
			Datum value, bool isnull, Purchase *p)
{
	p->isnull[f] = isnull;
	if (isnull)
		return;
	switch (r->kind[f])
	{
		case VALUE_OFFER_ENUM:
			p->offer = offer_from_enum(r, ext, DatumGetObjectId(value));
			break;
		case VALUE_OFFER_TEXT:
			p->offer = offer_from_text(r, value);
			break;
		case VALUE_TIMESTAMP:
			/* timestamp and timestamptz share a representation: UTC */
			p->purchased_at = DatumGetTimestampTz(value);
			break;
		case VALUE_BOOL:
			p->flag[f] = DatumGetBool(value);
			break;
		case VALUE_UNUSABLE:
			elog(ERROR, "field \"%s\" cannot be read", rr_field_names[f]);
	}
}

static void
purchase_set_null(Purchase *p)
{
	int			f;

	memset(p, 0, sizeof(Purchase));
	for (f = 0; f < NUM_FIELDS; f++)
		p->isnull[f] = true;
}

/* Read the needed fields of a heap tuple whose layout the reader knows. */
void
rr_read_purchase_tuple(const PurchaseReader *r, const ExtensionTypes *ext, HeapTuple tuple,
					   uint32 fields, Purchase *p)
{
	int			f;

	purchase_set_null(p);
	for (f = 0; f < NUM_FIELDS; f++)
	{
		bool		isnull;
		Datum		value;

		if (!(fields & FIELD_BIT(f)))
			continue;
		value = heap_getattr(tuple, r->attnum[f], r->tupdesc, &isnull);
		store_field(r, ext, (PurchaseField) f, value, isnull, p);
	}
}

/*
 * Make the cached reader fit a row type.  The columns are looked up once per
 * row type; the typcache's identifier of the type's current layout tells when
 * the type was altered since (a PL/pgSQL expression outlives ALTER TABLE).
 */
static void
ensure_row_reader(FunctionCallInfo fcinfo, CallCache *cache, Oid rowtype, int32 rowtypmod)
{
	PurchaseReader *r = &cache->reader;
	uint64		rowtype_id = assign_record_type_identifier(rowtype, rowtypmod);
	TupleDesc	tupdesc;

	if (r->valid && r->tupdesc && r->rowtype == rowtype && r->rowtypmod == rowtypmod &&
		r->rowtype_id == rowtype_id)
		return;
	tupdesc = lookup_rowtype_tupdesc(rowtype, rowtypmod);
	rr_reader_init_row(r, &cache->ext, tupdesc, rowtype, rowtypmod,
					   format_type_be(rowtype), fcinfo->flinfo->fn_mcxt);
	r->rowtype_id = rowtype_id;
	ReleaseTupleDesc(tupdesc);
}

/*
 * Whether a reader built for one tuple descriptor still fits another:
 * every column of the same type (so the same physical layout), and the
 * policy columns where they were.
 */
bool
rr_reader_fits(const PurchaseReader *r, TupleDesc tupdesc)
{
	int			i;

	if (!r->valid || r->tupdesc == NULL || r->tupdesc->natts != tupdesc->natts)
		return false;
	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute mine = TupleDescAttr(r->tupdesc, i);
		Form_pg_attribute theirs = TupleDescAttr(tupdesc, i);

		if (mine->atttypid != theirs->atttypid || mine->attisdropped != theirs->attisdropped ||
			mine->attlen != theirs->attlen || mine->attalign != theirs->attalign ||
			strcmp(NameStr(mine->attname), NameStr(theirs->attname)) != 0)
			return false;
	}
	return true;
}

/*
 * Read the purchase of a row-form call (argument 0).  A NULL row reads as
 * all fields NULL; its row type is still checked when it is known.
 */
static void
read_purchase_row_arg(FunctionCallInfo fcinfo, CallCache *cache, uint32 fields, Purchase *p)
{
	HeapTupleHeader th;
	HeapTupleData tuple;

	if (PG_ARGISNULL(0))
	{
		Oid			argtype = get_fn_expr_argtype(fcinfo->flinfo, 0);

		if (OidIsValid(argtype))
			argtype = getBaseType(argtype); /* a domain over a row type */
		if (OidIsValid(argtype) && argtype != RECORDOID && type_is_rowtype(argtype))
		{
			ensure_row_reader(fcinfo, cache, argtype, -1);
			rr_reader_require(&cache->reader, fields);
		}
		purchase_set_null(p);
		return;
	}

	th = PG_GETARG_HEAPTUPLEHEADER(0);
	ensure_row_reader(fcinfo, cache, HeapTupleHeaderGetTypeId(th),
					  HeapTupleHeaderGetTypMod(th));
	rr_reader_require(&cache->reader, fields);

	tuple.t_len = HeapTupleHeaderGetDatumLength(th);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = th;
	rr_read_purchase_tuple(&cache->reader, &cache->ext, &tuple, fields, p);
}

/* Read the purchase of a column-form call: one argument per field of layout. */
static void
read_purchase_column_args(FunctionCallInfo fcinfo, CallCache *cache, uint32 layout,
						  uint32 fields, Purchase *p)
{
	int			f;

	if (!cache->reader.valid)
		reader_init_args(&cache->reader, &cache->ext, fcinfo->flinfo, layout);
	rr_reader_require(&cache->reader, fields);

	purchase_set_null(p);
	for (f = 0; f < NUM_FIELDS; f++)
	{
		int			argno = cache->reader.attnum[f];

		if (!(fields & FIELD_BIT(f)))
			continue;
		store_field(&cache->reader, &cache->ext, (PurchaseField) f,
					PG_GETARG_DATUM(argno), PG_ARGISNULL(argno), p);
	}
}

/*
 * Read the purchase of either form; layout is 0 for the row form.  Returns
 * the number of the argument that follows the purchase (as_of).
 */
int
rr_read_purchase(FunctionCallInfo fcinfo, CallCache *cache, uint32 layout, uint32 fields,
				 Purchase *p)
{
	if (layout == 0)
	{
		read_purchase_row_arg(fcinfo, cache, fields, p);
		return 1;
	}
	read_purchase_column_args(fcinfo, cache, layout, fields, p);
	return pg_popcount32(layout);
}

/* The refund kind of an enum argument or value. */
RefundKind
rr_kind_from_enum(const ExtensionTypes *ext, Oid label)
{
	HeapTuple	tup;

	if (label == ext->kind_label[KIND_TAX])
		return KIND_TAX;
	if (label == ext->kind_label[KIND_PURCHASE])
		return KIND_PURCHASE;

	/* A label added to the enum after this version: bad data. */
	tup = SearchSysCache1(ENUMOID, ObjectIdGetDatum(label));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "enum label %u not found", label);
	rr_report_invalid_kind(NameStr(((Form_pg_enum) GETSTRUCT(tup))->enumlabel));
	pg_unreachable();
}
