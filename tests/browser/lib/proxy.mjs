// A TCP proxy the test controls, put between a page and wrenchline-server to cut the network the
// way a dropped Wi-Fi or a dead mobile link does: `cut()` resets every open connection (HTTP
// keep-alive and the realtime socket alike) and resets each new one as soon as it arrives, until
// `restore()`. It forwards bytes untouched, so the page's Host and Origin stay the proxy's own
// address and the server's same-origin rules hold as they would behind any TCP load balancer.

import net from 'node:net';

/** Starts a proxy on 127.0.0.1 (a random port) to the server at `target` (`http://host:port`). */
export async function startProxy(target) {
  const { hostname, port } = new URL(target);
  const open = new Set();
  let isCut = false;
  let accepted = 0;
  let refused = 0;

  const drop = (socket) => {
    // A reset, not a polite close: the browser learns at once that the connection is gone.
    if (!socket.destroyed) socket.resetAndDestroy();
  };

  const listener = net.createServer((client) => {
    if (isCut) {
      refused += 1;
      client.on('error', () => undefined);
      drop(client);
      return;
    }
    accepted += 1;
    const upstream = net.connect({ host: hostname, port: Number(port) });
    const pair = [client, upstream];
    for (const socket of pair) {
      open.add(socket);
      socket.setNoDelay(true);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        open.delete(socket);
        for (const other of pair) if (other !== socket) drop(other);
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });

  await new Promise((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(0, '127.0.0.1', resolve);
  });
  const address = listener.address();

  return {
    /** The page's base URL through the proxy. */
    base: `http://127.0.0.1:${address.port}`,
    get isCut() {
      return isCut;
    },
    /** Connections let through and connections reset while cut, since the start. */
    get stats() {
      return { accepted, refused, sockets: open.size };
    },
    /** Resets every connection and every new one until `restore()`. */
    cut() {
      isCut = true;
      for (const socket of [...open]) drop(socket);
    },
    restore() {
      isCut = false;
    },
    async close() {
      isCut = true;
      for (const socket of [...open]) drop(socket);
      await new Promise((resolve) => listener.close(resolve));
    },
  };
}
