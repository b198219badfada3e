//! Anchor chain profiles: which network a proof is anchored in, its genesis
//! block, its proof-of-work function and the easiest target it allows.

use std::fmt;
use std::str::FromStr;

use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use bitcoin::pow::Target;
use bitcoin::BlockHash;
use serde::{Deserialize, Serialize};

/// The hash function a network's proof of work is computed with.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowFunction {
    /// Double SHA-256 of the 80-byte header (every Bitcoin network).
    Sha256d,
    /// scrypt(N=1024, r=1, p=1, salt = header) of the 80-byte header (Litecoin).
    Scrypt,
}

/// A network btcts anchors into. Litecoin exists only because Debian ships a
/// Litecoin node and no Bitcoin node: it is the real node of the test suite.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnchorNetwork {
    /// Bitcoin mainnet.
    Bitcoin,
    /// Bitcoin testnet3.
    Testnet,
    /// Bitcoin testnet4.
    Testnet4,
    /// Bitcoin's default signet.
    Signet,
    /// Bitcoin regtest.
    Regtest,
    /// Litecoin mainnet.
    Litecoin,
    /// Litecoin regtest (the test suite's node).
    LitecoinRegtest,
}

/// The name is not one of [`AnchorNetwork::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown anchor network {0:?} (expected one of bitcoin, testnet, testnet4, signet, regtest, litecoin, litecoin-regtest)")]
pub struct UnknownNetwork(pub String);

impl AnchorNetwork {
    /// Every supported network.
    pub const ALL: [AnchorNetwork; 7] = [
        AnchorNetwork::Bitcoin,
        AnchorNetwork::Testnet,
        AnchorNetwork::Testnet4,
        AnchorNetwork::Signet,
        AnchorNetwork::Regtest,
        AnchorNetwork::Litecoin,
        AnchorNetwork::LitecoinRegtest,
    ];

    /// The name used in configuration and in proofs.
    pub fn name(self) -> &'static str {
        match self {
            AnchorNetwork::Bitcoin => "bitcoin",
            AnchorNetwork::Testnet => "testnet",
            AnchorNetwork::Testnet4 => "testnet4",
            AnchorNetwork::Signet => "signet",
            AnchorNetwork::Regtest => "regtest",
            AnchorNetwork::Litecoin => "litecoin",
            AnchorNetwork::LitecoinRegtest => "litecoin-regtest",
        }
    }

    /// The proof-of-work function of this network.
    pub fn pow(self) -> PowFunction {
        match self {
            AnchorNetwork::Litecoin | AnchorNetwork::LitecoinRegtest => PowFunction::Scrypt,
            AnchorNetwork::Bitcoin
            | AnchorNetwork::Testnet
            | AnchorNetwork::Testnet4
            | AnchorNetwork::Signet
            | AnchorNetwork::Regtest => PowFunction::Sha256d,
        }
    }

    /// Whether this is a test network, whose proof of work proves nothing:
    /// anyone can mine regtest blocks, testnets let blocks fall to the
    /// minimum difficulty, and signet's real protection is a block
    /// signature that headers do not carry.
    pub fn is_test_network(self) -> bool {
        match self {
            AnchorNetwork::Bitcoin | AnchorNetwork::Litecoin => false,
            AnchorNetwork::Testnet
            | AnchorNetwork::Testnet4
            | AnchorNetwork::Signet
            | AnchorNetwork::Regtest
            | AnchorNetwork::LitecoinRegtest => true,
        }
    }

    /// The coin whose subsidy prices this network's work.
    pub fn coin(self) -> &'static str {
        match self {
            AnchorNetwork::Bitcoin => "BTC",
            AnchorNetwork::Litecoin => "LTC",
            AnchorNetwork::Testnet | AnchorNetwork::Testnet4 | AnchorNetwork::Signet => "tBTC",
            AnchorNetwork::Regtest => "regtest BTC",
            AnchorNetwork::LitecoinRegtest => "regtest LTC",
        }
    }

    /// The `chain` field of the node's `getblockchaininfo` on this network.
    pub fn node_chain_name(self) -> &'static str {
        match self {
            AnchorNetwork::Bitcoin | AnchorNetwork::Litecoin => "main",
            AnchorNetwork::Testnet => "test",
            AnchorNetwork::Testnet4 => "testnet4",
            AnchorNetwork::Signet => "signet",
            AnchorNetwork::Regtest | AnchorNetwork::LitecoinRegtest => "regtest",
        }
    }

    /// The hash of the network's genesis block.
    pub fn genesis_hash(self) -> BlockHash {
        let btc = |n: bitcoin::Network| bitcoin::constants::genesis_block(n).block_hash();
        match self {
            AnchorNetwork::Bitcoin => btc(bitcoin::Network::Bitcoin),
            AnchorNetwork::Testnet => btc(bitcoin::Network::Testnet),
            AnchorNetwork::Testnet4 => btc(bitcoin::Network::Testnet4),
            AnchorNetwork::Signet => btc(bitcoin::Network::Signet),
            AnchorNetwork::Regtest => btc(bitcoin::Network::Regtest),
            AnchorNetwork::Litecoin => block_hash_from_display(
                "12a765e31ffd4059bada1e25190f6e98c99d9714d334efa41a195a7e7e04bfe2",
            ),
            AnchorNetwork::LitecoinRegtest => block_hash_from_display(
                "530827f38f93b43ed12af0b3ad25a288dc02ed74d6d7857862df51fc56c416f9",
            ),
        }
    }

    /// The easiest target a header on this network may claim.
    pub fn pow_limit(self) -> Target {
        match self {
            AnchorNetwork::Bitcoin => Target::MAX_ATTAINABLE_MAINNET,
            AnchorNetwork::Testnet | AnchorNetwork::Testnet4 => Target::MAX_ATTAINABLE_TESTNET,
            AnchorNetwork::Signet => Target::MAX_ATTAINABLE_SIGNET,
            AnchorNetwork::Regtest => Target::MAX_ATTAINABLE_REGTEST,
            // 00000fffff…ff (src/chainparams.cpp of Litecoin Core).
            AnchorNetwork::Litecoin => {
                let mut be = [0xff; 32];
                be[..2].fill(0);
                be[2] = 0x0f;
                Target::from_be_bytes(be)
            }
            // 7fffff…ff.
            AnchorNetwork::LitecoinRegtest => {
                let mut be = [0xff; 32];
                be[0] = 0x7f;
                Target::from_be_bytes(be)
            }
        }
    }

    /// The proof-of-work hash of `header`, as a number to compare with a target.
    pub fn pow_hash(self, header: &Header) -> Target {
        match self.pow() {
            PowFunction::Sha256d => Target::from_le_bytes(header.block_hash().to_byte_array()),
            PowFunction::Scrypt => Target::from_le_bytes(scrypt_1024_1_1(header)),
        }
    }

    /// Whether `header` carries the work its own `bits` claim, and those bits
    /// are no easier than this network allows.
    pub fn check_pow(self, header: &Header) -> Result<(), PowError> {
        let target = header.target();
        if target > self.pow_limit() {
            return Err(PowError::TargetAboveLimit);
        }
        if self.pow_hash(header) > target {
            return Err(PowError::InsufficientWork);
        }
        Ok(())
    }
}

