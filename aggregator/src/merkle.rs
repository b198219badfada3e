//! Batch Merkle trees: inner node `SHA-256(0x01 ‖ left ‖ right)`, an odd node
//! at the end of a level is carried up unpaired (never duplicated, so the
//! CVE-2012-2459 ambiguity of Bitcoin's tree cannot arise).
//!
//! A [`MerkleTree`] keeps every level in one flat vector so that inclusion
//! paths can be read back without rehashing. Every step of a path is the
//! OpenTimestamps sequence `append(sibling)` or `prepend(sibling)`, then
//! `prepend(0x01)`, then `sha256`.

use serde::{Deserialize, Serialize};
use sha2::digest::generic_array::GenericArray;

use crate::types::{LeafHash, MerkleRoot, NodeHash};

/// Domain-separation prefix of every inner node.
pub const NODE_PREFIX: u8 = 0x01;

/// SHA-256 initial state.
const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// SHA-256 of a message of at most [`SHORT_MAX`] bytes, padded by hand into
/// at most three blocks and compressed in one call. Leaves and inner nodes
/// are hashed this way on the hot path; the streaming hasher's buffering
/// costs about as much as the compression itself at these sizes.
pub fn sha256_short(msg: &[u8]) -> [u8; 32] {
    assert!(
        msg.len() <= SHORT_MAX,
        "sha256_short takes at most {SHORT_MAX} bytes"
    );
    let mut buf = [0u8; 192];
    buf[..msg.len()].copy_from_slice(msg);
    buf[msg.len()] = 0x80;
    let used = (msg.len() + 9).div_ceil(64);
    buf[used * 64 - 8..used * 64].copy_from_slice(&(msg.len() as u64 * 8).to_be_bytes());
    let mut blocks = [GenericArray::<u8, _>::default(); 3];
    for (block, bytes) in blocks.iter_mut().zip(buf.chunks_exact(64)).take(used) {
        block.copy_from_slice(bytes);
    }
    compress(&blocks[..used])
}

fn compress(blocks: &[GenericArray<u8, sha2::digest::consts::U64>]) -> [u8; 32] {
    let mut state = H0;
    sha2::compress256(&mut state, blocks);
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// Longest message [`sha256_short`] takes (three blocks less the padding).
pub const SHORT_MAX: usize = 3 * 64 - 9;

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn hash_nodes(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut blocks = [GenericArray::<u8, _>::default(); 2];
    blocks[0][0] = NODE_PREFIX;
    blocks[0][1..33].copy_from_slice(left);
    blocks[0][33..64].copy_from_slice(&right[..31]);
    blocks[1][0] = right[31];
    blocks[1][1] = 0x80;
    // Message length in bits: 65 * 8 = 520.
    blocks[1][56..64].copy_from_slice(&520u64.to_be_bytes());
    compress(&blocks)
}

/// Which side of the running hash a path step's sibling goes on.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// `parent = H(0x01 ‖ sibling ‖ current)`: OpenTimestamps `prepend(sibling)`.
    Left,
    /// `parent = H(0x01 ‖ current ‖ sibling)`: OpenTimestamps `append(sibling)`.
    Right,
}

/// One step from a node to its parent.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathStep {
    /// Where the sibling goes.
    pub side: Side,
    /// The sibling's hash.
    pub hash: NodeHash,
}

impl PathStep {
    /// The parent of `current` and this step's sibling.
    pub fn apply(&self, current: &[u8; 32]) -> [u8; 32] {
        match self.side {
            Side::Left => hash_nodes(&self.hash.0, current),
            Side::Right => hash_nodes(current, &self.hash.0),
        }
    }
}

/// The number of nodes on each level of a tree over `leaves` leaves, from the
/// leaves (index 0) up to the root (a level of length 1).
pub fn level_lengths(leaves: u64) -> Vec<u64> {
    let mut lengths = vec![leaves];
    let mut len = leaves;
    while len > 1 {
        len = len.div_ceil(2);
        lengths.push(len);
    }
    lengths
}

/// The sides a valid path for leaf `index` of a tree of `size` leaves has,
/// bottom-up. `None` if `index` is out of range.
pub fn path_sides(index: u64, size: u64) -> Option<Vec<Side>> {
    if index >= size {
        return None;
    }
    let lengths = level_lengths(size);
    let mut sides = Vec::with_capacity(lengths.len());
    for (level, &len) in lengths.iter().enumerate().take(lengths.len() - 1) {
        let idx = index >> level;
        let sibling = idx ^ 1;
        if sibling < len {
            sides.push(if sibling < idx {
                Side::Left
            } else {
                Side::Right
            });
        }
    }
    Some(sides)
}

