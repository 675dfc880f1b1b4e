#!/usr/bin/env python3
"""Golden vectors for FPNN `*key` encryption, from an independent implementation.

Uses only Python's `cryptography` (pip install cryptography; made with 48.0.0):
ECDH on each curve, FPNN's key derivation (KeyExchange.cpp calcKey), and
AES-CFB128 in package mode (u32 LE length + a cipher restarted per packet) and
stream mode (one continuous cipher per direction).

    python3 protocol/tests/golden/encryption.py > protocol/tests/golden/encryption.json
"""
import hashlib
import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

try:  # CFB moved to "decrepit" in cryptography 47
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:
    from cryptography.hazmat.primitives.ciphers.modes import CFB

CURVES = {
    "secp256k1": (ec.SECP256K1(), 32),
    "secp256r1": (ec.SECP256R1(), 32),
    "secp224r1": (ec.SECP224R1(), 28),
    "secp192r1": (ec.SECP192R1(), 24),
}

# A twoway quest `sendroommsg` seq 7 with payload {"rid": 7001} (msgpack).
PAYLOAD = b"\x81\xa3rid\xcd\x1b\x59"
METHOD = b"sendroommsg"
FRAME = b"FPNN" + bytes([1, 0x80, 1, len(METHOD)]) + len(PAYLOAD).to_bytes(4, "little") \
    + (7).to_bytes(4, "little") + METHOD + PAYLOAD


def private(tag, curve, size):
    scalar = int.from_bytes(hashlib.sha256(tag.encode()).digest()[:size], "big")
    return ec.derive_private_key(scalar, curve), scalar.to_bytes(size, "big")


def cfb(key, iv, data):
    enc = Cipher(algorithms.AES(key), CFB(iv)).encryptor()
    return enc.update(data) + enc.finalize()


vectors = []
for name, (curve, size) in CURVES.items():
    server, server_raw = private("rtm golden server " + name, curve, size)
    client, client_raw = private("rtm golden client " + name, curve, size)
    client_xy = client.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)[1:]
    server_pem = server.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    secret = server.exchange(ec.ECDH(), client.public_key())
    iv = hashlib.md5(secret).digest()
    for bits in (128, 256):
        if bits == 128:
            key = secret[:16]
        else:
            key = secret if len(secret) == 32 else hashlib.sha256(secret).digest()
        package = b"".join(len(FRAME).to_bytes(4, "little") + cfb(key, iv, FRAME) for _ in range(2))
        stream = cfb(key, iv, FRAME + FRAME)
        vectors.append({
            "curve": name, "bits": bits,
            "server_private": server_raw.hex(), "server_public_pem": server_pem,
            "client_private": client_raw.hex(), "client_public_xy": client_xy.hex(),
            "secret": secret.hex(), "key": key.hex(), "iv": iv.hex(),
            "plain": (FRAME + FRAME).hex(), "package": package.hex(), "stream": stream.hex(),
        })

print(json.dumps(vectors, indent=1))
