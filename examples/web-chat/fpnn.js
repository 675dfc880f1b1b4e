// A small FPNN-over-WebSocket client, as the RTM WebSocket SDK speaks it:
// FPNN frames (12-byte header, msgpack payload) in binary WebSocket
// messages, read back as one byte stream. msgpack.min.js (@msgpack/msgpack,
// ISC) must be loaded first; it defines window.MessagePack.

const { encode, decode } = window.MessagePack;
const MAGIC = [0x46, 0x50, 0x4e, 0x4e]; // "FPNN"
const VERSION = 1;
const FLAG_MSGPACK = 0x80;
const ONEWAY = 0, TWOWAY = 1, ANSWER = 2;
const utf8 = new TextEncoder();
const text = new TextDecoder();

export class FpnnError extends Error {
  constructor(code, ex) {
    super(`${code}: ${ex}`);
    this.code = code;
    this.ex = ex;
  }
}

export class Fpnn {
  // Opens `url` (ws:// or wss://); `onPush(method, params)` gets the
  // server's quests (twoway ones are answered `{}` first); `onClose(event)`
  // gets the close, with its code and reason.
  static open(url, onPush, onClose) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.binaryType = "arraybuffer";
      const client = new Fpnn(ws, onPush, onClose);
      ws.onopen = () => resolve(client);
      ws.onerror = () => reject(new Error(`cannot connect to ${url}`));
    });
  }

  constructor(ws, onPush, onClose) {
    this.ws = ws;
    this.onPush = onPush;
    this.buffer = new Uint8Array(0);
    this.seq = 0;
    this.pending = new Map();
    ws.onmessage = (event) => this.received(new Uint8Array(event.data));
    ws.onclose = (event) => {
      for (const { reject } of this.pending.values()) {
        reject(new FpnnError(20002, `connection closed (${event.code} ${event.reason})`));
      }
      this.pending.clear();
      onClose(event);
    };
  }

  // A twoway quest; resolves with the answer's payload, or rejects with
  // FpnnError(code, ex).
  quest(method, params) {
    const seq = ++this.seq;
    const frame = this.frame(TWOWAY, method, seq, encode(params, { useBigInt64: true }));
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { resolve, reject });
      this.ws.send(frame);
    });
  }

  close() {
    this.ws.close(1000, "bye");
  }

  frame(kind, methodOrStatus, seq, payload) {
    const method = typeof methodOrStatus === "string" ? utf8.encode(methodOrStatus) : new Uint8Array(0);
    const ss = typeof methodOrStatus === "string" ? method.length : methodOrStatus;
    const withSeq = kind !== ONEWAY;
    const out = new Uint8Array(12 + (withSeq ? 4 : 0) + method.length + payload.length);
    const view = new DataView(out.buffer);
    out.set(MAGIC, 0);
    out.set([VERSION, FLAG_MSGPACK, kind, ss], 4);
    view.setUint32(8, payload.length, true);
    let at = 12;
    if (withSeq) {
      view.setUint32(at, seq, true);
      at += 4;
    }
    out.set(method, at);
    out.set(payload, at + method.length);
    return out;
  }

  received(bytes) {
    const joined = new Uint8Array(this.buffer.length + bytes.length);
    joined.set(this.buffer, 0);
    joined.set(bytes, this.buffer.length);
    this.buffer = joined;
    for (;;) {
      if (this.buffer.length < 12) return;
      const view = new DataView(this.buffer.buffer, this.buffer.byteOffset);
      const kind = this.buffer[6], ss = this.buffer[7], size = view.getUint32(8, true);
      const total = 12 + (kind === ONEWAY ? 0 : 4) + (kind === ANSWER ? 0 : ss) + size;
      if (this.buffer.length < total) return;
      const frame = this.buffer.subarray(0, total);
      this.buffer = this.buffer.slice(total);
      this.dispatch(frame, kind, ss, size);
    }
  }

  dispatch(frame, kind, ss, size) {
    const view = new DataView(frame.buffer, frame.byteOffset);
    const payload = (from) => decode(frame.subarray(from, from + size), { useBigInt64: true });
    if (kind === ANSWER) {
      const seq = view.getUint32(12, true);
      const waiting = this.pending.get(seq);
      if (!waiting) return; // an answer nobody waits for
      this.pending.delete(seq);
      const body = payload(16);
      if (ss === 0) waiting.resolve(body);
      else waiting.reject(new FpnnError(Number(body.code), body.ex));
      return;
    }
    const at = kind === TWOWAY ? 16 : 12;
    const method = text.decode(frame.subarray(at, at + ss));
    const params = payload(at + ss);
    if (kind === TWOWAY) {
      this.ws.send(this.frame(ANSWER, 0, view.getUint32(12, true), encode({})));
    }
    this.onPush(method, params);
  }
}
