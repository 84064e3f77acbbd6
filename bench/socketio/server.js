// The Socket.IO peer of the Wrenchline benchmark: the same rooms, presence and relay as a
// session's chat, and nothing else (no auth, no storage). The load generator drives it over the
// websocket transport (Engine.IO v4, Socket.IO v5):
//   join   {room}                  → ack {status:"ok"}, then `presence_state` for the room
//   track  {room, payload}         → ack {status:"ok"}; `presence_diff` to the room
//   broadcast {room, event, payload} → `broadcast` to the room's other members (like self:false)
// Usage: node server.js [PORT]   (0 picks a free port; prints "listening on http://ADDR:PORT" and,
// with WRENCHLINE_READY_FILE, writes {"http": "http://ADDR:PORT"} there as wrenchline-server does)

"use strict";

const fs = require("node:fs");
const http = require("node:http");
const { Server } = require("socket.io");

const port = Number(process.argv[2] ?? process.env.PORT ?? 0);

const httpServer = http.createServer();
const io = new Server(httpServer, {
  transports: ["websocket"],
  serveClient: false,
  perMessageDeflate: false,
  httpCompression: false,
  pingInterval: 25000,
  pingTimeout: 20000,
  maxHttpBufferSize: 256 * 1024,
});

// room → Map(socket id → presence meta)
const presence = new Map();

function presenceOf(room) {
  const metas = presence.get(room);
  const state = {};
  if (metas) {
    for (const [key, meta] of metas) state[key] = { metas: [meta] };
  }
  return state;
}

io.on("connection", (socket) => {
  socket.on("join", (msg, ack) => {
    const room = msg && typeof msg.room === "string" ? msg.room : null;
    if (!room) return typeof ack === "function" && ack({ status: "error", reason: "room required" });
    socket.join(room);
    if (typeof ack === "function") ack({ status: "ok" });
    socket.emit("presence_state", { room, state: presenceOf(room) });
  });

  socket.on("track", (msg, ack) => {
    const room = msg && msg.room;
    if (!room || !socket.rooms.has(room) || typeof msg.payload !== "object") {
      return typeof ack === "function" && ack({ status: "error", reason: "join first" });
    }
    let metas = presence.get(room);
    if (!metas) presence.set(room, (metas = new Map()));
    const meta = { ...msg.payload, phx_ref: socket.id };
    metas.set(socket.id, meta);
    if (typeof ack === "function") ack({ status: "ok" });
    io.to(room).emit("presence_diff", { room, joins: { [socket.id]: { metas: [meta] } }, leaves: {} });
  });

  socket.on("broadcast", (msg) => {
    if (msg && typeof msg.room === "string" && socket.rooms.has(msg.room)) {
      socket.to(msg.room).emit("broadcast", msg);
    }
  });

  socket.on("disconnecting", () => {
    for (const room of socket.rooms) {
      const metas = presence.get(room);
      const meta = metas && metas.get(socket.id);
      if (!meta) continue;
      metas.delete(socket.id);
      if (metas.size === 0) presence.delete(room);
      socket.to(room).emit("presence_diff", { room, joins: {}, leaves: { [socket.id]: { metas: [meta] } } });
    }
  });
});

httpServer.listen(port, "127.0.0.1", () => {
  const { address, port: bound } = httpServer.address();
  process.stdout.write(`listening on http://${address}:${bound}\n`);
  const ready = process.env.WRENCHLINE_READY_FILE;
  if (ready) {
    fs.writeFileSync(`${ready}.${process.pid}.tmp`, JSON.stringify({ http: `http://${address}:${bound}` }) + "\n");
    fs.renameSync(`${ready}.${process.pid}.tmp`, ready);
  }
});

process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));
