# An independent audit of a kez-chat server's transparency log, using only its public
# endpoints and no project code (needs the `cryptography` package). Written from RFC 9162
# §2.1, C2SP tlog-tiles, tlog-checkpoint and signed-note:
#
#   python3 tests/audit_log.py <server URL> [--key <verifier key>] [--since <checkpoint file>]
#                              [--handle <handle>]... [--save <checkpoint file>]
#
# It verifies the checkpoint's signature (with the pinned verifier key, else the one healthz
# publishes), reads every entry from the entry bundles and every leaf hash from the hash
# tiles, and checks that the tiles match the entries and the entries the signed root. With
# --since, the older checkpoint must be consistent with the new one: an RFC 9162 consistency
# proof built from the hash tiles must verify, and the old root must be that of the first
# entries. With --handle, the lookup's binding must be the entry it names, included (by its
# proof) in a checkpoint this key signed. Prints a JSON summary; exits 1 on any failure.
import argparse, base64, hashlib, json, struct, sys, urllib.request
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

TILE = 256


def get(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def leaf(entry): return hashlib.sha256(b"\x00" + entry).digest()
def node(left, right): return hashlib.sha256(b"\x01" + left + right).digest()


def mth(hashes):
    """RFC 9162 §2.1.1 over leaf hashes."""
    if not hashes: return hashlib.sha256(b"").digest()
    if len(hashes) == 1: return hashes[0]
    k = 1
    while k * 2 < len(hashes): k *= 2
    return node(mth(hashes[:k]), mth(hashes[k:]))


def consistency_proof(m, hashes, whole=True):
    """RFC 9162 §2.1.4.1 SUBPROOF(m, D[n], b), from leaf hashes."""
    n = len(hashes)
    if m == n: return [] if whole else [mth(hashes)]
    k = 1
    while k * 2 < n: k *= 2
    if m <= k: return consistency_proof(m, hashes[:k], whole) + [mth(hashes[k:])]
    return consistency_proof(m - k, hashes[k:], False) + [mth(hashes[:k])]


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
    if m == 0 or m > n: return False
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


def tile_path(kind, index, width):
    """tlog-tiles: the index in groups of three digits, all but the last prefixed by x."""
    groups = []
    while True:
        groups.append("%03d" % (index % 1000))
        index //= 1000
        if index == 0: break
    groups = ["x" + g for g in reversed(groups[1:])] + [groups[0]]
    return f"tile/{kind}/" + "/".join(groups) + (f".p/{width}" if width < TILE else "")


class Verifier:
    """A signed-note verifier key: <name>+<hex key ID>+<base64(0x01 || Ed25519 key)>."""

    def __init__(self, vkey):
        self.name, key_id, encoded = vkey.split("+", 2)
        raw = base64.b64decode(encoded)
        if raw[0] != 1 or len(raw) != 33: raise AssertionError("not an Ed25519 note key")
        self.id = hashlib.sha256(self.name.encode() + b"\n" + raw).digest()[:4]
        if self.id.hex() != key_id: raise AssertionError("the verifier key's ID does not match its key")
        self.key = Ed25519PublicKey.from_public_bytes(raw[1:])

    def open(self, note):
        """(size, root) of a checkpoint signed by this key; raises otherwise."""
        text, sep, signatures = note.partition("\n\n")
        if not sep: raise AssertionError("not a signed note")
        text += "\n"
        for line in signatures.rstrip("\n").split("\n"):
            if not line.startswith("\u2014 "): raise AssertionError("malformed signature line")
            signer, encoded = line[2:].rsplit(" ", 1)
            raw = base64.b64decode(encoded)
            if signer == self.name and raw[:4] == self.id:
                self.key.verify(raw[4:], text.encode())  # raises if wrong
                origin, size, root, *rest = text.split("\n")
                if rest != [""] or origin != self.name: raise AssertionError("checkpoint body")
                return int(size), base64.b64decode(root)
        raise AssertionError("no signature by the log's key")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--key")
    parser.add_argument("--since")
    parser.add_argument("--save")
    parser.add_argument("--handle", action="append", default=[])
    args = parser.parse_args()
    base = args.url.rstrip("/")
    health = json.loads(get(base + "/v1/healthz"))
    vkey = args.key or health["log"]["verifier_key"]
    verifier = Verifier(vkey)
    note = get(base + "/log/checkpoint").decode()
    size, root = verifier.open(note)

    # Every entry, from the bundles; every leaf hash, from the level-0 tiles.
    entries, leaves = [], []
    for index in range((size + TILE - 1) // TILE):
        width = min(TILE, size - index * TILE)
        bundle = get(f"{base}/log/{tile_path('entries', index, width)}")
        at = 0
        while at < len(bundle):
            (n,) = struct.unpack(">H", bundle[at:at + 2])
            entries.append(bundle[at + 2:at + 2 + n]); at += 2 + n
        tile = get(f"{base}/log/{tile_path(0, index, width)}")
        leaves += [tile[i:i + 32] for i in range(0, len(tile), 32)]
    if len(entries) != size or len(leaves) != size: raise AssertionError("tiles do not hold the checkpoint's size")
    if [leaf(e) for e in entries] != leaves: raise AssertionError("hash tiles do not match the entries")
    if mth(leaves) != root: raise AssertionError("the entries do not make the signed root")
    # A level-1 tile holds the roots of whole level-0 tiles.
    if size >= TILE:
        full = size // TILE
        tile = get(f"{base}/log/{tile_path(1, 0, min(full, TILE))}")
        expected = b"".join(mth(leaves[i * TILE:(i + 1) * TILE]) for i in range(min(full, TILE)))
        if tile != expected: raise AssertionError("level-1 tile does not match the entries")

    summary = {"size": size, "entries_checked": size}
    if args.since:
        old_size, old_root = verifier.open(open(args.since).read())
        if old_size > size: raise AssertionError("the log shrank")
        if old_size > 0:
            proof = consistency_proof(old_size, leaves[:size])
            if not verify_consistency(old_size, size, old_root, root, proof):
                raise AssertionError(f"checkpoint {old_size} is not consistent with {size}")
        summary["consistent_from"] = old_size

    summary["lookups"] = []
    for handle in args.handle:
        body = json.loads(get(f"{base}/v1/u/{handle}"))
        log = body["log"]
        at_size, at_root = verifier.open(log["checkpoint"])
        index = log["index"]
        if index >= len(entries): raise AssertionError(f"{handle}: index beyond the audited log")
        entry = entries[index]
        if json.loads(entry) != body["envelope"]: raise AssertionError(f"{handle}: the entry is not the binding shown")
        proof = [base64.b64decode(h) for h in log["inclusion_proof"]]
        if not verify_inclusion(index, at_size, leaf(entry), proof, at_root):
            raise AssertionError(f"{handle}: inclusion proof does not verify")
        if at_size > size or mth(leaves[:at_size]) != at_root:
            raise AssertionError(f"{handle}: its checkpoint is not a prefix of the audited log")
        summary["lookups"].append({"handle": handle, "index": index, "checkpoint_size": at_size})

    if args.save:
        open(args.save, "w").write(note)
    print(json.dumps(summary))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a failed check, an unreachable server, a bad signature alike
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        sys.exit(1)
