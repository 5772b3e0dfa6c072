// Minimal k6 load for bench/bench.py (case 1: the driver vs k6 on the same RPC and core).
//
// 1000 VUs (BENCH_VUS) call flashsale.v1.Checkout/PurchaseSafe back to back over k6/net/grpc,
// one connection per VU (k6's model). Two scenarios with the same VUs: `warmup` (connects and
// warms up, BENCH_WARMUP) then `main` (BENCH_DURATION), the only one measured: the thresholds
// below exist so that the summary export carries the `{scenario:main}` sub-metrics. k6 1.1
// has no `grpc_reqs` counter; requests are the count of `grpc_req_duration{scenario:main}`
// (one sample per invoke), cross-checked against `iterations{scenario:main}`.
//
//   k6 run -e BENCH_TARGET=127.0.0.1:50051 --summary-export out.json bench/k6/bench.js
import grpc from 'k6/net/grpc';
import { check } from 'k6';
import exec from 'k6/execution';

const target = __ENV.BENCH_TARGET || '127.0.0.1:50051';
const vus = parseInt(__ENV.BENCH_VUS || '1000', 10);
const warmup = __ENV.BENCH_WARMUP || '2s';
const duration = __ENV.BENCH_DURATION || '10s';

export const options = {
  scenarios: {
    warmup: { executor: 'constant-vus', vus, duration: warmup, gracefulStop: '0s' },
    main: { executor: 'constant-vus', vus, duration, startTime: warmup, gracefulStop: '5s' },
  },
  thresholds: {
    
    'grpc_req_duration{scenario:main}': ['max>=0'],
    'checks{scenario:main}': ['rate>=0'],
  },
  summaryTrendStats: ['count', 'avg', 'med', 'p(90)', 'p(99)', 'max'],
  discardResponseBodies: true,
};

const client = new grpc.Client();
client.load(['../../proto'], 'flashsale/v1/checkout.proto');
let connected = false;

export default function () {
  if (!connected) {
    client.connect(target, { plaintext: true, timeout: '10s' });
    connected = true;
  }
  const user = `k6-${exec.vu.idInTest}`;
  const res = client.invoke('flashsale.v1.Checkout/PurchaseSafe', { user_id: user, quantity: 1 },
    { timeout: '10s' });
  check(res, { ok: (r) => r && r.status === grpc.StatusOK });
}
