//! The IBC messages btcts submits to a consumer chain, built with `ibc-proto`
//! types and the solo-machine proofs they need (`../shared/IBC.md`):
//!
//! 1. `MsgCreateClient`: a 06-solomachine v3 client of the service's key;
//! 2. `MsgConnectionOpenInit`, then `MsgConnectionOpenAck` with three proofs
//!    (the service's TRYOPEN connection end, the consumer's client state and
//!    consensus state as the service "holds" them — ibc-go 7.3–8.4 and ibc-rs
//!    check all three, in that order);
//! 3. `MsgChannelOpenInit` (UNORDERED, `btcts-1`), then `MsgChannelOpenAck`
//!    with a proof of the service's TRYOPEN channel end;
//! 4. `MsgRecvPacket` per packet with a proof of its commitment;
//! 5. `MsgUpdateClient` with a solo-machine header to rotate the key.
//!
//! Every proof consumes one solo-machine sequence; proofs are signed over
//! the raw ICS-24 key (no prefix), and the proof height is `(0, sequence)`.

use ibc_proto::google::protobuf::Any;
use ibc_proto::ibc::core::channel::v1::{
    Channel, Counterparty as ChanCounterparty, MsgChannelOpenAck, MsgChannelOpenInit,
    MsgRecvPacket, Order, Packet, State as ChanState,
};
use ibc_proto::ibc::core::client::v1::{Height, MsgCreateClient, MsgUpdateClient};
use ibc_proto::ibc::core::commitment::v1::MerklePrefix;
use ibc_proto::ibc::core::connection::v1::{
    ConnectionEnd, Counterparty as ConnCounterparty, MsgConnectionOpenAck, MsgConnectionOpenInit,
    State as ConnState, Version,
};
use ibc_proto::ibc::lightclients::solomachine::v3::{
    ClientState as SmClientState, ConsensusState as SmConsensusState,
};
use prost::{Message, Name};

use crate::packet::packet_commitment;
use crate::signer::{public_key_any, Signed, Signer, SignerError, SignerState};
use crate::{CHANNEL_VERSION, PORT_ID};

/// The ICS-03 connection version both sides use.
pub fn connection_version() -> Version {
    Version {
        identifier: "1".into(),
        features: vec!["ORDER_ORDERED".into(), "ORDER_UNORDERED".into()],
    }
}

/// The identifiers of one consumer chain's link, on both sides. The
/// service's side is not a chain; its identifiers are fixed names the
/// consumer sees as the counterparty's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The consumer's solo-machine client of the service (`06-solomachine-N`).
    pub client_on_consumer: String,
    /// The consumer's connection end.
    pub connection_on_consumer: String,
    /// The consumer's channel end.
    pub channel_on_consumer: String,
    /// The service's (nominal) client of the consumer.
    pub client_on_service: String,
    /// The service's connection end.
    pub connection_on_service: String,
    /// The service's channel end.
    pub channel_on_service: String,
    /// The consumer's commitment prefix.
    pub consumer_prefix: Vec<u8>,
}

impl Link {
    /// A link whose consumer-side identifiers are not known yet.
    pub fn new(client_on_consumer: &str) -> Link {
        Link {
            client_on_consumer: client_on_consumer.into(),
            connection_on_consumer: String::new(),
            channel_on_consumer: String::new(),
            client_on_service: "07-tendermint-0".into(),
            connection_on_service: "connection-0".into(),
            channel_on_service: "channel-0".into(),
            consumer_prefix: b"ibc".to_vec(),
        }
    }
}

fn any<M: Message + Name>(msg: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: msg.encode_to_vec(),
    }
}

/// The proof height of a solo-machine proof: `(0, sequence)`.
pub fn proof_height(sequence: u64) -> Height {
    Height {
        revision_number: 0,
        revision_height: sequence,
    }
}

/// The solo-machine client state the consumer creates, from the signer's
/// current state and a first timestamp (> 0).
pub fn client_state(state: &SignerState, timestamp: u64) -> (SmClientState, SmConsensusState) {
    let consensus = SmConsensusState {
        public_key: Some(public_key_any(&state.public_key)),
        diversifier: state.diversifier.clone(),
        timestamp,
    };
    (
        SmClientState {
            sequence: state.sequence,
            is_frozen: false,
            consensus_state: Some(consensus.clone()),
        },
        consensus,
    )
}

