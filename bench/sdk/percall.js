// The official SDK's CPU per call, for bench/percall.lua: @alicloud/pop-core's
// RPCClient sends ResumeLiveStream to the emulator one call after another on one
// kept-alive connection, after a warm-up; prints the CPU (user + system) of this
// process per call, in microseconds, one line per round.
//   node bench/sdk/percall.js ENDPOINT KEY SECRET CALLS ROUNDS
// The warm-up is WARM calls: V8 compiles the SDK's path over its first few
// thousand calls (measured here in rounds of 1,000 after 500 calls: 397, 338,
// 244, then 170-220 µs a call), and a round inside that would be counted at
// up to twice the SDK's cost.
'use strict';
const RPCClient = require('@alicloud/pop-core').RPCClient;
const http = require('http');

const [endpoint, key, secret, calls, rounds] = process.argv.slice(2);
const client = new RPCClient({ accessKeyId: key, accessKeySecret: secret, endpoint, apiVersion: '2016-11-01' });
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const WARM = 5000;
const params = { DomainName: 'push.example.com', AppName: 'live', StreamName: 'bench', LiveStreamType: 'publisher' };

async function run(n) {
  for (let i = 0; i < n; i++) {
    await client.request('ResumeLiveStream', params, { method: 'POST', agent });
  }
}

(async () => {
  await run(WARM);
  for (let r = 0; r < Number(rounds); r++) {
    const before = process.cpuUsage();
    await run(Number(calls));
    const used = process.cpuUsage(before);
    console.log(((used.user + used.system) / Number(calls)).toFixed(2));
  }
})().catch((e) => { console.error(String(e && e.message || e)); process.exit(1); });
