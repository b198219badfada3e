//! What the relay reads from and derives for the consumer: acknowledgements
//! and identifiers in transaction events, the chain id's revision, and the
//! consumer's consensus and client state as ConnOpenAck proves them.

use super::*;

/// The packet's state after the transaction that received it.
pub(super) fn acknowledgement(r: &TxResult, sequence: u64) -> PacketState {
    let consumer_height = r.height;
    let ack = r
        .events
        .iter()
        .filter(|e| e.kind == "write_acknowledgement")
        .find(|e| e.get("packet_sequence") == Some(sequence.to_string().as_str()))
        .and_then(|e| {
            e.get("packet_ack_hex")
                .and_then(decode_hex)
                .or_else(|| e.get("packet_ack").map(|a| a.as_bytes().to_vec()))
        });
    let Some(ack) = ack else {
        return PacketState::Received { consumer_height };
    };
    let json: serde_json::Value = serde_json::from_slice(&ack).unwrap_or_default();
    if let Some(result) = json.get("result").and_then(|v| v.as_str()) {
        let decoded = base64_decode(result)
            .and_then(|b| btcts_consumer::TimestampAck::decode(b.as_slice()).ok());
        if let Some(a) = decoded {
            return PacketState::Acknowledged {
                consumer_height,
                depth: a.depth,
            };
        }
    }
    let reason = json
        .get("error")
        .and_then(|v| v.as_str())
        .map_or_else(|| String::from_utf8_lossy(&ack).into_owned(), str::to_owned);
    PacketState::ErrorAcknowledged {
        consumer_height,
        reason,
    }
}

pub(super) fn attribute(r: &TxResult, kind: &str, key: &str) -> Result<String, RelayError> {
    r.event(kind)
        .and_then(|e| e.get(key))
        .map(str::to_owned)
        .ok_or_else(|| RelayError::Refused {
            step: kind.into(),
            log: format!("no {kind} event with {key} in the transaction"),
        })
}

pub(super) fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

pub(super) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// The IBC revision number of a chain id (`name-N` → N, else 0).
pub fn revision_number(chain_id: &str) -> u64 {
    match chain_id.rsplit_once('-') {
        Some((name, n))
            if !name.is_empty() && !n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            n.parse().unwrap_or(0)
        }
        _ => 0,
    }
}

/// The consumer's consensus state at `block`, as a Tendermint light client
/// of it would store it.
pub fn consensus_state_of(block: &BlockInfo) -> Any {
    let seconds = i64::try_from(block.time_ns / 1_000_000_000).unwrap_or(i64::MAX);
    let state = TmConsensusState {
        timestamp: Some(ibc_proto::google::protobuf::Timestamp {
            seconds,
            nanos: (block.time_ns % 1_000_000_000) as i32,
        }),
        root: Some(ibc_proto::ibc::core::commitment::v1::MerkleRoot {
            hash: block.app_hash.clone(),
        }),
        next_validators_hash: block.next_validators_hash.clone(),
    };
    Any {
        type_url: TmConsensusState::type_url(),
        value: state.encode_to_vec(),
    }
}

/// The consumer's client state as the service nominally holds it: a
/// Tendermint client of the consumer at `block`. ibc-go ≥ 8.5 does not
/// check it; ibc-go 7.3–8.4 validate it against themselves
/// (`docs/ibc.md`).
pub fn client_state_of(block: &BlockInfo) -> Any {
    let state = TmClientState {
        chain_id: block.chain_id.clone(),
        latest_height: Some(Height {
            revision_number: revision_number(&block.chain_id),
            revision_height: block.height,
        }),
        ..Default::default()
    };
    Any {
        type_url: TmClientState::type_url(),
        value: state.encode_to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_numbers_follow_ibc_chain_id_rules() {
        assert_eq!(revision_number("cosmoshub-4"), 4);
        assert_eq!(revision_number("consumer-alpha"), 0);
        assert_eq!(revision_number("chain-04"), 0);
        assert_eq!(revision_number("-4"), 0);
        assert_eq!(revision_number("plain"), 0);
    }

    #[test]
    fn acknowledgements_are_read_from_the_events() {
        use crate::grpc::Event;
        let ack = btcts_consumer::TimestampAck {
            chain_id: "c".into(),
            height: 7,
            bitcoin_height: 120,
            depth: 6,
        }
        .encode_to_vec();
        let b64 = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(&ack)
        };
        assert_eq!(base64_decode(&b64), Some(ack.clone()));
        let json = format!("{{\"result\":\"{b64}\"}}");
        let hex: String = json.bytes().map(|b| format!("{b:02x}")).collect();
        let tx = |attrs: Vec<(&str, &str)>| TxResult {
            hash: "AB".into(),
            height: 9,
            code: 0,
            codespace: String::new(),
            log: String::new(),
            events: vec![Event {
                kind: "write_acknowledgement".into(),
                attributes: attrs
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            }],
        };
        assert_eq!(
            acknowledgement(
                &tx(vec![("packet_sequence", "3"), ("packet_ack_hex", &hex)]),
                3
            ),
            PacketState::Acknowledged {
                consumer_height: 9,
                depth: 6
            }
        );
        assert_eq!(
            acknowledgement(
                &tx(vec![
                    ("packet_sequence", "3"),
                    ("packet_ack", "{\"error\":\"too shallow\"}")
                ]),
                3
            ),
            PacketState::ErrorAcknowledged {
                consumer_height: 9,
                reason: "too shallow".into()
            }
        );
        // Another packet's acknowledgement is not this one's.
        assert_eq!(
            acknowledgement(
                &tx(vec![("packet_sequence", "4"), ("packet_ack_hex", &hex)]),
                3
            ),
            PacketState::Received { consumer_height: 9 }
        );
    }
}
