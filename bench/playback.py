#!/usr/bin/env python3
"""Plays N prepared messages into a room at full speed (speed 0) and times it
until `playback_completed` arrives (docs/performance.md, "Recording").

    python3 bench/playback.py HOST:PORT RECORDINGS_DIR [N]

Needs `msgpack` (pip install msgpack). Speaks FPNN directly: a signed
`setlisten` for the event, then `startplayback`. The server must run with
`recording.dir=RECORDINGS_DIR`; the file goes to RECORDINGS_DIR/content/.
"""
import hashlib, json, os, socket, struct, sys, time
import msgpack

PID, SECRET = 11000001, "demo-secret-for-local-use-only"
addr, root = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
os.makedirs(os.path.join(root, "content"), exist_ok=True)
with open(os.path.join(root, "content", "playback-bench.jsonl"), "w") as f:
    for i in range(n):
        f.write(json.dumps({"from": 1 + i % 50, "msg": f"line {i} " + "x" * 80, "mtime": 1_000_000 + i}) + "\n")

host, port = addr.rsplit(":", 1)
sock = socket.create_connection((host, int(port)))
seq, salt = 0, int(time.time() * 1000)

def quest(method, params):
    global seq, salt
    seq += 1
    salt += 1
    ts = int(time.time())
    sign = hashlib.md5(f"{PID}:{SECRET}:{salt}:{method}:{ts}".encode()).hexdigest().upper()
    body = msgpack.packb(dict(params, pid=PID, sign=sign, salt=salt, ts=ts))
    name = method.encode()
    sock.sendall(b"FPNN" + bytes([1, 0x80, 1, len(name)]) + struct.pack("<I", len(body)) + struct.pack("<I", seq) + name + body)

buf = b""
def frame():
    global buf
    while True:
        if len(buf) >= 12:
            mtype, ss, size = buf[6], buf[7], struct.unpack("<I", buf[8:12])[0]
            total = 12 + (4 if mtype in (1, 2) else 0) + (ss if mtype in (0, 1) else 0) + size
            if len(buf) >= total:
                f, buf = buf[:total], buf[total:]
                return f
        buf += sock.recv(65536)

quest("setlisten", {"events": ["playback_completed"]})
frame()
quest("startplayback", {"rid": 9001, "files": "content/playback-bench.jsonl", "speed": 0.0})
started = time.monotonic()
answer = frame()
assert answer[6] == 2 and answer[7] == 0, answer
while True:
    f = frame()
    if f[6] in (0, 1) and f[12 + (4 if f[6] == 1 else 0):].startswith(b"pushevent"):
        elapsed = time.monotonic() - started
        ss = f[7]
        payload = msgpack.unpackb(f[12 + (4 if f[6] == 1 else 0) + ss:])
        data = json.loads(payload["data"])
        print(f"{data['played']} messages played in {elapsed:.2f} s = {data['played'] / elapsed:,.0f}/s (reason {data['reason']})")
        break
    if f[6] == 1:  # a ping: answer it
        s = struct.unpack("<I", f[12:16])[0]
        body = msgpack.packb({})
        sock.sendall(b"FPNN" + bytes([1, 0x80, 2, 0]) + struct.pack("<I", len(body)) + struct.pack("<I", s) + body)