/// Why a header's proof of work is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PowError {
    /// The header's `bits` claim a target easier than the network allows.
    #[error("header target is easier than the network's proof-of-work limit")]
    TargetAboveLimit,
    /// The header's proof-of-work hash is above its target.
    #[error("header hash does not meet its target")]
    InsufficientWork,
}

fn block_hash_from_display(hex: &str) -> BlockHash {
    // Only called with the compile-time constants above.
    hex.parse().expect("genesis constant is valid hex")
}

/// Litecoin's proof-of-work hash: scrypt(N=1024, r=1, p=1) with the header as
/// both password and salt.
fn scrypt_1024_1_1(header: &Header) -> [u8; 32] {
    let bytes = bitcoin::consensus::serialize(header);
    let mut out = [0u8; 32];
    // log2(1024) = 10; these parameters and output length are always valid.
    let params = scrypt::Params::new(10, 1, 1, 32).expect("valid scrypt parameters");
    scrypt::scrypt(&bytes, &bytes, &params, &mut out).expect("32-byte output is valid");
    out
}

impl fmt::Display for AnchorNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AnchorNetwork {
    type Err = UnknownNetwork;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AnchorNetwork::ALL
            .into_iter()
            .find(|n| n.name() == s)
            .ok_or_else(|| UnknownNetwork(s.chars().take(40).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for n in AnchorNetwork::ALL {
            assert_eq!(n.name().parse::<AnchorNetwork>(), Ok(n));
            assert_eq!(
                serde_json::to_string(&n).expect("serializes"),
                format!("\"{}\"", n.name())
            );
        }
        assert!("mainnet".parse::<AnchorNetwork>().is_err());
    }

    #[test]
    fn bitcoin_genesis_headers_carry_their_work() {
        for (n, net) in [
            (AnchorNetwork::Bitcoin, bitcoin::Network::Bitcoin),
            (AnchorNetwork::Testnet, bitcoin::Network::Testnet),
            (AnchorNetwork::Testnet4, bitcoin::Network::Testnet4),
            (AnchorNetwork::Signet, bitcoin::Network::Signet),
            (AnchorNetwork::Regtest, bitcoin::Network::Regtest),
        ] {
            let header = bitcoin::constants::genesis_block(net).header;
            assert_eq!(n.check_pow(&header), Ok(()), "{n}");
            assert_eq!(header.block_hash(), n.genesis_hash());
        }
    }

    #[test]
    fn a_mainnet_header_fails_with_one_nonce_changed() {
        let mut header = bitcoin::constants::genesis_block(bitcoin::Network::Bitcoin).header;
        header.nonce ^= 1;
        assert_eq!(
            AnchorNetwork::Bitcoin.check_pow(&header),
            Err(PowError::InsufficientWork)
        );
    }

    #[test]
    fn regtest_bits_are_refused_on_mainnet() {
        let header = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header;
        assert_eq!(
            AnchorNetwork::Bitcoin.check_pow(&header),
            Err(PowError::TargetAboveLimit)
        );
    }

    #[test]
    fn scrypt_matches_litecoin_genesis() {
        // Litecoin mainnet genesis header: its scrypt hash is
        // 0x00000b0cee… (well below the mainnet limit), its id the constant above.
        let header: Header = bitcoin::consensus::encode::deserialize_hex(
            "010000000000000000000000000000000000000000000000000000000000000000000000\
             d9ced4ed1130f7b7faad9be25323ffafa33232a17c3edf6cfd97bee6bafbdd97\
             b9aa8e4ef0ff0f1ecd513f7c",
        )
        .expect("valid header");
        assert_eq!(header.block_hash(), AnchorNetwork::Litecoin.genesis_hash());
        assert_eq!(AnchorNetwork::Litecoin.check_pow(&header), Ok(()));
        // The same header's sha256d does not meet the target: the function matters.
        assert!(AnchorNetwork::Bitcoin.pow_hash(&header) > header.target());
    }
}