/// The root reached from `leaf` by applying `path` bottom-up.
pub fn root_from_path(leaf: &LeafHash, path: &[PathStep]) -> MerkleRoot {
    let mut current = leaf.0;
    for step in path {
        current = step.apply(&current);
    }
    MerkleRoot(current)
}

/// A whole batch tree, every level kept for path extraction.
#[derive(Clone, PartialEq, Eq)]
pub struct MerkleTree {
    /// Level 0 (the leaves), then level 1, …, then the root.
    nodes: Vec<[u8; 32]>,
    /// Start of each level in `nodes`, plus one past the end.
    level_starts: Vec<usize>,
}

impl std::fmt::Debug for MerkleTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MerkleTree")
            .field("leaves", &self.leaf_count())
            .field("root", &self.root())
            .finish()
    }
}

impl MerkleTree {
    /// Builds the tree over `leaves`; `None` for an empty slice (a batch has
    /// at least one record).
    pub fn from_leaves(leaves: &[LeafHash]) -> Option<Self> {
        if leaves.is_empty() {
            return None;
        }
        let total: usize = level_lengths(leaves.len() as u64)
            .iter()
            .map(|&l| l as usize)
            .sum();
        let mut nodes = Vec::with_capacity(total);
        nodes.extend(leaves.iter().map(|l| l.0));
        let mut level_starts = vec![0, leaves.len()];
        let mut start = 0;
        while nodes.len() - start > 1 {
            let end = nodes.len();
            let mut i = start;
            while i + 1 < end {
                let parent = hash_nodes(&nodes[i], &nodes[i + 1]);
                nodes.push(parent);
                i += 2;
            }
            if i < end {
                // Odd node: carried up unpaired.
                let carried = nodes[i];
                nodes.push(carried);
            }
            start = end;
            level_starts.push(nodes.len());
        }
        Some(MerkleTree {
            nodes,
            level_starts,
        })
    }

    /// Number of leaves.
    pub fn leaf_count(&self) -> usize {
        self.level_starts[1]
    }

    /// Number of levels, leaves and root included.
    pub fn level_count(&self) -> usize {
        self.level_starts.len() - 1
    }

    /// The nodes of one level (0 = leaves); empty past the root.
    pub fn level(&self, level: usize) -> &[[u8; 32]] {
        match (
            self.level_starts.get(level),
            self.level_starts.get(level + 1),
        ) {
            (Some(&s), Some(&e)) => &self.nodes[s..e],
            _ => &[],
        }
    }

    /// The root.
    pub fn root(&self) -> MerkleRoot {
        // A tree is never empty, so there is a last node.
        MerkleRoot(self.nodes.last().copied().unwrap_or_default())
    }

