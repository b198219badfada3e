//! Getting one message into a consumer block: sign a SIGN_MODE_DIRECT
//! transaction for the relayer account, write it down, broadcast it, wait
//! for it in a block. One message per transaction (a duplicate packet in a
//! batch would break every later solo-machine proof in it).
//!
//! Crash safety: the signed transaction is written to the [`RelayStore`]
//! before it is broadcast; the next call for the same purpose first looks
//! it up by hash, then re-broadcasts the very same bytes. An account
//! sequence mismatch (someone else used the account, or the cached value is
//! stale) re-reads the account and signs again; the message inside — the
//! solo-machine proof — never changes.

use std::time::{Duration, Instant};

use bitcoin::secp256k1::SecretKey;
use ibc_proto::google::protobuf::Any;
use prost::Message;
use tracing::{debug, info, warn};

use crate::cosmos::{sign_tx, TxParams};
use crate::grpc::{tx_hash, Account, Broadcast, ChainError, ConsumerNode, TxResult};
use crate::state::{PendingTx, RelayStore, StateError};

/// The Cosmos SDK's "incorrect account sequence" (codespace `sdk`).
const CODE_WRONG_SEQUENCE: u32 = 32;
/// The Cosmos SDK's "tx already in mempool" (codespace `sdk`).
const CODE_IN_MEMPOOL: u32 = 19;
/// How often a sequence mismatch is re-synced before giving up for now.
const SEQUENCE_RETRIES: usize = 3;

/// What a transaction pays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fee {
    /// The gas limit.
    pub gas_limit: u64,
    /// The fee amount (`ceil(gas_limit × gas price)`).
    pub amount: u128,
    /// Its denomination.
    pub denom: String,
}

/// How a submission ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxOutcome {
    /// In a block (its messages may still have failed: see `code`).
    Included(TxResult),
    /// Refused before any block (the mempool's check failed).
    Rejected(Broadcast),
}

/// Why a submission did not end (yet).
#[derive(Debug, thiserror::Error)]
pub enum TxError {
    /// The node did not answer, or the transaction is not in a block yet:
    /// call again later (the transaction in flight is resumed).
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The relay store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The relayer account does not exist on the consumer (fund it).
    #[error("relayer account {0} does not exist on the consumer chain (fund it)")]
    NoAccount(String),
    /// Another message's transaction is still in flight.
    #[error("a transaction for {0} is still in flight (run the command that started it again to finish it)")]
    Busy(String),
}

/// The relayer account of one consumer chain.
#[derive(Debug)]
pub struct TxSender {
    key: SecretKey,
    address: String,
    chain_id: String,
    fee: Fee,
    account: Option<Account>,
    inclusion_wait: Duration,
}

impl TxSender {
    /// The account of `key` at `address` on `chain_id`, paying `fee`.
    pub fn new(key: SecretKey, address: String, chain_id: String, fee: Fee) -> TxSender {
        TxSender {
            key,
            address,
            chain_id,
            fee,
            account: None,
            inclusion_wait: Duration::from_secs(30),
        }
    }

    /// The relayer address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Gets the message of `purpose` into a block: the one written down
    /// earlier if there is one, else `build()`'s.
    pub fn submit(
        &mut self,
        node: &dyn ConsumerNode,
        store: &RelayStore,
        purpose: &str,
        build: impl FnOnce() -> Result<Any, TxError>,
    ) -> Result<TxOutcome, TxError> {
        let mut pending = match store.pending()? {
            Some(p) if p.purpose == purpose => Some(p),
            Some(p) => return Err(TxError::Busy(p.purpose)),
            None => None,
        };
        let mut message = pending.as_ref().map(|p| p.message.clone());
        let mut build = Some(build);
        for _ in 0..SEQUENCE_RETRIES {
            let p = match pending.take() {
                Some(p) => {
                    if let Some(result) = node.tx(&p.hash)? {
                        return self.included(store, &p, result);
                    }
                    p
                }
                None => {
                    let bytes = match message.take() {
                        Some(m) => m,
                        None => match build.take() {
                            Some(build) => build()?.encode_to_vec(),
                            None => return Err(StateError("message lost".into()).into()),
                        },
                    };
                    message = Some(bytes.clone());
                    let p = self.sign(node, purpose, bytes)?;
                    store.set_pending(Some(&p))?;
                    p
                }
            };
            let answer = node.broadcast(&p.tx_raw)?;
            match (answer.code, answer.codespace.as_str()) {
                (0, _) | (CODE_IN_MEMPOOL, "sdk") => {
                    let result = self.wait_for(node, &p.hash)?;
                    return self.included(store, &p, result);
                }
                (CODE_WRONG_SEQUENCE, "sdk") => {
                    warn!(purpose, log = %answer.log, "account sequence mismatch; re-reading the account");
                    metrics::counter!("btcts_ibc_sequence_resyncs_total", "chain" => self.chain_id.clone()).increment(1);
                    self.account = None;
                    if let Some(result) = node.tx(&p.hash)? {
                        return self.included(store, &p, result);
                    }
                    store.set_pending(None)?;
                }
                _ => {
                    info!(purpose, code = answer.code, log = %answer.log, "transaction refused");
                    store.set_pending(None)?;
                    return Ok(TxOutcome::Rejected(answer));
                }
            }
        }
        Err(ChainError::Unavailable("the account sequence kept changing".into()).into())
    }

    fn sign(
        &mut self,
        node: &dyn ConsumerNode,
        purpose: &str,
        message: Vec<u8>,
    ) -> Result<PendingTx, TxError> {
        let account = match self.account {
            Some(a) => a,
            None => {
                let a = node
                    .account(&self.address)?
                    .ok_or_else(|| TxError::NoAccount(self.address.clone()))?;
                self.account = Some(a);
                a
            }
        };
        let any = Any::decode(message.as_slice())
            .map_err(|e| StateError(format!("written-down message: {e}")))?;
        let tx = sign_tx(
            vec![any],
            &TxParams {
                chain_id: self.chain_id.clone(),
                account_number: account.number,
                sequence: account.sequence,
                gas_limit: self.fee.gas_limit,
                fee_amount: self.fee.amount,
                fee_denom: self.fee.denom.clone(),
                memo: "btcts".into(),
            },
            &self.key,
        );
        debug!(purpose, sequence = account.sequence, "signed transaction");
        Ok(PendingTx {
            purpose: purpose.to_owned(),
            message,
            hash: tx_hash(&tx.tx_raw),
            tx_raw: tx.tx_raw,
            account_sequence: account.sequence,
        })
    }

    /// Polls for `hash` in a block for up to `inclusion_wait`.
    fn wait_for(&self, node: &dyn ConsumerNode, hash: &str) -> Result<TxResult, TxError> {
        let deadline = Instant::now() + self.inclusion_wait;
        let mut pause = Duration::from_millis(20);
        loop {
            if let Some(r) = node.tx(hash)? {
                return Ok(r);
            }
            if Instant::now() >= deadline {
                return Err(
                    ChainError::Unavailable(format!("{hash} is not in a block yet")).into(),
                );
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    fn included(
        &mut self,
        store: &RelayStore,
        p: &PendingTx,
        result: TxResult,
    ) -> Result<TxOutcome, TxError> {
        store.set_pending(None)?;
        // A transaction in a block used its account sequence, even when
        // its messages failed.
        if let Some(a) = self.account.as_mut() {
            a.sequence = a.sequence.max(p.account_sequence + 1);
        }
        Ok(TxOutcome::Included(result))
    }
}
