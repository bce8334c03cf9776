# Independent check of tests/vectors/messaging.json, not using any project code:
#   python3 tests/vectors/check_messaging.py tests/vectors/messaging.json   (needs the `cryptography` package)
# X25519, HKDF, ChaCha20-Poly1305 and Ed25519 from `cryptography`, HChaCha20 written out here.
import json, hashlib, struct, base64, sys
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
o = json.load(open(sys.argv[1]))
p = 2**255 - 19
def ed_to_x(pub):
    y = int.from_bytes(pub, 'little') & ((1 << 255) - 1)
    return ((1 + y) * pow(1 - y, p - 2, p) % p).to_bytes(32, 'little')
def pub_of(seed_hex):
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex)).public_key().public_bytes_raw()
for who in ("alice", "bob"):
    pk = pub_of(o[who]['seed_hex'])
    assert o[who]['primary'] == "ed25519:" + pk.hex()
    assert o[who]['inbox_tag'] == hashlib.sha256(b"kez-inbox-v1" + pk).hexdigest()
alice_seed = bytes.fromhex(o['alice']['seed_hex']); bob_pub = pub_of(o['bob']['seed_hex'])
t = o['text_message']
header = {"type": "text", "text": t['text'], "v": 1, "id": t['id'], "from": o['alice']['primary'], "to": o['bob']['primary'], "sent_at": t['sent_at']}
jcs = json.dumps(header, sort_keys=True, separators=(',', ':'), ensure_ascii=False).encode()
sig = Ed25519PrivateKey.from_private_bytes(alice_seed).sign(b"kez-msg-v1\0" + jcs)
header["sig"] = sig.hex()
wire = json.dumps(header, sort_keys=True, separators=(',', ':'), ensure_ascii=False).encode()
msg = struct.pack('>I', len(wire)) + wire
assert msg.hex() == t['message_hex'], "message bytes differ"
R = ed_to_x(bob_pub)
s = o['seal']
e = X25519PrivateKey.from_private_bytes(bytes.fromhex(s['ephemeral_secret_hex'])); E = e.public_key().public_bytes_raw()
S = e.exchange(X25519PublicKey.from_public_bytes(R))
K = HKDF(algorithm=hashes.SHA256(), length=32, salt=E + R, info=b"kez-seal-v1").derive(S)
def rotl(v, c): return ((v << c) & 0xffffffff) | (v >> (32 - c))
def qr(x, a, b, c, d):
    x[a]=(x[a]+x[b])&0xffffffff; x[d]=rotl(x[d]^x[a],16); x[c]=(x[c]+x[d])&0xffffffff; x[b]=rotl(x[b]^x[c],12)
    x[a]=(x[a]+x[b])&0xffffffff; x[d]=rotl(x[d]^x[a],8); x[c]=(x[c]+x[d])&0xffffffff; x[b]=rotl(x[b]^x[c],7)
def hchacha(key, n16):
    x = [0x61707865,0x3320646e,0x79622d32,0x6b206574] + list(struct.unpack('<8I', key)) + list(struct.unpack('<4I', n16))
    for _ in range(10):
        qr(x,0,4,8,12); qr(x,1,5,9,13); qr(x,2,6,10,14); qr(x,3,7,11,15)
        qr(x,0,5,10,15); qr(x,1,6,11,12); qr(x,2,7,8,13); qr(x,3,4,9,14)
    return struct.pack('<8I', *(x[0:4] + x[12:16]))
N = bytes.fromhex(s['nonce_hex'])
padded = struct.pack('>I', len(msg)) + msg; padded += bytes(512 - len(padded))
ct = ChaCha20Poly1305(hchacha(K, N[:16])).encrypt(b'\0\0\0\0' + N[16:], padded, b'\x01' + E + R)
box = b'\x01' + E + N + ct
assert box.hex() == s['box_hex'], "box differs"
assert base64.b64encode(box).decode() == s['content_base64']
print("independent check passed:", len(msg), "byte message,", len(box), "byte box")
# Safety numbers (PROTOCOL.md 2.3).
def safety_half(pk):
    h = hashlib.sha512(b"kez-safety-number-v1" + pk).digest()
    for _ in range(5199):
        h = hashlib.sha512(h + pk).digest()
    return "".join("%05d" % (int.from_bytes(h[i:i + 5], 'big') % 100000) for i in range(0, 30, 5))
s = o['safety_number']
halves = [safety_half(pub_of(o[w]['seed_hex'])) for w in ("alice", "bob")]
assert halves == [s['alice_half'], s['bob_half']], "safety number halves differ"
assert s['number'] == "".join(sorted(halves)), "safety number differs"
print("safety number: ok")
