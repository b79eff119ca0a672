// The example chat's page, on Bocadillo's JavaScript client (served by the app at
// /bocadillo/client.js; docs/clients.md). The client reconnects, resumes the room with
// the last offset it saw (the server replays what was missed), matches replies to
// requests and turns error envelopes into errors with a code; this file draws the chat.
import { connect } from "/bocadillo/client.js";

const $ = (id) => document.getElementById(id);
/** What a person reads instead of an error code. */
const ERRORS = {
  rate_limited: "You are sending messages very fast: wait a few seconds, then send it again.",
  name_taken: "Someone in this room already has that name: choose another one.",
  invalid_data: "That cannot be sent: check what you typed.",
  not_joined: "You are not in this room any more: choose it again in the list.",
  not_named: "Choose a display name first.",
  room_full: "This room is full: try another one.",
  too_many_rooms: "You are in too many rooms.",
  forbidden: "You may not join this room.",
  message_too_large: "This message is too long.",
  timeout: "The server did not answer: send it again.",
  disconnected: "The connection dropped before the answer: send it again.",
  queue_full: "You are offline: wait for the connection to come back.",
  closed: "The chat is closed: reload the page.",
};
const GENERIC_ERROR = "Something went wrong: try again.";
/** A typing notice at most this often (ms); it is shown this long to the others. */
const TYPING_EVERY = 3000;
const TYPING_SHOWN = 4500;
/** Messages of one author less than this apart (seconds) are grouped. */
const GROUP_WITHIN = 300;
const LINK = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g;

const human = (error) => ERRORS[error && error.code] || GENERIC_ERROR;

const view = {
  me: null,
  room: sessionStorage.getItem("chat-room") || "general",
  members: new Map(), // connection id -> name
  rooms: [],
  last: null, // {name, ts} of the last message shown, for grouping
  typing: new Map(), // name -> timer
  typingSent: 0,
  wasOffline: false,
};

const client = connect("/ws");

// Connection state -------------------------------------------------------------------------

function setOnline(online, text) {
  const status = $("status");
  status.dataset.state = online ? "online" : client.state === "connecting" ? "connecting" : "reconnecting";
  status.textContent = text;
  document.body.classList.toggle("offline", !online);
  $("message-input").disabled = !online;
  $("send-button").disabled = !online;
}

client.onEvent("connecting", ({ attempt }) => {
  if (attempt === 0) setOnline(false, "Connecting…");
});
client.onEvent("reconnecting", ({ delay }) => {
  view.wasOffline = true;
  setOnline(false, `Offline: retrying in ${Math.max(1, Math.round(delay / 1000))} s`);
});
client.onEvent("open", () => {
  setOnline(true, "Online");
  // Who this connection is goes first: before the client's resume of the room.
  if (view.me) client.request("hello", { name: view.me }).catch(showError);
});
client.onEvent("resumed", ({ rooms, error }) => {
  const resumed = rooms && rooms[view.room];
  if (error || !resumed) {
    notice("Could not rejoin the room: choose it again in the list.");
    return;
  }
  if (resumed.recovered === true) notice("Back online: nothing was lost.");
  else if (resumed.recovered === false) notice("Back online: messages from before the interruption could not be recovered.");
  enter(view.room, { quiet: true }); // members (and, when not recovered, the history) afresh
});

// Drawing ------------------------------------------------------------------------------------

function notice(text) {
  const bar = $("notice");
  bar.textContent = text;
  bar.hidden = false;
}

function showError(error, where = "error") {
  const box = $(where);
  box.textContent = human(error);
  box.dataset.code = (error && error.code) || "";
  box.hidden = false;
}

function clearError(where = "error") {
  $(where).hidden = true;
  $(where).textContent = "";
}

/** Append `text` to `parent` as text nodes, with http(s) links as safe anchors. */
function appendText(parent, text) {
  let at = 0;
  for (const match of text.matchAll(LINK)) {
    parent.append(document.createTextNode(text.slice(at, match.index)));
    let url = null;
    try {
      url = new URL(match[0]);
    } catch {
      url = null;
    }
    if (url && (url.protocol === "http:" || url.protocol === "https:")) {
      const link = document.createElement("a");
      link.href = url.href;
      link.rel = "noopener noreferrer";
      link.target = "_blank";
      link.textContent = match[0];
      parent.append(link);
    } else {
      parent.append(document.createTextNode(match[0]));
    }
    at = match.index + match[0].length;
  }
  parent.append(document.createTextNode(text.slice(at)));
}

function scrolledToBottom(list) {
  return list.scrollHeight - list.scrollTop - list.clientHeight < 40;
}

function addMessage(message) {
  const list = $("messages");
  const follow = scrolledToBottom(list);
  const grouped =
    view.last !== null && view.last.name === message.name && message.ts - view.last.ts < GROUP_WITHIN;
  view.last = { name: message.name, ts: message.ts };
  const li = document.createElement("li");
  li.className = "message";
  li.classList.toggle("mine", message.name === view.me);
  li.classList.toggle("grouped", grouped);
  li.dataset.offset = String(message.offset);
  const author = document.createElement("span");
  author.className = "author";
  author.textContent = message.name;
  const time = document.createElement("time");
  time.className = "time";
  const date = new Date(message.ts * 1000);
  time.dateTime = date.toISOString();
  time.textContent = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const text = document.createElement("span");
  text.className = "text";
  appendText(text, message.text);
  li.append(author, time, text);
  list.append(li);
  $("empty").hidden = true;
  stopTyping(message.name);
  if (follow || message.name === view.me) list.scrollTop = list.scrollHeight;
}

