//! Opening a store: its schema version checked, older versions upgraded
//! (1: the per-chain batch summary; 2: chain records and the event log;
//! 3: the id index in generations), every table created.

use redb::{Database, ReadableTable};
use tracing::info;

use super::codec::meta_get;
use super::timing::Op;
use super::{id_index, summary, Store, StoreError};
use crate::schema::*;

impl Store {
    pub(super) fn init_schema_in(&self, db: &Database) -> Result<(), StoreError> {
        let (txn, timed) = self.db.writers.begin(db, Op::Schema)?;
        {
            let mut meta = txn.open_table(META)?;
            let found = meta.get(META_SCHEMA_VERSION)?.map(|v| v.value());
            match found {
                Some(v) if v == SCHEMA_VERSION => {}
                Some(found @ 1..=3) => {
                    if found == 1 {
                        // The summary backfill indexes chain records too.
                        summary::backfill(&txn)?;
                    } else if found == 2 {
                        summary::backfill_chain_records(&txn, meta_get(&meta, META_SEALED_UPTO)?)?;
                    }
                    let bits = id_index::NEW_STORE_GENERATION_BITS;
                    let ids = id_index::upgrade_from_prefix_table(&txn, bits)?;
                    meta.insert(META_ID_GENERATION_BITS, bits)?;
                    meta.insert(META_SCHEMA_VERSION, SCHEMA_VERSION)?;
                    info!(ids, "store upgraded from schema {found} to {SCHEMA_VERSION} (per-chain batch summary from 1, chain records and event log from 2, id index in generations from 3)");
                }
                Some(v) => {
                    return Err(StoreError::SchemaVersion {
                        found: v,
                        expected: SCHEMA_VERSION,
                    })
                }
                None => {
                    meta.insert(META_SCHEMA_VERSION, SCHEMA_VERSION)?;
                    meta.insert(META_ID_GENERATION_BITS, id_index::NEW_STORE_GENERATION_BITS)?;
                }
            }
            for table in [RECORDS, BATCHES] {
                txn.open_table(table)?;
            }
            txn.open_table(RECORD_ID_GENERATIONS)?;
            txn.open_table(RECORD_IDS_OVERFLOW)?;
            txn.open_table(CHAIN_HEIGHTS)?;
            txn.open_table(CONFLICTS)?;
            txn.open_table(BATCH_STARTS)?;
            txn.open_table(TREE_PAGES)?;
            txn.open_table(ANCHORS)?;
            txn.open_table(CHAIN_BATCHES)?;
            txn.open_table(CHAIN_RECORDS)?;
            txn.open_table(EVENTS)?;
            txn.open_table(WEBHOOK_CURSORS)?;
        }
        timed.commit(txn)?;
        Ok(())
    }
}
