-- Robustness: a seeded fuzz of every function on every odd row shape the
-- whole-row functions can meet.  Nothing may crash the server or raise an
-- internal error (SQLSTATE class XX); every error must be one of the
-- documented ones.
SET TimeZone = 'UTC';
SET client_min_messages = warning;
SET max_parallel_workers_per_gather = 0;
CREATE SCHEMA fuzz50;
SET search_path = fuzz50, public;
SELECT pg_postmaster_start_time() AS start_time \gset

-- The errors a call may raise.  The extension's own: 22023 (invalid offer
-- label), 42703 (missing column), 42804 (column of the wrong type), 23514
-- (check_refund / the trigger refuse), 23503 (the request table's foreign key:
-- the purchase does not exist), 39P01 (the trigger used wrongly).  The parser's, for calls that
-- cannot even be planned: 42883 (no such function or operator for these
-- argument types), 42703 (no such column, also "could not identify column"
-- in an anonymous record), 42804 (argument of the wrong type), 42846 (no
-- cast between these types), 22P02 and 22007 (a literal that is not valid
-- input for the argument's type).
CREATE TABLE documented (state text PRIMARY KEY, meaning text);
INSERT INTO documented VALUES
 ('00000', 'no error'),
 ('22023', 'invalid offer label'),
 ('42703', 'missing column'),
 ('42804', 'column or argument of the wrong type'),
 ('23514', 'refund refused (check_refund, trigger)'),
 ('23503', 'foreign key: purchase does not exist'),
 ('39P01', 'trigger used wrongly'),
 ('42883', 'parser: no such function or operator'),
 ('42846', 'parser: no such cast'),
 ('22P02', 'parser: invalid input syntax'),
 ('22007', 'parser: invalid date/time literal');

-- Run one query; its outcome is the SQLSTATE and a digest of its rows (or
-- the error message).
CREATE FUNCTION try(q text, OUT state text, OUT result text)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('SELECT md5(coalesce(string_agg(r::text, %L ORDER BY r::text), %L)) FROM (%s) r',
                   ' | ', '<none>', q) INTO result;
    state := '00000';
EXCEPTION WHEN OTHERS THEN
    state := SQLSTATE;
    result := SQLERRM;
END $$;

------------------------------------------------------------------------
-- The shapes: one table each, built from the same rows
------------------------------------------------------------------------

CREATE TABLE base (
    offer refund_rules.mpn_offer,
    purchased_at timestamptz,
    benefits_activated boolean,
    product_keys_viewed boolean,
    upgraded_with_gold_discount boolean,
    tax_exempt boolean
);
INSERT INTO base VALUES
 ('gold',        '2026-11-20 09:00',                 false, false, false, true),
 ('silver',      '2026-10-26 12:00',                 false, false, true,  false),
 ('action_pack', '2026-11-01',                       true,  true,  false, NULL),
 ('silver',      '-infinity',                        false, NULL,  NULL,  true),
 ('gold',        'infinity',                         NULL,  false, true,  false),
 ('silver',      '294276-12-31 23:59:59.999999+00',  false, false, false, true),
 ('action_pack', '4714-11-24 00:00:00+00 BC',        false, false, false, true),
 (NULL,          NULL,                               NULL,  NULL,  NULL,  NULL);

CREATE DOMAIN d_bool AS boolean;
CREATE DOMAIN d_ts AS timestamptz;
CREATE DOMAIN d_label AS text CHECK (VALUE IN ('action_pack', 'silver', 'gold'));
CREATE DOMAIN d_offer AS refund_rules.mpn_offer;
CREATE DOMAIN d_purchase AS refund_rules.purchase;

CREATE TABLE shape (name text PRIMARY KEY, note text);

DO $$
DECLARE
    cols text[] := ARRAY['offer', 'purchased_at', 'benefits_activated',
                         'product_keys_viewed', 'upgraded_with_gold_discount', 'tax_exempt'];
    odd text[][] := ARRAY[
        ['int',      '1'],
        ['text',     '%I::text'],
        ['intarr',   'ARRAY[1, 2]'],
        ['jsonb',    'to_jsonb(%I)'],
        ['interval', 'interval ''1 day'''],
        ['date',     'date ''2026-11-20''']];
    c text;
    i int;
    sel text;
BEGIN
    INSERT INTO shape VALUES ('ok', 'every column of the right type');
    CREATE TABLE ok AS SELECT * FROM base;
    FOREACH c IN ARRAY cols LOOP
        -- the column missing
        SELECT string_agg(quote_ident(x), ', ') INTO sel FROM unnest(cols) x WHERE x <> c;
        EXECUTE format('CREATE TABLE %I AS SELECT %s FROM base', 'missing_' || c, sel);
        INSERT INTO shape VALUES ('missing_' || c, 'no column ' || c);
        -- the column of another type (text is right for offer)
        FOR i IN 1 .. array_length(odd, 1) LOOP
            SELECT string_agg(CASE WHEN x = c
                                   THEN format('CASE WHEN %I IS NULL THEN NULL ELSE %s END AS %I',
                                               x, format(odd[i][2], x), x)
                                   ELSE quote_ident(x) END, ', ')
              INTO sel FROM unnest(cols) x;
            EXECUTE format('CREATE TABLE %I AS SELECT %s FROM base', c || '_' || odd[i][1], sel);
            INSERT INTO shape VALUES (c || '_' || odd[i][1], c || ' of type ' || odd[i][1]);
        END LOOP;
    END LOOP;
END $$;

-- Accepted types other than the plain ones.
CREATE TABLE offer_varchar AS
  SELECT offer::varchar(11) AS offer, purchased_at, benefits_activated,
         product_keys_viewed, upgraded_with_gold_discount, tax_exempt FROM base;
CREATE TABLE purchased_at_timestamp AS
  SELECT offer, purchased_at::timestamp AS purchased_at, benefits_activated,
         product_keys_viewed, upgraded_with_gold_discount, tax_exempt FROM base;
CREATE TABLE all_domains AS
  SELECT offer::text::d_label AS offer, purchased_at::d_ts AS purchased_at,
         benefits_activated::d_bool AS benefits_activated,
         product_keys_viewed::d_bool AS product_keys_viewed,
         upgraded_with_gold_discount::d_bool AS upgraded_with_gold_discount,
         tax_exempt::d_bool AS tax_exempt FROM base;
CREATE TABLE offer_domain_enum AS
  SELECT offer::d_offer AS offer, purchased_at, benefits_activated,
         product_keys_viewed, upgraded_with_gold_discount, tax_exempt FROM base;
-- char(n) pads: not an accepted offer type (42804).
CREATE TABLE offer_bpchar AS
  SELECT offer::text::char(12) AS offer, purchased_at, benefits_activated,
         product_keys_viewed, upgraded_with_gold_discount, tax_exempt FROM base;
-- Text that is not a label (22023): wrong case, blank, trailing space, and
-- very long values: inline compressed, out of line uncompressed, out of line
-- compressed.
CREATE TABLE offer_bad_label (LIKE offer_varchar);
ALTER TABLE offer_bad_label ALTER offer TYPE text;
INSERT INTO offer_bad_label
  SELECT o, '2026-11-20', false, false, false, true
    FROM unnest(ARRAY['Gold', '', 'gold ', ' silver', 'platinum', 'gold']) o;
CREATE TABLE offer_long_inline (LIKE offer_bad_label);
INSERT INTO offer_long_inline VALUES (repeat('x', 100000), '2026-11-20', false, false, false, true);
CREATE TABLE offer_long_external (LIKE offer_bad_label);
ALTER TABLE offer_long_external ALTER offer SET STORAGE EXTERNAL;
INSERT INTO offer_long_external VALUES (repeat('y', 100000), '2026-11-20', false, false, false, true);
CREATE TABLE offer_long_compressed (LIKE offer_bad_label);
INSERT INTO offer_long_compressed
  SELECT string_agg(md5(i::text), '' ORDER BY i), '2026-11-20', false, false, false, true
    FROM generate_series(1, 4000) i;
-- Dropped columns before, between and in place of the needed ones.
CREATE TABLE dropped (a int, offer refund_rules.mpn_offer, b int, purchased_at timestamptz,
                      benefits_activated boolean, product_keys_viewed boolean, c int,
                      upgraded_with_gold_discount boolean, tax_exempt boolean);
INSERT INTO dropped SELECT 1, offer, 2, purchased_at, benefits_activated, product_keys_viewed, 3,
                           upgraded_with_gold_discount, tax_exempt FROM base;
ALTER TABLE dropped DROP a, DROP b, DROP c;
CREATE TABLE readded AS SELECT * FROM base;
ALTER TABLE readded DROP offer;
ALTER TABLE readded ADD offer text DEFAULT 'silver';
CREATE TABLE dropped_needed AS SELECT * FROM base;
ALTER TABLE dropped_needed DROP purchased_at;
-- Columns in another order, among others; names that only look right.
CREATE TABLE reordered AS
  SELECT 'x'::text AS note, tax_exempt, upgraded_with_gold_discount, 42 AS n,
         product_keys_viewed, benefits_activated, purchased_at, offer FROM base;
CREATE TABLE upper_case AS
  SELECT offer AS "Offer", purchased_at, benefits_activated, product_keys_viewed,
         upgraded_with_gold_discount, tax_exempt FROM base;
-- No columns at all; only unrelated columns; no rows.
CREATE TABLE no_columns ();
INSERT INTO no_columns DEFAULT VALUES;
INSERT INTO no_columns DEFAULT VALUES;
CREATE TABLE unrelated AS SELECT 1 AS x, 'y'::text AS y FROM base;
CREATE TABLE no_rows (LIKE base);
-- Partitioned, inherited, a view, a table holding a domain over purchase.
CREATE TABLE partitioned (LIKE base) PARTITION BY RANGE (purchased_at);
CREATE TABLE partitioned_old PARTITION OF partitioned FOR VALUES FROM (MINVALUE) TO ('2026-11-01');
CREATE TABLE partitioned_new PARTITION OF partitioned FOR VALUES FROM ('2026-11-01') TO (MAXVALUE);
INSERT INTO partitioned SELECT * FROM base WHERE purchased_at IS NOT NULL;
CREATE TABLE inherited (LIKE base);
CREATE TABLE inherited_child (extra int) INHERITS (inherited);
INSERT INTO inherited SELECT * FROM base LIMIT 3;
INSERT INTO inherited_child SELECT *, 7 FROM base;
CREATE VIEW a_view AS SELECT * FROM ok WHERE offer IS DISTINCT FROM 'action_pack';

INSERT INTO shape VALUES
 ('offer_varchar', 'offer varchar(11)'),
 ('purchased_at_timestamp', 'purchased_at timestamp without time zone'),
 ('all_domains', 'domains over text with CHECK, timestamptz, boolean'),
 ('offer_domain_enum', 'offer a domain over mpn_offer'),
 ('offer_bpchar', 'offer char(12): not accepted'),
 ('offer_bad_label', 'offer text that is not a label'),
 ('offer_long_inline', 'offer of 100000 characters, compressed inline'),
 ('offer_long_external', 'offer of 100000 characters, out of line'),
 ('offer_long_compressed', 'offer of 128000 characters, out of line compressed'),
 ('dropped', 'dropped columns between the needed ones'),
 ('readded', 'offer dropped and added again as text'),
 ('dropped_needed', 'purchased_at dropped'),
 ('reordered', 'columns in another order among others'),
 ('upper_case', '"Offer" instead of offer'),
 ('no_columns', 'CREATE TABLE t ()'),
 ('unrelated', 'only unrelated columns'),
 ('no_rows', 'the right shape, no rows'),
 ('partitioned', 'partitioned table'),
 ('inherited', 'parent of an inheritance child with an extra column'),
 ('a_view', 'a view');
ANALYZE;

------------------------------------------------------------------------
-- The functions and the forms of the row argument
------------------------------------------------------------------------

-- %1$s: the row, %2$s: as_of.  pred is the same call as a WHERE condition.
CREATE TABLE fn (name text PRIMARY KEY, expr text, pred text, lateral_ok boolean DEFAULT false);
INSERT INTO fn VALUES
 ('refund_eligible', 'refund_rules.refund_eligible(%1$s, %2$s)', 'refund_rules.refund_eligible(%1$s, %2$s)'),
 ('tax_refund_eligible', 'refund_rules.tax_refund_eligible(%1$s, %2$s)', 'refund_rules.tax_refund_eligible(%1$s, %2$s)'),
 ('reasons', 'refund_rules.refund_ineligibility_reasons(%1$s, %2$s)', 'refund_rules.refund_ineligibility_reasons(%1$s, %2$s) = ''{}'''),
 ('reasons_purchase', 'refund_rules.refund_ineligibility_reasons(%1$s, %2$s, ''purchase'')', 'refund_rules.refund_ineligibility_reasons(%1$s, %2$s, ''purchase'') IS NOT NULL'),
 ('reasons_tax', 'refund_rules.refund_ineligibility_reasons(%1$s, %2$s, ''tax'')', 'cardinality(refund_rules.refund_ineligibility_reasons(%1$s, %2$s, ''tax'')) > 0'),
 ('reasons_null_kind', 'refund_rules.refund_ineligibility_reasons(%1$s, %2$s, NULL)', 'refund_rules.refund_ineligibility_reasons(%1$s, %2$s, NULL) IS NULL'),
 ('status', 'refund_rules.refund_status(%1$s, %2$s)', '(refund_rules.refund_status(%1$s, %2$s)).refund_eligible'),
 ('check_default', 'refund_rules.check_refund(%1$s, %2$s)', 'refund_rules.check_refund(%1$s, %2$s)'),
 ('check_purchase', 'refund_rules.check_refund(%1$s, %2$s, ''purchase'')', 'refund_rules.check_refund(%1$s, %2$s, ''purchase'')'),
 ('check_tax', 'refund_rules.check_refund(%1$s, %2$s, ''tax'')', 'refund_rules.check_refund(%1$s, %2$s, ''tax'')'),
 ('check_null_kind', 'refund_rules.check_refund(%1$s, %2$s, NULL)', 'refund_rules.check_refund(%1$s, %2$s, NULL)'),
 ('deadline', 'refund_rules.refund_deadline((%1$s).purchased_at)', 'refund_rules.refund_deadline((%1$s).purchased_at) < %2$s'),
 ('tax_deadline', 'refund_rules.tax_refund_deadline((%1$s).purchased_at)', 'refund_rules.tax_refund_deadline((%1$s).purchased_at) >= %2$s'),
 ('window_start', 'refund_rules.refund_window_start(%2$s, ''purchase'') < (%1$s).purchased_at', 'refund_rules.refund_window_start(%2$s, ''tax'') < (%1$s).purchased_at'),
 ('col_eligible', 'refund_rules._refund_eligible((%1$s).offer, (%1$s).purchased_at, (%1$s).benefits_activated, (%1$s).product_keys_viewed, (%1$s).upgraded_with_gold_discount, %2$s)',
                  'refund_rules._refund_eligible((%1$s).offer, (%1$s).purchased_at, (%1$s).benefits_activated, (%1$s).product_keys_viewed, (%1$s).upgraded_with_gold_discount, %2$s)'),
 ('col_tax_eligible', 'refund_rules._tax_refund_eligible((%1$s).purchased_at, (%1$s).tax_exempt, %2$s)',
                      'refund_rules._tax_refund_eligible((%1$s).purchased_at, (%1$s).tax_exempt, %2$s)'),
 ('col_reasons', 'refund_rules._refund_ineligibility_reasons((%1$s).offer, (%1$s).purchased_at, (%1$s).benefits_activated, (%1$s).product_keys_viewed, (%1$s).upgraded_with_gold_discount, (%1$s).tax_exempt, %2$s, ''tax'')',
                 'refund_rules._refund_ineligibility_reasons((%1$s).offer, (%1$s).purchased_at, (%1$s).benefits_activated, (%1$s).product_keys_viewed, (%1$s).upgraded_with_gold_discount, (%1$s).tax_exempt, %2$s, NULL) IS NULL'),
 ('col_status', 'refund_rules._refund_status((%1$s).offer, (%1$s).purchased_at, (%1$s).benefits_activated, (%1$s).product_keys_viewed, (%1$s).upgraded_with_gold_discount, (%1$s).tax_exempt, %2$s)',
                '(refund_rules._refund_status((%1$s).offer, (%1$s).purchased_at, (%1$s).benefits_activated, (%1$s).product_keys_viewed, (%1$s).upgraded_with_gold_discount, (%1$s).tax_exempt, %2$s)).tax_refund_eligible');
UPDATE fn SET lateral_ok = true WHERE name IN ('status', 'col_status');

-- %1$s: the table.  row: the table's whole row (the planner rewrite
-- applies); sub: the row of a subquery (RECORD, no rewrite); rowcast:
-- ROW(t.*)::table; anon: ROW(t.*) uncast (columns f1, f2, ...); null: a
-- NULL of the table's row type; outer: the NULL row of an outer join;
-- where/subwhere: the call as a WHERE condition, with and without rewrite;
-- lateral/sublateral: refund_status in FROM.
CREATE TABLE form (name text PRIMARY KEY, from_clause text, row_expr text, kind text);
INSERT INTO form VALUES
 ('row',        '%1$I t',                                  't',            'select'),
 ('sub',        '(SELECT * FROM %1$I OFFSET 0) t',         't',            'select'),
 ('rowcast',    '%1$I t',                                  'ROW(t.*)::%1$I', 'select'),
 ('anon',       '%1$I t',                                  'ROW(t.*)',     'select'),
 ('null',       '(VALUES (1)) v(x)',                       'NULL::%1$I',   'select'),
 ('outer',      '(VALUES (1)) v(x) LEFT JOIN %1$I t ON false', 't',        'select'),
 ('where',      '%1$I t',                                  't',            'where'),
 ('subwhere',   '(SELECT * FROM %1$I OFFSET 0) t',         't',            'where'),
 ('lateral',    '%1$I t',                                  't',            'lateral'),
 ('sublateral', '(SELECT * FROM %1$I OFFSET 0) t',         't',            'lateral');

