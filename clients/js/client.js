// Bocadillo's JavaScript client: one ES module, no build step, no dependencies.
//
//   import { connect } from "/bocadillo/client.js";
//   const client = connect("/ws");
//   client.on("chat", (data) => console.log(data.text));
//   await client.join("lobby");
//   const answer = await client.request("add", { a: 1, b: 2 }, { timeout: 5000 });
//
// The protocol (envelopes, replies, history and resume, requests to clients, close
// codes) is described in docs/realtime.md; this client in docs/clients.md.

/** The version of this client. */
export const VERSION = "1.0.0-dev.0";

/** WebSocket readyState of an open socket (the constant, for sockets made by any class). */
const OPEN = 1;

/** The options of `connect()`, with their defaults (milliseconds for every delay). */
export const DEFAULTS = Object.freeze({
  minDelay: 500,
  maxDelay: 30000,
  busyDelay: 5000,
  restartDelay: 1000,
  stableAfter: 5000,
  connectTimeout: 10000,
  requestTimeout: 10000,
  queueLimit: 100,
  joinType: "join",
  leaveType: "leave",
  reconnect: true,
  protocols: undefined,
  WebSocket: undefined,
});

/** The longest delay a server may ask for in a close reason (`retry=<seconds>`). */
const MAX_SUGGESTED_DELAY = 3600 * 1000;

/**
 * A request that did not get a response: the server answered an `error` envelope (its
 * `code`, e.g. `"rate_limited"`, and `message`), or the client gave up (`"timeout"`,
 * `"disconnected"`, `"closed"`, `"queue_full"`).
 */
export class RequestError extends Error {
  constructor(code, message, data) {
    super(message || code);
    this.name = "RequestError";
    this.code = code;
    this.data = data === undefined ? { code, message } : data;
  }
}

/**
 * Whether the client reconnects after a close, by default: always, but after a normal
 * closure (1000: the server's app closed the connection on purpose) and the application
 * codes 4000-4499 (an app uses them to say "do not come back").
 */
export function shouldReconnect(code) {
  return !(code === 1000 || (code >= 4000 && code < 4500));
}

/**
 * How long to wait before the next attempt: exponential backoff with jitter, capped, and
 * never less than the server suggests. See docs/clients.md, "Reconnection".
 *
 * @param {number} attempt attempts made since the last stable connection (0 first)
 * @param {number} code the close code of the last connection (1006 when none opened)
 * @param {string} reason its close reason
 * @param {object} options minDelay, maxDelay, busyDelay, restartDelay
 * @param {() => number} random a number in [0, 1)
 */
export function reconnectDelay(attempt, code, reason, options, random = Math.random) {
  const base = Math.min(options.maxDelay, options.minDelay * 2 ** Math.min(attempt, 30));
  let delay = base / 2 + (random() * base) / 2;
  const suggested = /(?:^|[\s;,])retry=(\d+(?:\.\d+)?)(?:$|[\s;,])/.exec(reason || "");
  let floor = 0;
  if (suggested) floor = Math.min(Number(suggested[1]) * 1000, MAX_SUGGESTED_DELAY);
  else if (code === 1013) floor = options.busyDelay;
  else if (code === 1001 || code === 1012) floor = options.restartDelay;
  if (floor > 0) delay = Math.max(delay, floor + random() * floor * 0.2);
  return Math.round(delay);
}

