//! Building `btcts-consumerd` from the Go module in `ibc-relay/go`.

use std::fs::{self, File};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// `CARGO_TARGET_DIR`, or `<workspace>/target`.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => crate::node::workspace_root().join("target"),
    }
}

/// Builds `btcts-consumerd` into `<target>/go/btcts-consumerd` (Go's build
/// cache keeps its own copy under `<target>/go/build/`, so an unchanged
/// module does not relink). The final binary is replaced by rename, so a
/// chain another test process is running keeps its executable.
pub(super) fn build_binary() -> Result<PathBuf> {
    let module = crate::node::workspace_root().join("ibc-relay").join("go");
    let out_dir = target_dir().join("go");
    fs::create_dir_all(out_dir.join("build"))
        .with_context(|| format!("creating {}", out_dir.display()))?;
    let lock = File::create(out_dir.join("build.lock"))?;
    // Held until `lock` is closed at the end of this function.
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .context("locking the Go build")?;
    let built = out_dir.join("build").join("btcts-consumerd");
    let go = std::env::var_os("GO").unwrap_or_else(|| "go".into());
    let output = Command::new(&go)
        .args(["build", "-buildvcs=false", "-o"])
        .arg(&built)
        .arg("./cmd/btcts-consumerd")
        .current_dir(&module)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {go:?} (is Go installed?)"))?;
    if !output.status.success() {
        bail!(
            "go build ./cmd/btcts-consumerd in {} failed: {}",
            module.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let final_path = out_dir.join("btcts-consumerd");
    let tmp = out_dir.join(format!("btcts-consumerd.{}.tmp", std::process::id()));
    fs::copy(&built, &tmp).context("copying the built binary")?;
    fs::rename(&tmp, &final_path).context("installing the built binary")?;
    Ok(final_path)
}
