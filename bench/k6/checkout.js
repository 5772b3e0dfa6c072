// k6 load test of the flashsale checkout over gRPC (k6/net/grpc).
//
//   k6 run -e MODE=safe -e TARGET=localhost:50051 -e STOCK=100 bench/k6/checkout.js
//
// Settings, as `-e NAME=value` (or environment variables):
//   MODE        buggy | unstable | safe: which purchase RPC the virtual users call (default safe)
//   TARGET      host:port of the checkout server, plaintext (default localhost:50051)
//   VUS         virtual users (default 100)
//   ITERATIONS  purchases in all, shared by the VUs (default 1000); ignored with DURATION
//   DURATION    e.g. 30s: the VUs buy back to back for that long instead
//   MAX_DURATION  upper bound of an ITERATIONS run (default 60s)
//   STOCK       when set, setup() starts a new round with this stock (Reset)
//   PROTO       when set to 1, load proto/flashsale/v1/checkout.proto instead of asking the
//               server by reflection
//
// Every purchase uses its own user id: `k6-<run>-<vu>-<iteration>`.
// Checks: status OK (in unstable mode the injected UNAVAILABLE passes too) and, on OK, outcome
// PURCHASED or SOLD_OUT; teardown() reads GetStock and checks nothing was oversold. The
// threshold `checks: rate==1` makes k6 exit non-zero (99) when any check failed, so a buggy
// checkout that oversells fails the run although every single reply looked fine.

import grpc from 'k6/net/grpc';
import exec from 'k6/execution';
import { check } from 'k6';
import { Counter } from 'k6/metrics';

const RPCS = { buggy: 'PurchaseBuggy', unstable: 'PurchaseUnstable', safe: 'PurchaseSafe' };
const MODE = __ENV.MODE || 'safe';
if (!(MODE in RPCS)) {
  throw new Error(`MODE must be buggy, unstable or safe, not ${MODE}`);
}
const PURCHASE = `flashsale.v1.Checkout/${RPCS[MODE]}`;
const TARGET = __ENV.TARGET || 'localhost:50051';
const REFLECT = __ENV.PROTO !== '1';
const VUS = parseInt(__ENV.VUS || '100', 10);

export const options = {
  scenarios: {
    purchase: __ENV.DURATION
      ? { executor: 'constant-vus', vus: VUS, duration: __ENV.DURATION }
      : {
          executor: 'shared-iterations',
          vus: VUS,
          iterations: parseInt(__ENV.ITERATIONS || '1000', 10),
          maxDuration: __ENV.MAX_DURATION || '60s',
        },
  },
  thresholds: { checks: ['rate==1'] },
};

const purchased = new Counter('flashsale_purchased');
const soldOut = new Counter('flashsale_sold_out');
const unavailable = new Counter('flashsale_unavailable');

const client = new grpc.Client();
if (!REFLECT) {
  // Relative to this script: the repository's proto/ directory.
  client.load(['../../proto'], 'flashsale/v1/checkout.proto');
}

function connect() {
  client.connect(TARGET, { plaintext: true, reflect: REFLECT, timeout: '10s' });
}

function stockReply(response, what) {
  if (response.status !== grpc.StatusOK) {
    throw new Error(`${what} failed: status ${response.status}: ${JSON.stringify(response.error)}`);
  }
  return response.message;
}

export function setup() {
  connect();
  if (__ENV.STOCK) {
    const stock = parseInt(__ENV.STOCK, 10);
    stockReply(client.invoke('flashsale.v1.Checkout/Reset', { stock }), 'Reset');
  }
  const before = stockReply(client.invoke('flashsale.v1.Checkout/GetStock', {}), 'GetStock');
  client.close();
  console.log(`${PURCHASE} against ${TARGET}, round ${before.round}: stock ${before.stock}`);
  return { run: `${Date.now().toString(36)}`, round: before.round };
}

let connected = false;

export default function (data) {
  if (!connected) {
    connect();
    connected = true;
  }
  const user = `k6-${data.run}-${exec.vu.idInTest}-${exec.vu.iterationInScenario}`;
  const response = client.invoke(PURCHASE, { user_id: user, quantity: 1 });
  const ok = response.status === grpc.StatusOK;
  const outcome = ok && response.message ? response.message.outcome : undefined;
  if (outcome === 'OUTCOME_PURCHASED') purchased.add(1);
  if (outcome === 'OUTCOME_SOLD_OUT') soldOut.add(1);
  if (response.status === grpc.StatusUnavailable) unavailable.add(1);
  check(response, {
    [MODE === 'unstable' ? 'status OK or UNAVAILABLE' : 'status OK']: () =>
      ok || (MODE === 'unstable' && response.status === grpc.StatusUnavailable),
    'outcome PURCHASED or SOLD_OUT': () =>
      !ok || outcome === 'OUTCOME_PURCHASED' || outcome === 'OUTCOME_SOLD_OUT',
  });
}

export function teardown(data) {
  connect();
  const after = stockReply(client.invoke('flashsale.v1.Checkout/GetStock', {}), 'GetStock');
  client.close();
  console.log(
    `round ${after.round}: initial ${after.initialStock}, stock ${after.stock}, ` +
      `${after.orders} orders, ${after.unitsSold} units sold`,
  );
  check(after, {
    'same round (nobody reset meanwhile)': (s) => s.round === data.round,
    'no oversell': (s) => Number(s.unitsSold) <= Number(s.initialStock) && Number(s.stock) >= 0,
  });
}
