# The transparency log's formats, written from the specs for the tests' independent
# verifiers (tests/vectors/check_log.py, tests/audit_log.py), sharing no code with the worker
# or the app: RFC 9162 §2.1 (the tree, inclusion and consistency proofs), C2SP tlog-tiles
# (tile paths, entry bundles) and C2SP signed-note (checkpoints). Needs `cryptography`.
import base64, hashlib, struct
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

TILE = 256


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
    """tlog-tiles: the index in groups of three digits, all but the last prefixed by x; .p/<W> when partial."""
    groups = []
    while True:
        groups.append("%03d" % (index % 1000))
        index //= 1000
        if index == 0: break
    groups = ["x" + g for g in reversed(groups[1:])] + [groups[0]]
    return f"tile/{kind}/" + "/".join(groups) + (f".p/{width}" if width < TILE else "")


def bundle_entries(data):
    """An entry bundle's entries: each prefixed by its length, a big-endian uint16."""
    entries, at = [], 0
    while at < len(data):
        (n,) = struct.unpack(">H", data[at:at + 2])
        entries.append(data[at + 2:at + 2 + n]); at += 2 + n
    return entries


class Verifier:
    """A signed-note verifier key: <name>+<hex key ID>+<base64(0x01 || Ed25519 key)>."""

    def __init__(self, vkey):
        self.name, key_id, encoded = vkey.split("+", 2)  # base64 may hold "+" too
        raw = base64.b64decode(encoded)
        if raw[0] != 1 or len(raw) != 33: raise AssertionError("not an Ed25519 note key")
        self.id = hashlib.sha256(self.name.encode() + b"\n" + raw).digest()[:4]
        if self.id.hex() != key_id: raise AssertionError("the verifier key's ID does not match its key")
        self.key = Ed25519PublicKey.from_public_bytes(raw[1:])

    def open(self, note):
        """(size, root) of a checkpoint (origin, size, root, nothing more) signed by this key; raises otherwise."""
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
