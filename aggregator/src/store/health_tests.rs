//! A write that fails for lack of space, through a redb backend that fails
//! writes on demand (over memory, so the same bytes survive a reopen).

use std::sync::atomic::{AtomicBool, Ordering};

use redb::backends::InMemoryBackend;
use redb::StorageBackend;

use super::*;
use crate::clock::FixedClock;
use crate::ingest::Ingestor;
use crate::types::RawDigest;

#[derive(Debug)]
struct Disk {
    bytes: Arc<InMemoryBackend>,
    full: Arc<AtomicBool>,
}

impl Disk {
    fn space(&self) -> std::io::Result<()> {
        if self.full.load(Ordering::SeqCst) {
            Err(std::io::ErrorKind::StorageFull.into())
        } else {
            Ok(())
        }
    }
}

impl StorageBackend for Disk {
    fn len(&self) -> std::io::Result<u64> {
        self.bytes.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.bytes.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.space()?;
        self.bytes.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.space()?;
        self.bytes.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.space()?;
        self.bytes.write(offset, data)
    }
}

fn digest(i: u16) -> Record {
    let mut d = [0u8; 32];
    d[..2].copy_from_slice(&i.to_be_bytes());
    Record::Digest {
        digest: RawDigest(d),
    }
}

/// One failed write used to fail every later transaction until a restart.
/// Now: while the disk is full submissions answer `Unavailable { disk_full }`
/// (nothing acknowledged), and once space is back the store reopens itself
/// and keeps every record acknowledged before.
#[test]
fn a_full_disk_is_unavailable_and_recovers_without_a_restart() {
    let bytes = Arc::new(InMemoryBackend::new());
    let full = Arc::new(AtomicBool::new(false));
    let (b, f) = (bytes.clone(), full.clone());
    let store = Store::open_with(
        Box::new(move || {
            redb::Builder::new().create_with_backend(Disk {
                bytes: b.clone(),
                full: f.clone(),
            })
        }),
        Arc::new(FixedClock::new(7)),
    )
    .expect("opens");
    let (ingest, writer) = Ingestor::start(store.clone()).expect("writer");

    let before = ingest.submit_blocking(vec![digest(1)]).expect("stored");
    full.store(true, Ordering::SeqCst);
    for i in 2..5 {
        match ingest.submit_blocking(vec![digest(i)]) {
            Err(StoreError::Unavailable {
                disk_full: true, ..
            }) => {}
            other => panic!("submission {i} on a full disk: {other:?}"),
        }
    }
    assert!(matches!(
        store.check_available(),
        Err(StoreError::Unavailable {
            disk_full: true,
            ..
        })
    ));
    // Still full after a recovery attempt: still unavailable.
    std::thread::sleep(RECOVERY_INTERVAL);
    assert!(store.check_available().is_err());

    full.store(false, Ordering::SeqCst);
    std::thread::sleep(RECOVERY_INTERVAL);
    store.check_available().expect("recovered");
    let after = ingest.submit_blocking(vec![digest(2)]).expect("stored");
    assert!(!after[0].duplicate, "the refused record was not stored");
    for id in [before[0].id, after[0].id] {
        assert!(store.record(&id).expect("reads").is_some(), "{id} kept");
    }
    assert_eq!(store.record_count().expect("count"), 2);
    let sealed = store.seal_batch(100).expect("seals").expect("pending");
    assert_eq!(sealed.size, 2);
    drop(ingest);
    writer.join();
}
