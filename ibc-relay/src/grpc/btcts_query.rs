//! The two questions the relay asks a consumer's `x/btcts` app over its
//! `btcts.consumer.v1.Query` service (`ibc-relay/proto/btcts/consumer/v1/
//! query.proto`): which Bitcoin header it trusts now, and which header it
//! knows at a height. Written by hand with prost's derive, field for field.

use bitcoin::block::Header;
use btcts_consumer::TrustedHeader;

use super::ChainError;

/// Full method name of `Query/TrustedHeader`.
pub const TRUSTED_HEADER: &str = "/btcts.consumer.v1.Query/TrustedHeader";
/// Full method name of `Query/KnownHeader`.
pub const KNOWN_HEADER: &str = "/btcts.consumer.v1.Query/KnownHeader";

/// `btcts.consumer.v1.TrustedHeader`: a header and its height.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct BitcoinHeader {
    /// Its height.
    #[prost(uint32, tag = "1")]
    pub height: u32,
    /// The 80-byte header.
    #[prost(bytes = "vec", tag = "2")]
    pub header: Vec<u8>,
}

impl BitcoinHeader {
    /// The header, checked to be 80 bytes that parse.
    pub fn decode(&self) -> Result<TrustedHeader, ChainError> {
        let header: Header = bitcoin::consensus::deserialize(&self.header).map_err(|e| {
            ChainError::Protocol(format!("the btcts app's header at {}: {e}", self.height))
        })?;
        Ok(TrustedHeader {
            height: self.height,
            header,
        })
    }
}

/// `QueryTrustedHeaderRequest`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct QueryTrustedHeaderRequest {}

/// `QueryTrustedHeaderResponse`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct QueryTrustedHeaderResponse {
    /// The tip of the headers the app trusts.
    #[prost(message, optional, tag = "1")]
    pub header: Option<BitcoinHeader>,
}

/// `QueryKnownHeaderRequest`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct QueryKnownHeaderRequest {
    /// The height asked about.
    #[prost(uint32, tag = "1")]
    pub height: u32,
}

/// `QueryKnownHeaderResponse`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct QueryKnownHeaderResponse {
    /// The header the app knows there.
    #[prost(message, optional, tag = "1")]
    pub header: Option<BitcoinHeader>,
}
