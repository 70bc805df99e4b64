/*-------------------------------------------------------------------------
 *
 * query.c
 *		The query functions: refund_eligible(), tax_refund_eligible(),
 *		refund_ineligibility_reasons(), refund_status() and the deadlines.
 *
 * IMMUTABLE and PARALLEL SAFE; none raises for a NULL.  Each whole-row
 * function has a column form that the planner support rewrites calls
 * into; both share one body.  In SQL the column form's name is the row
 * form's with a leading underscore (_refund_eligible); in C it ends in
 * _columns instead, since C reserves names that begin with one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "refund_rules.h"

/* The reason codes of a set of reasons, as a new text[] in the policy's order. */
static Datum
build_reasons_array(uint32 reasons)
{
	Datum		elems[NUM_REASONS];
	int			n = 0;
	int			r;

	for (r = 0; r < NUM_REASONS; r++)
		if (reasons & REASON_BIT(r))
			elems[n++] = CStringGetTextDatum(rr_reason_codes[r]);
	if (n == 0)
		return PointerGetDatum(construct_empty_array(TEXTOID));
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * The reason codes of a set of reasons, as a text[] in the policy's order:
 * the one builder of reason arrays.  A call site (cache) builds the array of
 * each distinct set once, in mcxt, and hands out a copy of it each time, so
 * a caller may change or free what it gets.
 */
Datum
rr_reasons_array(uint32 reasons, CallCache *cache, MemoryContext mcxt)
{
	Datum		array;
	int			i;

	if (cache == NULL)
		return build_reasons_array(reasons);
	for (i = 0; i < cache->nsets; i++)
		if (cache->set_reasons[i] == reasons)
		{
			Size		len = VARSIZE(cache->set_array[i]);
			struct varlena *copy = palloc(len);

			memcpy(copy, cache->set_array[i], len);
			return PointerGetDatum(copy);
		}
	array = build_reasons_array(reasons);
	if (cache->nsets < REASON_SETS)
	{
		Size		len = VARSIZE(DatumGetPointer(array));
		struct varlena *kept = MemoryContextAlloc(mcxt, len);

		memcpy(kept, DatumGetPointer(array), len);
		cache->set_reasons[cache->nsets] = reasons;
		cache->set_array[cache->nsets++] = kept;
	}
	return array;
}

/* refund_eligible and tax_refund_eligible, in either form. */
static Datum
eligible_common(FunctionCallInfo fcinfo, uint32 layout, RefundKind kind)
{
	CallCache  *cache = rr_get_call_cache(fcinfo);
	Purchase	p;
	int			as_of_arg = rr_read_purchase(fcinfo, cache, layout, rr_fields_for_kind(kind), &p);
	uint32		reasons;

	if (PG_ARGISNULL(as_of_arg))
		PG_RETURN_NULL();
	reasons = rr_refund_reasons(&p, PG_GETARG_TIMESTAMPTZ(as_of_arg), true, kind);
	return rr_verdict(reasons, &fcinfo->isnull);
}

/* refund_ineligibility_reasons, in either form: kind follows as_of. */
static Datum
reasons_common(FunctionCallInfo fcinfo, uint32 layout)
{
	CallCache  *cache = rr_get_call_cache(fcinfo);
	int			as_of_arg = (layout == 0) ? 1 : pg_popcount32(layout);
	int			kind_arg = as_of_arg + 1;
	RefundKind	kind = KIND_PURCHASE;
	Purchase	p;

	if (!PG_ARGISNULL(kind_arg))
		kind = rr_kind_from_enum(&cache->ext, PG_GETARG_OID(kind_arg));
	rr_read_purchase(fcinfo, cache, layout, rr_fields_for_kind(kind), &p);
	if (PG_ARGISNULL(as_of_arg) || PG_ARGISNULL(kind_arg))
		PG_RETURN_NULL();
	return rr_reasons_array(rr_refund_reasons(&p, PG_GETARG_TIMESTAMPTZ(as_of_arg), true, kind),
							cache, fcinfo->flinfo->fn_mcxt);
}

/*
 * refund_eligible(purchase record, as_of timestamptz) returns boolean:
 * whether the price of the purchase may be refunded at as_of.
 */
PG_FUNCTION_INFO_V1(refund_eligible);
Datum
refund_eligible(PG_FUNCTION_ARGS)
{
	return eligible_common(fcinfo, 0, KIND_PURCHASE);
}

/*
 * _refund_eligible(offer, purchased_at, benefits_activated,
 * product_keys_viewed, upgraded_with_gold_discount, as_of) returns boolean:
 * refund_eligible on separate columns.
 */
PG_FUNCTION_INFO_V1(refund_eligible_columns);
Datum
refund_eligible_columns(PG_FUNCTION_ARGS)
{
	return eligible_common(fcinfo, FIELDS_REFUND, KIND_PURCHASE);
}

/*
 * tax_refund_eligible(purchase record, as_of timestamptz) returns boolean:
 * whether the tax paid on the purchase may be refunded at as_of.
 */
PG_FUNCTION_INFO_V1(tax_refund_eligible);
Datum
tax_refund_eligible(PG_FUNCTION_ARGS)
{
	return eligible_common(fcinfo, 0, KIND_TAX);
}

/*
 * _tax_refund_eligible(purchased_at, tax_exempt, as_of) returns boolean:
 * tax_refund_eligible on separate columns.
 */
PG_FUNCTION_INFO_V1(tax_refund_eligible_columns);
Datum
tax_refund_eligible_columns(PG_FUNCTION_ARGS)
{
	return eligible_common(fcinfo, FIELDS_TAX, KIND_TAX);
}

/*
 * refund_ineligibility_reasons(purchase record, as_of timestamptz, kind
 * refund_kind) returns text[]: the reason codes, in the policy's order; {}
 * when the refund is allowed.
 */
PG_FUNCTION_INFO_V1(refund_ineligibility_reasons);
Datum
refund_ineligibility_reasons(PG_FUNCTION_ARGS)
{
	return reasons_common(fcinfo, 0);
}

/*
 * _refund_ineligibility_reasons(the six columns, as_of, kind) returns
 * text[]: refund_ineligibility_reasons on separate columns.
 */
PG_FUNCTION_INFO_V1(refund_ineligibility_reasons_columns);
Datum
refund_ineligibility_reasons_columns(PG_FUNCTION_ARGS)
{
	return reasons_common(fcinfo, FIELDS_ALL);
}

/*
 * refund_deadline(purchased_at timestamptz) returns timestamptz: the last
 * moment a purchase refund is allowed.
 */
PG_FUNCTION_INFO_V1(refund_deadline);
Datum
refund_deadline(PG_FUNCTION_ARGS)
{
	PG_RETURN_TIMESTAMPTZ(rr_refund_deadline_of(PG_GETARG_TIMESTAMPTZ(0)));
}

/*
 * tax_refund_deadline(purchased_at timestamptz) returns timestamptz: the
 * last moment a tax refund is allowed.
 */
PG_FUNCTION_INFO_V1(tax_refund_deadline);
Datum
tax_refund_deadline(PG_FUNCTION_ARGS)
{
	PG_RETURN_TIMESTAMPTZ(rr_tax_refund_deadline_of(PG_GETARG_TIMESTAMPTZ(0)));
}

/*
 * refund_window_start(as_of timestamptz, kind refund_kind) returns
 * timestamptz: no purchase made before it can have a window of this kind
 * open at as_of.
 */
PG_FUNCTION_INFO_V1(refund_window_start);
Datum
refund_window_start(PG_FUNCTION_ARGS)
{
	CallCache  *cache = rr_get_call_cache(fcinfo);

	PG_RETURN_TIMESTAMPTZ(rr_window_start_of(PG_GETARG_TIMESTAMPTZ(0),
											 rr_kind_from_enum(&cache->ext, PG_GETARG_OID(1))));
}

/* refund_status, in either form. */
static Datum
status_common(FunctionCallInfo fcinfo, uint32 layout)
{
	CallCache  *cache = rr_get_call_cache(fcinfo);
	Datum		values[6];
	bool		nulls[6];
	Purchase	p;
	int			as_of_arg;
	int			k;

	if (cache->result_desc == NULL)
	{
		TupleDesc	tupdesc;
		MemoryContext old;

		if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "return type must be a row type");
		old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
		cache->result_desc = BlessTupleDesc(CreateTupleDescCopy(tupdesc));
		MemoryContextSwitchTo(old);
	}

	as_of_arg = rr_read_purchase(fcinfo, cache, layout, FIELDS_ALL, &p);
	for (k = 0; k < NUM_KINDS; k++)
	{
		int			col = 3 * k;

		nulls[col] = nulls[col + 1] = nulls[col + 2] = true;
		if (!PG_ARGISNULL(as_of_arg))
		{
			uint32		reasons = rr_refund_reasons(&p, PG_GETARG_TIMESTAMPTZ(as_of_arg), true,
													(RefundKind) k);

			values[col] = rr_verdict(reasons, &nulls[col]);
			values[col + 1] = rr_reasons_array(reasons, cache, fcinfo->flinfo->fn_mcxt);
			nulls[col + 1] = false;
		}
		if (!p.isnull[FIELD_PURCHASED_AT])
		{
			values[col + 2] = TimestampTzGetDatum(rr_deadline_of(p.purchased_at, (RefundKind) k));
			nulls[col + 2] = false;
		}
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(cache->result_desc, values, nulls)));
}

