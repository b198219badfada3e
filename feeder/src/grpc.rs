//! [`BlockSource`] over gRPC: `cosmos.base.tendermint.v1beta1.Service`
//! (`GetLatestBlock`, `GetBlockByHeight`) of a Cosmos SDK node. The block
//! hash is `block_id.hash`; the staker-set digest is the header's
//! `validators_hash`, read from `sdk_block.header` (SDK ≥ 0.47) or else the
//! deprecated `block.header`.

use std::time::Duration;

use aggregator::{Height, PosBlockHash, StakerSetDigest};
use cosmos_sdk_proto::cosmos::base::tendermint::v1beta1::service_client::ServiceClient;
use cosmos_sdk_proto::cosmos::base::tendermint::v1beta1::{
    GetBlockByHeightRequest, GetBlockByHeightResponse, GetLatestBlockRequest,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::Code;

use crate::config::CaFile;
use crate::source::{BlockSource, ChainBlock, ChainTip, SourceError};

/// How long one gRPC call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A Cosmos SDK node's gRPC endpoint.
#[derive(Debug, Clone)]
pub struct GrpcSource {
    channel: Channel,
}

impl GrpcSource {
    /// The node at `url` (`http://host:port`, or `https://host:port`
    /// trusting the system's and the webpki roots and `ca`). Connects
    /// lazily, so a node that is down now is reached once it is up. Needs
    /// a Tokio runtime.
    pub fn new(url: &str, ca: Option<&CaFile>) -> Result<GrpcSource, SourceError> {
        let mut endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| SourceError::Protocol(format!("gRPC URL {url:?}: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT);
        if url.starts_with("https://") {
            // tonic builds its rustls config with the process default
            // provider; with both ring and aws-lc-rs compiled in there is
            // none until one is installed (an error: one already is).
            let _ = rustls::crypto::ring::default_provider().install_default();
            let mut tls = ClientTlsConfig::new().with_webpki_roots();
            if let Some(ca) = ca {
                tls = tls.ca_certificate(Certificate::from_pem(ca.pem()));
            }
            // The system's roots too, where it has a store.
            endpoint = match endpoint.clone().tls_config(tls.clone().with_native_roots()) {
                Ok(e) => e,
                Err(_) => endpoint
                    .tls_config(tls)
                    .map_err(|e| SourceError::Protocol(format!("gRPC TLS for {url}: {e}")))?,
            };
        }
        Ok(GrpcSource {
            channel: endpoint.connect_lazy(),
        })
    }
}

/// Classifies a gRPC status: transport trouble and a node busy committing
/// are transient, anything else is the node's considered answer.
fn status_error(what: &str, s: &tonic::Status) -> SourceError {
    let text = format!("{what}: {} ({:?})", s.message(), s.code());
    let busy = s.message().contains("latest block height");
    match s.code() {
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Unknown
        | Code::Cancelled
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::Internal => SourceError::Unavailable(text),
        _ if busy => SourceError::Unavailable(text),
        _ => SourceError::Protocol(text),
    }
}

fn hash32(what: &str, height: Height, bytes: &[u8]) -> Result<[u8; 32], SourceError> {
    <[u8; 32]>::try_from(bytes).map_err(|_| {
        SourceError::Protocol(format!(
            "block {height}: {what} has {} bytes, not 32",
            bytes.len()
        ))
    })
}

/// The fed fields of a `GetBlockByHeight` answer for `height`.
pub(crate) fn block_from_response(
    height: Height,
    r: GetBlockByHeightResponse,
) -> Result<ChainBlock, SourceError> {
    let block_hash = r
        .block_id
        .map(|id| id.hash)
        .ok_or_else(|| SourceError::Protocol(format!("block {height}: no block_id")))?;
    let (header_height, validators_hash) = match (
        r.sdk_block.and_then(|b| b.header),
        r.block.and_then(|b| b.header),
    ) {
        (Some(h), _) => (h.height, h.validators_hash),
        (None, Some(h)) => (h.height, h.validators_hash),
        (None, None) => return Err(SourceError::Protocol(format!("block {height}: no header"))),
    };
    if u64::try_from(header_height).ok() != Some(height) {
        return Err(SourceError::Protocol(format!(
            "asked for block {height}, got one at height {header_height}"
        )));
    }
    Ok(ChainBlock {
        height,
        block_hash: PosBlockHash(hash32("block_id.hash", height, &block_hash)?),
        staker_set_digest: StakerSetDigest(hash32("validators_hash", height, &validators_hash)?),
    })
}

impl BlockSource for GrpcSource {
    async fn tip(&self) -> Result<ChainTip, SourceError> {
        let mut client = ServiceClient::new(self.channel.clone());
        let r = client
            .get_latest_block(GetLatestBlockRequest {})
            .await
            .map_err(|s| status_error("latest block", &s))?
            .into_inner();
        let (chain_id, height) = match (
            r.sdk_block.and_then(|b| b.header),
            r.block.and_then(|b| b.header),
        ) {
            (Some(h), _) => (h.chain_id, h.height),
            (None, Some(h)) => (h.chain_id, h.height),
            (None, None) => {
                return Err(SourceError::Protocol(
                    "latest block without a header".into(),
                ))
            }
        };
        let height = u64::try_from(height)
            .map_err(|_| SourceError::Protocol(format!("latest block at height {height}")))?;
        Ok(ChainTip { chain_id, height })
    }

    async fn block(&self, height: Height) -> Result<ChainBlock, SourceError> {
        let mut client = ServiceClient::new(self.channel.clone());
        let request = GetBlockByHeightRequest {
            height: i64::try_from(height)
                .map_err(|_| SourceError::Protocol(format!("height {height} out of range")))?,
        };
        let r = client
            .get_block_by_height(request)
            .await
            .map_err(|s| status_error(&format!("block {height}"), &s))?
            .into_inner();
        block_from_response(height, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cosmos_sdk_proto::cosmos::base::tendermint::v1beta1::{Block as SdkBlock, Header};
    use cosmos_sdk_proto::tendermint::types::{Block, BlockId, Header as CmtHeader};

    fn response(
        height: i64,
        hash: Vec<u8>,
        sdk: Option<Vec<u8>>,
        cmt: Option<Vec<u8>>,
    ) -> GetBlockByHeightResponse {
        GetBlockByHeightResponse {
            block_id: Some(BlockId {
                hash,
                part_set_header: None,
            }),
            sdk_block: sdk.map(|v| SdkBlock {
                header: Some(Header {
                    height,
                    validators_hash: v,
                    ..Header::default()
                }),
                ..SdkBlock::default()
            }),
            block: cmt.map(|v| Block {
                header: Some(CmtHeader {
                    height,
                    validators_hash: v,
                    ..CmtHeader::default()
                }),
                ..Block::default()
            }),
        }
    }

    /// The staker-set digest read, or a fragment of the error.
    type Want = Result<[u8; 32], &'static str>;

    #[test]
    fn reads_the_block_id_hash_and_validators_hash() {
        let cases: Vec<(&str, GetBlockByHeightResponse, Want)> = vec![
            (
                "sdk block",
                response(7, vec![1; 32], Some(vec![2; 32]), Some(vec![9; 32])),
                Ok([2; 32]),
            ),
            (
                "deprecated block only",
                response(7, vec![1; 32], None, Some(vec![3; 32])),
                Ok([3; 32]),
            ),
            (
                "no header",
                response(7, vec![1; 32], None, None),
                Err("no header"),
            ),
            (
                "short hash",
                response(7, vec![1; 20], Some(vec![2; 32]), None),
                Err("block_id.hash has 20 bytes"),
            ),
            (
                "short validators hash",
                response(7, vec![1; 32], Some(vec![2; 31]), None),
                Err("validators_hash has 31 bytes"),
            ),
            (
                "other height",
                response(8, vec![1; 32], Some(vec![2; 32]), None),
                Err("got one at height 8"),
            ),
        ];
        for (name, r, want) in cases {
            let got = block_from_response(7, r);
            match (got, want) {
                (Ok(b), Ok(digest)) => {
                    assert_eq!(b.height, 7, "{name}");
                    assert_eq!(b.block_hash, PosBlockHash([1; 32]), "{name}");
                    assert_eq!(b.staker_set_digest, StakerSetDigest(digest), "{name}");
                }
                (Err(e), Err(text)) => {
                    assert!(!e.is_transient(), "{name}");
                    assert!(e.to_string().contains(text), "{name}: {e}");
                }
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn classifies_grpc_statuses() {
        let cases = [
            (tonic::Status::unavailable("connection refused"), true),
            (tonic::Status::deadline_exceeded("slow"), true),
            (tonic::Status::internal("oops"), true),
            (
                tonic::Status::invalid_argument("context did not contain latest block height"),
                true,
            ),
            (
                tonic::Status::invalid_argument("height 3 is not available, lowest height is 100"),
                false,
            ),
            (tonic::Status::unimplemented("no such service"), false),
        ];
        for (status, transient) in cases {
            assert_eq!(
                status_error("block 3", &status).is_transient(),
                transient,
                "{status:?}"
            );
        }
    }
}
