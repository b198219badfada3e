use super::*;

fn packet(state: PacketState) -> PacketRecord {
    PacketRecord {
        state,
        ..PacketRecord::new(aggregator::LeafHash([7; 32]), 5, 120, 1_000)
    }
}

#[test]
fn every_state_round_trips_through_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RelayStore::open(&dir.path().join("relay.redb")).expect("open");
    let states = [
        PacketState::Created,
        PacketState::Sent,
        PacketState::Acknowledged {
            consumer_height: 3,
            depth: 6,
        },
        PacketState::ErrorAcknowledged {
            consumer_height: 3,
            reason: "too shallow".into(),
        },
        PacketState::Received { consumer_height: 4 },
        PacketState::TimedOut { resent_as: 9 },
        PacketState::Stalled {
            reason: "why".into(),
        },
    ];
    let mut packets = Vec::new();
    for (i, s) in states.iter().enumerate() {
        let mut p = packet(s.clone());
        p.record_id = aggregator::LeafHash([i as u8; 32]);
        packets.push(p);
    }
    let created = store.add_packets(packets, 4).expect("add");
    assert_eq!(created, (1..=7).collect::<Vec<_>>());
    assert_eq!(store.cursor().expect("cursor"), 4);
    let back = store.packets(0, 100).expect("read");
    let got: Vec<PacketState> = back.iter().map(|p| p.state.clone()).collect();
    assert_eq!(got, states);
    let counts = store.counts().expect("counts");
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
    // A record already carried is not added twice.
    let mut dup = packet(PacketState::Created);
    dup.record_id = aggregator::LeafHash([0; 32]);
    let again = store.add_packets(vec![dup], 5).expect("add");
    assert!(again.is_empty());
    // The oldest open packet, then a re-send of it.
    let open = store.next_open().expect("open").expect("some");
    assert_eq!(open.sequence, 1);
    let mut sent = open.clone();
    sent.state = PacketState::Sent;
    sent.proof = Some((7, 99));
    store.put_sent_packet(&sent, b"signed").expect("sent");
    assert_eq!(
        store.packet(1).expect("read"),
        Some((sent, b"signed".to_vec()))
    );
    let new = store.resend(&open, 2_000).expect("resend");
    assert_eq!(new, 8);
    let (old, _) = store.packet(1).expect("read").expect("old");
    assert_eq!(old.state, PacketState::TimedOut { resent_as: 8 });
    let (fresh, data) = store.packet(8).expect("read").expect("new");
    assert_eq!(
        (fresh.timeout_ns, fresh.proof, data.as_slice()),
        (2_000, None, &[][..])
    );
    assert_eq!(
        store.next_open().expect("open").map(|p| p.sequence),
        Some(2)
    );
}
