-- Both ends of each window to the microsecond, the tax year in UTC (leap
-- day included), the deadlines, TimeZone independence, infinite and
-- extreme timestamps.
SET TimeZone = 'UTC';
CREATE SCHEMA t11;
SET search_path = t11, public;

-- A helper: a purchase that passes every criterion but the window.
CREATE FUNCTION buy(at timestamptz) RETURNS refund_rules.purchase
LANGUAGE sql IMMUTABLE
AS $$ SELECT ROW('silver', at, false, false, false, true)::refund_rules.purchase $$;

-- Purchase window: 30 days = 720 hours exactly, both ends inclusive.
SELECT label, as_of,
       refund_rules.refund_eligible(t11.buy('2026-10-26 12:00+00'), as_of) AS eligible,
       refund_rules.refund_ineligibility_reasons(t11.buy('2026-10-26 12:00+00'), as_of) AS reasons
  FROM (VALUES
   ('1 purchase - 1us', '2026-10-26 11:59:59.999999+00'::timestamptz),
   ('2 purchase',       '2026-10-26 12:00:00+00'),
   ('3 + 720h - 1us',   timestamptz '2026-10-26 12:00+00' + interval '720 hours' - interval '1 microsecond'),
   ('4 + 720h',         timestamptz '2026-10-26 12:00+00' + interval '720 hours'),
   ('5 + 720h + 1us',   timestamptz '2026-10-26 12:00+00' + interval '720 hours' + interval '1 microsecond'))
   v(label, as_of) ORDER BY label;

-- Tax window: one calendar year in UTC, both ends inclusive.
SELECT label, as_of,
       refund_rules.tax_refund_eligible(t11.buy('2026-10-26 12:00+00'), as_of) AS eligible,
       refund_rules.refund_ineligibility_reasons(t11.buy('2026-10-26 12:00+00'), as_of, 'tax') AS reasons
  FROM (VALUES
   ('1 purchase - 1us', '2026-10-26 11:59:59.999999+00'::timestamptz),
   ('2 purchase',       '2026-10-26 12:00:00+00'),
   ('3 + 1y - 1us',     '2027-10-26 11:59:59.999999+00'),
   ('4 + 1y',           '2027-10-26 12:00:00+00'),
   ('5 + 1y + 1us',     '2027-10-26 12:00:00.000001+00'))
   v(label, as_of) ORDER BY label;

-- The leap day: 2024-02-29 12:00 UTC has its tax deadline on 2025-02-28 12:00
-- UTC; a purchase on 2023-02-28 has 2024-02-28 (not the 29th), one on
-- 2024-02-28 has 2025-02-28.
SELECT purchased_at, as_of,
       refund_rules.tax_refund_eligible(t11.buy(purchased_at), as_of) AS eligible,
       refund_rules.refund_ineligibility_reasons(t11.buy(purchased_at), as_of, 'tax') AS reasons
  FROM (VALUES
   ('2024-02-29 12:00+00'::timestamptz, '2025-02-28 12:00:00+00'::timestamptz),
   ('2024-02-29 12:00+00',              '2025-02-28 12:00:00.000001+00'),
   ('2023-02-28 12:00+00',              '2024-02-28 12:00:00+00'),
   ('2023-02-28 12:00+00',              '2024-02-28 12:00:00.000001+00'),
   ('2023-02-28 12:00+00',              '2024-02-29 00:00:00+00'),
   ('2024-02-28 12:00+00',              '2025-02-28 12:00:00+00'),
   ('2024-02-28 12:00+00',              '2025-02-28 12:00:00.000001+00'))
   v(purchased_at, as_of) ORDER BY purchased_at, as_of;

