# An independent audit of a kez-chat server's transparency log, using only its public
# endpoints and no project code (needs the `cryptography` package; the formats are in
# tests/rfc9162.py, written from RFC 9162 §2.1, C2SP tlog-tiles, tlog-checkpoint and signed-note):
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
import argparse, base64, json, os, sys, urllib.request
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rfc9162 import TILE, Verifier, bundle_entries, consistency_proof, leaf, mth, tile_path, verify_consistency, verify_inclusion


def get(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--key")
    parser.add_argument("--since")
    parser.add_argument("--save")
    parser.add_argument("--handle", action="append", default=[])
    # A JSON file of user bodies the server answered (201s of registrations): each checked
    # as a lookup is.
    parser.add_argument("--answers")
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
        entries += bundle_entries(get(f"{base}/log/{tile_path('entries', index, width)}"))
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

    def check_binding(label, body):
        log = body["log"]
        at_size, at_root = verifier.open(log["checkpoint"])
        index = log["index"]
        if index >= len(entries): raise AssertionError(f"{label}: index beyond the audited log")
        entry = entries[index]
        if json.loads(entry) != body["envelope"]: raise AssertionError(f"{label}: the entry is not the binding shown")
        proof = [base64.b64decode(h) for h in log["inclusion_proof"]]
        if not verify_inclusion(index, at_size, leaf(entry), proof, at_root):
            raise AssertionError(f"{label}: inclusion proof does not verify")
        if at_size > size or mth(leaves[:at_size]) != at_root:
            raise AssertionError(f"{label}: its checkpoint is not a prefix of the audited log")
        return {"index": index, "checkpoint_size": at_size}

    summary["lookups"] = [{"handle": h, **check_binding(h, json.loads(get(f"{base}/v1/u/{h}")))} for h in args.handle]
    if args.answers:
        answers = json.load(open(args.answers))
        summary["answers"] = [check_binding(f"answer {i}", body) for i, body in enumerate(answers)]

    if args.save:
        open(args.save, "w").write(note)
    print(json.dumps(summary))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a failed check, an unreachable server, a bad signature alike
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        sys.exit(1)
