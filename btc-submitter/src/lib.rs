//! btc-submitter: anchors batch roots in Bitcoin (the `BitcoinNode` trait,
//! its Bitcoin Core JSON-RPC implementation and the anchor state machine).
//!
//! Not implemented yet: this crate is filled by the Anchoring issue. The
//! OP_RETURN payload format it will write already lives in
//! [`aggregator::payload`], and proofs assembled from a block in
//! [`aggregator::proof::AnchorEvidence::from_block`].
