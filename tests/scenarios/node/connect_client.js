// A Node client that opens N connections and never closes them, even once
// the server has hung up (allowHalfOpen: it never ends its side): each
// stays in CLOSE-WAIT. Run with --perf-basic-prof (and
// --interpreted-frames-native-stack) so that its JavaScript frames can be
// named from /tmp/perf-PID.map.
//
//   node connect_client.js READY PORT N
//
// Writes {"pid": PID} to READY (by rename) once its sockets are open, then
// keeps running.
const net = require('net');
const fs = require('fs');

const [ready, port, n] = process.argv.slice(2);
const kept = [];

function openBackend(port) {
  const s = net.connect({ port: Number(port), host: '127.0.0.1', allowHalfOpen: true });
  s.on('error', () => {});
  kept.push(s);
}

for (let i = 0; i < Number(n); i++) openBackend(port);
setTimeout(() => {
  fs.writeFileSync(ready + '.tmp', JSON.stringify({ pid: process.pid }));
  fs.renameSync(ready + '.tmp', ready);
}, 300);
setInterval(() => {}, 1000);
