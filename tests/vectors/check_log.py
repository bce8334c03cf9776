# Independent check of tests/vectors/log.json, not using any project code:
#   python3 tests/vectors/check_log.py tests/vectors/log.json   (needs the `cryptography` package)
# Written from RFC 9162 §2.1 (the tree, inclusion and consistency proofs), C2SP tlog-tiles
# (tile paths, hash tiles, entry bundles), C2SP tlog-checkpoint and C2SP signed-note.
import base64, hashlib, json, os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from rfc9162 import Verifier, bundle_entries, leaf, mth, tile_path, verify_consistency, verify_inclusion

o = json.load(open(sys.argv[1]))
entries = [bytes.fromhex(e) for e in o["entries_hex"]]
leaves = [leaf(e) for e in entries]
verifier = Verifier(o["verifier_key"])
assert verifier.name == o["origin"]
open_checkpoint = verifier.open

checkpoints = {size: open_checkpoint(note) for size, note in o["checkpoints"].items()}
for size_text, (size, root) in checkpoints.items():
    assert int(size_text) == size
    assert root == mth(leaves[:size]), f"root of {size}"

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

for t in o["tiles"]:
    data = bytes.fromhex(t["hex"])
    path = t["path"]
    kind, rest = path[len("tile/"):].split("/", 1)
    index_part, _, width = rest.partition(".p/")
    index = int(index_part.replace("x", "").replace("/", ""))
    width = int(width) if width else 256
    assert tile_path(kind, index, width) == path, path
    if kind == "entries":
        assert bundle_entries(data) == entries[index * 256:index * 256 + width], path
    else:
        span = 256 ** int(kind)
        hashes = [data[i:i + 32] for i in range(0, len(data), 32)]
        assert len(hashes) == width, path
        for j, h in enumerate(hashes):
            i = index * 256 + j
            assert h == mth(leaves[i * span:(i + 1) * span]), f"{path} hash {j}"

print(f"log vectors: {len(entries)} entries, {len(o['checkpoints'])} signed checkpoints, "
      f"{len(o['inclusion'])} inclusion proofs, 1 consistency proof, {len(o['tiles'])} tiles: all check")
