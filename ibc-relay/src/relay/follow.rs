//! Following the consumer's trusted Bitcoin headers: where a packet
//! starts (right after a header the consumer's app knows that is still on
//! Bitcoin's best chain, never after the anchor block), the best chain's
//! headers from there through a small cache, and the packet built from them
//! at the moment it is signed.

use super::*;

/// How far back the relay looks for a header the consumer shares with
/// Bitcoin's best chain after a reorg.
const MAX_REORG_WALK: u32 = 144;

/// The best chain's headers the relay read last, from height `first`.
#[derive(Debug, Default)]
pub(super) struct HeaderCache {
    first: u32,
    headers: Vec<Header>,
}

impl Relay {
    /// The best chain's headers from `from` to the tip (at most
    /// [`MAX_HEADERS`]), through a cache of the last ones read: one call
    /// to check that the cache is still on the best chain, then only the
    /// headers not read before.
    fn headers_from(
        &mut self,
        bitcoin: &dyn BitcoinNode,
        from: u32,
    ) -> Result<Vec<Header>, RelayError> {
        let cache = &mut self.headers;
        let cached_end = cache.first + cache.headers.len() as u32;
        if from < cache.first || from > cached_end {
            cache.first = from;
            cache.headers.clear();
        }
        while let Some(last) = cache.headers.last() {
            let height = cache.first + (cache.headers.len() as u32 - 1);
            if bitcoin.block_hash_at(height)? == Some(last.block_hash()) {
                break;
            }
            cache.headers.pop();
        }
        let tip = bitcoin.chain_info()?.tip_height;
        let end = tip.min(from.saturating_add(MAX_HEADERS as u32 - 1));
        while cache.first + (cache.headers.len() as u32) <= end {
            let height = cache.first + cache.headers.len() as u32;
            let Some(hash) = bitcoin.block_hash_at(height)? else {
                break;
            };
            cache.headers.push(bitcoin.header(&hash)?);
        }
        let skip = (from - cache.first) as usize;
        let out: Vec<Header> = cache.headers[skip..]
            .iter()
            .take(MAX_HEADERS)
            .copied()
            .collect();
        // Keep the cache to what the next packets can need.
        if skip > MAX_HEADERS {
            cache.headers.drain(..skip);
            cache.first = from;
        }
        Ok(out)
    }

    /// Where a packet for a record anchored at `anchor_height` starts: right
    /// after a header the consumer's app knows that is still on Bitcoin's
    /// best chain, and no later than the anchor block — so its headers are
    /// only those since the consumer's trusted tip (or since the anchor, for
    /// an anchor below it). `None` if the consumer knows no such header.
    fn first_height(
        &self,
        bitcoin: &dyn BitcoinNode,
        anchor_height: u32,
    ) -> Result<Option<u32>, RelayError> {
        let Some(tip) = self.node.trusted_header()? else {
            // An app that does not say what it trusts: the checkpoint.
            let first = self.config.checkpoint_height + 1;
            return Ok((anchor_height >= first).then_some(first));
        };
        let mut first = anchor_height.min(tip.height.saturating_add(1));
        // A Bitcoin reorg may have left the app's newest headers on a stale
        // branch: walk back to one it shares with the best chain.
        for _ in 0..=MAX_REORG_WALK {
            let Some(before) = first.checked_sub(1) else {
                return Ok(None);
            };
            let known = if before == tip.height {
                Some(tip)
            } else {
                self.node.known_header(before)?
            };
            let Some(known) = known else {
                return Ok(None);
            };
            if bitcoin.block_hash_at(before)? == Some(known.header.block_hash()) {
                return Ok(Some(first));
            }
            first = before;
        }
        Err(RelayError::Halted(format!(
            "the consumer's btcts app trusts Bitcoin headers that left the best chain more than {MAX_REORG_WALK} blocks deep (at height {})",
            tip.height
        )))
    }

    /// The data of the packet carrying `packet`'s record, built now from
    /// the consumer's trusted headers; `None` while the record's anchor is
    /// not on the best chain (a reorg: it is anchored again later).
    pub(super) fn build(
        &mut self,
        store: &Store,
        bitcoin: &dyn BitcoinNode,
        packet: &mut PacketRecord,
    ) -> Result<Option<Vec<u8>>, RelayError> {
        let proof = store.proof(&packet.record_id)?.ok_or_else(|| {
            RelayError::Halted(format!("record {} has no proof", packet.record_id))
        })?;
        let proof = complete_proof(bitcoin, proof, 0)?;
        let Some(anchor) = proof.anchor.as_ref() else {
            return Ok(None);
        };
        packet.bitcoin_height = anchor.block.height;
        let Some(first) = self.first_height(bitcoin, anchor.block.height)? else {
            return Err(RelayError::Halted(format!(
                "record {} is anchored at Bitcoin height {}, below every header the consumer's btcts app still knows: it cannot be proven to it",
                packet.record_id, anchor.block.height
            )));
        };
        let headers = self.headers_from(bitcoin, first)?;
        match build_packet(&proof, first, &headers) {
            Ok(p) => Ok(Some(p.encode_to_vec())),
            Err(BuildError::AnchorNotInHeaders) => Err(RelayError::Halted(format!(
                "record {} is anchored at height {}, more than {MAX_HEADERS} blocks after the header the consumer trusts (height {}): advance the consumer's trusted header",
                packet.record_id,
                anchor.block.height,
                first - 1
            ))),
            Err(e) => Err(RelayError::Halted(format!(
                "record {}: {e}",
                packet.record_id
            ))),
        }
    }
}
