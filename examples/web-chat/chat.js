// The web chat page: log in as a uid, enter a room, send text, see the
// others' messages live, scroll back through history.

import { Fpnn, FpnnError } from "./fpnn.js";

const CHAT = 30;
const $ = (id) => document.getElementById(id);
let client = null;
let uid = 0;
let room = 0;
let oldest = 0; // history cursor: the oldest row shown
let counter = 0;

const reasons = {
  200045: "You are muted in this room.",
  200040: "You are not in this room.",
  200021: "Your role or mode in this room does not allow sending.",
  200010: "You are sending too fast.",
  200030: "That message is too long.",
};

function status(message) {
  $("status").textContent = message;
}

function explain(error) {
  if (error instanceof FpnnError) return reasons[error.code] ?? `Error ${error.code}: ${error.ex}`;
  return String(error.message ?? error);
}

// The text of a message body: chat pushes are {sourceText, targetText};
// history and other types are plain text; bytes are shown as a size.
function body(msg) {
  if (msg instanceof Uint8Array) return `[${msg.length} bytes]`;
  if (msg && typeof msg === "object") return msg.targetText || msg.sourceText || "";
  return String(msg);
}

function line(from, msg, mtime, older) {
  const li = document.createElement("li");
  li.className = "message";
  const time = new Date(Number(mtime)).toLocaleTimeString();
  li.textContent = `[${time}] ${from}: ${body(msg)}`;
  li.dataset.from = String(from);
  const list = $("messages");
  if (older) list.prepend(li);
  else list.append(li);
}

function onPush(method, params) {
  if (method === "pushroommsg" && Number(params.rid) === room) line(params.from, params.msg, params.mtime, false);
  else if (method === "kickoutroom") status(`You were removed from room ${params.rid}.`);
  else if (method === "kickout") status("You were logged out by the server.");
}

async function login() {
  uid = Number($("uid").value);
  let token = $("token").value.trim();
  let pid = Number($("pid").value);
  if (!token) {
    // The demo endpoint (off unless configured; never in production).
    const response = await fetch(`token?uid=${uid}`);
    if (!response.ok) return status("No token: paste one from your backend (gettoken).");
    ({ pid, token } = await response.json());
  }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  client = await Fpnn.open(`${scheme}://${location.host}/service/websocket`, onPush, (event) =>
    status(`Disconnected (${event.code} ${event.reason}).`),
  );
  const answer = await client.quest("auth", { pid, uid, token, version: "web-chat", lang: "en" });
  if (!answer.ok) return status("Login refused: the token is not valid.");
  status(`Logged in as ${uid}.`);
  document.body.dataset.state = "in";
}

async function enter() {
  room = Number($("room").value);
  await client.quest("enterroom", { rid: room });
  $("messages").replaceChildren();
  oldest = 0;
  await older();
  status(`In room ${room}.`);
}

// One more page of history, older than what is shown.
async function older() {
  const page = await client.quest("getroommsg", { rid: room, desc: true, num: 10, begin: 0, end: 0, lastid: oldest });
  for (const [id, from, , , , msg, , mtime] of page.msgs) {
    line(from, msg, mtime, true);
    oldest = Number(id);
  }
  $("older").disabled = page.msgs.length < 10;
}

async function send() {
  const input = $("text");
  const mid = BigInt(Date.now()) * 1000n + BigInt(counter++ % 1000);
  try {
    const { mtime } = await client.quest("sendroommsg", { rid: room, mid, mtype: CHAT, msg: input.value, attrs: "" });
    line(uid, input.value, mtime, false);
    input.value = "";
    status(`In room ${room}.`);
  } catch (error) {
    status(explain(error));
  }
}

const guard = (f) => () => f().catch((error) => status(explain(error)));
$("login").onclick = guard(login);
$("enter").onclick = guard(enter);
$("send").onclick = guard(send);
$("older").onclick = guard(older);
