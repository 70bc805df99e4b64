-- scripts/demo.sql - the refund report scripts/demo.sh prints (psql; :as_of set by it).
SET TimeZone = 'UTC';
\pset footer off

\echo
\echo 'Eligible for a purchase refund:'
SELECT count(*) FILTER (WHERE refund_rules.refund_eligible(p, as_of => :'as_of'))          AS eligible,
       count(*) FILTER (WHERE NOT refund_rules.refund_eligible(p, as_of => :'as_of'))      AS not_eligible,
       count(*) FILTER (WHERE refund_rules.refund_eligible(p, as_of => :'as_of') IS NULL)  AS unknown
FROM purchases p;

\echo 'Why not (purchase refunds):'
SELECT reason, count(*) AS purchases
FROM purchases p,
     unnest(refund_rules.refund_ineligibility_reasons(p, as_of => :'as_of')) AS reason
GROUP BY reason
ORDER BY count(*) DESC, reason;

\echo 'Why not (tax refunds):'
SELECT reason, count(*) AS purchases
FROM purchases p,
     unnest(refund_rules.refund_ineligibility_reasons(p, as_of => :'as_of', kind => 'tax')) AS reason
GROUP BY reason
ORDER BY count(*) DESC, reason;

\echo 'Next refund deadlines:'
SELECT p.id, p.partner, p.offer,
       refund_rules.refund_deadline(p.purchased_at)                        AS deadline,
       refund_rules.refund_deadline(p.purchased_at) - :'as_of'::timestamptz AS time_left
FROM purchases p
WHERE refund_rules.refund_eligible(p, as_of => :'as_of')
ORDER BY deadline, p.id;
