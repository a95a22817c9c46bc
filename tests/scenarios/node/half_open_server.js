// A Node server with allowHalfOpen: true that never ends its side: every
// client that closes leaves a CLOSE_WAIT socket behind (the leak), or with
// "pause" a server that stops reading its sockets (a stalled event loop).
//
//   node half_open_server.js READY PORT [leak|pause]
const fs = require("fs");
const net = require("net");

const [ready, port, mode = "leak"] = process.argv.slice(2);
// With "pause" the sockets start paused and are never resumed: requests stay unread.
const options = { allowHalfOpen: true, pauseOnConnect: mode === "pause" };
const server = net.createServer(options, (socket) => {
  if (mode === "pause") {
    return;
  }
  socket.on("data", () => {});
  socket.on("end", () => {}); // the bug: no socket.end()
});
server.listen(Number(port), "127.0.0.1", () => {
  fs.writeFileSync(ready + ".tmp", JSON.stringify({ pid: process.pid, port: Number(port) }));
  fs.renameSync(ready + ".tmp", ready);
});
