-- scripts/sample.sql - a small sample of MPN benefit purchases for scripts/demo.sh.
-- The rows are spread around the demo's as_of, 2026-11-25 12:00 UTC, so that every
-- reason code of refund-policy.md shows up at least once, NULLs included.
-- Needs the refund_rules extension (for the mpn_offer type).

SET client_min_messages = warning;
DROP TABLE IF EXISTS purchases;
RESET client_min_messages;
CREATE TABLE purchases (
    id                          bigint PRIMARY KEY,
    partner                     text NOT NULL,
    offer                       refund_rules.mpn_offer,
    purchased_at                timestamptz,
    benefits_activated          boolean,
    product_keys_viewed         boolean,
    upgraded_with_gold_discount boolean,
    tax_exempt                  boolean
);

INSERT INTO purchases VALUES
-- allowed
( 1, 'Contoso',          'gold',        '2026-11-20 09:00+00',    false, false, false, false),
( 2, 'Fabrikam',         'silver',      '2026-10-26 12:00+00',    false, false, false, true ),  -- exactly 30 days
( 3, 'Northwind',        'gold',        '2026-11-20 00:00+00',    false, false, true,  false),  -- the upgrade rule is about Silver
( 4, 'Tailspin Toys',    'action_pack', '2026-11-24 10:00+00',    false, false, false, true ),
( 5, 'Woodgrove Bank',   'silver',      '2026-11-10 08:30+00',    false, false, false, false),
( 6, 'Litware',          'silver',      '2026-11-25 12:00+00',    false, false, false, false),  -- bought at as_of
( 7, 'Proseware',        'gold',        '2026-11-05 15:00+00',    false, false, false, NULL ),
-- the 30-day window
( 8, 'Adventure Works',  'silver',      '2026-10-26 11:59:59+00', false, false, false, false),  -- one second late
( 9, 'Wide World',       'gold',        '2026-12-01 00:00+00',    false, false, false, false),  -- not yet purchased
(10, 'Alpine Ski House', 'action_pack', '2025-11-25 12:00+00',    false, false, false, true ),  -- tax: exactly one year
(11, 'Coho Winery',      'gold',        '2025-06-01 00:00+00',    false, false, false, true ),  -- tax window over too
-- used benefits, viewed keys, the Gold-discount upgrade
(12, 'Fourth Coffee',    'action_pack', '2026-11-01 00:00+00',    true,  true,  false, false),
(13, 'Margie''s Travel', 'gold',        '2026-11-15 00:00+00',    true,  false, false, true ),
(14, 'Lucerne',          'silver',      '2026-11-18 00:00+00',    false, true,  false, false),
(15, 'Trey Research',    'silver',      '2026-11-20 00:00+00',    false, false, true,  false),
(16, 'Blue Yonder',      'action_pack', '2026-09-01 00:00+00',    true,  false, false, false),  -- late and used
-- unknown values (NULL)
(17, 'Graphic Design',   'action_pack', '2026-11-01 00:00+00',    false, NULL,  false, false),
(18, 'Humongous Ins.',   'silver',      '2026-11-22 00:00+00',    NULL,  false, false, false),
(19, 'City Power',       NULL,          '2026-11-21 00:00+00',    false, false, true,  false),
(20, 'School of Fine',   'silver',      '2026-11-23 00:00+00',    false, false, NULL,  false),
(21, 'VanArsdel',        'gold',        NULL,                     false, false, false, true );
