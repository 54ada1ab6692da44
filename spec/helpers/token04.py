#!/usr/bin/python3
"""An independent Token04 (ZEGO's client token), written here from the format
ZEGO's published generators define (docs/admission.md), with Debian's
python3-cryptography: spec/edge/40 checks streamctl.edge.token04 against it.

  token04.py issue APP_ID SECRET USER_ID NOW TTL [PAYLOAD]   prints a token
  token04.py issue-cbc APP_ID SECRET USER_ID NOW TTL         the CBC form (zego_server_assistant's generators)
  token04.py read APP_ID SECRET TOKEN                        prints its JSON
  token04.py read-cbc APP_ID SECRET TOKEN                    the same, of the CBC form
"""
import base64
import json
import os
import struct
import sys

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def issue(app_id, secret, user_id, now, ttl, payload=""):
    expire = now + ttl
    nonce_int = struct.unpack(">I", os.urandom(4))[0] & 0x7FFFFFFF
    # the Node and Python generators' key order: nonce before the times
    plain = json.dumps({"app_id": app_id, "user_id": user_id, "nonce": nonce_int, "ctime": now,
                        "expire": expire, "payload": payload}, separators=(",", ":")).encode()
    nonce = os.urandom(12)
    sealed = AESGCM(secret.encode()).encrypt(nonce, plain, None)
    body = struct.pack(">qH", expire, len(nonce)) + nonce + struct.pack(">H", len(sealed)) + sealed + b"\x01"
    return "04" + base64.b64encode(body).decode()


def issue_cbc(app_id, secret, user_id, now, ttl):
    expire = now + ttl
    plain = json.dumps({"app_id": app_id, "user_id": user_id, "nonce": 7, "ctime": now, "expire": expire,
                        "payload": ""}, separators=(",", ":")).encode()
    iv = bytes(os.urandom(16).hex()[:16], "ascii")  # 16 characters of [0-9a-f], as one generator makes it
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    enc = Cipher(algorithms.AES(secret.encode()), modes.CBC(iv)).encryptor()
    data = enc.update(padded) + enc.finalize()
    body = struct.pack(">qH", expire, len(iv)) + iv + struct.pack(">H", len(data)) + data
    return "04" + base64.b64encode(body).decode()


def read(app_id, secret, token):
    if not token.startswith("04"):
        raise ValueError("not 04")
    body = base64.b64decode(token[2:], validate=True)
    expire, nl = struct.unpack(">qH", body[:10])
    nonce = body[10:10 + nl]
    (cl,) = struct.unpack(">H", body[10 + nl:12 + nl])
    sealed = body[12 + nl:12 + nl + cl]
    mode = body[12 + nl + cl:]
    if nl != 12 or mode != b"\x01":
        raise ValueError("not GCM")
    t = json.loads(AESGCM(secret.encode()).decrypt(nonce, sealed, None))
    if t["expire"] != expire or t["app_id"] != app_id:
        raise ValueError("expire or app_id")
    return t


def read_cbc(app_id, secret, token):
    body = base64.b64decode(token[2:], validate=True)
    expire, nl = struct.unpack(">qH", body[:10])
    iv = body[10:10 + nl]
    (cl,) = struct.unpack(">H", body[10 + nl:12 + nl])
    data = body[12 + nl:12 + nl + cl]
    if nl != 16 or len(body) != 12 + nl + cl:
        raise ValueError("not CBC")
    dec = Cipher(algorithms.AES(secret.encode()), modes.CBC(iv)).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    t = json.loads(unpadder.update(dec.update(data) + dec.finalize()) + unpadder.finalize())
    if t["expire"] != expire or t["app_id"] != app_id:
        raise ValueError("expire or app_id")
    return t


if __name__ == "__main__":
    if sys.argv[1] == "issue-cbc":
        a = sys.argv[2:]
        print(issue_cbc(int(a[0]), a[1], a[2], int(a[3]), int(a[4])))
    elif sys.argv[1] == "issue":
        a = sys.argv[2:]
        print(issue(int(a[0]), a[1], a[2], int(a[3]), int(a[4]), a[5] if len(a) > 5 else ""))
    else:
        reader = read_cbc if sys.argv[1] == "read-cbc" else read
        print(json.dumps(reader(int(sys.argv[2]), sys.argv[3], sys.argv[4]), sort_keys=True, separators=(",", ":")))