/// `MsgCreateClient` for the signer's current state.
pub fn create_client(state: &SignerState, timestamp: u64, relayer: &str) -> Any {
    let (client, consensus) = client_state(state, timestamp);
    any(&MsgCreateClient {
        client_state: Some(any(&client)),
        consensus_state: Some(any(&consensus)),
        signer: relayer.into(),
    })
}

/// `MsgConnectionOpenInit` on the consumer.
pub fn conn_open_init(link: &Link, relayer: &str) -> Any {
    any(&MsgConnectionOpenInit {
        client_id: link.client_on_consumer.clone(),
        counterparty: Some(ConnCounterparty {
            client_id: link.client_on_service.clone(),
            connection_id: String::new(),
            prefix: Some(MerklePrefix {
                key_prefix: b"ibc".to_vec(),
            }),
        }),
        version: Some(connection_version()),
        delay_period: 0,
        signer: relayer.into(),
    })
}

/// The service's TRYOPEN connection end, as the consumer expects it.
pub fn service_connection_end(link: &Link) -> ConnectionEnd {
    ConnectionEnd {
        client_id: link.client_on_service.clone(),
        versions: vec![connection_version()],
        state: ConnState::Tryopen as i32,
        counterparty: Some(ConnCounterparty {
            client_id: link.client_on_consumer.clone(),
            connection_id: link.connection_on_consumer.clone(),
            prefix: Some(MerklePrefix {
                key_prefix: link.consumer_prefix.clone(),
            }),
        }),
        delay_period: 0,
    }
}

/// What an ibc-go 7.3–8.4 or ibc-rs consumer also wants proven in
/// `ConnOpenAck`: its own client state as the service's nominal client of it
/// holds it, and its consensus state at `consensus_height`.
#[derive(Debug, Clone, Copy)]
pub struct StateProofs<'a> {
    /// The consumer's client state (a Tendermint client state).
    pub consumer_client: &'a Any,
    /// The consumer's consensus state at `consensus_height`.
    pub consumer_consensus: &'a Any,
    /// The consumer height it is proven at.
    pub consensus_height: Height,
}

/// `MsgConnectionOpenAck` proving the service's TRYOPEN connection end at
/// sequence `first`, and with `state` also the consumer's client and
/// consensus states at `first + 1` and `first + 2` (ibc-go ≥ 8.5 verifies
/// only the first, and every proof it does not verify would leave the
/// client a sequence behind the signer). Asking again with the same inputs
/// returns the same proofs.
pub fn conn_open_ack(
    signer: &Signer,
    first: u64,
    link: &Link,
    state: Option<StateProofs<'_>>,
    timestamp: u64,
    relayer: &str,
) -> Result<(Any, Vec<Signed>), SignerError> {
    let conn_path = format!("connections/{}", link.connection_on_service);
    let try_end = signer.sign_at(
        first,
        conn_path.as_bytes(),
        &service_connection_end(link).encode_to_vec(),
        timestamp,
    )?;
    let mut msg = MsgConnectionOpenAck {
        connection_id: link.connection_on_consumer.clone(),
        counterparty_connection_id: link.connection_on_service.clone(),
        version: Some(connection_version()),
        client_state: None,
        proof_height: Some(proof_height(try_end.sequence)),
        proof_try: try_end.proof(),
        proof_client: Vec::new(),
        proof_consensus: Vec::new(),
        consensus_height: None,
        signer: relayer.into(),
        host_consensus_state_proof: Vec::new(),
    };
    let mut signed = vec![try_end];
    if let Some(state) = state {
        let client_path = format!("clients/{}/clientState", link.client_on_service);
        let client = signer.sign_at(
            first + 1,
            client_path.as_bytes(),
            &state.consumer_client.encode_to_vec(),
            timestamp,
        )?;
        let height = state.consensus_height;
        let consensus_path = format!(
            "clients/{}/consensusStates/{}-{}",
            link.client_on_service, height.revision_number, height.revision_height
        );
        let consensus = signer.sign_at(
            first + 2,
            consensus_path.as_bytes(),
            &state.consumer_consensus.encode_to_vec(),
            timestamp,
        )?;
        msg.client_state = Some(state.consumer_client.clone());
        msg.proof_client = client.proof();
        msg.proof_consensus = consensus.proof();
        msg.consensus_height = Some(height);
        signed.extend([client, consensus]);
    }
    Ok((any(&msg), signed))
}

