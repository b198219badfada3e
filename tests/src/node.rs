//! The regtest node harness lives in `btc-submitter` (feature `regtest`) so
//! that `btcts dev` runs the same launcher; it is re-exported here.

pub use btc_submitter::regtest::{NodeKind, RegtestNode};

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> std::path::PathBuf {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default()
}