/*
 * refund_status(purchase record, as_of timestamptz) returns one row:
 * (refund_eligible, rr_refund_reasons, refund_deadline, tax_refund_eligible,
 * tax_refund_reasons, tax_refund_deadline).
 */
PG_FUNCTION_INFO_V1(refund_status);
Datum
refund_status(PG_FUNCTION_ARGS)
{
	return status_common(fcinfo, 0);
}

/*
 * _refund_status(the six columns, as_of) returns the row of refund_status:
 * refund_status on separate columns.
 */
PG_FUNCTION_INFO_V1(refund_status_columns);
Datum
refund_status_columns(PG_FUNCTION_ARGS)
{
	return status_common(fcinfo, FIELDS_ALL);
}

/*
 * The column forms under the C names that version 1.0's install script
 * gives them.  A released script is never edited, so the library keeps
 * them for databases created with 1.0 until ALTER EXTENSION ... UPDATE.
 */
PG_FUNCTION_INFO_V1(_refund_eligible);
Datum
_refund_eligible(PG_FUNCTION_ARGS)
{
	return eligible_common(fcinfo, FIELDS_REFUND, KIND_PURCHASE);
}

PG_FUNCTION_INFO_V1(_tax_refund_eligible);
Datum
_tax_refund_eligible(PG_FUNCTION_ARGS)
{
	return eligible_common(fcinfo, FIELDS_TAX, KIND_TAX);
}

PG_FUNCTION_INFO_V1(_refund_ineligibility_reasons);
Datum
_refund_ineligibility_reasons(PG_FUNCTION_ARGS)
{
	return reasons_common(fcinfo, FIELDS_ALL);
}

PG_FUNCTION_INFO_V1(_refund_status);
Datum
_refund_status(PG_FUNCTION_ARGS)
{
	return status_common(fcinfo, FIELDS_ALL);
}

/*
 * reason_codes() returns setof (position integer, code text): every reason
 * code the extension can report, in the order it reports them; the view
 * refund_rules.reasons describes each.
 */
PG_FUNCTION_INFO_V1(reason_codes);
Datum
reason_codes(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			r;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	for (r = 0; r < NUM_REASONS; r++)
	{
		Datum		values[2] = {Int32GetDatum(r + 1), CStringGetTextDatum(rr_reason_codes[r])};
		bool		nulls[2] = {false, false};

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