-- The deadlines themselves.  The tax year is counted in UTC whatever the
-- session's TimeZone: 2024-02-29 00:30 UTC (the 28th in Los Angeles) gives
-- 2025-02-28 00:30 UTC; 2026-03-10 12:00 UTC (daylight time in Los Angeles)
-- gives 2027-03-10 12:00 UTC (standard time there).
SELECT purchased_at,
       refund_rules.refund_deadline(purchased_at) AS refund_deadline,
       refund_rules.tax_refund_deadline(purchased_at) AS tax_refund_deadline
  FROM unnest(ARRAY[
   '2026-10-26 12:00+00', '2026-10-26 11:59:59.999999+00',
   '2024-02-29 12:00+00', '2024-02-29 00:30+00', '2023-02-28 12:00+00', '2024-02-28 12:00+00',
   '2023-03-01 00:00+00', '2024-01-31 23:59:59.999999+00', '2026-03-10 12:00+00',
   '2026-12-31 23:59:59.999999+00', '2000-01-01 00:00+00']::timestamptz[]) purchased_at;
SELECT refund_rules.refund_deadline(NULL) AS refund_deadline_null,
       refund_rules.tax_refund_deadline(NULL) AS tax_refund_deadline_null;

-- The same answers whatever the session's TimeZone: purchases and as_of
-- around daylight saving changes, leap days and local midnights.
CREATE TABLE tz_cases AS
SELECT row_number() OVER () AS n, p.at AS purchased_at, p.at + d.delta AS as_of
  FROM unnest(ARRAY[
        '2024-02-29 00:30+00', '2024-02-29 12:00+00', '2024-02-28 23:30+00', '2024-03-01 00:15+00',
        '2023-02-28 12:00+00', '2026-03-01 12:00+00', '2026-03-10 12:00+00', '2026-10-20 12:00+00',
        '2026-04-04 13:50+00', '2026-09-26 14:30+00', '2026-12-31 23:59:59.999999+00',
        '294276-12-31 23:59:59.999999+00', '4714-11-24 00:00:00+00 BC', 'infinity', '-infinity'
       ]::timestamptz[]) p(at)
 CROSS JOIN unnest(ARRAY[
        '-1 microsecond', '0', '720 hours', '720:00:00.000001', '30 days 01:00', '29 days 23:00',
        '365 days', '365 days 00:00:00.000001', '366 days', '366 days 00:00:00.000001', '365 days 01:00', '364 days 23:00'
       ]::interval[]) d(delta)
 WHERE p.at BETWEEN '1000-01-01+00' AND '294275-01-01+00' OR d.delta = '0'
UNION ALL
SELECT NULL, p.at, a.as_of
  FROM unnest(ARRAY['2024-02-29 00:30+00', '294276-12-31 23:59:59.999999+00',
                    '4714-11-24 00:00:00+00 BC', 'infinity', '-infinity']::timestamptz[]) p(at)
 CROSS JOIN unnest(ARRAY['infinity', '-infinity', '294276-12-31 23:59:59.999999+00',
                         '4714-11-24 00:00:00+00 BC']::timestamptz[]) a(as_of);
UPDATE tz_cases SET n = s.n FROM (SELECT ctid, 1000 + row_number() OVER (ORDER BY purchased_at, as_of) AS n
                                     FROM tz_cases WHERE n IS NULL) s WHERE tz_cases.ctid = s.ctid;
ALTER TABLE tz_cases ADD offer refund_rules.mpn_offer DEFAULT 'silver',
    ADD benefits_activated boolean DEFAULT false, ADD product_keys_viewed boolean DEFAULT false,
    ADD upgraded_with_gold_discount boolean DEFAULT false, ADD tax_exempt boolean DEFAULT true;
SELECT count(*) AS cases, count(DISTINCT n) AS numbered FROM tz_cases;
CREATE TABLE tz_results (tz text, n bigint, refund boolean, refund_reasons text[],
    tax boolean, tax_reasons text[], refund_deadline timestamp, tax_refund_deadline timestamp,
    status text, record_path text);
