//! Bearer-token credentials. The configuration holds only SHA-256 hashes of
//! tokens; a token for chain A submits only for chain A; the admin token is
//! needed for operator routes; reads are public unless a read token is set.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use aggregator::ChainId;
use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// SHA-256 of a bearer token.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hashes are not secrets, but there is no reason to print them.
        f.write_str("TokenHash(..)")
    }
}

impl FromStr for TokenHash {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use bitcoin::hex::FromHex;
        <[u8; 32]>::from_hex(s)
            .map(TokenHash)
            .map_err(|_| "expected 64 hex characters (a SHA-256)".to_owned())
    }
}

impl TokenHash {
    /// The hash of `token`.
    pub fn of(token: &str) -> TokenHash {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }
}

/// Everything the server knows about tokens.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// The admin token.
    pub admin: Option<TokenHash>,
    /// The read token; reads are public when unset.
    pub read: Option<TokenHash>,
    /// Tokens allowed to submit for each chain.
    pub chains: BTreeMap<ChainId, Vec<TokenHash>>,
    /// The calendar token; the calendar routes are open when unset.
    pub calendar: Option<TokenHash>,
    /// `/metrics` and `/readyz` need the read token (when one is set).
    pub monitoring_requires_read: bool,
}

/// The bearer token of a request, hashed, if it carries one.
pub fn bearer(headers: &HeaderMap) -> Result<Option<TokenHash>, ApiError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    match text.strip_prefix("Bearer ") {
        Some(token) if !token.is_empty() => Ok(Some(TokenHash::of(token.trim()))),
        _ => Err(ApiError::unauthorized(
            "expected `Authorization: Bearer <token>`",
        )),
    }
}

impl Credentials {
    /// Whether the request may submit records for `chain`.
    pub fn check_submit(&self, headers: &HeaderMap, chain: &ChainId) -> Result<(), ApiError> {
        let token = bearer(headers)?
            .ok_or_else(|| ApiError::unauthorized("a chain token is required to submit"))?;
        if self
            .chains
            .get(chain)
            .is_some_and(|hashes| hashes.contains(&token))
        {
            return Ok(());
        }
        let known = self.admin == Some(token) || self.chains.values().any(|h| h.contains(&token));
        if known {
            Err(ApiError::forbidden(format!(
                "this token may not submit for chain {chain}"
            )))
        } else {
            Err(ApiError::unauthorized("unknown token"))
        }
    }

    /// Whether the request may read.
    pub fn check_read(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(read) = self.read else { return Ok(()) };
        match bearer(headers)? {
            Some(t) if t == read || Some(t) == self.admin => Ok(()),
            Some(_) => Err(ApiError::forbidden("this token may not read")),
            None => Err(ApiError::unauthorized("a read token is required")),
        }
    }
}

impl Credentials {
    /// Whether the request may use the OpenTimestamps calendar routes.
    pub fn check_calendar(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(calendar) = self.calendar else {
            return Ok(());
        };
        match bearer(headers)? {
            Some(t) if t == calendar || Some(t) == self.admin => Ok(()),
            Some(_) => Err(ApiError::forbidden("this token may not use the calendar")),
            None => Err(ApiError::unauthorized("a calendar token is required")),
        }
    }
}

/// A new random token (32 bytes, hex) and its hash, for `btcts token new`.
pub fn new_token() -> Result<(String, TokenHash), getrandom::Error> {
    use bitcoin::hex::DisplayHex;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let token = format!("btcts_{}", bytes.to_lower_hex_string());
    let hash = TokenHash::of(&token);
    Ok((token, hash))
}
