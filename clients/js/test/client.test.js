// The JavaScript client against a real uvicorn (tests/clients/serve.py): requests both
// ways, rooms, the offline queue, and the four ways a connection ends that a client must
// live through: a server restart, a 1013 refusal, a graceful drain and a gap to resume.
// Run: node --experimental-websocket --test clients/js/test/client.test.js (make test does).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, test } from "node:test";

import { Client, RequestError, connect, reconnectDelay, shouldReconnect } from "../client.js";
import { ROOT, eventually, record, startServer } from "./support.js";

const FAST = { minDelay: 50, maxDelay: 500, busyDelay: 300, restartDelay: 200 };
const servers = [];
const clients = [];

async function serve(settings) {
  const server = await startServer(settings);
  servers.push(server);
  return server;
}

function open(url, options = {}) {
  const client = connect(url, { ...FAST, ...options });
  clients.push(client);
  return client;
}

after(async () => {
  for (const client of clients) client.close();
  await Promise.all(servers.map((server) => server.stop()));
});

test("reconnection delays: exponential, jittered, capped, and the server's floor", () => {
  const options = { minDelay: 500, maxDelay: 30000, busyDelay: 5000, restartDelay: 1000 };
  const low = () => 0;
  const high = () => 0.999999;
  assert.equal(reconnectDelay(0, 1006, "", options, low), 250);
  assert.equal(reconnectDelay(3, 1006, "", options, low), 2000);
  assert.equal(reconnectDelay(20, 1006, "", options, high), 30000);
  assert.equal(reconnectDelay(0, 1013, "server busy", options, low), 5000);
  assert.equal(reconnectDelay(0, 1001, "server shutdown", options, low), 1000);
  assert.equal(reconnectDelay(0, 1012, "", options, high), 1200);
  assert.equal(reconnectDelay(0, 1013, "busy; retry=30", options, low), 30000);
  assert.equal(reconnectDelay(0, 1006, "retry=2.5", options, low), 2500);
  assert.equal(reconnectDelay(0, 1013, "retry=999999", options, low), 3600000);
  assert.equal(reconnectDelay(0, 1013, "noretry=30", options, low), 5000);
  assert.ok(!shouldReconnect(1000) && !shouldReconnect(4003));
  assert.ok(shouldReconnect(1001) && shouldReconnect(1008) && shouldReconnect(4500));
});

test("the app serves this very file at /bocadillo/client.js", async () => {
  const server = await serve();
  const response = await fetch(server.url + "/bocadillo/client.js");
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type"), /^text\/javascript/);
  const mine = readFileSync(path.join(ROOT, "clients", "js", "client.js"), "utf8");
  assert.equal(await response.text(), mine);
});

test("requests both ways, rooms and their positions", async () => {
  const server = await serve();
  const client = open(server.wsUrl);
  const seen = record(client);
  await client.opened();
  assert.equal(await client.request("add", { a: 1, b: 2 }), 3);
  await assert.rejects(client.request("nope"), (error) => {
    assert.ok(error instanceof RequestError && error instanceof Error);
    assert.equal(error.code, "unknown_type");
    return true;
  });
  await assert.rejects(client.join(""), { code: "invalid_data" });
  assert.equal(client.rooms.has(""), false); // an error answer forgets the room
  await assert.rejects(client.request("say", { text: "x", room: "r" }, { timeout: 0 }), {
    code: "timeout",
  });

  const answer = await client.join("lobby");
  assert.deepEqual(client.rooms.get("lobby"), { epoch: answer.epoch, offset: 0 });
  assert.equal(await client.request("say", { text: "hi", room: "lobby" }), true);
  await eventually(() => seen.of("said").length === 1, "said");
  const said = seen.of("said")[0];
  assert.deepEqual([said.data, said.room, said.offset], [{ text: "hi" }, "lobby", 1]);
  assert.deepEqual(client.rooms.get("lobby"), { epoch: answer.epoch, offset: 1 });

  client.onRequest("confirm", async (data) => ({ yes: data.question }));
  assert.equal(client.send("ask", { question: "sure?" }), true);
  await eventually(() => seen.of("answered").length === 1, "answered");
  assert.deepEqual(seen.of("answered")[0].data, { answer: { yes: "sure?" } });
  client.onRequest("confirm", () => {
    throw new RequestError("forbidden", "not you");
  });
  client.send("ask", { question: "again?" });
  await eventually(() => seen.of("answered").length === 2, "answered twice");
  assert.deepEqual(seen.of("answered")[1].data, { error: "forbidden" });

  assert.equal(await client.leave("lobby"), true);
  assert.equal(client.rooms.size, 0);
  client.close();
  assert.equal(client.state, "closed");
  await assert.rejects(client.request("add", { a: 1, b: 1 }), { code: "closed" });
});

