-- The policy page's Examples table (as_of = 2026-11-25 12:00 UTC) and every
-- rule and reason code of the query functions.
SET TimeZone = 'UTC';
CREATE SCHEMA t10;
SET search_path = t10, public;

CREATE TABLE purchases (
    id int PRIMARY KEY,
    offer refund_rules.mpn_offer,
    purchased_at timestamptz,
    benefits_activated boolean,
    product_keys_viewed boolean,
    upgraded_with_gold_discount boolean,
    tax_exempt boolean,
    want_eligible boolean,          -- as the policy page says
    want_reasons text[]
);

-- The Examples table, row for row.
INSERT INTO purchases VALUES
 (1, 'gold',        '2026-11-20 09:00',    false, false, false, true, true,  '{}'),
 (2, 'silver',      '2026-10-26 12:00',    false, false, false, true, true,  '{}'),
 (3, 'silver',      '2026-10-26 11:59:59', false, false, false, true, false, '{refund_window_expired}'),
 (4, 'silver',      '2026-11-20',          false, false, true,  true, false, '{upgraded_with_gold_discount}'),
 (5, 'gold',        '2026-11-20',          false, false, true,  true, true,  '{}'),
 (6, 'action_pack', '2026-11-01',          true,  true,  false, true, false, '{benefits_activated,product_keys_viewed}'),
 (7, 'action_pack', '2026-11-01',          false, NULL,  false, true, NULL,  '{missing_product_keys_viewed}'),
 (8, 'gold',        '2026-12-01',          false, false, false, true, false, '{not_yet_purchased}');

-- Each example gives exactly the result and reasons of the policy page.
SELECT id, offer, purchased_at,
       refund_rules.refund_eligible(p, '2026-11-25 12:00+00') AS eligible,
       refund_rules.refund_ineligibility_reasons(p, '2026-11-25 12:00+00') AS reasons,
       refund_rules.refund_eligible(p, '2026-11-25 12:00+00') IS NOT DISTINCT FROM want_eligible
         AND refund_rules.refund_ineligibility_reasons(p, '2026-11-25 12:00+00') = want_reasons AS as_policy
  FROM purchases p ORDER BY id;

-- The same through the row of a subquery (no planner rewrite) and through
-- refund_status: number of examples that disagree with the policy page.
SELECT count(*) FILTER (WHERE refund_rules.refund_eligible(s, '2026-11-25 12:00+00') IS DISTINCT FROM want_eligible) AS eligible_wrong,
       count(*) FILTER (WHERE refund_rules.refund_ineligibility_reasons(s, '2026-11-25 12:00+00') IS DISTINCT FROM want_reasons) AS reasons_wrong,
       count(*) AS examples
  FROM (SELECT * FROM purchases OFFSET 0) s;
SELECT count(*) FILTER (WHERE st.refund_eligible IS DISTINCT FROM want_eligible
                           OR st.refund_reasons IS DISTINCT FROM want_reasons) AS status_wrong,
       count(*) AS examples
  FROM purchases p CROSS JOIN LATERAL refund_rules.refund_status(p, '2026-11-25 12:00+00') st;
-- refund_eligible is true exactly where the reasons are {} (same as_of).
SELECT id FROM purchases p
 WHERE refund_rules.refund_eligible(p, '2026-11-25 12:00+00') ORDER BY id;
SELECT id FROM purchases p
 WHERE NOT refund_rules.refund_eligible(p, '2026-11-25 12:00+00') ORDER BY id;

-- Every rule on its own, and every reason code of the query functions.
-- Base: a Silver purchase of 2026-11-20, nothing used, tax exempt.
CREATE TABLE cases (label text PRIMARY KEY, offer refund_rules.mpn_offer,
    purchased_at timestamptz, benefits_activated boolean, product_keys_viewed boolean,
    upgraded_with_gold_discount boolean, tax_exempt boolean);