function resolveUrl(url) {
  if (/^wss?:\/\//i.test(url)) return url;
  const base = globalThis.location && globalThis.location.href;
  if (!base) throw new TypeError(`an absolute ws:// or wss:// URL is needed here, not ${url}`);
  const resolved = new URL(url, base);
  resolved.protocol = resolved.protocol === "https:" ? "wss:" : "ws:";
  return resolved.href;
}

function isPosition(value) {
  return (
    value !== null &&
    typeof value === "object" &&
    typeof value.epoch === "string" &&
    Number.isInteger(value.offset)
  );
}

/** Open a client on `url` (default `"/ws"` of the page's host) and start connecting. */
export function connect(url = "/ws", options = {}) {
  return new Client(url, options);
}

/** One client connection, reconnected for as long as it is not closed. */
export class Client {
  constructor(url = "/ws", options = {}) {
    this.url = resolveUrl(url);
    this.options = { ...DEFAULTS, ...options };
    const Socket = this.options.WebSocket || globalThis.WebSocket;
    if (typeof Socket !== "function") {
      throw new TypeError("no WebSocket class: pass options.WebSocket (Node 20: --experimental-websocket)");
    }
    this._Socket = Socket;
    /** "idle", "connecting", "open", "reconnecting" or "closed" (for good). */
    this.state = "idle";
    /** Rooms joined through `join()`, with the last position seen in each (or null). */
    this.rooms = new Map();
    /** Messages dropped because the offline queue was full. */
    this.dropped = 0;
    this._handlers = new Map();
    this._listeners = new Map();
    this._answerers = new Map();
    this._joining = new Set();
    this._pending = new Map();
    this._queue = [];
    this._seq = 0;
    this._attempt = 0;
    this._socket = null;
    this._timer = null;
    this._connectTimer = null;
    this._openedAt = 0;
    this._stopped = false;
    // Started on the next microtask: handlers registered right after connect() are in
    // place before the first event.
    queueMicrotask(() => this._open());
  }

  // Handlers and listeners ------------------------------------------------------------

  /**
   * Call `handler(data, message)` for every message of `type` (`"*"`: every message that
   * is not a reply). Returns a function that removes the handler.
   */
  on(type, handler) {
    return this._add(this._handlers, type, handler);
  }

  /** Remove a handler given to `on()`. */
  off(type, handler) {
    const set = this._handlers.get(type);
    if (set) set.delete(handler);
  }

  /**
   * Listen to a connection event: "connecting" ({attempt}), "open" ({}), "closed"
   * ({code, reason, wasClean}), "reconnecting" ({delay, attempt, code, reason}),
   * "resumed" ({rooms} or {error}). Returns a function that removes the listener.
   */
  onEvent(name, listener) {
    return this._add(this._listeners, name, listener);
  }

  /**
   * Answer the server's requests of `type` (`ws.request()` on the server) with
   * `await answerer(data, message)`; a thrown error answers an `error` envelope with its
   * `code` (default "handler_error") and message. One answerer per type.
   */
  onRequest(type, answerer) {
    this._answerers.set(type, answerer);
    return () => {
      if (this._answerers.get(type) === answerer) this._answerers.delete(type);
    };
  }

  /** Resolves when the client is open (at once if it is). */
  opened() {
    if (this.state === "open") return Promise.resolve();
    return new Promise((resolve, reject) => {
      const offOpen = this.onEvent("open", () => {
        offOpen();
        offClosed();
        resolve();
      });
      const offClosed = this.onEvent("closed", () => {
        if (this.state !== "closed") return;
        offOpen();
        offClosed();
        reject(new RequestError("closed", "the client was closed"));
      });
    });
  }

  // Sending ------------------------------------------------------------------------------

  /** Messages and requests waiting in the offline queue. */
  get queued() {
    return this._queue.length;
  }

  /**
   * Send `{type, data}`. Open: sent now. Otherwise queued (up to `queueLimit` messages and
   * requests) and sent in order after the next connection's resume. Returns false when
   * the message was dropped: the queue is full, or the client is closed.
   */
  send(type, data = null) {
    return this._post(JSON.stringify({ type, data }), null);
  }

  /**
   * Send a request and resolve with the data of its `response`; reject with a
   * `RequestError` carrying the `error` envelope's code, or "timeout" (after
   * `options.timeout`, default `requestTimeout`), "disconnected" (the connection it was
   * sent on closed: it is not sent again), "closed" or "queue_full".
   */
  request(type, data = null, options = {}) {
    const timeout = options.timeout === undefined ? this.options.requestTimeout : options.timeout;
    return this._request(type, data, timeout, false);
  }

  /**
   * Join `room`: send the app's join message (`joinType`, data: `data` or the room name)
   * and remember the room, to resume it after every reconnection. Resolves with the
   * answer; when it is the room's position ({epoch, offset}) the client keeps it. An error
   * answer forgets the room again; a "timeout" or "disconnected" keeps it (it will be
   * resumed): `leave()` gives it up.
   */
  async join(room, data = room, options = {}) {
    const known = this.rooms.has(room);
    if (!known) this.rooms.set(room, null);
    // While its join is on its way, a reconnection does not resume the room: the join
    // itself (queued, or failed with "disconnected" before the next attempt) says.
    this._joining.add(room);
    try {
      const answer = await this.request(this.options.joinType, data, options);
      if (isPosition(answer) && this.rooms.has(room) && this.rooms.get(room) === null) {
        this.rooms.set(room, { epoch: answer.epoch, offset: answer.offset });
      }
      return answer;
    } catch (error) {
      const local = ["timeout", "disconnected", "queue_full", "closed"].includes(error.code);
      if (!known && !local) this.rooms.delete(room);
      throw error;
    } finally {
      this._joining.delete(room);
    }
  }

  /** Leave `room`: forget it and send the app's leave message; resolves with the answer. */
  leave(room, data = room, options = {}) {
    this.rooms.delete(room);
    return this.request(this.options.leaveType, data, options);
  }

  /** Close for good (code 1000): no reconnection; queued messages and requests are dropped. */
  close(code = 1000, reason = "") {
    if (this._stopped) return;
    this._stopped = true;
    clearTimeout(this._timer);
    clearTimeout(this._connectTimer);
    const socket = this._socket;
    this._socket = null;
    this._failRequests(() => true, "closed", "the client was closed");
    this._queue = [];
    if (socket) {
      try {
        socket.close(code, reason);
      } catch {
        socket.close();
      }
    }
    const wasOpen = this.state === "open";
    this.state = "closed";
    this._emit("closed", { code, reason, wasClean: wasOpen });
  }

  // Internals ----------------------------------------------------------------------------

  _add(map, key, fn) {
    if (typeof fn !== "function") throw new TypeError("a function is needed");
    let set = map.get(key);
    if (!set) map.set(key, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  _emit(name, detail) {
    for (const listener of [...(this._listeners.get(name) || [])]) {
      try {
        listener(detail);
      } catch (error) {
        console.error(`bocadillo client: a "${name}" listener failed`, error);
      }
    }
  }

  _post(frame, id) {
    const socket = this._socket;
    if (this.state === "open" && socket && socket.readyState === OPEN) {
      socket.send(frame);
      return true;
    }
    if (this._stopped || this._queue.length >= this.options.queueLimit) {
      this.dropped += 1;
      return false;
    }
    this._queue.push({ frame, id });
    return true;
  }

  _request(type, data, timeout, direct) {
    return new Promise((resolve, reject) => {
      if (this._stopped) {
        reject(new RequestError("closed", "the client is closed"));
        return;
      }
      const id = ++this._seq;
      const frame = JSON.stringify({ type, data, id });
      const entry = { resolve, reject, socket: null, timer: null };
      this._pending.set(id, entry);
      if (timeout !== null && timeout !== Infinity) {
        entry.timer = setTimeout(() => {
          this._pending.delete(id);
          this._queue = this._queue.filter((item) => item.id !== id);
          reject(new RequestError("timeout", `no answer to ${type} within ${timeout} ms`));
        }, timeout);
      }
      if (direct) {
        entry.socket = this._socket;
        this._socket.send(frame);
      } else if (this._post(frame, id)) {
        if (this.state === "open") entry.socket = this._socket;
      } else {
        this._settle(id, null, new RequestError("queue_full", "the offline queue is full"));
      }
    });
  }

  _settle(id, value, error) {
    const entry = this._pending.get(id);
    if (!entry) return false;
    this._pending.delete(id);
    clearTimeout(entry.timer);
    if (error) entry.reject(error);
    else entry.resolve(value);
    return true;
  }

  _failRequests(which, code, message) {
    for (const [id, entry] of [...this._pending]) {
      if (which(entry)) this._settle(id, null, new RequestError(code, message));
    }
  }

  _open() {
    if (this._stopped) return;
    this.state = "connecting";
    this._emit("connecting", { attempt: this._attempt });
    let socket;
    try {
      socket = new this._Socket(this.url, this.options.protocols);
    } catch (error) {
      this._closed(null, 1006, String(error), false);
      return;
    }
    this._socket = socket;
    this._connectTimer = setTimeout(() => {
      if (this._socket === socket && socket.readyState !== OPEN) this._abandon(socket, "timeout", true);
    }, this.options.connectTimeout);
    socket.onopen = () => this._opened(socket);
    socket.onmessage = (event) => {
      if (this._socket === socket && typeof event.data === "string") this._received(event.data, socket);
    };
    socket.onclose = (event) => this._closed(socket, event.code, event.reason, event.wasClean);
    // After an error a close event follows, but for a connection that failed to open
    // some implementations (Node 20's) leave the socket "connecting" for ever.
    socket.onerror = () => {
      if (socket.readyState === 0) this._abandon(socket, "connection failed", false);
    };
  }

  _abandon(socket, reason, abort) {
    socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
    if (abort) {
      try {
        socket.close();
      } catch {
        // closing a socket that never opened may throw; it is dropped either way
      }
    }
    this._closed(socket, 1006, reason, false);
  }

  _opened(socket) {
    if (this._socket !== socket) return;
    clearTimeout(this._connectTimer);
    this._openedAt = Date.now();
    this.state = "open";
    this._emit("open", {});
    if (this._socket !== socket) return; // a listener closed it
    if ([...this.rooms.keys()].some((room) => !this._joining.has(room))) this._resume(socket);
    const queue = this._queue;
    this._queue = [];
    for (const item of queue) {
      if (item.id !== null) {
        const entry = this._pending.get(item.id);
        if (!entry) continue; // timed out while queued
        entry.socket = socket;
      }
      socket.send(item.frame);
    }
  }

  async _resume(socket) {
    const asked = new Map([...this.rooms].filter(([room]) => !this._joining.has(room)));
    const rooms = {};
    for (const [room, position] of asked) rooms[room] = position;
    let answer;
    try {
      answer = await this._request("resume", { rooms }, this.options.requestTimeout, true);
    } catch (error) {
      if (error.code !== "disconnected" && error.code !== "closed") this._emit("resumed", { error });
      return;
    }
    const result = {};
    const answered = (answer && answer.rooms) || {};
    for (const [room, before] of asked) {
      const state = answered[room] || { recovered: false };
      const now = isPosition(state) ? { epoch: state.epoch, offset: state.offset } : null;
      if (this.rooms.has(room) && now) {
        const current = this.rooms.get(room);
        // Keep a newer position a publication brought meanwhile.
        if (!current || current.epoch !== now.epoch || current.offset < now.offset) {
          this.rooms.set(room, now);
        }
      }
      // null: there was nothing to recover (no position was known).
      const recovered = before === null ? null : Boolean(state.recovered);
      result[room] = { recovered, epoch: now && now.epoch, offset: now && now.offset };
    }
    if (this._socket === socket) this._emit("resumed", { rooms: result });
  }

  _received(text, socket) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (message === null || typeof message !== "object" || typeof message.type !== "string") return;
    const { type, id } = message;
    const hasId = id !== undefined && id !== null;
    if (hasId && (type === "response" || type === "error")) {
      if (type === "response") this._settle(id, message.data === undefined ? null : message.data, null);
      else {
        const data = message.data || {};
        this._settle(id, null, new RequestError(data.code || "error", data.message, data));
      }
      return;
    }
    if (hasId) {
      this._answer(message, socket);
      return;
    }
    const room = message.room;
    if (typeof room === "string" && Number.isInteger(message.offset) && this.rooms.has(room)) {
      const known = this.rooms.get(room);
      if (known && known.epoch === message.epoch && message.offset <= known.offset) return; // seen
      this.rooms.set(room, { epoch: message.epoch, offset: message.offset });
    }
    const data = message.data === undefined ? null : message.data;
    for (const key of [type, "*"]) {
      for (const handler of [...(this._handlers.get(key) || [])]) {
        try {
          handler(data, message);
        } catch (error) {
          console.error(`bocadillo client: a "${key}" handler failed`, error);
        }
      }
    }
  }

  async _answer(message, socket) {
    const { type, id } = message;
    const answerer = this._answerers.get(type);
    let reply;
    if (!answerer) {
      reply = { type: "error", id, data: { code: "unknown_type", message: `no answerer for ${type}` } };
    } else {
      try {
        const data = await answerer(message.data === undefined ? null : message.data, message);
        reply = { type: "response", id, data: data === undefined ? null : data };
      } catch (error) {
        const code = error && typeof error.code === "string" ? error.code : "handler_error";
        reply = { type: "error", id, data: { code, message: String((error && error.message) || error) } };
      }
    }
    // Only the connection the request came on can answer it.
    if (this._socket === socket && socket.readyState === OPEN) socket.send(JSON.stringify(reply));
  }

  _closed(socket, code, reason, wasClean) {
    if (socket !== null && this._socket !== socket) return; // an old socket, or close()
    this._socket = null;
    clearTimeout(this._connectTimer);
    if (this._openedAt && Date.now() - this._openedAt >= this.options.stableAfter) this._attempt = 0;
    this._openedAt = 0;
    // Requests sent on that connection can no longer be answered; queued ones wait.
    this._failRequests((entry) => entry.socket !== null, "disconnected", "the connection closed");
    const again = this.options.reconnect;
    const retry = typeof again === "function" ? again(code, reason) : again && shouldReconnect(code);
    if (!retry) {
      this._stopped = true;
      this.state = "closed";
      this._failRequests(() => true, "closed", "the connection closed for good");
      this._queue = [];
      this._emit("closed", { code, reason, wasClean });
      return;
    }
    this.state = "reconnecting";
    this._emit("closed", { code, reason, wasClean });
    if (this._stopped) return; // a listener called close()
    const delay = reconnectDelay(this._attempt, code, reason, this.options);
    this._attempt += 1;
    this._emit("reconnecting", { delay, attempt: this._attempt, code, reason });
    this._timer = setTimeout(() => this._open(), delay);
  }
}
