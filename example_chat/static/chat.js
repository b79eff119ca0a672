// The example chat's browser side: vanilla JavaScript, no build step, no dependency.
//
// It speaks Bocadillo's message-type protocol on /ws: it sends {"type", "data", "id"}
// envelopes and handles the "welcome", "response", "error", "message", "presence",
// "typing" and "rooms" envelopes the server sends. Every text that comes from the server
// is inserted with textContent, never as HTML.
"use strict";

(() => {
  const BACKOFF_FIRST_MS = 500; // first reconnection delay, doubled at each failure...
  const BACKOFF_MAX_MS = 8000; // ...up to this
  const TYPING_EVERY_MS = 2500; // at most one "typing: true" notice per this period
  const TYPING_IDLE_MS = 3000; // "typing: false" after this long without a key
  const TYPING_SHOWN_MS = 6000; // forget someone's typing notice after this long

  const $ = (id) => document.getElementById(id);

  const state = {
    name: sessionStorage.getItem("chat.name"),
    room: sessionStorage.getItem("chat.room") || "general",
    joined: null, // the room joined on the current connection
    socket: null,
    attempt: 0, // reconnection attempts since the last successful open
    nextId: 1,
    pending: new Map(), // request id -> {onResponse, onError}
    typers: new Map(), // username -> timer that forgets them
    typingSentAt: 0,
    typingTimer: null,
    errorTimer: null,
    hidden: false, // the page was left (it may sit in the back/forward cache)
  };

  // Connection ------------------------------------------------------------------------------

  function connect() {
    if (state.hidden || state.socket !== null) return; // left, or already connecting
    setStatus("connecting", state.attempt ? `reconnecting (attempt ${state.attempt})…` : "connecting…");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/ws`);
    state.socket = socket;

    socket.addEventListener("open", () => {
      state.attempt = 0;
      setStatus("online", "online");
      if (state.name) join(state.room); // after a restart too: rejoin where we were
    });
    socket.addEventListener("message", (event) => {
      let envelope;
      try {
        envelope = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      handle(envelope);
    });
    socket.addEventListener("close", () => {
      if (state.socket !== socket) return;
      state.socket = null;
      state.joined = null;
      state.pending.clear();
      clearTypers();
      if (!state.hidden) scheduleReconnect();
    });
  }

  // Leaving the page closes the connection, so the others see us leave at once. Without
  // this, a page kept in the back/forward cache would keep its socket (and us "online").
  function pageHidden() {
    state.hidden = true;
    const socket = state.socket;
    if (socket === null) return;
    state.socket = null; // its close event is ignored: nothing to reconnect
    state.joined = null;
    state.pending.clear();
    socket.close(1000, "page left");
  }

  function pageShown(event) {
    state.hidden = false;
    if (!event.persisted) return; // a fresh load connects below
    state.attempt = 0;
    connect(); // back from the back/forward cache: connect and rejoin
  }

  function scheduleReconnect() {
    // Exponential backoff with jitter, so that clients dropped together by a restart do
    // not all come back in the same millisecond.
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** state.attempt);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    state.attempt += 1;
    setStatus("reconnecting", `offline: reconnecting in ${(delay / 1000).toFixed(1)} s…`);
    setTimeout(connect, delay);
  }

  function isOpen() {
    return state.socket !== null && state.socket.readyState === WebSocket.OPEN;
  }

  // Send a request; its response or error comes back with the same id.
  function request(type, data, onResponse, onError) {
    if (!isOpen()) {
      showError("offline", "not connected to the server; reconnecting…");
      return false;
    }
    const id = state.nextId++;
    state.pending.set(id, { onResponse, onError });
    state.socket.send(JSON.stringify({ type, data, id }));
    return true;
  }

  // Send a notice that expects no answer.
  function notify(type, data) {
    if (isOpen()) state.socket.send(JSON.stringify({ type, data }));
  }

  // Incoming envelopes ----------------------------------------------------------------------

  function handle(envelope) {
    const data = envelope.data;
    switch (envelope.type) {
      case "welcome":
        renderRooms(data.rooms);
        break;
      case "response": {
        const pending = takePending(envelope.id);
        if (pending && pending.onResponse) pending.onResponse(data);
        break;
      }
      case "error": {
        const pending = takePending(envelope.id);
        showError(data.code, data.message);
        if (pending && pending.onError) pending.onError(data);
        break;
      }
      case "message":
        if (data.room === state.joined) {
          forgetTyper(data.name);
          appendMessage(data);
        }
        break;
      case "presence":
        if (data.room === state.joined) {
          appendNotice(`${data.name} ${data.event === "joined" ? "joined" : "left"} #${data.room}`);
          renderMembers(data.members);
        }
        break;
      case "typing":
        if (data.room === state.joined) setTyper(data.name, data.typing);
        break;
      case "rooms":
        renderRooms(data.rooms);
        break;
      default:
        break; // a newer server may send more types
    }
  }

  function takePending(id) {
    if (id === undefined || id === null) return null;
    const pending = state.pending.get(id);
    state.pending.delete(id);
    return pending || null;
  }

  // Actions ---------------------------------------------------------------------------------

  function join(room) {
    request("join", { room, name: state.name }, (data) => {
      state.joined = data.room;
      state.room = data.room;
      sessionStorage.setItem("chat.room", data.room);
      $("room-title").textContent = `#${data.room}`;
      $("messages").replaceChildren();
      clearTypers();
      for (const message of data.history) appendMessage(message);
      appendNotice(`You joined #${data.room} as ${data.name}.`);
      renderMembers(data.members);
      markCurrentRoom();
    });
  }

  function sendMessage(event) {
    event.preventDefault();
    const input = $("message-input");
    const text = input.value;
    // Empty text is sent too: the server refuses it and the page shows its error.
    request("message", { text }, () => {
      if (input.value === text) input.value = "";
      hideError();
    });
    clearTimeout(state.typingTimer);
    state.typingSentAt = 0; // receivers forget our typing notice when our message lands
  }

  function typed() {
    if (!state.joined) return;
    const now = Date.now();
    if (now - state.typingSentAt > TYPING_EVERY_MS) {
      notify("typing", { typing: true });
      state.typingSentAt = now;
    }
    clearTimeout(state.typingTimer);
    state.typingTimer = setTimeout(() => {
      notify("typing", { typing: false });
      state.typingSentAt = 0;
    }, TYPING_IDLE_MS);
  }

  function login(event) {
    event.preventDefault();
    const name = $("name-input").value.trim();
    if (!name) {
      $("name-input").focus();
      return;
    }
    state.name = name;
    sessionStorage.setItem("chat.name", name);
    showChat();
    if (isOpen()) join(state.room); // otherwise the next "open" joins
  }

  function joinTypedRoom(event) {
    event.preventDefault();
    const input = $("room-input");
    const room = input.value.trim();
    if (room) {
      join(room);
      input.value = "";
    }
  }

  // Rendering (textContent only) --------------------------------------------------------------

  function setStatus(kind, text) {
    const status = $("status");
    status.dataset.state = kind;
    status.className = `status status-${kind}`;
    status.textContent = text;
  }

  function showChat() {
    $("login").hidden = true;
    $("chat").hidden = false;
    $("me").hidden = false;
    $("me").textContent = state.name;
    $("message-input").focus();
  }

  function formatTime(seconds) {
    const date = new Date(seconds * 1000);
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function appendItem(li) {
    const list = $("messages");
    list.appendChild(li);
    list.scrollTop = list.scrollHeight;
  }

  function appendMessage(message) {
    const li = document.createElement("li");
    li.className = "message";
    li.dataset.seq = String(message.seq);
    const time = document.createElement("span");
    time.className = "time";
    time.textContent = formatTime(message.ts);
    const author = document.createElement("span");
    author.className = "author";
    author.textContent = message.name;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = message.text;
    li.append(time, author, text);
    appendItem(li);
  }

  function appendNotice(text) {
    const li = document.createElement("li");
    li.className = "notice";
    li.textContent = text;
    appendItem(li);
  }

  function renderMembers(members) {
    const list = $("members");
    list.replaceChildren(
      ...members.map((name) => {
        const li = document.createElement("li");
        li.textContent = name;
        return li;
      }),
    );
  }

  function renderRooms(rooms) {
    const list = $("rooms");
    list.replaceChildren(
      ...rooms.map((room) => {
        const li = document.createElement("li");
        li.dataset.room = room.name;
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = `#${room.name}`;
        const count = document.createElement("span");
        count.className = "count";
        count.textContent = String(room.users);
        button.appendChild(count);
        button.addEventListener("click", () => join(room.name));
        li.appendChild(button);
        return li;
      }),
    );
    markCurrentRoom();
  }

  function markCurrentRoom() {
    for (const li of $("rooms").children) {
      li.classList.toggle("current", li.dataset.room === state.joined);
    }
  }

  function setTyper(name, typing) {
    clearTimeout(state.typers.get(name));
    if (typing) {
      state.typers.set(name, setTimeout(() => forgetTyper(name), TYPING_SHOWN_MS));
    } else {
      state.typers.delete(name);
    }
    renderTypers();
  }

  function forgetTyper(name) {
    if (!state.typers.has(name)) return;
    clearTimeout(state.typers.get(name));
    state.typers.delete(name);
    renderTypers();
  }

  function clearTypers() {
    for (const timer of state.typers.values()) clearTimeout(timer);
    state.typers.clear();
    renderTypers();
  }

  function renderTypers() {
    const names = [...state.typers.keys()];
    let text = "";
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = "several people are typing…";
    $("typing").textContent = text;
  }

  function showError(code, message) {
    const box = $("error");
    box.dataset.code = code;
    box.textContent = `${code}: ${message}`;
    box.hidden = false;
    clearTimeout(state.errorTimer);
    state.errorTimer = setTimeout(hideError, 8000);
  }

  function hideError() {
    $("error").hidden = true;
  }

  // Start ---------------------------------------------------------------------------------

  $("login-form").addEventListener("submit", login);
  $("message-form").addEventListener("submit", sendMessage);
  $("message-input").addEventListener("input", typed);
  $("room-form").addEventListener("submit", joinTypedRoom);
  window.addEventListener("pagehide", pageHidden);
  window.addEventListener("pageshow", pageShown);
  if (state.name) showChat();
  connect();
})();