    /// The inclusion path of leaf `index`, bottom-up; `None` if out of range.
    pub fn path(&self, index: usize) -> Option<Vec<PathStep>> {
        if index >= self.leaf_count() {
            return None;
        }
        let mut path = Vec::with_capacity(self.level_count());
        for level in 0..self.level_count() - 1 {
            let nodes = self.level(level);
            let idx = index >> level;
            let sibling = idx ^ 1;
            if let Some(hash) = nodes.get(sibling) {
                let side = if sibling < idx {
                    Side::Left
                } else {
                    Side::Right
                };
                path.push(PathStep {
                    side,
                    hash: NodeHash(*hash),
                });
            }
        }
        Some(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    /// rs_merkle with this module's inner-node rule: the reference implementation.
    #[derive(Clone)]
    struct RsMerkleHasher;
    impl rs_merkle::Hasher for RsMerkleHasher {
        type Hash = [u8; 32];
        fn hash(data: &[u8]) -> [u8; 32] {
            let mut h = Sha256::new();
            h.update([NODE_PREFIX]);
            h.update(data);
            h.finalize().into()
        }
    }

    /// The leaves of `scripts/test_vectors.py`: digest records of SHA-256(i as u64 BE).
    fn vector_leaves(n: u64) -> Vec<LeafHash> {
        (0..n)
            .map(|i| {
                let digest = crate::types::RawDigest(Sha256::digest(i.to_be_bytes()).into());
                crate::leaf::leaf_hash(&crate::types::Record::Digest { digest })
            })
            .collect()
    }

    fn naive_root(nodes: &[[u8; 32]]) -> [u8; 32] {
        if nodes.len() == 1 {
            return nodes[0];
        }
        let next: Vec<[u8; 32]> = nodes
            .chunks(2)
            .map(|c| {
                if c.len() == 2 {
                    hash_nodes(&c[0], &c[1])
                } else {
                    c[0]
                }
            })
            .collect();
        naive_root(&next)
    }

    #[test]
    fn sha256_short_matches_sha256_at_every_length() {
        let data: Vec<u8> = (0..=SHORT_MAX as u8).collect();
        for len in 0..=SHORT_MAX {
            assert_eq!(
                sha256_short(&data[..len]),
                <[u8; 32]>::from(Sha256::digest(&data[..len])),
                "{len}"
            );
        }
    }

    #[test]
    fn hash_nodes_matches_streaming_sha256() {
        let (l, r) = ([7u8; 32], [9u8; 32]);
        let mut h = Sha256::new();
        h.update([1u8]);
        h.update(l);
        h.update(r);
        assert_eq!(hash_nodes(&l, &r), <[u8; 32]>::from(h.finalize()));
    }

    /// Roots computed independently with Python's hashlib (`scripts/test_vectors.py`).
    #[test]
    fn root_vectors() {
        let expected = [
            (
                1,
                "d31179065ef69a2d0314c686c4bbdc36f1e6906fbb93c7418e652c3fd4479a7a",
            ),
            (
                2,
                "87b2a5f5b02c6abfd0734b54b316e7b087cf399c47f822965e13d9eb2543794f",
            ),
            (
                3,
                "f16ff3b0975584406f4323ead3ce61b95f5f17128f6fa54f580adfc6c25da223",
            ),
            (
                5,
                "5d065508e5f95314b794d7b05cd56058d9aea2b34153056f0a86776a9f7aaa93",
            ),
            (
                1000,
                "aeca87bd9a57eedc56072b25de5dc296672d3088807170210984c25f86f87906",
            ),
        ];
        for (n, root) in expected {
            let leaves = vector_leaves(n);
            let tree = MerkleTree::from_leaves(&leaves).expect("non-empty");
            assert_eq!(tree.root().to_hex(), root, "{n} leaves");
        }
    }

    #[test]
    fn empty_tree_is_refused() {
        assert!(MerkleTree::from_leaves(&[]).is_none());
    }

    #[test]
    fn odd_node_is_carried_not_duplicated() {
        let leaves = vector_leaves(3);
        let tree = MerkleTree::from_leaves(&leaves).expect("non-empty");
        let expected = hash_nodes(&hash_nodes(&leaves[0].0, &leaves[1].0), &leaves[2].0);
        assert_eq!(tree.root().0, expected);
        // The path of the carried leaf has one step, not two.
        assert_eq!(tree.path(2).expect("in range").len(), 1);
        assert_eq!(tree.path(3), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn every_path_verifies(n in 1usize..=2000, seed in any::<u64>()) {
            let leaves: Vec<LeafHash> = (0..n as u64)
                .map(|i| LeafHash(Sha256::digest((seed ^ i).to_le_bytes()).into()))
                .collect();
            let tree = MerkleTree::from_leaves(&leaves).expect("non-empty");
            let raw: Vec<[u8; 32]> = leaves.iter().map(|l| l.0).collect();
            prop_assert_eq!(tree.root().0, naive_root(&raw));
            let reference = rs_merkle::MerkleTree::<RsMerkleHasher>::from_leaves(&raw);
            prop_assert_eq!(Some(tree.root().0), reference.root());
            for (i, leaf) in leaves.iter().enumerate() {
                let path = tree.path(i).expect("in range");
                let sides: Vec<Side> = path.iter().map(|s| s.side).collect();
                prop_assert_eq!(Some(sides), path_sides(i as u64, n as u64));
                prop_assert_eq!(root_from_path(leaf, &path), tree.root());
            }
        }

        #[test]
        fn a_path_proves_only_its_own_leaf(n in 2usize..=300, pick in any::<usize>(), other in any::<usize>()) {
            let leaves = vector_leaves(n as u64);
            let tree = MerkleTree::from_leaves(&leaves).expect("non-empty");
            let (i, j) = (pick % n, other % n);
            prop_assume!(i != j);
            let path = tree.path(i).expect("in range");
            prop_assert_ne!(root_from_path(&leaves[j], &path), tree.root());
        }
    }
}
