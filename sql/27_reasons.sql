-- 27_reasons: the reason codes in plain words, as data.  Every code the C
-- code can report has a row of refund_rules.reasons (checked against the
-- C's own list, reason_codes()), every code the query functions return on a
-- grid of purchases is one of them, their order is the order reasons are
-- reported in, any role may read the view, and a report joins to it.
SET TimeZone = 'UTC';
CREATE ROLE regress_rr_reports NOLOGIN;

-- The C's list, each with its sentence, criterion and kinds; the order and
-- the codes are part of the interface (a change shows here).
SELECT "position", code, criterion, changes_with_time, kinds FROM refund_rules.reasons ORDER BY "position";
SELECT count(*) AS codes,
       count(*) FILTER (WHERE description IS NULL OR criterion IS NULL OR kinds IS NULL) AS undescribed,
       count(DISTINCT code) AS distinct_codes
  FROM refund_rules.reasons;
SELECT (SELECT array_agg(code ORDER BY "position") FROM refund_rules.reason_codes())
     = (SELECT array_agg(code ORDER BY "position") FROM refund_rules.reasons) AS view_follows_the_c_list;

-- Every code the query functions return (both kinds, every NULL case,
-- every window position) is described.
CREATE TEMP TABLE grid AS
SELECT o AS offer, t AS purchased_at, b AS benefits_activated, k AS product_keys_viewed,
       u AS upgraded_with_gold_discount, te AS tax_exempt
  FROM unnest(ARRAY['action_pack', 'silver', 'gold', NULL]::refund_rules.mpn_offer[]) o,
       unnest(ARRAY['2026-11-20 09:00+00', '2026-10-01 00:00+00', '2024-01-01 00:00+00',
                    '2026-12-01 00:00+00', NULL]::timestamptz[]) t,
       unnest(ARRAY[false, true, NULL]) b, unnest(ARRAY[false, true, NULL]) k,
       unnest(ARRAY[false, true, NULL]) u, unnest(ARRAY[true, false, NULL]) te;
SELECT r.code, count(*) AS rows
  FROM grid g, unnest(ARRAY['purchase', 'tax']::refund_rules.refund_kind[]) kind,
       unnest(refund_rules.refund_ineligibility_reasons(g, '2026-11-25 12:00+00', kind)) r(code)
 GROUP BY r.code ORDER BY min((SELECT "position" FROM refund_rules.reasons x WHERE x.code = r.code));
SELECT count(*) AS undescribed_codes_returned
  FROM grid g, unnest(ARRAY['purchase', 'tax']::refund_rules.refund_kind[]) kind,
       unnest(refund_rules.refund_ineligibility_reasons(g, '2026-11-25 12:00+00', kind)) r(code)
 WHERE NOT EXISTS (SELECT FROM refund_rules.reasons x WHERE x.code = r.code AND x.description IS NOT NULL);
-- Only not_yet_purchased can still change with time; refund_window_expired
-- and product_keys_viewed never do.
SELECT code FROM refund_rules.reasons WHERE changes_with_time ORDER BY "position";
SELECT code, changes_with_time FROM refund_rules.reasons
 WHERE code IN ('refund_window_expired', 'product_keys_viewed') ORDER BY "position";

-- Any role reads it; a report joins to it.
GRANT SELECT ON grid TO regress_rr_reports;
SET ROLE regress_rr_reports;
SELECT r.code, x.description, count(*) AS purchases
  FROM grid g, unnest(refund_rules.refund_ineligibility_reasons(g, '2026-11-25 12:00+00')) r(code)
  JOIN refund_rules.reasons x ON x.code = r.code
 WHERE g.offer = 'silver' AND g.purchased_at = '2026-11-20 09:00+00' AND g.tax_exempt
   AND g.benefits_activated IS NOT NULL AND g.product_keys_viewed IS NOT NULL
   AND g.upgraded_with_gold_discount IS NOT NULL
 GROUP BY r.code, x.description, x."position" ORDER BY x."position";
RESET ROLE;
DROP TABLE grid;
DROP ROLE regress_rr_reports;