test("offline, messages are queued (bounded) and sent in order after the resume", async () => {
  const server = await serve();
  await server.command("stop");
  const client = open(server.wsUrl, { queueLimit: 3 });
  const seen = record(client);
  await eventually(() => seen.event("reconnecting").length > 0, "reconnecting");
  const sum = client.request("add", { a: 2, b: 3 }, { timeout: 20000 });
  assert.equal(client.send("say", { text: "one", room: "q" }), true);
  assert.equal(client.send("say", { text: "two", room: "q" }), true);
  assert.equal(client.send("say", { text: "three", room: "q" }), false); // full
  assert.deepEqual([client.dropped, client.queued], [1, 3]);
  await assert.rejects(client.request("add", { a: 0, b: 0 }), { code: "queue_full" });
  client.rooms.set("q", null); // joined by the resume, which goes before the queue
  await server.command("start");
  assert.equal(await sum, 5);
  await eventually(() => seen.of("said").length === 2, "two said");
  assert.deepEqual(seen.of("said").map((m) => m.data.text), ["one", "two"]);
  assert.equal(seen.event("resumed")[0].rooms.q.recovered, null); // no position was known
});

test("a server restart: reconnected, rooms resumed (another epoch: not recovered)", async () => {
  const server = await serve();
  const client = open(server.wsUrl);
  const seen = record(client);
  const first = await client.join("lobby");
  await client.request("say", { text: "before", room: "lobby" });
  await eventually(() => client.rooms.get("lobby").offset === 1, "offset 1");
  await server.command("stop");
  await eventually(() => client.state !== "open", "not open");
  assert.ok([1001, 1012].includes(seen.event("closed")[0].code));
  const whileDown = client.request("add", { a: 4, b: 4 }, { timeout: 20000 });
  await server.command("start");
  assert.equal(await whileDown, 8);
  await eventually(() => seen.event("resumed").length > 0, "resumed");
  const lobby = seen.event("resumed")[0].rooms.lobby;
  assert.equal(lobby.recovered, false);
  assert.notEqual(lobby.epoch, first.epoch);
  assert.deepEqual(client.rooms.get("lobby"), { epoch: lobby.epoch, offset: lobby.offset });
  await client.request("say", { text: "after", room: "lobby" });
  await eventually(() => seen.of("said").at(-1).data.text === "after", "said after");
});

test("refused with 1013 (server busy), the client waits, then gets in", async () => {
  const server = await serve({ max_connections: 1 });
  const first = open(server.wsUrl);
  await first.opened();
  const second = open(server.wsUrl);
  const seen = record(second);
  await eventually(() => seen.event("reconnecting").length > 0, "reconnecting");
  assert.equal(seen.event("closed")[0].code, 1013);
  assert.ok(seen.event("reconnecting")[0].delay >= FAST.busyDelay);
  first.close();
  await second.opened();
  assert.equal(await second.request("add", { a: 1, b: 2 }), 3);
});

test("a graceful drain: the notice, 1001, a floor on the delay, back after the restart", async () => {
  const server = await serve();
  const client = open(server.wsUrl);
  const seen = record(client);
  await client.join("lobby");
  assert.deepEqual(await server.post("/control/drain"), { drained: true });
  await eventually(() => seen.event("reconnecting").length > 0, "reconnecting");
  assert.deepEqual(seen.of("shutdown")[0].data, { bye: true });
  const closed = seen.event("closed")[0];
  assert.deepEqual([closed.code, closed.reason], [1001, "server shutdown"]);
  assert.ok(seen.event("reconnecting")[0].delay >= FAST.restartDelay);
  await eventually(() => seen.event("closed").length >= 2, "refused while drained");
  assert.equal(seen.event("closed")[1].code, 1001);
  await server.command("restart");
  await client.opened();
  await eventually(() => seen.event("resumed").length > 0, "resumed");
  assert.ok("lobby" in seen.event("resumed").at(-1).rooms);
});

test("a resume fills the gap: recovered, every missed message once, in order", async () => {
  const server = await serve();
  const client = open(server.wsUrl);
  const seen = record(client);
  const joined = await client.join("news");
  await server.post("/control/publish/news/2");
  await eventually(() => seen.of("news").length === 2, "two news");
  await server.post("/control/kick?room=news&count=3");
  await eventually(() => seen.event("resumed").length > 0, "resumed");
  assert.equal(seen.event("closed")[0].code, 1012);
  assert.deepEqual(seen.event("resumed")[0].rooms.news, {
    recovered: true,
    epoch: joined.epoch,
    offset: 5,
  });
  assert.deepEqual(
    seen.of("news").map((m) => [m.offset, m.data.n]),
    [[1, 0], [2, 1], [3, 0], [4, 1], [5, 2]],
  );
  await server.post("/control/publish/news/1");
  await eventually(() => seen.of("news").length === 6, "six news");
  assert.deepEqual(client.rooms.get("news"), { epoch: joined.epoch, offset: 6 });
});
