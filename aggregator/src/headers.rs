//! The header-chain rules every btcts verifier applies — the offline proof
//! verifier ([`crate::verify`]) and the consumer chain's packet verifier
//! (`btcts-consumer`) — written once: linkage, the difficulty floor of the
//! trust anchors, proof of work, and the difficulty changes a light client
//! can check without a whole retarget period.

use bitcoin::block::Header;
use bitcoin::pow::Target;

use crate::chain::{AnchorNetwork, PowError};
use crate::trust::NetworkAnchors;

/// Blocks between difficulty adjustments (Bitcoin and Litecoin).
pub const RETARGET_INTERVAL: u32 = 2016;

/// Why a header is not acceptable after the one before it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Its `prev_blockhash` is not the previous header's hash.
    #[error("does not link to the header before it")]
    Link,
    /// Its `bits` are easier than the trust anchors' floor.
    #[error("difficulty {difficulty:.0} is below the {network} floor of {floor:.0} (bits {bits:#010x}, floor {floor_bits:#010x})")]
    BelowFloor {
        /// The network.
        network: AnchorNetwork,
        /// The header's bits.
        bits: u32,
        /// The floor's bits.
        floor_bits: u32,
        /// The header's difficulty.
        difficulty: u64,
        /// The floor's difficulty.
        floor: u64,
    },
    /// Its proof of work.
    #[error(transparent)]
    Pow(#[from] PowError),
    /// A difficulty change the network's rules do not allow.
    #[error("{0}")]
    Difficulty(&'static str),
}

/// The floor, then the proof of work, of one header: the floor first, so
/// that a header below it is refused for that reason whatever its hash.
pub fn check_work(
    network: AnchorNetwork,
    anchors: &NetworkAnchors,
    header: &Header,
) -> Result<(), HeaderError> {
    if let (Some(floor), Some(floor_bits)) = (anchors.floor(), anchors.floor_bits) {
        if header.target() > floor {
            return Err(HeaderError::BelowFloor {
                network,
                bits: header.bits.to_consensus(),
                floor_bits: floor_bits.to_consensus(),
                difficulty: header.target().difficulty_float() as u64,
                floor: floor.difficulty_float() as u64,
            });
        }
    }
    network.check_pow(header)?;
    Ok(())
}

/// Everything about `header` at `height` that follows from the header
/// before it: linkage, floor, proof of work and difficulty change.
pub fn check_next(
    network: AnchorNetwork,
    anchors: &NetworkAnchors,
    height: u32,
    prev: &Header,
    header: &Header,
) -> Result<(), HeaderError> {
    if header.prev_blockhash != prev.block_hash() {
        return Err(HeaderError::Link);
    }
    check_work(network, anchors, header)?;
    check_difficulty(network, height, prev, header).map_err(HeaderError::Difficulty)
}

/// The difficulty rule a light client can check without the whole period:
/// no change inside a retarget period, and at a period boundary at most a
/// factor of four either way (Bitcoin's clamp). Regtest networks never
/// retarget. On testnet and testnet4 a block may fall back to the minimum
/// difficulty, and signet blocks are checked by signature, not by this
/// rule, so only the proof-of-work limit is enforced there.
pub fn check_difficulty(
    network: AnchorNetwork,
    height: u32,
    prev: &Header,
    header: &Header,
) -> Result<(), &'static str> {
    match network {
        AnchorNetwork::Testnet | AnchorNetwork::Testnet4 => Ok(()),
        AnchorNetwork::Regtest | AnchorNetwork::LitecoinRegtest => {
            if header.bits == prev.bits {
                Ok(())
            } else {
                Err("difficulty changed on a network that never retargets")
            }
        }
        AnchorNetwork::Bitcoin | AnchorNetwork::Signet | AnchorNetwork::Litecoin => {
            if height % RETARGET_INTERVAL != 0 {
                if header.bits == prev.bits {
                    return Ok(());
                }
                return Err("difficulty changed inside a retarget period");
            }
            let (old, new) = (prev.target(), header.target());
            let easiest = old.max_transition_threshold_unchecked();
            let hardest = Target::from_le_bytes(quarter(old.to_le_bytes()));
            if new > easiest || new < hardest {
                Err("difficulty moved more than a factor of four at a retarget")
            } else {
                Ok(())
            }
        }
    }
}

