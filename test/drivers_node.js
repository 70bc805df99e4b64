// test/drivers_node.js - the node-postgres checks of test/drivers.py: appended
// to the js block of docs/drivers.md marked "test/drivers.py runs this block:
// node-postgres" (which defines requestRefund), and run with node.
// --- test/drivers.sh: the checks -------------------------------------------
const { Client } = require('pg');
(async () => {
  const client = new Client(); // PGHOST, PGPORT, PGUSER, PGDATABASE
  await client.connect();
  let fails = 0;
  const check = (ok, what) => { console.log(`  ${ok ? 'ok   ' : 'FAIL '} node-postgres: ${what}`); if (!ok) fails++; };
  const attempt = async (...args) => { try { return ['result', await requestRefund(client, ...args)]; } catch (e) { return ['error', e]; } };
  const usable = async (after) => {
    try { const r = await client.query('SELECT 1 AS one'); check(r.rows[0].one === 1, `after ${after} the connection is usable`); }
    catch (e) { check(false, `after ${after} the connection is usable (${e.code} ${e.message})`); }
  };
  let [what, v] = await attempt(3, 'account_admin');
  check(what === 'result' && v.id !== undefined && v.refused === undefined, `an allowed request returns its id (${JSON.stringify(v)})`);
  [what, v] = await attempt(4, 'intern');
  check(what === 'result' && JSON.stringify(v.refused) === '["product_keys_viewed","requester_not_authorized"]',
        `a refusal returns the reasons in the policy's order (${JSON.stringify(v.refused)})`);
  check(what === 'result' && (v.hint || '').startsWith('Refunds of this purchase are allowed from ') && v.table === 'public.refund_requests' && v.constraint === 'refund_policy',
        `the refusal has the window and the request table (${v.table})`);
  await usable('a refusal');
  [what, v] = await attempt(3, 'account_admin', 'tax');
  check(what === 'error' && v.code === '23514' && (v.detail || '').startsWith('Failing row contains'),
        `another CHECK's 23514 is thrown, not taken for a refusal (${v.code})`);
  await usable("another CHECK's 23514");
  [what, v] = await attempt(999, 'account_admin');
  check(what === 'error' && v.code === '23503', `no such purchase: 23503 is thrown (${v.code})`);
  await usable('a 23503');
  const r = await client.query('SELECT count(*)::int AS n FROM refund_requests WHERE purchase_id IN (3, 4)');
  check(r.rows[0].n === 1, `only the allowed request was committed (${r.rows[0].n})`);
  await client.end();
  process.exit(fails ? 1 : 0);
})().catch((e) => { console.log(`  FAIL  node-postgres: ${e.stack}`); process.exit(1); });
