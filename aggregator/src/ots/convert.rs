//! A proof document as an OpenTimestamps timestamp: leaf hash → Merkle
//! path → transaction → block header attestation.

use super::*;

/// The operations from a record's leaf hash to its batch root.
pub fn path_ops(proof: &Proof) -> Vec<Op> {
    let mut ops = Vec::with_capacity(proof.path.len() * 3);
    for step in &proof.path {
        match step.side {
            Side::Left => {
                let mut arg = Vec::with_capacity(33);
                arg.push(crate::merkle::NODE_PREFIX);
                arg.extend_from_slice(step.hash.as_bytes());
                ops.push(Op::Prepend(arg));
            }
            Side::Right => {
                ops.push(Op::Prepend(vec![crate::merkle::NODE_PREFIX]));
                ops.push(Op::Append(step.hash.as_bytes().to_vec()));
            }
        }
        ops.push(Op::Sha256);
    }
    ops
}

/// The full timestamp of an anchored proof (leaf hash → block Merkle root →
/// block attestation), or of a not yet anchored one (leaf hash → pending
/// attestation at `calendar`). The proof is not verified here: export a
/// verified or self-produced proof.
pub fn timestamp_of(proof: &Proof, calendar: Option<&str>) -> Result<Timestamp, OtsError> {
    let Some(anchor) = &proof.anchor else {
        let uri = calendar.ok_or_else(|| {
            OtsError::Proof("the record is not anchored and no calendar URL is set".into())
        })?;
        return Ok(Timestamp::chain(Vec::new(), Attestation::pending(uri)?));
    };
    let mut ops = path_ops(proof);
    let tx: Transaction = deserialize(&anchor.tx.0)
        .map_err(|e| OtsError::Proof(format!("anchor transaction: {e}")))?;
    let tx_bytes = serialize(&tx);
    let at = root_offset(&tx, anchor.output_index as usize)
        .ok_or_else(|| OtsError::Proof("no payload output at output_index".into()))?;
    if tx_bytes.get(at..at + 32) != Some(proof.batch.root.as_bytes().as_slice()) {
        return Err(OtsError::Proof(
            "the payload output does not carry the batch root".into(),
        ));
    }
    if tx_bytes.len() > MAX_MSG_LEN {
        return Err(OtsError::Proof(format!(
            "the anchor transaction is {} bytes; OpenTimestamps messages stop at {MAX_MSG_LEN}",
            tx_bytes.len()
        )));
    }
    ops.push(Op::Prepend(tx_bytes[..at].to_vec()));
    ops.push(Op::Append(tx_bytes[at + 32..].to_vec()));
    ops.push(Op::Sha256);
    ops.push(Op::Sha256);
    let mut index = anchor.tx_index;
    for sibling in &anchor.tx_branch {
        let sibling = sibling.to_byte_array().to_vec();
        if index & 1 == 0 {
            ops.push(Op::Append(sibling));
        } else {
            ops.push(Op::Prepend(sibling));
        }
        ops.push(Op::Sha256);
        ops.push(Op::Sha256);
        index >>= 1;
    }
    Ok(Timestamp::chain(
        ops,
        Attestation::block(anchor.network, u64::from(anchor.block.height)),
    ))
}

/// The `.ots` file of a proof: [`timestamp_of`] under the leaf hash.
pub fn detached_of(proof: &Proof, calendar: Option<&str>) -> Result<DetachedTimestamp, OtsError> {
    Ok(DetachedTimestamp {
        digest: *proof.leaf.hash.as_bytes(),
        timestamp: timestamp_of(proof, calendar)?,
    })
}

/// Byte offset of the 32-byte root inside the witness-free serialization of
/// `tx`, whose output `index` must be a payload output.
fn root_offset(tx: &Transaction, index: usize) -> Option<usize> {
    let out = tx.output.get(index)?;
    let script = out.script_pubkey.as_bytes();
    // 0x6a OP_RETURN, a push of PAYLOAD_LEN, then tag ‖ version ‖ seq ‖ root.
    if script.len() != 2 + PAYLOAD_LEN || script.first() != Some(&0x6a) {
        return None;
    }
    let mut at = 4 + VarInt(tx.input.len() as u64).size();
    at += tx.input.iter().map(|i| serialize(i).len()).sum::<usize>();
    at += VarInt(tx.output.len() as u64).size();
    at += tx.output[..index]
        .iter()
        .map(|o| serialize(o).len())
        .sum::<usize>();
    let mut script_len = Vec::new();
    VarInt(script.len() as u64)
        .consensus_encode(&mut script_len)
        .ok()?;
    Some(at + 8 + script_len.len() + 2 + PAYLOAD_LEN - 32)
}