/// `x / 4` of a little-endian 256-bit number.
fn quarter(mut le: [u8; 32]) -> [u8; 32] {
    for _ in 0..2 {
        let mut carry = 0u8;
        for byte in le.iter_mut().rev() {
            let next = *byte & 1;
            *byte = (*byte >> 1) | (carry << 7);
            carry = next;
        }
    }
    le
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::TrustAnchors;
    use bitcoin::pow::CompactTarget;

    fn genesis() -> Header {
        bitcoin::constants::genesis_block(bitcoin::Network::Bitcoin).header
    }

    #[test]
    fn the_floor_is_checked_before_the_hash() {
        let anchors = TrustAnchors::builtin();
        // The real genesis block: valid work, at difficulty 1.
        let g = genesis();
        assert_eq!(AnchorNetwork::Bitcoin.check_pow(&g), Ok(()));
        let err = check_work(
            AnchorNetwork::Bitcoin,
            anchors.get(AnchorNetwork::Bitcoin),
            &g,
        );
        assert!(
            matches!(
                err,
                Err(HeaderError::BelowFloor {
                    bits: 0x1d00_ffff,
                    ..
                })
            ),
            "{err:?}"
        );
        // Without a floor (regtest's anchors), only the work counts.
        assert_eq!(
            check_work(
                AnchorNetwork::Bitcoin,
                anchors.get(AnchorNetwork::Regtest),
                &g
            ),
            Ok(())
        );
        // At the floor with no work: refused for the work.
        let mut h = g;
        h.bits = CompactTarget::from_consensus(0x170d_0864);
        assert_eq!(
            check_work(
                AnchorNetwork::Bitcoin,
                anchors.get(AnchorNetwork::Bitcoin),
                &h
            ),
            Err(HeaderError::Pow(PowError::InsufficientWork))
        );
    }

    #[test]
    fn retargets_are_clamped_to_a_factor_of_four() {
        // check_difficulty looks at bits only: no need to mine at this difficulty.
        let prev = Header {
            bits: CompactTarget::from_consensus(0x1d00_ffff),
            ..genesis()
        };
        let at = |bits: u32| Header {
            bits: CompactTarget::from_consensus(bits),
            ..prev
        };
        // Inside a period nothing may change; at a boundary a factor of 4 may.
        assert!(check_difficulty(AnchorNetwork::Bitcoin, 2017, &prev, &at(0x1d00_ffff)).is_ok());
        assert!(check_difficulty(AnchorNetwork::Bitcoin, 2017, &prev, &at(0x1c7f_ff80)).is_err());
        assert!(check_difficulty(AnchorNetwork::Bitcoin, 4032, &prev, &at(0x1c3f_ffc0)).is_ok());
        assert!(check_difficulty(AnchorNetwork::Bitcoin, 4032, &prev, &at(0x1c3f_ff00)).is_err());
        assert!(check_difficulty(AnchorNetwork::Bitcoin, 4032, &prev, &at(0x1d03_fffc)).is_ok());
        assert!(check_difficulty(AnchorNetwork::Bitcoin, 4032, &prev, &at(0x1d04_0000)).is_err());
        assert!(check_difficulty(AnchorNetwork::Testnet4, 17, &prev, &at(0x1d04_0000)).is_ok());
    }

    #[test]
    fn quarter_divides_by_four() {
        let mut x = [0u8; 32];
        x[0] = 0x10;
        x[1] = 0x01;
        let mut want = [0u8; 32];
        want[0] = 0x44;
        assert_eq!(quarter(x), want);
    }
}
