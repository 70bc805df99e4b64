-- NULLs: in each field, as_of, kind, a NULL row (typed, and from an outer
-- join).  Three-valued results and missing_<column> reasons.
SET TimeZone = 'UTC';
CREATE SCHEMA t12;
SET search_path = t12, public;

CREATE TABLE purchases (
    id int PRIMARY KEY, note text,
    offer refund_rules.mpn_offer, purchased_at timestamptz, benefits_activated boolean,
    product_keys_viewed boolean, upgraded_with_gold_discount boolean, tax_exempt boolean);
-- Base: Silver of 2026-11-20, nothing used, tax exempt: both refunds allowed
-- at 2026-11-25 12:00 UTC.  Then one field NULL at a time.
INSERT INTO purchases VALUES
 (1, 'no NULL',                              'silver', '2026-11-20', false, false, false, true),
 (2, 'offer',                                NULL,     '2026-11-20', false, false, false, true),
 (3, 'offer, upgraded',                      NULL,     '2026-11-20', false, false, true,  true),
 (4, 'purchased_at',                         'silver', NULL,         false, false, false, true),
 (5, 'benefits_activated',                   'silver', '2026-11-20', NULL,  false, false, true),
 (6, 'product_keys_viewed',                  'silver', '2026-11-20', false, NULL,  false, true),
 (7, 'upgraded, silver',                     'silver', '2026-11-20', false, false, NULL,  true),
 (8, 'upgraded, gold',                       'gold',   '2026-11-20', false, false, NULL,  true),
 (9, 'upgraded, action_pack',                'action_pack', '2026-11-20', false, false, NULL, true),
 (10, 'offer and upgraded',                  NULL,     '2026-11-20', false, false, NULL,  true),
 (11, 'tax_exempt',                          'silver', '2026-11-20', false, false, false, NULL),
 (12, 'every field',                         NULL,     NULL,         NULL,  NULL,  NULL,  NULL),
 (13, 'benefits, beside keys viewed',        'silver', '2026-11-20', NULL,  true,  false, true),
 (14, 'purchased_at, beside not exempt',     'silver', NULL,         false, false, false, false),
 (15, 'keys, beside an expired window',      'silver', '2025-01-01', false, NULL,  false, NULL),
 (16, 'tax_exempt, beside not yet purchased','silver', '2026-12-01', false, false, false, NULL);

SELECT id, note AS null_in,
       refund_rules.refund_eligible(p, '2026-11-25 12:00+00') AS refund,
       refund_rules.refund_ineligibility_reasons(p, '2026-11-25 12:00+00') AS refund_reasons,
       refund_rules.tax_refund_eligible(p, '2026-11-25 12:00+00') AS tax,
       refund_rules.refund_ineligibility_reasons(p, '2026-11-25 12:00+00', 'tax') AS tax_reasons
  FROM purchases p ORDER BY id;

-- Three-valued logic in WHERE: NULL is neither true nor false.
SELECT count(*) FILTER (WHERE refund_rules.refund_eligible(p, '2026-11-25 12:00+00')) AS refund_true,
       count(*) FILTER (WHERE NOT refund_rules.refund_eligible(p, '2026-11-25 12:00+00')) AS refund_false,
       count(*) FILTER (WHERE refund_rules.refund_eligible(p, '2026-11-25 12:00+00') IS NULL) AS refund_null,
       count(*) FILTER (WHERE refund_rules.tax_refund_eligible(p, '2026-11-25 12:00+00')) AS tax_true,
       count(*) FILTER (WHERE NOT refund_rules.tax_refund_eligible(p, '2026-11-25 12:00+00')) AS tax_false,
       count(*) FILTER (WHERE refund_rules.tax_refund_eligible(p, '2026-11-25 12:00+00') IS NULL) AS tax_null
  FROM purchases p;
