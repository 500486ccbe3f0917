// One scenario for node-pg (Debian's, see prepare-node-pg.sh), run straight against
// PostgreSQL and through pgshard, on one shard and on two: parameters and common types, a
// named prepared statement reused across transactions, commit, rollback, an error then
// going on, and several clients at once, each answer checked against its own parameter and
// every acknowledged write counted. (COPY needs the pg-copy-streams module, which Debian
// does not package; the Python and Java scenarios cover it.)
//
//   NODE_PATH=… node node_pg_clients.js TABLE
//
// Connects with the PG* environment variables. Prints "acknowledged N" and "ok"; exits 1
// with what differed otherwise.
'use strict';
const { Client } = require('pg');

const CLIENTS = 6;
const ROUNDS = 40;

function fail(what) {
  console.log(`FAILED: ${what}`);
  process.exit(1);
}

function expect(label, got, wanted) {
  if (JSON.stringify(got) !== JSON.stringify(wanted)) {
    fail(`${label}: got ${JSON.stringify(got)}, wanted ${JSON.stringify(wanted)}`);
  }
}

async function main() {
  const table = process.argv[2];
  const insert = `INSERT INTO ${table} (id, owner, qty, price, flag) VALUES ($1, $2, $3, $4, $5)`;
  const row = (id) => [id, 'ada', 7, '12.50', true];
  const c = new Client();
  await c.connect();
  await c.query(`DROP TABLE IF EXISTS ${table}`);
  await c.query(`CREATE TABLE ${table} (id bigint PRIMARY KEY, owner text, qty int, price numeric, flag bool)`);

  // Parameters and types, read back by key.
  expect('insert', (await c.query(insert, row(1))).rowCount, 1);
  const back = await c.query(`SELECT owner, qty, price, flag FROM ${table} WHERE id = $1`, [1]);
  expect('types', back.rows[0], { owner: 'ada', qty: 7, price: '12.50', flag: true });

  // A named prepared statement reused across transactions.
  for (let i = 0; i < 5; i++) {
    await c.query('BEGIN');
    const r = await c.query({ name: 'next', text: 'SELECT $1::bigint + 1 AS n', values: [i] });
    expect('prepared', r.rows[0].n, String(i + 1));
    await c.query('COMMIT');
  }

  // Commit, rollback.
  await c.query('BEGIN');
  await c.query(insert, row(2));
  await c.query('COMMIT');
  await c.query('BEGIN');
  await c.query(insert, row(3));
  await c.query('ROLLBACK');
  const kept = await c.query(`SELECT count(*) AS n FROM ${table} WHERE id IN (2, 3)`);
  expect('commit and rollback', kept.rows[0].n, '1');

  // An error, then going on, in and out of a transaction.
  for (const inTransaction of [false, true]) {
    if (inTransaction) await c.query('BEGIN');
    try {
      await c.query('SELECT 1 / 0');
      fail('division by zero succeeded');
    } catch (e) {
      expect('sqlstate', e.code, '22012');
    }
    if (inTransaction) await c.query('ROLLBACK');
    expect('after an error', (await c.query('SELECT $1::text AS t', ['on'])).rows[0].t, 'on');
  }
  await c.end();

  // Several clients at once.
  let acknowledged = 0;
  const errors = [];
  await Promise.all([...Array(CLIENTS).keys()].map(async (n) => {
    const cc = new Client();
    try {
      await cc.connect();
      for (let r = 0; r < ROUNDS; r++) {
        const tag = `c${n}-${r}`;
        const got = (await cc.query('SELECT $1::text AS t', [tag])).rows[0].t;
        if (got !== tag) errors.push(`client ${n} asked ${tag}, got ${got}`);
        const res = await cc.query(insert, row(1000 + n * ROUNDS + r));
        if (res.rowCount === 1) acknowledged++;
      }
    } catch (e) {
      errors.push(`client ${n}: ${e.message}`);
    } finally {
      await cc.end().catch(() => {});
    }
  }));
  if (errors.length > 0) fail(errors.slice(0, 5).join('; '));
  console.log(`acknowledged ${acknowledged}`);
  console.log('ok');
}

main().catch((e) => fail(e.stack || String(e)));
