//! A consumer chain's node, as the relay needs it: four questions over the
//! Cosmos SDK gRPC services (`cosmos.auth.v1beta1.Query/Account`,
//! `cosmos.base.tendermint.v1beta1.Service/GetLatestBlock`,
//! `cosmos.tx.v1beta1.Service/BroadcastTx` and `GetTx`).
//!
//! [`ConsumerNode`] is the narrow trait the relay is written against;
//! [`GrpcNode`] is the tonic implementation. It is blocking (like the
//! Bitcoin node's), with its own small runtime, so the relay runs as plain
//! sequential code on a blocking thread.

use std::time::Duration;

use bitcoin::hashes::{sha256, Hash};
use btcts_consumer::TrustedHeader;
use cosmos_sdk_proto::cosmos::auth::v1beta1::query_client::QueryClient as AuthClient;
use cosmos_sdk_proto::cosmos::auth::v1beta1::{BaseAccount, QueryAccountRequest};
use cosmos_sdk_proto::cosmos::base::tendermint::v1beta1::service_client::ServiceClient as NodeClient;
use cosmos_sdk_proto::cosmos::base::tendermint::v1beta1::GetLatestBlockRequest;
use cosmos_sdk_proto::cosmos::tx::v1beta1::service_client::ServiceClient as TxClient;
use cosmos_sdk_proto::cosmos::tx::v1beta1::{BroadcastMode, BroadcastTxRequest, GetTxRequest};
use prost::{Message, Name};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::Code;

mod btcts_query;

/// Why a question to the consumer's node got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// Not reachable, or busy: worth retrying.
    #[error("consumer node unavailable: {0}")]
    Unavailable(String),
    /// It answered, but not as a Cosmos SDK node would.
    #[error("consumer node: {0}")]
    Protocol(String),
}

impl ChainError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, ChainError::Unavailable(_))
    }
}

/// An account's number and next sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    /// The account number.
    pub number: u64,
    /// The sequence the next transaction must carry.
    pub sequence: u64,
}

/// The consumer's latest block header, as far as IBC needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockInfo {
    /// The chain id in the header.
    pub chain_id: String,
    /// Its height.
    pub height: u64,
    /// Its time, in nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// The application hash (the consumer's commitment root).
    pub app_hash: Vec<u8>,
    /// The next validator set's hash.
    pub next_validators_hash: Vec<u8>,
}

/// The answer to `BroadcastTx` (sync mode: the mempool's check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broadcast {
    /// The transaction hash.
    pub hash: String,
    /// 0 when accepted.
    pub code: u32,
    /// The module that refused it.
    pub codespace: String,
    /// Why.
    pub log: String,
}

/// An ABCI event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its type (`write_acknowledgement`, `create_client`, …).
    pub kind: String,
    /// Its attributes, in order.
    pub attributes: Vec<(String, String)>,
}

impl Event {
    /// The value of attribute `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A transaction in a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxResult {
    /// Its hash.
    pub hash: String,
    /// The block height.
    pub height: u64,
    /// 0 when its messages succeeded.
    pub code: u32,
    /// The module that failed it.
    pub codespace: String,
    /// Why.
    pub log: String,
    /// Its events.
    pub events: Vec<Event>,
}

impl TxResult {
    /// The first event of type `kind`.
    pub fn event(&self, kind: &str) -> Option<&Event> {
        self.events.iter().find(|e| e.kind == kind)
    }
}

/// The Cosmos SDK transaction hash: upper-case hex of `sha256(tx_raw)`.
pub fn tx_hash(tx_raw: &[u8]) -> String {
    let digest = sha256::Hash::hash(tx_raw).to_byte_array();
    digest.iter().map(|b| format!("{b:02X}")).collect()
}

/// A consumer chain's node.
pub trait ConsumerNode: Send + Sync + std::fmt::Debug {
    /// The account at `address`, or `None` if the chain does not know it.
    fn account(&self, address: &str) -> Result<Option<Account>, ChainError>;
    /// The latest block.
    fn latest_block(&self) -> Result<BlockInfo, ChainError>;
    /// Submits an encoded `TxRaw` and returns the mempool's verdict.
    fn broadcast(&self, tx_raw: &[u8]) -> Result<Broadcast, ChainError>;
    /// The transaction `hash` (from [`tx_hash`]) if it is in a block.
    fn tx(&self, hash: &str) -> Result<Option<TxResult>, ChainError>;
    /// The tip of the Bitcoin headers the consumer's btcts app trusts now,
    /// or `None` if the app does not answer `btcts.consumer.v1.Query` (then
    /// the configured checkpoint is all the relay knows).
    fn trusted_header(&self) -> Result<Option<TrustedHeader>, ChainError>;
    /// The header the app knows at `height`, if it keeps one there.
    fn known_header(&self, height: u32) -> Result<Option<TrustedHeader>, ChainError>;
}

