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

/// Counts by decoding every packet: what `counts` must agree with.
fn scanned(store: &RelayStore) -> std::collections::BTreeMap<&'static str, u64> {
    let mut out: std::collections::BTreeMap<&'static str, u64> =
        counts::STATES.into_iter().map(|s| (s, 0)).collect();
    for p in store.packets(0, usize::MAX).expect("packets") {
        *out.entry(p.state.name()).or_insert(0) += 1;
    }
    out
}

#[test]
fn counts_follow_every_write_and_are_backfilled_for_older_stores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("relay.redb");
    let store = RelayStore::open(&path).expect("open");
    let fresh: Vec<PacketRecord> = (0..5u8)
        .map(|i| PacketRecord {
            record_id: aggregator::LeafHash([i; 32]),
            ..packet(PacketState::Created)
        })
        .collect();
    store.add_packets(fresh, 1).expect("add");
    assert_eq!(store.counts().expect("counts"), scanned(&store));
    let mut p = store.packets(1, 1).expect("read").remove(0);
    p.state = PacketState::Sent;
    store.put_sent_packet(&p, b"data").expect("sent");
    p.state = PacketState::Acknowledged {
        consumer_height: 9,
        depth: 3,
    };
    store.put_packet(&p).expect("acked");
    let q = store.packets(2, 1).expect("read").remove(0);
    store.resend(&q, 5_000).expect("resend");
    let counts = store.counts().expect("counts");
    assert_eq!(counts, scanned(&store));
    assert_eq!(
        (
            counts["created"],
            counts["acknowledged"],
            counts["timed_out"]
        ),
        (4, 1, 1),
        "{counts:?}"
    );
    drop(store);

    // A store from before the counts: the tables are gone, reopening
    // counts every packet once.
    {
        let db = redb::Database::create(&path).expect("raw open");
        let txn = db.begin_write().expect("write");
        txn.delete_table(counts::COUNTS).expect("drop counts");
        txn.delete_table(redb::TableDefinition::<&str, u64>::new(
            "relay_packet_counts_meta",
        ))
        .expect("drop marker");
        txn.commit().expect("commit");
    }
    let store = RelayStore::open(&path).expect("reopen");
    assert_eq!(store.counts().expect("counts"), scanned(&store));
    assert_eq!(store.counts().expect("counts")["created"], 4);
}
