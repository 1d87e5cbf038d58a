#!/usr/bin/env node
// A round-robin TCP front for scripts/lib/server.sh's cluster mode: each connection goes to the
// next of the given ports on 127.0.0.1 (one that refuses is skipped). Prints its own port, then
// runs until signalled.
//   node scripts/lib/round-robin.mjs <port> <port> …
import net from 'node:net';

const ports = process.argv.slice(2).map(Number);
let next = 0;

function pass(client, tries) {
  const upstream = net.connect(ports[next++ % ports.length], '127.0.0.1');
  upstream.once('error', (error) => {
    if (error.code === 'ECONNREFUSED' && tries + 1 < ports.length && !client.destroyed) pass(client, tries + 1);
    else client.destroy();
  });
  upstream.once('connect', () => {
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.pipe(upstream).pipe(client);
    client.resume();
  });
}

const server = net.createServer((client) => {
  client.pause();
  pass(client, 0);
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
