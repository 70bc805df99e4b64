-- A row type that changes under a call site: columns added with a default
-- (stored as "missing" values, not in old rows), and a PL/pgSQL expression
-- that outlives ALTER TABLE.  The answers follow the current row type.
SET TimeZone = 'UTC';
CREATE SCHEMA t16;
SET search_path = t16;

-- Columns added later with a default: old rows read the default.
CREATE TABLE grown (id int, offer text, purchased_at timestamptz,
                    benefits_activated boolean, product_keys_viewed boolean);
INSERT INTO grown VALUES (1, 'silver', '2026-11-20 00:00+00', false, false);
ALTER TABLE grown ADD COLUMN upgraded_with_gold_discount boolean NOT NULL DEFAULT true,
                  ADD COLUMN tax_exempt boolean DEFAULT true;
INSERT INTO grown VALUES (2, 'silver', '2026-11-20 00:00+00', false, false, false, false);
SELECT id,
       refund_rules.refund_ineligibility_reasons(g, '2026-11-25 12:00+00') AS table_row,
       refund_rules.refund_ineligibility_reasons(s, '2026-11-25 12:00+00') AS subquery_row,
       refund_rules.tax_refund_eligible(s, '2026-11-25 12:00+00') AS tax_subquery_row
FROM grown g JOIN (SELECT * FROM grown OFFSET 0) s USING (id)
ORDER BY id;
-- The same rows stored as a composite column keep their old layout.
CREATE TABLE boxes (p grown);
INSERT INTO boxes SELECT g FROM grown g;
SELECT (p).id, refund_rules.refund_ineligibility_reasons(p, '2026-11-25 12:00+00') FROM boxes ORDER BY 1;

-- A PL/pgSQL record expression keeps its call site across ALTER TABLE;
-- the reader notices the new row type instead of reading with the old one.
CREATE TABLE changing (id int, offer text, purchased_at timestamptz,
                       benefits_activated boolean, product_keys_viewed boolean,
                       upgraded_with_gold_discount boolean, tax_exempt boolean);
INSERT INTO changing VALUES (1, 'gold', '2026-11-20 00:00+00', false, false, false, false);
DO $$
DECLARE
    r changing;
BEGIN
    FOR i IN 1..4 LOOP
        SELECT * INTO r FROM changing WHERE id = 1;
        RAISE NOTICE 'step %: eligible %, reasons %', i,
            refund_rules.refund_eligible(r, '2026-11-25 12:00+00'),
            refund_rules.refund_ineligibility_reasons(r, '2026-11-25 12:00+00');
        IF i = 1 THEN
            ALTER TABLE changing ALTER COLUMN offer TYPE refund_rules.mpn_offer
                USING offer::refund_rules.mpn_offer;
        ELSIF i = 2 THEN
            ALTER TABLE changing DROP COLUMN benefits_activated;
            ALTER TABLE changing ADD COLUMN benefits_activated boolean DEFAULT true;
        ELSIF i = 3 THEN
            ALTER TABLE changing ALTER COLUMN purchased_at TYPE text;
        END IF;
    END LOOP;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'step 4: % (%)', SQLERRM, SQLSTATE;
END;
$$;

RESET search_path;
DROP SCHEMA t16 CASCADE;
