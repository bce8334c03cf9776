# Independent check of tests/vectors/log.json, not using any project code:
#   python3 tests/vectors/check_log.py tests/vectors/log.json   (needs the `cryptography` package)
# Written from RFC 9162 §2.1 (the tree, inclusion and consistency proofs), C2SP tlog-tiles
# (tile paths, hash tiles, entry bundles), C2SP tlog-checkpoint and C2SP signed-note.
import base64, hashlib, json, struct, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

o = json.load(open(sys.argv[1]))
entries = [bytes.fromhex(e) for e in o["entries_hex"]]

def leaf(e): return hashlib.sha256(b"\x00" + e).digest()
def node(l, r): return hashlib.sha256(b"\x01" + l + r).digest()

def mth(d):
    """RFC 9162 §2.1.1, recursively over the entries themselves."""
    if len(d) == 0: return hashlib.sha256(b"").digest()
    if len(d) == 1: return leaf(d[0])
    k = 1
    while k * 2 < len(d): k *= 2
    return node(mth(d[:k]), mth(d[k:]))

def verify_inclusion(index, size, leaf_hash, proof, root):
    """RFC 9162 §2.1.3.2."""
    if index >= size: return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0: return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0: fn >>= 1; sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1; sn >>= 1
    return sn == 0 and r == root

def verify_consistency(m, n, first, second, proof):
    """RFC 9162 §2.1.4.2."""
    if m == n: return not proof and first == second
    if m & (m - 1) == 0: proof = [first] + proof
    fn, sn = m - 1, n - 1
    while fn & 1: fn >>= 1; sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0: return False
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0: fn >>= 1; sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1; sn >>= 1
    return sn == 0 and fr == first and sr == second

# The verifier key: <name>+<hex key ID>+<base64(0x01 || public key)>, key ID = SHA-256(name || "\n" || 0x01 || key)[:4].
name, key_id_hex, key_b64 = o["verifier_key"].split("+", 2)  # base64 may hold "+" too
key_bytes = base64.b64decode(key_b64)
assert key_bytes[0] == 1 and len(key_bytes) == 33, "an Ed25519 note key"
key_id = hashlib.sha256(name.encode() + b"\n" + key_bytes).digest()[:4]
assert key_id.hex() == key_id_hex, "key ID"
public = Ed25519PublicKey.from_public_bytes(key_bytes[1:])

def open_checkpoint(note):
    """A signed note: text, an empty line, signature lines "— <name> <base64(key ID || signature)>"."""
    text, _, sigs = note.partition("\n\n")
    text += "\n"
    for line in sigs.rstrip("\n").split("\n"):
        assert line.startswith("\u2014 "), "signature line"
        signer, encoded = line[2:].rsplit(" ", 1)
        raw = base64.b64decode(encoded)
        if signer == name and raw[:4] == key_id:
            public.verify(raw[4:], text.encode())  # raises if the signature is wrong
            origin, size, root, *rest = text.split("\n")
            assert rest == [""], "origin, size, root, nothing more"
            assert origin == o["origin"] == name
            return int(size), base64.b64decode(root)
    raise AssertionError("no signature by the log's key")

checkpoints = {size: open_checkpoint(note) for size, note in o["checkpoints"].items()}
for size_text, (size, root) in checkpoints.items():
    assert int(size_text) == size
    assert root == mth(entries[:size]), f"root of {size}"

size, root = checkpoints[str(len(entries))]
for p in o["inclusion"]:
    proof = [base64.b64decode(h) for h in p["proof"]]
    assert p["size"] == size
    assert verify_inclusion(p["index"], size, leaf(entries[p["index"]]), proof, root), f"inclusion of {p['index']}"
    assert not verify_inclusion(p["index"], size, leaf(b"not an entry"), proof, root)

c = o["consistency"]
old_size, old_root = checkpoints[str(c["from"])]
proof = [base64.b64decode(h) for h in c["proof"]]
assert (old_size, c["to"]) == (c["from"], size)
assert verify_consistency(old_size, size, old_root, root, proof), "consistency"
assert not verify_consistency(old_size, size, hashlib.sha256(b"a forked tree").digest(), root, proof)

def tile_path(kind, index, width):
    """tlog-tiles: index in groups of three digits, all but the last prefixed by x; .p/<W> when partial."""
    groups = []
    while True:
        groups.append("%03d" % (index % 1000))
        index //= 1000
        if index == 0: break
    groups = ["x" + g for g in reversed(groups[1:])] + [groups[0]]
    return f"tile/{kind}/" + "/".join(groups) + (f".p/{width}" if width < 256 else "")

for t in o["tiles"]:
    data = bytes.fromhex(t["hex"])
    path = t["path"]
    kind, rest = path[len("tile/"):].split("/", 1)
    index_part, _, width = rest.partition(".p/")
    index = int(index_part.replace("x", "").replace("/", ""))
    width = int(width) if width else 256
    assert tile_path(kind, index, width) == path, path
    if kind == "entries":
        got, at = [], 0
        while at < len(data):
            (n,) = struct.unpack(">H", data[at:at + 2])
            got.append(data[at + 2:at + 2 + n]); at += 2 + n
        assert got == entries[index * 256:index * 256 + width], path
    else:
        span = 256 ** int(kind)
        hashes = [data[i:i + 32] for i in range(0, len(data), 32)]
        assert len(hashes) == width, path
        for j, h in enumerate(hashes):
            i = index * 256 + j
            assert h == mth(entries[i * span:(i + 1) * span]), f"{path} hash {j}"

print(f"log vectors: {len(entries)} entries, {len(o['checkpoints'])} signed checkpoints, "
      f"{len(o['inclusion'])} inclusion proofs, 1 consistency proof, {len(o['tiles'])} tiles: all check")
