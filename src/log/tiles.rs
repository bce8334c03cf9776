//! C2SP tlog-tiles: the log served as static, cacheable files. Hash tiles `tile/<L>/<N>` hold
//! up to 256 consecutive hashes of tree level `8·L`; entry bundles `tile/entries/<N>` hold up
//! to 256 consecutive entries, each prefixed by its length (big-endian uint16). A tile of
//! fewer than 256 is partial (`.p/<W>`) and only ever at the right edge of the tree; full
//! tiles never change.

use super::merkle::{root, Hash};

/// Hashes (or entries) per full tile, and tree levels per tile level.
pub const TILE_WIDTH: u64 = 256;
pub const TILE_HEIGHT: u32 = 8;

/// What a tile request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tile {
    /// `tile/<level>/<index>[.p/<width>]`
    Hashes { level: u8, index: u64, width: u16 },
    /// `tile/entries/<index>[.p/<width>]`
    Entries { index: u64, width: u16 },
}

impl Tile {
    /// A path below `/log/`, as tlog-tiles spells it; `None` for any other spelling (one tile,
    /// one path: caches and verifiers must agree on the name).
    pub fn parse(path: &str) -> Option<Tile> {
        let rest = path.strip_prefix("tile/")?;
        let (kind, rest) = rest.split_once('/')?;
        let (index_part, width) = match rest.split_once(".p/") {
            Some((index, width)) => (index, parse_partial_width(width)?),
            None => (rest, TILE_WIDTH as u16),
        };
        let index = parse_index(index_part)?;
        if kind == "entries" {
            return Some(Tile::Entries { index, width });
        }
        // Levels are small decimal numbers without leading zeros (or a sign: `u8::from_str`
        // would take "+1").
        if kind.is_empty()
            || kind.len() > 2
            || (kind.len() > 1 && kind.starts_with('0'))
            || !kind.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let level: u8 = kind.parse().ok().filter(|l| *l <= 63 / TILE_HEIGHT as u8)?;
        Some(Tile::Hashes { level, index, width })
    }

    /// The path below `/log/` that `parse` reads back.
    pub fn path(&self) -> String {
        let (kind, index, width) = match self {
            Tile::Hashes { level, index, width } => (level.to_string(), *index, *width),
            Tile::Entries { index, width } => ("entries".to_owned(), *index, *width),
        };
        let partial = if u64::from(width) < TILE_WIDTH { format!(".p/{width}") } else { String::new() };
        format!("tile/{kind}/{}{partial}", index_path(index))
    }

    /// How long a cache may keep it: the bytes at a full tile's path never change; a
    /// partial tile's do not either, but a log may stop serving it once the tile is full.
    pub fn cache_control(&self) -> &'static str {
        if self.is_full() {
            "public, max-age=31536000, immutable"
        } else {
            "public, max-age=60"
        }
    }

    pub fn is_full(&self) -> bool {
        match self {
            Tile::Hashes { width, .. } | Tile::Entries { width, .. } => u64::from(*width) == TILE_WIDTH,
        }
    }

    /// The smallest tree that has the tile: a full tile once the tree covers it, a partial one
    /// of width w once the tree has w items there (a tree of that size or larger serves it: a
    /// client holding an older checkpoint asks for the width its tree had). `None` when no tree
    /// of up to 2^63 leaves (SQLite's integers) has it.
    pub fn min_tree_size(&self) -> Option<u64> {
        let (per_item, index, width) = match self {
            Tile::Hashes { level, index, width } => (1u64 << (TILE_HEIGHT * u32::from(*level)), *index, *width),
            Tile::Entries { index, width } => (1, *index, *width),
        };
        let items = index.checked_mul(TILE_WIDTH)?.checked_add(u64::from(width))?;
        items.checked_mul(per_item).filter(|size| *size <= i64::MAX as u64)
    }
}

/// 1..=255: a partial tile's width.
fn parse_partial_width(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 3 || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|w| u64::from(*w) < TILE_WIDTH && *w > 0)
}

/// `x001/x234/067` → 1234067: groups of three digits, all but the last prefixed by `x`, no
/// leading `x000` group.
fn parse_index(s: &str) -> Option<u64> {
    let groups: Vec<&str> = s.split('/').collect();
    let (last, init) = groups.split_last()?;
    let mut value: u64 = 0;
    for (i, group) in init.iter().enumerate() {
        let digits = group.strip_prefix('x')?;
        if i == 0 && digits == "000" {
            return None;
        }
        value = value.checked_mul(1000)?.checked_add(three_digits(digits)?)?;
    }
    value.checked_mul(1000)?.checked_add(three_digits(last)?)
}