SELECT id FROM purchases p WHERE refund_rules.refund_eligible(p, '2026-11-25 12:00+00') ORDER BY id;
SELECT id FROM purchases p WHERE NOT refund_rules.refund_eligible(p, '2026-11-25 12:00+00') ORDER BY id;
SELECT id FROM purchases p WHERE refund_rules.tax_refund_eligible(p, '2026-11-25 12:00+00') IS NULL ORDER BY id;

-- The row of a subquery (no planner rewrite) and refund_status agree.
SELECT count(*) FILTER (WHERE refund_rules.refund_eligible(s, '2026-11-25 12:00+00')
                              IS DISTINCT FROM refund_rules.refund_eligible(p, '2026-11-25 12:00+00')
                           OR refund_rules.tax_refund_eligible(s, '2026-11-25 12:00+00')
                              IS DISTINCT FROM refund_rules.tax_refund_eligible(p, '2026-11-25 12:00+00')
                           OR refund_rules.refund_ineligibility_reasons(s, '2026-11-25 12:00+00')
                              IS DISTINCT FROM refund_rules.refund_ineligibility_reasons(p, '2026-11-25 12:00+00')
                           OR refund_rules.refund_ineligibility_reasons(s, '2026-11-25 12:00+00', 'tax')
                              IS DISTINCT FROM refund_rules.refund_ineligibility_reasons(p, '2026-11-25 12:00+00', 'tax')
                           OR (st.refund_eligible, st.refund_reasons, st.tax_refund_eligible, st.tax_refund_reasons)
                              IS DISTINCT FROM (refund_rules.refund_eligible(p, '2026-11-25 12:00+00'),
                                                refund_rules.refund_ineligibility_reasons(p, '2026-11-25 12:00+00'),
                                                refund_rules.tax_refund_eligible(p, '2026-11-25 12:00+00'),
                                                refund_rules.refund_ineligibility_reasons(p, '2026-11-25 12:00+00', 'tax'))
                      ) AS disagree,
       count(*) AS rows
  FROM purchases p
  JOIN (SELECT * FROM purchases OFFSET 0) s USING (id)
 CROSS JOIN LATERAL refund_rules.refund_status(p, '2026-11-25 12:00+00') st;
SELECT id, st.* FROM purchases p CROSS JOIN LATERAL refund_rules.refund_status(p, '2026-11-25 12:00+00') st
 WHERE id IN (4, 10, 12) ORDER BY id;

-- as_of NULL: eligibility and reasons NULL; the deadlines stay known.
SELECT refund_rules.refund_eligible(p, NULL) AS refund,
       refund_rules.tax_refund_eligible(p, NULL) AS tax,
       refund_rules.refund_ineligibility_reasons(p, NULL) AS refund_reasons,
       refund_rules.refund_ineligibility_reasons(p, NULL, 'tax') AS tax_reasons,
       refund_rules.refund_eligible(p, NULL::timestamptz) IS NULL AS typed_null
  FROM purchases p WHERE id = 1;
SELECT st.* FROM purchases p CROSS JOIN LATERAL refund_rules.refund_status(p, NULL) st WHERE id = 1;
SELECT count(*) FILTER (WHERE refund_rules.refund_eligible(p, NULL) IS NOT NULL
                           OR refund_rules.tax_refund_eligible(p, NULL) IS NOT NULL
                           OR refund_rules.refund_ineligibility_reasons(p, NULL) IS NOT NULL
                           OR refund_rules.refund_eligible(s, NULL) IS NOT NULL
                           OR refund_rules.tax_refund_eligible(s, NULL) IS NOT NULL
                           OR refund_rules.refund_ineligibility_reasons(s, NULL, 'tax') IS NOT NULL) AS not_null,
       count(*) AS rows
  FROM purchases p JOIN (SELECT * FROM purchases OFFSET 0) s USING (id);

