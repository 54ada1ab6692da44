// The official SDK's CPU per call, for bench/percall.lua: @alicloud/pop-core's
// RPCClient sends ResumeLiveStream to the emulator one call after another on one
// kept-alive connection, after a warm-up; prints the CPU (user + system) of this
// process per call, in microseconds, one line per round.
//   node bench/sdk/percall.js ENDPOINT KEY SECRET CALLS ROUNDS
'use strict';
const RPCClient = require('@alicloud/pop-core').RPCClient;
const http = require('http');

const [endpoint, key, secret, calls, rounds] = process.argv.slice(2);
const client = new RPCClient({ accessKeyId: key, accessKeySecret: secret, endpoint, apiVersion: '2016-11-01' });
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const params = { DomainName: 'push.example.com', AppName: 'live', StreamName: 'bench', LiveStreamType: 'publisher' };

async function run(n) {
  for (let i = 0; i < n; i++) {
    await client.request('ResumeLiveStream', params, { method: 'POST', agent });
  }
}

(async () => {
  await run(500); // (V8 compiles the hot paths: the rounds after measure it as it runs for long)
  for (let r = 0; r < Number(rounds); r++) {
    const before = process.cpuUsage();
    await run(Number(calls));
    const used = process.cpuUsage(before);
    console.log(((used.user + used.system) / Number(calls)).toFixed(2));
  }
})().catch((e) => { console.error(String(e && e.message || e)); process.exit(1); });