fn three_digits(s: &str) -> Option<u64> {
    (s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
}

fn index_path(mut index: u64) -> String {
    let mut groups = vec![format!("{:03}", index % 1000)];
    index /= 1000;
    while index > 0 {
        groups.push(format!("x{:03}", index % 1000));
        index /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

/// The bytes of hash tile `(level, index, width)` of the tree over `leaves`: the hashes of the
/// `width` subtrees of `2^(8·level)` leaves each, starting at subtree `index · 256`.
pub fn hash_tile(level: u8, index: u64, width: u16, leaves: &[Hash]) -> Option<Vec<u8>> {
    let span = 1u64 << (TILE_HEIGHT * u32::from(level));
    let first = index.checked_mul(TILE_WIDTH)?;
    let mut out = Vec::with_capacity(32 * usize::from(width));
    for i in first..first + u64::from(width) {
        let start = usize::try_from(i.checked_mul(span)?).ok()?;
        let end = usize::try_from((i + 1).checked_mul(span)?).ok()?;
        out.extend_from_slice(&root(leaves.get(start..end)?));
    }
    Some(out)
}

/// An entry bundle: each entry prefixed by its length as a big-endian uint16; `None` if one is
/// longer than 65,535 bytes (the log never accepts such an entry).
pub fn entry_bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for entry in entries {
        out.extend_from_slice(&u16::try_from(entry.len()).ok()?.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::super::merkle::leaf_hash;
    use super::*;

    #[test]
    fn paths_as_the_spec_spells_them() {
        let cases = [
            (Tile::Hashes { level: 0, index: 1_234_067, width: 256 }, "tile/0/x001/x234/067"),
            (Tile::Hashes { level: 1, index: 0, width: 8 }, "tile/1/000.p/8"),
            (Tile::Entries { index: 1000, width: 255 }, "tile/entries/x001/000.p/255"),
            (Tile::Entries { index: 999, width: 256 }, "tile/entries/999"),
        ];
        for (tile, path) in cases {
            assert_eq!(tile.path(), path);
            assert_eq!(Tile::parse(path), Some(tile), "{path}");
        }
    }

    #[test]
    fn every_other_spelling_is_refused() {
        for path in [
            "tile/0/1",
            "tile/0/01",
            "tile/0/x000/001",
            "tile/0/001/001",
            "tile/0/x1/001",
            "tile/00/001",
            "tile/+1/001",
            "tile/+0/001",
            "tile/+/001",
            "tile/8/001",
            "tile/0/001.p/0",
            "tile/0/001.p/256",
            "tile/0/001.p/08",
            "tile/0/001.p/",
            "tile/entries/001.p/x",
            "tile/0/",
            "tile//001",
            "tiles/0/001",
            "tile/0/x999/x999/x999/x999/x999/x999/x999/999",
        ] {
            assert_eq!(Tile::parse(path), None, "{path}");
        }
    }

    #[test]
    fn which_tiles_a_tree_has() {
        let size = 256 * 3 + 10;
        let exists = |tile: Tile| tile.min_tree_size().is_some_and(|min| size >= min);
        assert!(exists(Tile::Hashes { level: 0, index: 2, width: 256 }));
        assert!(exists(Tile::Hashes { level: 0, index: 3, width: 10 }));
        assert!(exists(Tile::Hashes { level: 0, index: 3, width: 9 }), "a narrower one, of an older tree");
        assert!(!exists(Tile::Hashes { level: 0, index: 3, width: 11 }), "wider than the tree");
        assert!(exists(Tile::Hashes { level: 0, index: 2, width: 5 }), "a full tile's older partial");
        assert!(!exists(Tile::Hashes { level: 0, index: 3, width: 256 }));
        assert!(exists(Tile::Hashes { level: 1, index: 0, width: 3 }));
        assert!(!exists(Tile::Hashes { level: 1, index: 0, width: 256 }));
        assert!(exists(Tile::Entries { index: 3, width: 10 }));
        assert!(!exists(Tile::Entries { index: 3, width: 11 }));
        assert_eq!(Tile::Hashes { level: 1, index: 0, width: 3 }.min_tree_size(), Some(3 * 256));
        assert_eq!(Tile::Entries { index: 3, width: 11 }.min_tree_size(), Some(256 * 3 + 11));
        // Past what any tree holds: its first entry is past any index, or the size overflows.
        assert_eq!(Tile::Entries { index: u64::MAX, width: 256 }.min_tree_size(), None);
        assert_eq!(Tile::Entries { index: 1 << 56, width: 1 }.min_tree_size(), None);
        assert_eq!(Tile::Hashes { level: 0, index: 1 << 48, width: 1 }.min_tree_size(), Some((1 << 56) + 1));
        assert_eq!(Tile::Hashes { level: 7, index: 1, width: 1 }.min_tree_size(), None);
    }

    #[test]
    fn a_level_one_tile_holds_the_roots_of_256_leaf_subtrees() {
        let leaves: Vec<Hash> = (0..600u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let tile = hash_tile(1, 0, 2, &leaves).unwrap();
        assert_eq!(&tile[..32], &root(&leaves[..256]));
        assert_eq!(&tile[32..], &root(&leaves[256..512]));
        let level0 = hash_tile(0, 2, 88, &leaves).unwrap();
        assert_eq!(&level0[..32], &leaves[512]);
        assert_eq!(hash_tile(1, 0, 3, &leaves), None, "no third full subtree yet");
    }

    #[test]
    fn bundles_prefix_each_entry_with_its_length() {
        assert_eq!(
            entry_bundle([&b"ab"[..], &b""[..], &[7u8; 3][..]]).unwrap(),
            [0, 2, b'a', b'b', 0, 0, 0, 3, 7, 7, 7]
        );
        assert_eq!(entry_bundle([&vec![0u8; 65_536][..]]), None);
    }
}
