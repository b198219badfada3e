//! How a batch tree is laid out in the store so that one inclusion path costs
//! a handful of lookups, whatever the batch size.
//!
//! The levels below the root are cut into groups of [`PAGE_LEVELS`] levels.
//! Page `p` of group `g` holds, for each level `g·H + j` of the group, the
//! nodes with indices in `[p << (H-j), (p+1) << (H-j))` (clipped to the
//! level): the aligned subtree slice every leaf below it needs. A path reads
//! one page per group: 3 pages for a million leaves.

use crate::merkle::{level_lengths, MerkleTree, PathStep, Side};
use crate::types::NodeHash;

/// Levels per page (H).
pub const PAGE_LEVELS: usize = 8;

/// One stored page: `(group, page, concatenated node hashes)`.
pub type Page = (u32, u64, Vec<u8>);

/// Nodes of level `j` (within the group) that page `p` holds, as a range of
/// indices at that level, given the level's length.
fn span(p: u64, j: usize, level_len: u64) -> (u64, u64) {
    let shift = (PAGE_LEVELS - j) as u32;
    let start = p << shift;
    let end = ((p + 1) << shift).min(level_len);
    (start, end.max(start))
}

/// Splits every level below the root of `tree` into pages.
pub fn split(tree: &MerkleTree) -> Vec<Page> {
    let depth = tree.level_count() - 1;
    let mut pages = Vec::new();
    for g in 0..depth.div_ceil(PAGE_LEVELS) {
        let base = g * PAGE_LEVELS;
        let levels = PAGE_LEVELS.min(depth - base);
        let first_len = tree.level(base).len() as u64;
        let count = first_len.div_ceil(1 << PAGE_LEVELS);
        for p in 0..count {
            let mut bytes = Vec::new();
            for j in 0..levels {
                let level = tree.level(base + j);
                let (s, e) = span(p, j, level.len() as u64);
                for node in &level[s as usize..e as usize] {
                    bytes.extend_from_slice(node);
                }
            }
            pages.push((g as u32, p, bytes));
        }
    }
    pages
}

/// Why a path could not be read back from pages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError<E> {
    /// Fetching a page failed.
    #[error(transparent)]
    Fetch(E),
    /// A page is missing or shorter than the layout requires.
    #[error("tree page ({group}, {page}) is missing or truncated")]
    Corrupt {
        /// The page's group.
        group: u32,
        /// The page's number within the group.
        page: u64,
    },
}

/// Reads the path of leaf `index` in a tree of `size` leaves, fetching each
/// page it needs once through `fetch(group, page, visit)`, which must call
/// `visit` with the page's bytes (or return `Ok(false)` if there is no page).
pub fn read_path<E>(
    size: u64,
    index: u64,
    mut fetch: impl FnMut(u32, u64, &mut dyn FnMut(&[u8])) -> Result<bool, E>,
) -> Result<Vec<PathStep>, PageError<E>> {
    let lengths = level_lengths(size);
    let depth = lengths.len() - 1;
    let mut path = Vec::with_capacity(depth);
    for g in 0..depth.div_ceil(PAGE_LEVELS) {
        let base = g * PAGE_LEVELS;
        let levels = PAGE_LEVELS.min(depth - base);
        let p = index >> (base + PAGE_LEVELS);
        let mut corrupt = false;
        let found = fetch(g as u32, p, &mut |bytes| {
            let mut offset = 0usize;
            for j in 0..levels {
                let len = lengths[base + j];
                let (s, e) = span(p, j, len);
                let idx = index >> (base + j);
                let sibling = idx ^ 1;
                if sibling < len {
                    let at = offset + (sibling - s) as usize * 32;
                    match bytes.get(at..at + 32) {
                        Some(h) => {
                            let mut hash = [0u8; 32];
                            hash.copy_from_slice(h);
                            let side = if sibling < idx {
                                Side::Left
                            } else {
                                Side::Right
                            };
                            path.push(PathStep {
                                side,
                                hash: NodeHash(hash),
                            });
                        }
                        None => corrupt = true,
                    }
                }
                offset += (e - s) as usize * 32;
            }
        })
        .map_err(PageError::Fetch)?;
        if !found || corrupt {
            return Err(PageError::Corrupt {
                group: g as u32,
                page: p,
            });
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::LeafHash;
    use std::collections::HashMap;
    use std::convert::Infallible;

    fn tree(n: u64) -> MerkleTree {
        let leaves: Vec<LeafHash> = (0..n)
            .map(|i| {
                let mut h = [0u8; 32];
                h[..8].copy_from_slice(&i.to_le_bytes());
                LeafHash(h)
            })
            .collect();
        MerkleTree::from_leaves(&leaves).expect("non-empty")
    }

    #[test]
    fn paths_read_from_pages_equal_paths_from_the_tree() {
        for n in [1u64, 2, 3, 255, 256, 257, 511, 513, 65_536, 65_537, 70_001] {
            let t = tree(n);
            let pages: HashMap<(u32, u64), Vec<u8>> =
                split(&t).into_iter().map(|(g, p, b)| ((g, p), b)).collect();
            let stored: usize = pages.values().map(Vec::len).sum();
            let nodes_below_root: usize = (0..t.level_count() - 1).map(|l| t.level(l).len()).sum();
            assert_eq!(
                stored,
                nodes_below_root * 32,
                "every node stored once for {n}"
            );
            let step = (n / 97).max(1);
            for i in (0..n).step_by(step as usize).chain([n - 1]) {
                let mut fetches = 0;
                let path = read_path::<Infallible>(n, i, |g, p, visit| {
                    fetches += 1;
                    Ok(pages.get(&(g, p)).map(|b| visit(b)).is_some())
                })
                .expect("all pages present");
                assert_eq!(Some(path), t.path(i as usize), "leaf {i} of {n}");
                assert!(fetches <= 3, "{fetches} page reads for {n} leaves");
            }
        }
    }

    #[test]
    fn missing_or_truncated_pages_are_reported() {
        let t = tree(600);
        let pages: HashMap<(u32, u64), Vec<u8>> =
            split(&t).into_iter().map(|(g, p, b)| ((g, p), b)).collect();
        let missing = read_path::<Infallible>(600, 599, |g, p, visit| {
            Ok(if g == 1 {
                false
            } else {
                pages.get(&(g, p)).map(|b| visit(b)).is_some()
            })
        });
        assert_eq!(missing, Err(PageError::Corrupt { group: 1, page: 0 }));
        let truncated = read_path::<Infallible>(600, 0, |g, p, visit| {
            Ok(pages
                .get(&(g, p))
                .map(|b| visit(&b[..b.len() / 2]))
                .is_some())
        });
        assert!(matches!(truncated, Err(PageError::Corrupt { .. })));
    }
}