-- as_of values: an ordinary moment, NULL, the infinities, the smallest and
-- largest timestamps, a date, a stable expression (rewritten, not folded)
-- and a sub-select (a parameter at run time).
CREATE TABLE as_of (n int PRIMARY KEY, expr text);
INSERT INTO as_of VALUES
 (1, '''2026-11-25 12:00:00+00''::timestamptz'),
 (2, 'NULL'),
 (3, '''-infinity''::timestamptz'),
 (4, '''infinity''::timestamptz'),
 (5, '''4714-11-24 00:00:00+00 BC''::timestamptz'),
 (6, '''294276-12-31 23:59:59.999999+00''::timestamptz'),
 (7, 'date ''2026-11-30'''),
 (8, '''2026-11-24 00:00:00''::text::timestamptz'),
 (9, '(SELECT timestamptz ''2026-11-26 00:00:00+00'')');

------------------------------------------------------------------------
-- The driver: table x function x form x as_of.
------------------------------------------------------------------------

CREATE TABLE calls (shape text, fn text, form text, as_of int, query text,
                    state text, result text);

DO $$
DECLARE
    s record;
    f record;
    fm record;
    a int;
    q text;
    r record;
BEGIN
    FOR s IN SELECT name FROM shape ORDER BY name LOOP
        FOR f IN SELECT * FROM fn ORDER BY name LOOP
            FOR a IN SELECT n FROM as_of ORDER BY n LOOP
                FOR fm IN SELECT * FROM form ORDER BY name LOOP
                    IF fm.kind = 'lateral' AND NOT f.lateral_ok THEN
                        CONTINUE;
                    END IF;
                    q := CASE fm.kind
                         WHEN 'select' THEN format('SELECT %s FROM %s',
                             format(f.expr, format(fm.row_expr, s.name), (SELECT expr FROM as_of WHERE n = a)),
                             format(fm.from_clause, s.name))
                         WHEN 'where' THEN format('SELECT count(*) FROM %s WHERE %s',
                             format(fm.from_clause, s.name),
                             format(f.pred, format(fm.row_expr, s.name), (SELECT expr FROM as_of WHERE n = a)))
                         ELSE format('SELECT s FROM %s CROSS JOIN LATERAL %s s',
                             format(fm.from_clause, s.name),
                             format(f.expr, format(fm.row_expr, s.name), (SELECT expr FROM as_of WHERE n = a)))
                         END;
                    r := try(q);
                    INSERT INTO calls VALUES (s.name, f.name, fm.name, a, q, r.state, r.result);
                END LOOP;
            END LOOP;
        END LOOP;
    END LOOP;
END $$;

-- Forms that must agree: the rewritten ones with the subquery's, the NULL
-- row of an outer join with a NULL of the row type.  Agree: the same
-- SQLSTATE, and the same rows when there is no error.  One difference is
-- allowed: the rewrite checks the window first, so a row with an invalid
-- offer (22023) that is outside the window may be skipped instead of raising.
CREATE TABLE pairs (a text, b text);
INSERT INTO pairs VALUES ('row', 'sub'), ('rowcast', 'sub'), ('where', 'subwhere'),
                         ('lateral', 'sublateral'), ('null', 'outer');
SELECT p.a || ' / ' || p.b AS forms,
       count(*) AS compared,
       count(*) FILTER (WHERE x.state = '00000' AND y.state = '00000') AS both_ok,
       count(*) FILTER (WHERE NOT (x.state = y.state AND (x.state <> '00000' OR x.result = y.result))
                          AND NOT (x.state = '00000' AND y.state = '22023')) AS disagree
  FROM pairs p
  JOIN calls x ON x.form = p.a
  JOIN calls y ON y.form = p.b AND (y.shape, y.fn, y.as_of) = (x.shape, x.fn, x.as_of)
 GROUP BY p.a, p.b ORDER BY 1;

-- Any disagreement, in full.
SELECT x.shape, x.fn, x.form, y.form, x.as_of, x.state, y.state, left(x.result, 60), left(y.result, 60)
  FROM pairs p
  JOIN calls x ON x.form = p.a
  JOIN calls y ON y.form = p.b AND (y.shape, y.fn, y.as_of) = (x.shape, x.fn, x.as_of)
 WHERE NOT (x.state = y.state AND (x.state <> '00000' OR x.result = y.result))
   AND NOT (x.state = '00000' AND y.state = '22023')
 ORDER BY 1, 2, 3, 4, 5 LIMIT 20;

-- What each shape gives refund_eligible on the row of a subquery (every
-- row is read): its errors.
SELECT shape, string_agg(DISTINCT state, ' ') AS states,
       min(result) FILTER (WHERE state NOT IN ('00000', '23514')) AS first_error
  FROM calls WHERE fn = 'refund_eligible' AND form = 'sub'
 GROUP BY shape ORDER BY shape;

-- A NULL of a domain over refund_rules.purchase reads as all fields NULL,
-- like any NULL row.
SELECT refund_rules.refund_eligible(NULL::d_purchase, '2026-11-25 12:00+00') AS eligible,
       refund_rules.refund_ineligibility_reasons(NULL::d_purchase, '2026-11-25 12:00+00') AS reasons,
       refund_rules.refund_eligible(ROW('gold', '2026-11-20', false, false, false, true)::d_purchase,
                                    '2026-11-25 12:00+00') AS eligible_value;

------------------------------------------------------------------------
-- The column forms with arguments of any type, drawn at random
------------------------------------------------------------------------

CREATE TABLE cols AS
  SELECT i % 2 = 0 AS b, i % 5 AS i, (ARRAY['gold', 'silver', 'x', ''])[1 + i % 4] AS x,
         to_jsonb(i % 3) AS j, timestamptz '2026-11-20 00:00+00' - (i % 40) * interval '1 day' AS ts,
         (ARRAY['action_pack', 'silver', 'gold'])[1 + i % 3]::refund_rules.mpn_offer AS o,
         ARRAY[i % 2] AS arr
    FROM generate_series(1, 200) i;
ANALYZE cols;

CREATE TABLE arg_pool (n serial, expr text);
INSERT INTO arg_pool (expr) VALUES
 ('NULL'), ('''gold'''), ('''gold''::text'), ('''silver''::varchar'),
 ('''action_pack''::refund_rules.mpn_offer'), ('NULL::refund_rules.mpn_offer'),
 ('''bogus''::text'), ('''gold''::char(4)'), ('''gold''::d_label'), ('repeat(''x'', 100000)'),
 ('1'), ('true'), ('false'), ('NULL::boolean'), ('NOT t.b'), ('true::d_bool'),
 ('''2026-11-20 00:00+00''::timestamptz'), ('''2026-11-20''::timestamp'),
 ('''infinity''::timestamptz'), ('''-infinity''::timestamptz'), ('date ''2026-11-20'''),
 ('''294276-12-31 23:59:59.999999+00''::timestamptz'), ('''4714-11-24 00:00:00+00 BC''::timestamptz'),
 ('ARRAY[1]'), ('''{}''::jsonb'), ('interval ''1 day'''), ('ROW(1, 2)'),
 ('''tax''::refund_rules.refund_kind'), ('t.b'), ('t.i'), ('t.x'), ('t.j'), ('t.ts'),
 ('t.o'), ('t.arr'), ('t.ts::d_ts'), ('t'), ('NULL::refund_rules.purchase');
CREATE TABLE kind_pool (n serial, expr text);
INSERT INTO kind_pool (expr) VALUES
 ('''purchase'''), ('''tax'''), ('NULL'), ('''tax''::refund_rules.refund_kind'),
 ('''tax''::text'), ('''bogus'''), ('t.x'), ('1');

-- name, number of purchase arguments, whether a kind follows as_of,
-- whether it returns boolean.
CREATE TABLE colfn (name text, nargs int, has_kind boolean, is_bool boolean);
INSERT INTO colfn VALUES
 ('_refund_eligible', 5, false, true), ('_tax_refund_eligible', 2, false, true),
 ('_refund_ineligibility_reasons', 6, true, false), ('_refund_status', 6, false, false);

SELECT setseed(0.5);
CREATE TABLE colcalls (query text, state text, result text);
DO $$
DECLARE
    k int;
    f record;
    args text[];
    nargs int;
    pick int;
    q text;
    r record;
    npool int := (SELECT count(*) FROM arg_pool);
    nasof int := (SELECT count(*) FROM as_of);
    nkind int := (SELECT count(*) FROM kind_pool);
BEGIN
    FOR k IN 1 .. 4000 LOOP
        pick := floor(random() * 4)::int;
        SELECT * INTO f FROM colfn ORDER BY name OFFSET pick LIMIT 1;
        -- now and then one argument too many or too few
        nargs := f.nargs + CASE WHEN random() < 0.05 THEN (ARRAY[-1, 1])[1 + floor(random() * 2)::int] ELSE 0 END;
        args := ARRAY[]::text[];
        FOR i IN 1 .. nargs LOOP
            pick := 1 + floor(random() * npool)::int;
            args := args || (SELECT expr FROM arg_pool WHERE n = pick);
        END LOOP;
        -- as_of: mostly from the as_of list, sometimes any argument
        IF random() < 0.8 THEN
            pick := 1 + floor(random() * nasof)::int;
            args := args || (SELECT expr FROM as_of WHERE n = pick);
        ELSE
            pick := 1 + floor(random() * npool)::int;
            args := args || (SELECT expr FROM arg_pool WHERE n = pick);
        END IF;
        IF f.has_kind THEN
            pick := 1 + floor(random() * nkind)::int;
            args := args || (SELECT expr FROM kind_pool WHERE n = pick);
        END IF;
        q := format('refund_rules.%I(%s)', f.name, array_to_string(args, ', '));
        q := CASE WHEN random() < 0.5 THEN format('SELECT %s FROM cols t', q)
                  WHEN f.is_bool THEN format('SELECT count(*) FROM cols t WHERE %s', q)
                  ELSE format('SELECT count(*) FROM cols t WHERE %s IS NULL', q) END;
        r := try(q);
        INSERT INTO colcalls VALUES (q, r.state, r.result);
    END LOOP;
END $$;

SELECT state, count(*) > 0 AS seen FROM colcalls GROUP BY state ORDER BY state;

------------------------------------------------------------------------
-- A random table of the right shape: every form gives the same answers
------------------------------------------------------------------------

SELECT setseed(0.25);
CREATE TABLE rand AS
  SELECT i AS id,
         CASE WHEN random() < 0.1 THEN NULL
              ELSE (ARRAY['action_pack', 'silver', 'gold'])[1 + floor(random() * 3)::int] END::refund_rules.mpn_offer AS offer,
         CASE WHEN r < 0.05 THEN NULL
              WHEN r < 0.07 THEN '-infinity'
              WHEN r < 0.09 THEN 'infinity'
              WHEN r < 0.10 THEN '294276-12-31 23:59:59.999999+00'
              WHEN r < 0.11 THEN '4714-11-24 00:00:00+00 BC'
              WHEN r < 0.15 THEN timestamptz '2026-10-26 12:00+00'     -- exactly 30 days before
              WHEN r < 0.18 THEN timestamptz '2025-11-25 12:00+00'     -- exactly one year before
              WHEN r < 0.20 THEN timestamptz '2026-11-25 12:00+00'     -- the moment itself
              ELSE timestamptz '2026-11-25 12:00+00' - random() * interval '500 days'
                                                      + random() * interval '20 days' END AS purchased_at,
         CASE WHEN random() < 0.1 THEN NULL ELSE random() < 0.3 END AS benefits_activated,
         CASE WHEN random() < 0.1 THEN NULL ELSE random() < 0.3 END AS product_keys_viewed,
         CASE WHEN random() < 0.1 THEN NULL ELSE random() < 0.3 END AS upgraded_with_gold_discount,
         CASE WHEN random() < 0.1 THEN NULL ELSE random() < 0.5 END AS tax_exempt
    FROM (SELECT i, random() AS r FROM generate_series(1, 5000) i) g;
ANALYZE rand;

CREATE TABLE rand_as_of (t timestamptz);
INSERT INTO rand_as_of VALUES ('2026-11-25 12:00+00'), (NULL), ('-infinity'), ('infinity'),
  ('4714-11-24 00:00:00+00 BC'), ('294276-12-31 23:59:59.999999+00'), ('2027-02-28 12:00+00');

-- Per row and as_of: the table's row (rewritten), the row of a subquery,
-- ROW(...)::refund_rules.purchase, the column forms and refund_status.
CREATE TYPE status_row AS (refund_eligible boolean, refund_reasons text[], refund_deadline timestamptz,
                           tax_refund_eligible boolean, tax_refund_reasons text[], tax_refund_deadline timestamptz);
CREATE TABLE rand_results (id int, t timestamptz, e_row boolean, te_row boolean,
                           r_row text[], tr_row text[], s_row status_row);
CREATE TABLE rand_results_sub (LIKE rand_results);
CREATE TABLE rand_results_cast (LIKE rand_results);
INSERT INTO rand_results
SELECT p.id, a.t,
       refund_rules.refund_eligible(p, a.t),
       refund_rules.tax_refund_eligible(p, a.t),
       refund_rules.refund_ineligibility_reasons(p, a.t),
       refund_rules.refund_ineligibility_reasons(p, a.t, 'tax'),
       refund_rules.refund_status(p, a.t)::text::status_row
  FROM rand p CROSS JOIN rand_as_of a;
INSERT INTO rand_results_sub
SELECT p.id, a.t,
       refund_rules.refund_eligible(p, a.t),
       refund_rules.tax_refund_eligible(p, a.t),
       refund_rules.refund_ineligibility_reasons(p, a.t),
       refund_rules.refund_ineligibility_reasons(p, a.t, 'tax'),
       refund_rules.refund_status(p, a.t)::text::status_row
  FROM (SELECT * FROM rand OFFSET 0) p CROSS JOIN rand_as_of a;
INSERT INTO rand_results_cast
SELECT p.id, a.t,
       refund_rules.refund_eligible(ROW(p.offer, p.purchased_at, p.benefits_activated, p.product_keys_viewed,
           p.upgraded_with_gold_discount, p.tax_exempt)::refund_rules.purchase, a.t),
       refund_rules._tax_refund_eligible(p.purchased_at, p.tax_exempt, a.t),
       refund_rules._refund_ineligibility_reasons(p.offer, p.purchased_at, p.benefits_activated,
           p.product_keys_viewed, p.upgraded_with_gold_discount, p.tax_exempt, a.t, 'purchase'),
       refund_rules._refund_ineligibility_reasons(p.offer::text, p.purchased_at::timestamp, p.benefits_activated,
           p.product_keys_viewed, p.upgraded_with_gold_discount, p.tax_exempt, a.t, 'tax'),
       refund_rules._refund_status(p.offer, p.purchased_at, p.benefits_activated, p.product_keys_viewed,
           p.upgraded_with_gold_discount, p.tax_exempt, a.t)::text::status_row
  FROM rand p CROSS JOIN rand_as_of a;

-- The rewritten calls keep their result's collation: CREATE TABLE AS works.
CREATE TABLE rand_ctas AS
  SELECT id, refund_rules.refund_ineligibility_reasons(p, '2026-11-25 12:00+00') AS r,
         refund_rules.refund_ineligibility_reasons(p, '2026-11-25 12:00+00', 'tax') AS tr,
         refund_rules.refund_eligible(p, '2026-11-25 12:00+00') AS e
    FROM rand p WHERE id <= 100;
SELECT count(*) AS ctas_rows,
       count(*) FILTER (WHERE (c.r, c.tr, c.e) IS DISTINCT FROM (x.r_row, x.tr_row, x.e_row)) AS ctas_disagree
  FROM rand_ctas c JOIN rand_results x ON x.id = c.id AND x.t = '2026-11-25 12:00+00';

SELECT count(*) AS rows_compared,
       count(*) FILTER (WHERE (x.e_row, x.te_row, x.r_row, x.tr_row, x.s_row)
                              IS DISTINCT FROM (y.e_row, y.te_row, y.r_row, y.tr_row, y.s_row)) AS row_vs_sub,
       count(*) FILTER (WHERE (x.e_row, x.te_row, x.r_row, x.tr_row, x.s_row)
                              IS DISTINCT FROM (z.e_row, z.te_row, z.r_row, z.tr_row, z.s_row)) AS row_vs_columns,
       count(*) FILTER (WHERE (x.e_row, x.r_row, x.te_row, x.tr_row)
                              IS DISTINCT FROM ((x.s_row).refund_eligible, (x.s_row).refund_reasons,
                                                (x.s_row).tax_refund_eligible, (x.s_row).tax_refund_reasons)) AS row_vs_status,
       count(*) FILTER (WHERE ((x.s_row).refund_deadline, (x.s_row).tax_refund_deadline)
                              IS DISTINCT FROM (refund_rules.refund_deadline(p.purchased_at),
                                                refund_rules.tax_refund_deadline(p.purchased_at))) AS status_deadlines,
       -- eligible is true exactly when there is no reason, false exactly when
       -- some reason is not a missing_ one, NULL otherwise
       count(*) FILTER (WHERE x.t IS NOT NULL AND x.e_row IS DISTINCT FROM
                              CASE WHEN x.r_row = '{}' THEN true
                                   WHEN EXISTS (SELECT FROM unnest(x.r_row) c WHERE c NOT LIKE 'missing\_%') THEN false
                              END) AS reasons_vs_eligible,
       count(*) FILTER (WHERE x.t IS NULL AND (x.e_row, x.r_row, x.te_row, x.tr_row) IS NOT NULL) AS as_of_null_not_null,
       count(*) FILTER (WHERE x.e_row) AS eligible,
       count(*) FILTER (WHERE x.te_row) AS tax_eligible,
       count(*) FILTER (WHERE x.e_row IS NULL AND x.t IS NOT NULL) AS undecided
  FROM rand_results x
  JOIN rand_results_sub y USING (id, t)
  JOIN rand_results_cast z USING (id, t)
  JOIN rand p USING (id);

-- The same counts through WHERE (rewritten into a range) and through the
-- subquery, with and without an index on purchased_at.
CREATE INDEX ON rand (purchased_at);
SELECT a.t,
       (SELECT count(*) FROM rand p WHERE refund_rules.refund_eligible(p, a.t)) AS e_where,
       (SELECT count(*) FROM (SELECT * FROM rand OFFSET 0) p WHERE refund_rules.refund_eligible(p, a.t)) AS e_sub,
       (SELECT count(*) FROM rand p WHERE refund_rules.tax_refund_eligible(p, a.t)) AS te_where,
       (SELECT count(*) FROM (SELECT * FROM rand OFFSET 0) p WHERE refund_rules.tax_refund_eligible(p, a.t)) AS te_sub,
       (SELECT count(*) FROM rand p WHERE NOT refund_rules.refund_eligible(p, a.t)) AS not_e_where,
       (SELECT count(*) FROM (SELECT * FROM rand OFFSET 0) p WHERE NOT refund_rules.refund_eligible(p, a.t)) AS not_e_sub
  FROM rand_as_of a ORDER BY a.t NULLS FIRST;
SET enable_seqscan = off;
SELECT count(*) FILTER (WHERE w.e IS DISTINCT FROM x.e_count) AS index_disagrees
  FROM rand_as_of a
  CROSS JOIN LATERAL (SELECT count(*) AS e FROM rand p WHERE refund_rules.refund_eligible(p, a.t)
                      AND refund_rules.tax_refund_eligible(p, a.t) IS NOT NULL) w
  CROSS JOIN LATERAL (SELECT count(*) FILTER (WHERE e_row AND te_row IS NOT NULL) AS e_count
                        FROM rand_results r WHERE r.t IS NOT DISTINCT FROM a.t) x;
RESET enable_seqscan;

-- check_refund passes exactly when refund_eligible is true, and raises
-- 23514 otherwise; a NULL kind always raises.
CREATE TABLE rand_checks (id int, t timestamptz, kind refund_rules.refund_kind, state text, eligible boolean);
DO $$
DECLARE
    x record;
    st text;
BEGIN
    FOR x IN SELECT r.*, k.kind FROM rand_results r
               CROSS JOIN (VALUES ('purchase'::refund_rules.refund_kind), ('tax'), (NULL)) k(kind)
              WHERE r.id % 10 = 0 ORDER BY r.id, r.t, k.kind LOOP
        BEGIN
            PERFORM refund_rules.check_refund(p, x.t, x.kind) FROM rand p WHERE p.id = x.id;
            st := '00000';
        EXCEPTION WHEN OTHERS THEN
            st := SQLSTATE;
        END;
        INSERT INTO rand_checks VALUES (x.id, x.t, x.kind, st,
            CASE x.kind WHEN 'purchase' THEN x.e_row WHEN 'tax' THEN x.te_row END);
    END LOOP;
END $$;
SELECT count(*) AS checks,
       count(*) FILTER (WHERE state = '00000') AS passed,
       count(*) FILTER (WHERE (state = '00000') IS DISTINCT FROM (eligible IS TRUE)) AS disagree,
       count(*) FILTER (WHERE state NOT IN ('00000', '23514')) AS other_errors
  FROM rand_checks;

------------------------------------------------------------------------
-- The trigger with odd purchases and request tables
------------------------------------------------------------------------

CREATE TABLE tp_ok (id int PRIMARY KEY, LIKE base);
INSERT INTO tp_ok VALUES (1, 'gold', now() - interval '5 days', false, false, false, true),
                         (2, 'silver', now() - interval '400 days', false, false, false, NULL),
                         (3, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE tp_missing AS SELECT id, offer, purchased_at, benefits_activated, upgraded_with_gold_discount, tax_exempt FROM tp_ok;
CREATE TABLE tp_wrong AS SELECT id, offer, purchased_at::date AS purchased_at, benefits_activated,
                                product_keys_viewed, upgraded_with_gold_discount, tax_exempt FROM tp_ok;
CREATE TABLE tp_badlabel AS SELECT id, 'Gold'::text AS offer, purchased_at, benefits_activated,
                                product_keys_viewed, upgraded_with_gold_discount, tax_exempt FROM tp_ok;
CREATE TABLE tp_empty ();
-- Purchases tables a foreign key can reference (tp_empty cannot be).
ALTER TABLE tp_missing ADD PRIMARY KEY (id);
ALTER TABLE tp_wrong ADD PRIMARY KEY (id);
ALTER TABLE tp_badlabel ADD PRIMARY KEY (id);
CREATE TYPE roles AS ENUM ('account_admin', 'intern');

-- name, columns, trigger arguments, the table and key the reference column
-- pid is made a FOREIGN KEY to (the trigger finds its purchases through it)
CREATE TABLE req_shape (name text PRIMARY KEY, cols text, args text, fk text);
INSERT INTO req_shape VALUES
 ('rq_ok',          'pid int, requested_at timestamptz, kind refund_rules.refund_kind, requested_by_role text', '''tp_ok'', ''pid''', 'tp_ok (id)'),
 ('rq_no_kind',     'pid int, requested_at timestamptz, requested_by_role text', '''tp_ok'', ''pid''', 'tp_ok (id)'),
 ('rq_kind_text',   'pid int, requested_at timestamptz, kind text, requested_by_role varchar', '''fuzz50.tp_ok'', ''pid'', ''id''', 'tp_ok (id)'),
 ('rq_kind_int',    'pid int, requested_at timestamptz, kind int, requested_by_role text', '''tp_ok'', ''pid''', 'tp_ok (id)'),
 ('rq_at_text',     'pid int, requested_at text, kind text, requested_by_role text', '''tp_ok'', ''pid''', 'tp_ok (id)'),
 ('rq_at_date',     'pid int, requested_at date, kind text, requested_by_role text', '''tp_ok'', ''pid''', 'tp_ok (id)'),
 ('rq_at_ts',       'pid int, requested_at timestamp, kind text, requested_by_role text', '''tp_ok'', ''pid''', 'tp_ok (id)'),
 ('rq_no_at',       'pid int, kind text, requested_by_role text', '''tp_ok'', ''pid''', 'tp_ok (id)'),
 ('rq_no_role',     'pid int, requested_at timestamptz, kind text', '''tp_ok'', ''pid''', 'tp_ok (id)'),
 ('rq_role_int',    'pid int, requested_at timestamptz, kind text, requested_by_role int', '''tp_ok'', ''pid''', 'tp_ok (id)'),
 ('rq_role_enum',   'pid int, requested_at timestamptz, kind text, requested_by_role roles', '''tp_ok'', ''pid''', 'tp_ok (id)'),
 ('rq_pid_text',    'pid text, requested_at timestamptz, kind text, requested_by_role text', '''tp_ok'', ''pid''', 'tp_ok (id)'),
 ('rq_pid_bigint',  'pid bigint, requested_at timestamptz, kind text, requested_by_role text', '''tp_ok'', ''pid''', 'tp_ok (id)'),
 ('rq_pid_jsonb',   'pid jsonb, requested_at timestamptz, kind text, requested_by_role text', '''tp_ok'', ''pid''', 'tp_ok (id)'),
 ('rq_no_pid',      'requested_at timestamptz, kind text, requested_by_role text', '''tp_ok'', ''pid''', 'tp_ok (id)'),
 ('rq_dropped',     'x int, pid int, y text, requested_at timestamptz, z int, kind text, requested_by_role text', '''tp_ok'', ''pid''', 'tp_ok (id)'),
 ('rq_p_missing',   'pid int, requested_at timestamptz, kind text, requested_by_role text', '''tp_missing'', ''pid''', 'tp_missing (id)'),
 ('rq_p_wrong',     'pid int, requested_at timestamptz, kind text, requested_by_role text', '''tp_wrong'', ''pid''', 'tp_wrong (id)'),
 ('rq_p_badlabel',  'pid int, requested_at timestamptz, kind text, requested_by_role text', '''tp_badlabel'', ''pid''', 'tp_badlabel (id)'),
 ('rq_p_empty',     'pid int, requested_at timestamptz, kind text, requested_by_role text', '''tp_empty'', ''pid''', 'tp_empty (id)'),
 ('rq_p_nokey',     'pid int, requested_at timestamptz, kind text, requested_by_role text', '''tp_ok'', ''pid'', ''nope''', 'tp_ok (id)'),
 ('rq_p_absent',    'pid int, requested_at timestamptz, kind text, requested_by_role text', '''no_such_table'', ''pid''', 'tp_ok (id)'),
 ('rq_p_nofk',      'pid int, requested_at timestamptz, kind text, requested_by_role text', '''tp_ok'', ''pid''', NULL),
 ('rq_one_arg',     'pid int, requested_at timestamptz, kind text, requested_by_role text', '''tp_ok''', 'tp_ok (id)'),
 ('rq_four_args',   'pid int, requested_at timestamptz, kind text, requested_by_role text', '''tp_ok'', ''pid'', ''id'', ''x''', 'tp_ok (id)');

-- The requests each table gets: purchase, moment (NOW: now(), the
-- statement's; the trigger judges at the database's clock), kind, role.
CREATE TABLE req_row (n int PRIMARY KEY, pid text, at text, kind text, role text);
INSERT INTO req_row VALUES
 (1, '1', 'NOW', 'purchase', 'account_admin'),   -- allowed
 (2, '1', 'NOW', 'tax', 'account_admin'),        -- allowed
 (3, '2', 'NOW', 'purchase', 'account_admin'),   -- expired
 (4, '1', NULL, 'purchase', 'account_admin'),                    -- missing_requested_at
 (5, '1', 'NOW', NULL, 'account_admin'),         -- missing_kind
 (6, '1', 'NOW', 'purchase', NULL),              -- missing role
 (7, '1', 'NOW', 'purchase', 'intern'),          -- not authorized
 (8, '1', 'NOW', 'refund', 'account_admin'),     -- invalid kind
 (9, '999', 'NOW', 'purchase', 'account_admin'), -- no such purchase
 (10, NULL, 'NOW', 'purchase', 'account_admin'), -- no purchase named
 (11, '3', 'infinity', 'tax', 'account_admin'),                  -- all NULL purchase
 (12, '1', '-infinity', 'purchase', 'account_admin'),            -- before the purchase
 (13, '1', '294276-12-31 23:59:59.999999+00', 'tax', 'account_admin'),
 (14, '1', '4714-11-24 00:00:00+00 BC', 'purchase', 'account_admin');

CREATE TABLE trigger_calls (tbl text, n int, state text, message text);
-- Whether the foreign key could be made (PostgreSQL's own errors: not part
-- of the calls below).
CREATE TABLE fk_made (tbl text PRIMARY KEY, state text, message text);
DO $$
DECLARE
    s record;
    x record;
    q text;
    cols text[];
    vals text[];
    c record;
BEGIN
    FOR s IN SELECT * FROM req_shape ORDER BY name LOOP
        EXECUTE format('CREATE TABLE %I (%s)', s.name, s.cols);
        IF s.name = 'rq_dropped' THEN
            ALTER TABLE rq_dropped DROP x, DROP y, DROP z;
        END IF;
        IF s.fk IS NULL THEN
            INSERT INTO fk_made VALUES (s.name, NULL, 'none');
        ELSE
            BEGIN
                EXECUTE format('ALTER TABLE %I ADD FOREIGN KEY (pid) REFERENCES %s', s.name, s.fk);
                INSERT INTO fk_made VALUES (s.name, '00000', NULL);
            EXCEPTION WHEN OTHERS THEN
                INSERT INTO fk_made VALUES (s.name, SQLSTATE, SQLERRM);
            END;
        END IF;
        EXECUTE format('CREATE TRIGGER enforce AFTER INSERT OR UPDATE ON %I FOR EACH ROW '
                       'EXECUTE FUNCTION refund_rules.enforce_refund_policy(%s)', s.name, s.args);
        FOR x IN SELECT * FROM req_row ORDER BY n LOOP
            cols := ARRAY[]::text[];
            vals := ARRAY[]::text[];
            FOR c IN SELECT a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS type
                       FROM pg_attribute a
                      WHERE a.attrelid = s.name::regclass AND a.attnum > 0 AND NOT a.attisdropped
                      ORDER BY a.attnum LOOP
                cols := cols || quote_ident(c.name);
                vals := vals || CASE
                    WHEN c.name = 'pid' AND c.type = 'jsonb' THEN quote_nullable(x.pid) || '::jsonb'
                    WHEN c.name = 'pid' THEN quote_nullable(x.pid)
                    WHEN c.name = 'requested_at' AND c.type = 'integer' THEN '20261125'
                    WHEN c.name = 'requested_at' AND x.at = 'NOW' THEN 'now()'
                    WHEN c.name = 'requested_at' THEN quote_nullable(x.at)
                    WHEN c.name = 'kind' AND c.type = 'integer' THEN CASE WHEN x.kind IS NULL THEN 'NULL' ELSE '1' END
                    WHEN c.name = 'kind' THEN quote_nullable(x.kind)
                    WHEN c.name = 'requested_by_role' AND c.type = 'integer' THEN CASE WHEN x.role IS NULL THEN 'NULL' ELSE '1' END
                    WHEN c.name = 'requested_by_role' AND c.type = 'roles' AND x.role NOT IN ('account_admin', 'intern') THEN 'NULL'
                    WHEN c.name = 'requested_by_role' THEN quote_nullable(x.role)
                    ELSE 'NULL' END;
            END LOOP;
            q := format('INSERT INTO %I (%s) VALUES (%s)', s.name,
                        array_to_string(cols, ', '), array_to_string(vals, ', '));
            BEGIN
                EXECUTE q;
                INSERT INTO trigger_calls VALUES (s.name, x.n, '00000', NULL);
            EXCEPTION WHEN OTHERS THEN
                INSERT INTO trigger_calls VALUES (s.name, x.n, SQLSTATE, SQLERRM);
            END;
        END LOOP;
        -- and an UPDATE of every row that got in, to a moment past every
        -- window (and postdated)
        BEGIN
            EXECUTE format('UPDATE %I SET requested_at = %L', s.name, '2042-01-01 00:00+00');
            INSERT INTO trigger_calls VALUES (s.name, 99, '00000', NULL);
        EXCEPTION WHEN OTHERS THEN
            INSERT INTO trigger_calls VALUES (s.name, 99, SQLSTATE, SQLERRM);
        END;
    END LOOP;
END $$;

-- The foreign keys that could not be made.
SELECT tbl, state, message FROM fk_made WHERE state IS DISTINCT FROM '00000' ORDER BY tbl;
-- Per request table: the SQLSTATE of requests 1..14 and of the UPDATE.
SELECT tbl, string_agg(CASE state WHEN '00000' THEN 'ok' ELSE state END, ' ' ORDER BY n) AS outcomes
  FROM trigger_calls GROUP BY tbl ORDER BY tbl;
-- The message of each table whose requests all fail alike (but request 9,
-- for a purchase that does not exist, which the foreign key refuses first
-- where there is one).
SELECT tbl, min(message) AS message
  FROM trigger_calls WHERE n < 99 AND n <> 9
 GROUP BY tbl HAVING count(DISTINCT state) = 1 AND min(state) <> '00000'
 ORDER BY tbl;

------------------------------------------------------------------------
-- Summary
------------------------------------------------------------------------

CREATE TABLE all_calls AS
  SELECT 'shapes' AS part, state, result AS message FROM calls
  UNION ALL SELECT 'column forms', state, result FROM colcalls
  UNION ALL SELECT 'check_refund', state, NULL FROM rand_checks
  UNION ALL SELECT 'trigger', state, message FROM trigger_calls;

SELECT state, d.meaning, count(*) AS calls
  FROM all_calls LEFT JOIN documented d USING (state)
 GROUP BY state, d.meaning ORDER BY state;

SELECT count(*) >= 5000 AS thousands_of_calls,
       count(*) FILTER (WHERE state LIKE 'XX%') AS internal_errors,
       count(*) FILTER (WHERE state NOT IN (SELECT state FROM documented)) AS undocumented
  FROM all_calls;

-- Any internal or undocumented error, in full.
SELECT part, state, left(message, 100) AS message, count(*)
  FROM all_calls WHERE state NOT IN (SELECT state FROM documented)
 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 LIMIT 20;

SELECT pg_postmaster_start_time() <> :'start_time' AS "server restarted";

RESET search_path;
DROP SCHEMA fuzz50 CASCADE;
