//! The cursor: the highest height the feeder has had acknowledged by btcts,
//! so a restart carries on after it. Written only after btcts acknowledged
//! a batch, atomically (temp file, fsync, rename, fsync of the directory):
//! a crash leaves the old or the new value, never a torn one. A crash
//! between the acknowledgement and the write makes the next run post that
//! batch again, which btcts answers as duplicates.
//!
//! The file is one line of JSON, `{"chain_id":"…","height":N}`; a cursor
//! of another chain is refused.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use aggregator::{ChainId, Height};
use serde::{Deserialize, Serialize};

/// Why the cursor could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CursorError {
    /// The file system refused.
    #[error("cursor {path}: {source}")]
    Io {
        /// The cursor file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a cursor.
    #[error("cursor {path} is not a feeder cursor ({reason}); move it away to start over")]
    Corrupt {
        /// The cursor file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file is another chain's cursor.
    #[error("cursor {path} belongs to chain {found}, not {expected}")]
    OtherChain {
        /// The cursor file.
        path: PathBuf,
        /// The chain being fed.
        expected: ChainId,
        /// The chain in the file.
        found: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDisk {
    chain_id: String,
    height: Height,
}

/// A chain's cursor file.
#[derive(Debug, Clone)]
pub struct Cursor {
    path: PathBuf,
    chain: ChainId,
}

impl Cursor {
    /// The cursor of `chain` in `path` (which need not exist yet).
    pub fn new(path: impl Into<PathBuf>, chain: ChainId) -> Cursor {
        Cursor {
            path: path.into(),
            chain,
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> CursorError {
        CursorError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// The stored height, or `None` before the first acknowledged batch.
    pub fn load(&self) -> Result<Option<Height>, CursorError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(e)),
        };
        let disk: OnDisk = serde_json::from_str(&text).map_err(|e| CursorError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        if disk.chain_id != self.chain.as_str() {
            return Err(CursorError::OtherChain {
                path: self.path.clone(),
                expected: self.chain.clone(),
                found: disk.chain_id,
            });
        }
        Ok(Some(disk.height))
    }

    /// Durably replaces the stored height with `height`.
    pub fn store(&self, height: Height) -> Result<(), CursorError> {
        let disk = OnDisk {
            chain_id: self.chain.as_str().to_owned(),
            height,
        };
        let mut line = serde_json::to_string(&disk).map_err(|e| CursorError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        line.push('\n');
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir).map_err(|e| self.io(e))?;
        let mut tmp_name = self.path.file_name().unwrap_or_default().to_owned();
        tmp_name.push(".tmp");
        let tmp = dir.join(tmp_name);
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(line.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            File::open(&dir)?.sync_all()
        };
        write().map_err(|e| self.io(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(id: &str) -> ChainId {
        ChainId::new(id).expect("valid chain id")
    }

    #[test]
    fn stores_loads_and_survives_a_leftover_temp_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cursor = Cursor::new(dir.path().join("state/feed.cursor"), chain("chain-a"));
        assert_eq!(cursor.load().expect("load"), None, "no cursor yet");
        cursor.store(41).expect("store");
        cursor.store(42).expect("store");
        assert_eq!(cursor.load().expect("load"), Some(42));
        // A crash mid-write leaves the temp file; the cursor is untouched.
        fs::write(dir.path().join("state/feed.cursor.tmp"), "{\"chain_id\":").expect("write");
        assert_eq!(cursor.load().expect("load"), Some(42));
        cursor.store(43).expect("store over a leftover temp file");
        assert_eq!(
            Cursor::new(cursor.path(), chain("chain-a"))
                .load()
                .expect("load"),
            Some(43)
        );
    }

    #[test]
    fn refuses_a_torn_or_foreign_cursor() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("feed.cursor");
        Cursor::new(&path, chain("chain-b"))
            .store(9)
            .expect("store");
        let err = Cursor::new(&path, chain("chain-a"))
            .load()
            .expect_err("foreign");
        assert!(
            matches!(err, CursorError::OtherChain { ref found, .. } if found == "chain-b"),
            "{err}"
        );
        for garbage in [
            "",
            "{\"chain_id\":\"chain-a\"",
            "{\"chain_id\":\"chain-a\",\"height\":-1}",
        ] {
            fs::write(&path, garbage).expect("write");
            let err = Cursor::new(&path, chain("chain-a"))
                .load()
                .expect_err("corrupt");
            assert!(
                matches!(err, CursorError::Corrupt { .. }),
                "{garbage:?}: {err}"
            );
        }
    }
}