/// `MsgChannelOpenInit` on the consumer: port `btcts`, UNORDERED, `btcts-1`.
pub fn chan_open_init(link: &Link, relayer: &str) -> Any {
    any(&MsgChannelOpenInit {
        port_id: PORT_ID.into(),
        channel: Some(Channel {
            state: ChanState::Init as i32,
            ordering: Order::Unordered as i32,
            counterparty: Some(ChanCounterparty {
                port_id: PORT_ID.into(),
                channel_id: String::new(),
            }),
            connection_hops: vec![link.connection_on_consumer.clone()],
            version: CHANNEL_VERSION.into(),
            upgrade_sequence: 0,
        }),
        signer: relayer.into(),
    })
}

/// The service's TRYOPEN channel end, as the consumer expects it.
pub fn service_channel_end(link: &Link) -> Channel {
    Channel {
        state: ChanState::Tryopen as i32,
        ordering: Order::Unordered as i32,
        counterparty: Some(ChanCounterparty {
            port_id: PORT_ID.into(),
            channel_id: link.channel_on_consumer.clone(),
        }),
        connection_hops: vec![link.connection_on_service.clone()],
        version: CHANNEL_VERSION.into(),
        upgrade_sequence: 0,
    }
}

/// `MsgChannelOpenAck` with the proof of the service's channel end, at
/// solo-machine sequence `sequence`.
pub fn chan_open_ack(
    signer: &Signer,
    sequence: u64,
    link: &Link,
    timestamp: u64,
    relayer: &str,
) -> Result<(Any, Signed), SignerError> {
    let path = format!(
        "channelEnds/ports/{PORT_ID}/channels/{}",
        link.channel_on_service
    );
    let signed = signer.sign_at(
        sequence,
        path.as_bytes(),
        &service_channel_end(link).encode_to_vec(),
        timestamp,
    )?;
    let msg = any(&MsgChannelOpenAck {
        port_id: PORT_ID.into(),
        channel_id: link.channel_on_consumer.clone(),
        counterparty_channel_id: link.channel_on_service.clone(),
        counterparty_version: CHANNEL_VERSION.into(),
        proof_try: signed.proof(),
        proof_height: Some(proof_height(signed.sequence)),
        signer: relayer.into(),
    });
    Ok((msg, signed))
}

/// The packet the service sends on `link` with `sequence` and `data`,
/// timing out at `timeout_timestamp_ns` (no timeout height).
pub fn packet(link: &Link, sequence: u64, data: Vec<u8>, timeout_timestamp_ns: u64) -> Packet {
    Packet {
        sequence,
        source_port: PORT_ID.into(),
        source_channel: link.channel_on_service.clone(),
        destination_port: PORT_ID.into(),
        destination_channel: link.channel_on_consumer.clone(),
        data,
        timeout_height: Some(Height {
            revision_number: 0,
            revision_height: 0,
        }),
        timeout_timestamp: timeout_timestamp_ns,
    }
}

/// The ICS-24 key of a packet's commitment on the service's side.
pub fn commitment_path(packet: &Packet) -> String {
    format!(
        "commitments/ports/{}/channels/{}/sequences/{}",
        packet.source_port, packet.source_channel, packet.sequence
    )
}

/// `MsgRecvPacket` for `packet`, with the proof of its commitment at
/// solo-machine sequence `sequence`. One per transaction (`../shared/IBC.md`).
pub fn recv_packet(
    signer: &Signer,
    sequence: u64,
    packet: Packet,
    timestamp: u64,
    relayer: &str,
) -> Result<(Any, Signed), SignerError> {
    let (rev, height) = packet
        .timeout_height
        .as_ref()
        .map_or((0, 0), |h| (h.revision_number, h.revision_height));
    let commitment = packet_commitment(packet.timeout_timestamp, rev, height, &packet.data);
    let signed = signer.sign_at(
        sequence,
        commitment_path(&packet).as_bytes(),
        &commitment,
        timestamp,
    )?;
    let msg = any(&MsgRecvPacket {
        packet: Some(packet),
        proof_commitment: signed.proof(),
        proof_height: Some(proof_height(signed.sequence)),
        signer: relayer.into(),
    });
    Ok((msg, signed))
}

/// `MsgUpdateClient` carrying `client_message`: a key-rotation header from
/// [`Signer::rotate`] (or, for tests, a misbehaviour).
pub fn update_client<M: Message + Name>(link: &Link, client_message: &M, relayer: &str) -> Any {
    any(&MsgUpdateClient {
        client_id: link.client_on_consumer.clone(),
        client_message: Some(any(client_message)),
        signer: relayer.into(),
    })
}