INSERT INTO cases VALUES
 ('a allowed',                    'silver',      '2026-11-20', false, false, false, true),
 ('b not yet purchased',          'silver',      '2026-11-26', false, false, false, true),
 ('c refund window expired',      'silver',      '2026-01-20', false, false, false, true),
 ('d tax window expired',         'silver',      '2025-11-20', false, false, false, true),
 ('e benefits activated',         'silver',      '2026-11-20', true,  false, false, true),
 ('f product keys viewed',        'silver',      '2026-11-20', false, true,  false, true),
 ('g upgraded silver',            'silver',      '2026-11-20', false, false, true,  true),
 ('h upgraded gold',              'gold',        '2026-11-20', false, false, true,  true),
 ('i upgraded action pack',       'action_pack', '2026-11-20', false, false, true,  true),
 ('j not tax exempt',             'silver',      '2026-11-20', false, false, false, false),
 ('k everything fails',           'silver',      '2026-01-20', true,  true,  true,  false),
 ('l missing offer',              NULL,          '2026-11-20', false, false, true,  true),
 ('m missing purchased_at',       'silver',      NULL,         false, false, false, NULL),
 ('n missing benefits_activated', 'silver',      '2026-11-20', NULL,  false, false, true),
 ('o missing keys viewed',        'silver',      '2026-11-20', false, NULL,  false, true),
 ('p missing upgraded flag',      'silver',      '2026-11-20', false, false, NULL,  true),
 ('q missing tax_exempt',         'silver',      '2026-11-20', false, false, false, NULL),
 ('r missing offer and flag',     NULL,          '2026-11-20', false, false, NULL,  true),
 ('s missing beside a failure',   'silver',      '2026-01-20', NULL,  true,  NULL,  NULL);
SELECT label,
       refund_rules.refund_eligible(c, '2026-11-25 12:00+00') AS refund,
       refund_rules.refund_ineligibility_reasons(c, '2026-11-25 12:00+00') AS refund_reasons,
       refund_rules.tax_refund_eligible(c, '2026-11-25 12:00+00') AS tax,
       refund_rules.refund_ineligibility_reasons(c, '2026-11-25 12:00+00', 'tax') AS tax_reasons
  FROM cases c ORDER BY label;

-- refund_status gives the same in one row, with the deadlines.
SELECT label, st.*
  FROM cases c CROSS JOIN LATERAL refund_rules.refund_status(c, '2026-11-25 12:00+00') st
 WHERE label IN ('a allowed', 'g upgraded silver', 'h upgraded gold', 'm missing purchased_at', 'k everything fails')
 ORDER BY label;
SELECT count(*) FILTER (WHERE st.refund_eligible IS DISTINCT FROM refund_rules.refund_eligible(c, '2026-11-25 12:00+00')
       OR st.refund_reasons IS DISTINCT FROM refund_rules.refund_ineligibility_reasons(c, '2026-11-25 12:00+00', 'purchase')
       OR st.refund_deadline IS DISTINCT FROM refund_rules.refund_deadline(c.purchased_at)
       OR st.tax_refund_eligible IS DISTINCT FROM refund_rules.tax_refund_eligible(c, '2026-11-25 12:00+00')
       OR st.tax_refund_reasons IS DISTINCT FROM refund_rules.refund_ineligibility_reasons(c, '2026-11-25 12:00+00', 'tax')
       OR st.tax_refund_deadline IS DISTINCT FROM refund_rules.tax_refund_deadline(c.purchased_at)) AS status_disagrees,
       count(*) AS cases
  FROM cases c CROSS JOIN LATERAL refund_rules.refund_status(c, '2026-11-25 12:00+00') st;

-- Defaults: as_of is now(), kind is purchase.
SELECT refund_rules.refund_eligible(ROW('silver', now() - interval '1 day', false, false, false, true)::refund_rules.purchase) AS yesterday,
       refund_rules.refund_eligible(ROW('silver', now() - interval '31 days', false, false, false, true)::refund_rules.purchase) AS last_month,
       refund_rules.tax_refund_eligible(ROW('silver', now() - interval '31 days', false, false, false, true)::refund_rules.purchase) AS tax_last_month,
       refund_rules.refund_ineligibility_reasons(ROW('silver', now() - interval '31 days', false, false, false, false)::refund_rules.purchase) AS reasons,
       refund_rules.refund_ineligibility_reasons(ROW('silver', now() - interval '31 days', false, false, false, false)::refund_rules.purchase, now()) AS reasons_now;

RESET search_path;
DROP SCHEMA t10 CASCADE;