-- kind NULL: reasons NULL.
SELECT refund_rules.refund_ineligibility_reasons(p, '2026-11-25 12:00+00', NULL) AS table_row,
       refund_rules.refund_ineligibility_reasons(ROW('silver', '2026-11-20', false, false, false, true)::refund_rules.purchase,
                                                 '2026-11-25 12:00+00', NULL) AS typed_row
  FROM purchases p WHERE id = 1;
SELECT count(*) FILTER (WHERE refund_rules.refund_ineligibility_reasons(p, '2026-11-25 12:00+00', NULL) IS NOT NULL) AS not_null,
       count(*) AS rows
  FROM purchases p;

-- A NULL row reads as all fields NULL.
SELECT refund_rules.refund_eligible(NULL::refund_rules.purchase, '2026-11-25 12:00+00') AS refund,
       refund_rules.refund_ineligibility_reasons(NULL::refund_rules.purchase, '2026-11-25 12:00+00') AS refund_reasons,
       refund_rules.tax_refund_eligible(NULL::refund_rules.purchase, '2026-11-25 12:00+00') AS tax,
       refund_rules.refund_ineligibility_reasons(NULL::refund_rules.purchase, '2026-11-25 12:00+00', 'tax') AS tax_reasons;
SELECT * FROM refund_rules.refund_status(NULL::refund_rules.purchase, '2026-11-25 12:00+00');
SELECT refund_rules.refund_eligible(NULL::purchases, '2026-11-25 12:00+00') AS table_type,
       refund_rules.refund_ineligibility_reasons(NULL::purchases, '2026-11-25 12:00+00', 'tax') AS table_type_tax;

-- A NULL table row through a LEFT JOIN: the same as a NULL row, whether the
-- planner rewrites the call (p) or not (s).
CREATE TABLE orders (order_id int, purchase_id int);
INSERT INTO orders VALUES (1, 1), (2, 99), (3, 13);
SELECT o.order_id, p IS NULL AS no_purchase,
       refund_rules.refund_eligible(p, '2026-11-25 12:00+00') AS refund,
       refund_rules.refund_ineligibility_reasons(p, '2026-11-25 12:00+00') AS refund_reasons,
       refund_rules.tax_refund_eligible(p, '2026-11-25 12:00+00') AS tax,
       refund_rules.refund_ineligibility_reasons(p, '2026-11-25 12:00+00', 'tax') AS tax_reasons
  FROM orders o LEFT JOIN purchases p ON p.id = o.purchase_id ORDER BY o.order_id;
SELECT o.order_id,
       refund_rules.refund_eligible(s, '2026-11-25 12:00+00') AS refund,
       refund_rules.refund_ineligibility_reasons(s, '2026-11-25 12:00+00') AS refund_reasons,
       refund_rules.tax_refund_eligible(s, '2026-11-25 12:00+00') AS tax,
       refund_rules.refund_ineligibility_reasons(s, '2026-11-25 12:00+00', 'tax') AS tax_reasons
  FROM orders o LEFT JOIN (SELECT * FROM purchases OFFSET 0) s ON s.id = o.purchase_id ORDER BY o.order_id;
SELECT o.order_id, st.*
  FROM orders o LEFT JOIN purchases p ON p.id = o.purchase_id
 CROSS JOIN LATERAL refund_rules.refund_status(p, '2026-11-25 12:00+00') st
 WHERE o.order_id = 2;
-- In WHERE: the missing purchase is neither allowed nor refused.
SELECT o.order_id FROM orders o LEFT JOIN purchases p ON p.id = o.purchase_id
 WHERE refund_rules.refund_eligible(p, '2026-11-25 12:00+00') IS NULL ORDER BY 1;
SELECT o.order_id FROM orders o LEFT JOIN purchases p ON p.id = o.purchase_id
 WHERE NOT refund_rules.refund_eligible(p, '2026-11-25 12:00+00') OR refund_rules.refund_eligible(p, '2026-11-25 12:00+00') ORDER BY 1;

RESET search_path;
DROP SCHEMA t12 CASCADE;