/// [`ConsumerNode`] over gRPC.
#[derive(Debug)]
pub struct GrpcNode {
    rt: tokio::runtime::Runtime,
    channel: Channel,
}

/// How long one gRPC call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

impl GrpcNode {
    /// A node at `url` (`http://host:port`). Connects lazily: a node that is
    /// down now is reached once it is up.
    pub fn new(url: &str) -> Result<GrpcNode, ChainError> {
        GrpcNode::with_ca(url, None)
    }

    /// A node at `url`; an `https://` one is trusted through the webpki
    /// roots, the system's roots and the PEM certificates in `ca_pem`.
    pub fn with_ca(url: &str, ca_pem: Option<&[u8]>) -> Result<GrpcNode, ChainError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ChainError::Protocol(format!("runtime: {e}")))?;
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| ChainError::Protocol(format!("gRPC URL {url:?}: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT);
        let endpoint = if url.starts_with("https://") {
            tls(endpoint, ca_pem)
                .map_err(|e| ChainError::Protocol(format!("gRPC TLS for {url}: {e}")))?
        } else {
            endpoint
        };
        let channel = {
            let _guard = rt.enter();
            endpoint.connect_lazy()
        };
        Ok(GrpcNode { rt, channel })
    }

    /// One unary call of the consumer app's `btcts.consumer.v1.Query`
    /// service; `Ok(None)` when the node does not serve the method or has
    /// nothing for the request.
    fn btcts_query<Q, R>(&self, method: &'static str, request: Q) -> Result<Option<R>, ChainError>
    where
        Q: Message + Send + Sync + 'static,
        R: Message + Default + Send + Sync + 'static,
    {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(method);
        let call = async {
            grpc.ready()
                .await
                .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
            let codec = tonic::codec::ProstCodec::<Q, R>::default();
            grpc.unary(tonic::Request::new(request), path, codec).await
        };
        match self.rt.block_on(call) {
            Ok(r) => Ok(Some(r.into_inner())),
            Err(s) if matches!(s.code(), Code::NotFound | Code::Unimplemented) => Ok(None),
            Err(s) => Err(status_error(method, s)),
        }
    }
}

/// `endpoint` over TLS: the webpki roots, the system's where it has a
/// store, and `ca_pem`.
fn tls(endpoint: Endpoint, ca_pem: Option<&[u8]>) -> Result<Endpoint, tonic::transport::Error> {
    // tonic builds its rustls config with the process default provider;
    // with both ring and aws-lc-rs compiled in there is none until one is
    // installed (an error here means one already is).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = ClientTlsConfig::new().with_webpki_roots();
    if let Some(pem) = ca_pem {
        config = config.ca_certificate(Certificate::from_pem(pem));
    }
    match endpoint
        .clone()
        .tls_config(config.clone().with_native_roots())
    {
        Ok(e) => Ok(e),
        Err(_) => endpoint.tls_config(config),
    }
}

fn status_error(what: &str, s: tonic::Status) -> ChainError {
    let text = format!("{what}: {} ({:?})", s.message(), s.code());
    match s.code() {
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Unknown
        | Code::Cancelled
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::Internal => ChainError::Unavailable(text),
        _ => ChainError::Protocol(text),
    }
}

impl ConsumerNode for GrpcNode {
    fn account(&self, address: &str) -> Result<Option<Account>, ChainError> {
        let mut client = AuthClient::new(self.channel.clone());
        let request = QueryAccountRequest {
            address: address.to_owned(),
        };
        let any = match self.rt.block_on(client.account(request)) {
            Ok(r) => r.into_inner().account,
            Err(s) if s.code() == Code::NotFound => return Ok(None),
            Err(s) => return Err(status_error("account", s)),
        };
        let any = any.ok_or_else(|| ChainError::Protocol("account: empty answer".into()))?;
        if any.type_url != BaseAccount::type_url() {
            return Err(ChainError::Protocol(format!(
                "account {address} is a {}, not a base account",
                any.type_url
            )));
        }
        let account = BaseAccount::decode(any.value.as_slice())
            .map_err(|e| ChainError::Protocol(format!("account: {e}")))?;
        Ok(Some(Account {
            number: account.account_number,
            sequence: account.sequence,
        }))
    }

    fn latest_block(&self) -> Result<BlockInfo, ChainError> {
        let mut client = NodeClient::new(self.channel.clone());
        let r = self
            .rt
            .block_on(client.get_latest_block(GetLatestBlockRequest {}))
            .map_err(|s| status_error("latest block", s))?
            .into_inner();
        let no_header = || ChainError::Protocol("latest block without a header".into());
        let (chain_id, height, time, app_hash, next_validators_hash) = match (
            r.sdk_block.and_then(|b| b.header),
            r.block.and_then(|b| b.header),
        ) {
            (Some(h), _) => (
                h.chain_id,
                h.height,
                h.time,
                h.app_hash,
                h.next_validators_hash,
            ),
            (None, Some(h)) => (
                h.chain_id,
                h.height,
                h.time,
                h.app_hash,
                h.next_validators_hash,
            ),
            (None, None) => return Err(no_header()),
        };
        let time = time.ok_or_else(no_header)?;
        let time_ns = u64::try_from(time.seconds)
            .ok()
            .and_then(|s| s.checked_mul(1_000_000_000))
            .and_then(|s| s.checked_add(u64::try_from(time.nanos).ok()?))
            .ok_or_else(|| ChainError::Protocol("block time before 1970".into()))?;
        Ok(BlockInfo {
            chain_id,
            height: u64::try_from(height)
                .map_err(|_| ChainError::Protocol("negative height".into()))?,
            time_ns,
            app_hash,
            next_validators_hash,
        })
    }

    fn broadcast(&self, tx_raw: &[u8]) -> Result<Broadcast, ChainError> {
        let mut client = TxClient::new(self.channel.clone());
        let request = BroadcastTxRequest {
            tx_bytes: tx_raw.to_vec(),
            mode: BroadcastMode::Sync as i32,
        };
        let r = self
            .rt
            .block_on(client.broadcast_tx(request))
            .map_err(|s| status_error("broadcast", s))?
            .into_inner()
            .tx_response
            .ok_or_else(|| ChainError::Protocol("broadcast: empty answer".into()))?;
        Ok(Broadcast {
            hash: if r.txhash.is_empty() {
                tx_hash(tx_raw)
            } else {
                r.txhash
            },
            code: r.code,
            codespace: r.codespace,
            log: r.raw_log,
        })
    }

    fn tx(&self, hash: &str) -> Result<Option<TxResult>, ChainError> {
        let mut client = TxClient::new(self.channel.clone());
        let request = GetTxRequest {
            hash: hash.to_owned(),
        };
        let r = match self.rt.block_on(client.get_tx(request)) {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == Code::NotFound => return Ok(None),
            Err(s) => return Err(status_error("get tx", s)),
        };
        let Some(r) = r.tx_response else {
            return Ok(None);
        };
        Ok(Some(TxResult {
            hash: r.txhash,
            height: u64::try_from(r.height).unwrap_or(0),
            code: r.code,
            codespace: r.codespace,
            log: r.raw_log,
            events: r
                .events
                .into_iter()
                .map(|e| Event {
                    kind: e.r#type,
                    attributes: e.attributes.into_iter().map(|a| (a.key, a.value)).collect(),
                })
                .collect(),
        }))
    }

    fn trusted_header(&self) -> Result<Option<TrustedHeader>, ChainError> {
        let r: Option<btcts_query::QueryTrustedHeaderResponse> = self.btcts_query(
            btcts_query::TRUSTED_HEADER,
            btcts_query::QueryTrustedHeaderRequest {},
        )?;
        r.and_then(|r| r.header).map(|h| h.decode()).transpose()
    }

    fn known_header(&self, height: u32) -> Result<Option<TrustedHeader>, ChainError> {
        let r: Option<btcts_query::QueryKnownHeaderResponse> = self.btcts_query(
            btcts_query::KNOWN_HEADER,
            btcts_query::QueryKnownHeaderRequest { height },
        )?;
        r.and_then(|r| r.header).map(|h| h.decode()).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_hashes_are_upper_hex_sha256() {
        assert_eq!(
            tx_hash(b""),
            "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
        );
    }

    #[test]
    fn a_node_that_is_down_is_a_transient_error() {
        // Port 9 on loopback: nothing listens there in a test sandbox.
        let node = GrpcNode::new("http://127.0.0.1:9").expect("valid URL");
        let e = node.latest_block().expect_err("nobody answers");
        assert!(e.is_transient(), "{e}");
        assert!(GrpcNode::new("not a url").is_err());
    }
}