-- Table rows (planner rewrite), the status of a typed ROW(), and the row of
-- a subquery (no rewrite).
CREATE FUNCTION collect(tz text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('TimeZone', tz, true);
  INSERT INTO t11.tz_results
  SELECT tz, t.n,
         refund_rules.refund_eligible(t, t.as_of),
         refund_rules.refund_ineligibility_reasons(t, t.as_of),
         refund_rules.tax_refund_eligible(t, t.as_of),
         refund_rules.refund_ineligibility_reasons(t, t.as_of, 'tax'),
         refund_rules.refund_deadline(t.purchased_at) AT TIME ZONE 'UTC',
         refund_rules.tax_refund_deadline(t.purchased_at) AT TIME ZONE 'UTC',
         (SELECT format('%s %s %s %s %s %s', st.refund_eligible, st.refund_reasons,
                        st.refund_deadline AT TIME ZONE 'UTC', st.tax_refund_eligible,
                        st.tax_refund_reasons, st.tax_refund_deadline AT TIME ZONE 'UTC')
            FROM refund_rules.refund_status(t11.buy(t.purchased_at), t.as_of) st),
         format('%s %s %s %s', refund_rules.refund_eligible(s, s.as_of),
                refund_rules.refund_ineligibility_reasons(s, s.as_of),
                refund_rules.tax_refund_eligible(s, s.as_of),
                refund_rules.refund_ineligibility_reasons(s, s.as_of, 'tax'))
    FROM t11.tz_cases t CROSS JOIN LATERAL (SELECT t.* OFFSET 0) s;
END $$;
BEGIN;
SELECT t11.collect('UTC');
SELECT t11.collect('America/Los_Angeles');
SELECT t11.collect('Asia/Kolkata');
SELECT t11.collect('Pacific/Chatham');
COMMIT;
SHOW TimeZone;
SELECT tz, count(*) AS rows,
       md5(string_agg(format('%s %s %s %s %s %s %s %s %s', n, refund, refund_reasons, tax, tax_reasons,
                             refund_deadline, tax_refund_deadline, status, record_path), ';' ORDER BY n)) AS answers
  FROM tz_results GROUP BY tz ORDER BY tz;
-- Every setting gives the answers of UTC, row for row.
SELECT count(*) AS differ_from_utc
  FROM tz_results r JOIN tz_results u ON u.tz = 'UTC' AND u.n = r.n
 WHERE (r.refund, r.refund_reasons, r.tax, r.tax_reasons, r.refund_deadline, r.tax_refund_deadline, r.status, r.record_path)
       IS DISTINCT FROM (u.refund, u.refund_reasons, u.tax, u.tax_reasons, u.refund_deadline, u.tax_refund_deadline, u.status, u.record_path);
-- The row of a subquery (no rewrite) gives what the table row gives.
SELECT count(*) AS record_path_differs
  FROM tz_results WHERE record_path IS DISTINCT FROM format('%s %s %s %s', refund, refund_reasons, tax, tax_reasons);
-- A few of them, as computed in Los Angeles (the 30 days are 720 hours even
-- across a daylight saving change; the tax year is the UTC one).
SELECT c.purchased_at, c.as_of, r.refund, r.tax, r.refund_deadline, r.tax_refund_deadline
  FROM tz_results r JOIN tz_cases c USING (n)
 WHERE r.tz = 'America/Los_Angeles'
   AND c.purchased_at IN ('2024-02-29 00:30+00', '2026-10-20 12:00+00', '2026-03-10 12:00+00')
   AND CASE WHEN isfinite(c.as_of) AND isfinite(c.purchased_at) THEN c.as_of - c.purchased_at END IN ('720 hours', '720:00:00.000001', '30 days 01:00', '365 days', '365 days 01:00', '364 days 23:00')
 ORDER BY c.purchased_at, c.as_of;

-- Infinite purchases and as_of follow ordering; no errors.
SELECT purchased_at, as_of,
       refund_rules.refund_ineligibility_reasons(t11.buy(purchased_at), as_of) AS refund_reasons,
       refund_rules.refund_ineligibility_reasons(t11.buy(purchased_at), as_of, 'tax') AS tax_reasons,
       refund_rules.refund_eligible(t11.buy(purchased_at), as_of) AS refund,
       refund_rules.tax_refund_eligible(t11.buy(purchased_at), as_of) AS tax
  FROM (VALUES
   ('-infinity'::timestamptz, '2026-11-25 12:00+00'::timestamptz),
   ('infinity',  '2026-11-25 12:00+00'),
   ('2026-11-20 12:00+00', 'infinity'),
   ('2026-11-20 12:00+00', '-infinity'),
   ('-infinity', '-infinity'),
   ('-infinity', 'infinity'),
   ('infinity',  '-infinity'),
   ('infinity',  'infinity'))
   v(purchased_at, as_of);
SELECT at, refund_rules.refund_deadline(at) AS refund_deadline,
       refund_rules.tax_refund_deadline(at) AS tax_refund_deadline
  FROM unnest(ARRAY['-infinity', 'infinity']::timestamptz[]) at;

-- The largest and smallest timestamps; deadlines beyond the largest one are
-- never reached (infinity).
SELECT at, refund_rules.refund_deadline(at) AS refund_deadline,
       refund_rules.tax_refund_deadline(at) AS tax_refund_deadline
  FROM unnest(ARRAY[
   '4714-11-24 00:00:00+00 BC',
   '294276-12-01 23:59:59.999999+00',      -- + 720 h is the largest timestamp
   '294276-12-02 00:00:00+00',             -- + 720 h is beyond it
   '294275-12-31 23:59:59.999999+00',      -- + 1 year is the largest timestamp
   '294276-01-01 00:00:00+00',             -- + 1 year is beyond it
   '294276-12-31 23:59:59.999999+00']::timestamptz[]) at;
SELECT purchased_at, as_of,
       refund_rules.refund_ineligibility_reasons(t11.buy(purchased_at), as_of) AS refund_reasons,
       refund_rules.refund_ineligibility_reasons(t11.buy(purchased_at), as_of, 'tax') AS tax_reasons
  FROM (VALUES
   ('4714-11-24 00:00:00+00 BC'::timestamptz, '4714-11-24 00:00:00+00 BC'::timestamptz),
   ('4714-11-24 00:00:00+00 BC', '4714-12-24 00:00:00+00 BC'),
   ('4714-11-24 00:00:00+00 BC', '4714-12-24 00:00:00.000001+00 BC'),
   ('4714-11-24 00:00:00+00 BC', '4713-11-24 00:00:00+00 BC'),
   ('4714-11-24 00:00:00+00 BC', '4713-11-24 00:00:00.000001+00 BC'),
   ('4714-11-24 00:00:00+00 BC', '-infinity'),
   ('4714-11-24 00:00:00+00 BC', '294276-12-31 23:59:59.999999+00'),
   ('294276-12-31 23:59:59.999999+00', '294276-12-31 23:59:59.999998+00'),
   ('294276-12-31 23:59:59.999999+00', '294276-12-31 23:59:59.999999+00'),
   ('294276-12-31 23:59:59.999999+00', 'infinity'),
   ('294276-12-01 23:59:59.999999+00', '294276-12-31 23:59:59.999999+00'),
   ('294276-12-01 23:59:59.999999+00', 'infinity'),
   ('294276-12-02 00:00:00+00', 'infinity'),
   ('294275-12-31 23:59:59.999999+00', '294276-12-31 23:59:59.999999+00'),
   ('294275-12-31 23:59:59.999999+00', 'infinity'),
   ('294276-01-01 00:00:00+00', 'infinity'))
   v(purchased_at, as_of);

-- refund_window_start is a lower bound of the purchases whose window can be
-- open: never after the purchase of an allowed refund.
SELECT as_of, refund_rules.refund_window_start(as_of, 'purchase') AS purchase_start,
       refund_rules.refund_window_start(as_of, 'tax') AS tax_start
  FROM unnest(ARRAY['2026-11-25 12:00+00', '-infinity', 'infinity',
                    '4714-11-24 00:00:00+00 BC', '294276-12-31 23:59:59.999999+00']::timestamptz[]) as_of;
SELECT count(*) FILTER (WHERE refund AND c.purchased_at < refund_rules.refund_window_start(c.as_of, 'purchase')) AS purchase_start_too_late,
       count(*) FILTER (WHERE tax AND c.purchased_at < refund_rules.refund_window_start(c.as_of, 'tax')) AS tax_start_too_late,
       count(*) FILTER (WHERE refund) AS allowed,
       count(*) FILTER (WHERE tax) AS tax_allowed
  FROM tz_results r JOIN tz_cases c USING (n) WHERE r.tz = 'UTC';

RESET search_path;
DROP SCHEMA t11 CASCADE;