function addNotice(text) {
  const li = document.createElement("li");
  li.className = "notice";
  li.textContent = text;
  $("messages").append(li);
  view.last = null;
}

function drawMembers() {
  const names = [...new Set(view.members.values())].sort((a, b) => a.localeCompare(b));
  const list = $("members");
  list.replaceChildren(
    ...names.map((name) => {
      const li = document.createElement("li");
      li.textContent = name;
      return li;
    }),
  );
}

function drawRooms() {
  const list = $("rooms");
  list.replaceChildren(
    ...view.rooms.map(({ name, users }) => {
      const li = document.createElement("li");
      li.dataset.room = name;
      li.classList.toggle("current", name === view.room);
      const button = document.createElement("button");
      button.type = "button";
      button.append(`#${name}`);
      const count = document.createElement("span");
      count.className = "count";
      count.textContent = String(users);
      button.append(count);
      button.addEventListener("click", () => switchTo(name));
      li.append(button);
      return li;
    }),
  );
}

function drawTyping() {
  const names = [...view.typing.keys()];
  $("typing").textContent =
    names.length === 0 ? "" : names.length === 1 ? `${names[0]} is typing…` : `${names.join(", ")} are typing…`;
}

function stopTyping(name) {
  clearTimeout(view.typing.get(name));
  if (view.typing.delete(name)) drawTyping();
}

// Rooms ------------------------------------------------------------------------------------

/** Join `room` (or refresh it) and draw its history and members from the answer. */
async function enter(room, { quiet = false } = {}) {
  const answer = await client.join(room);
  if (room !== view.room) return answer;
  $("room-title").textContent = `#${room}`;
  const list = $("messages");
  list.replaceChildren();
  view.last = null;
  for (const message of answer.history) addMessage(message);
  $("empty").hidden = answer.history.length > 0;
  view.members = new Map(answer.members.map((m) => [m.id, m.name]));
  drawMembers();
  drawRooms();
  list.scrollTop = list.scrollHeight;
  if (!quiet) $("notice").hidden = true;
  return answer;
}

async function switchTo(room) {
  if (room === view.room) return;
  const previous = view.room;
  clearError();
  view.room = room;
  view.typing.forEach((timer) => clearTimeout(timer));
  view.typing.clear();
  drawTyping();
  try {
    await enter(room);
    sessionStorage.setItem("chat-room", room);
    client.leave(previous).catch(() => {});
  } catch (error) {
    view.room = previous;
    client.rooms.delete(room);
    showError(error);
    drawRooms();
  }
}

// Server events ----------------------------------------------------------------------------

client.on("welcome", (data) => {
  view.rooms = data.rooms;
  drawRooms();
});
client.on("rooms", (data) => {
  view.rooms = data.rooms;
  drawRooms();
});
client.on("message", (data, message) => {
  if (message.room === view.room) addMessage({ ...data, offset: message.offset });
});
client.on("join", (data) => {
  if (data.room !== view.room || !data.user) return;
  view.members.set(data.id, data.user.name);
  drawMembers();
  addNotice(`${data.user.name} joined #${data.room}`);
});
client.on("leave", (data) => {
  if (data.room !== view.room) return;
  const name = view.members.get(data.id);
  view.members.delete(data.id);
  drawMembers();
  if (name) {
    stopTyping(name);
    addNotice(`${name} left #${data.room}`);
  }
});
client.on("typing", (data) => {
  if (data.room !== view.room) return;
  clearTimeout(view.typing.get(data.name));
  view.typing.set(data.name, setTimeout(() => stopTyping(data.name), TYPING_SHOWN));
  drawTyping();
});
client.on("shutdown", () => notice("The server is restarting: back in a moment."));

// Leaving the page closes the connection (the others see the person go at once, even if
// the browser keeps the page in its back/forward cache); coming back reloads it.
window.addEventListener("pagehide", () => client.close(1001, "page hidden"));
window.addEventListener("pageshow", (event) => {
  if (event.persisted) location.reload();
});

// Forms --------------------------------------------------------------------------------------

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearError("login-error");
  const name = $("name-input").value.trim();
  if (!name) return;
  $("login-button").disabled = true;
  try {
    await client.opened();
    const answer = await client.request("hello", { name });
    view.me = answer.name;
    await enter(view.room);
    sessionStorage.setItem("chat-name", view.me);
    $("me").textContent = view.me;
    $("me").hidden = false;
    $("login").hidden = true;
    $("chat").hidden = false;
    $("message-input").focus();
  } catch (error) {
    view.me = null;
    client.rooms.delete(view.room);
    showError(error, "login-error");
  } finally {
    $("login-button").disabled = false;
  }
});

$("message-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("message-input");
  const text = input.value.trim();
  if (!text) return;
  clearError();
  try {
    await client.request("message", { room: view.room, text });
    if (input.value.trim() === text) input.value = ""; // kept on failure, to send again
  } catch (error) {
    showError(error);
  }
});

$("message-input").addEventListener("input", () => {
  const now = Date.now();
  if (client.state !== "open" || now - view.typingSent < TYPING_EVERY) return;
  view.typingSent = now;
  client.send("typing", { room: view.room });
});

$("room-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("room-input");
  const room = input.value.trim();
  if (!room || !input.checkValidity()) return;
  input.value = "";
  switchTo(room);
});

// A page reloaded in the same tab comes back with its name.
const remembered = sessionStorage.getItem("chat-name");
if (remembered) {
  $("name-input").value = remembered;
  $("login-form").requestSubmit();
}
