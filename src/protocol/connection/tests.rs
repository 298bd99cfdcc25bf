use super::*;
use crate::metainfo::InfoHash;
use crate::protocol::PeerId;

/// 4 pieces of 32 KiB (2 blocks each), the last one 100 bytes.
fn geo() -> PieceGeometry {
    PieceGeometry::new(32768, 32768 * 3 + 100)
}

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn blk(piece: u32, index: u32) -> BlockRef {
    geo().block(piece, index)
}

fn handshake(fast: bool, ext: bool) -> Handshake {
    Handshake {
        reserved: Reserved::default()
            .with_fast(fast)
            .with_extension_protocol(ext),
        info_hash: InfoHash([1; 20]),
        peer_id: PeerId([2; 20]),
    }
}

fn full() -> Bitfield {
    Bitfield::full(4)
}

fn drain(c: &mut Connection) -> Vec<Message> {
    std::iter::from_fn(|| c.poll_message(Duration::ZERO)).collect()
}

/// A handshaken connection with the given config, outbox drained.
fn conn_with(config: ConnectionConfig, fast: bool, ext: bool) -> Connection {
    let mut c = Connection::new(config, geo(), Duration::ZERO);
    c.on_handshake(&handshake(fast, ext), &full(), Duration::ZERO);
    drain(&mut c);
    c
}

fn conn(fast: bool) -> Connection {
    conn_with(ConnectionConfig::default(), fast, false)
}

fn msg(c: &mut Connection, m: Message) -> Result<Option<Event>, Violation> {
    c.on_message(m, &full(), Duration::ZERO)
}

fn piece_msg(b: BlockRef) -> Message {
    Message::Piece {
        piece: b.piece,
        offset: b.offset,
        data: Bytes::from(vec![0xaa; b.length as usize]),
    }
}

// ---- handshake and negotiation ----

#[test]
fn negotiates_only_what_both_sides_support() {
    let mut c = Connection::new(ConnectionConfig::default(), geo(), Duration::ZERO);
    assert!(!c.is_handshaken());
    c.on_handshake(&handshake(true, false), &full(), Duration::ZERO);
    assert!(c.is_handshaken() && c.fast() && !c.extension_protocol());

    let mut c = Connection::new(ConnectionConfig::default(), geo(), Duration::ZERO);
    c.on_handshake(&handshake(false, true), &full(), Duration::ZERO);
    assert!(!c.fast() && c.extension_protocol());

    let config = ConnectionConfig {
        reserved: Reserved::default(),
        ..ConnectionConfig::default()
    };
    let mut c = Connection::new(config, geo(), Duration::ZERO);
    c.on_handshake(&handshake(true, true), &full(), Duration::ZERO);
    assert!(!c.fast() && !c.extension_protocol());
}

fn first_messages(fast: bool, ext: bool, ours: &Bitfield) -> Vec<Message> {
    let mut c = Connection::new(ConnectionConfig::default(), geo(), Duration::ZERO);
    c.on_handshake(&handshake(fast, ext), ours, Duration::ZERO);
    drain(&mut c)
}

#[test]
fn handshake_queues_our_availability() {
    let mut some = Bitfield::new(4);
    some.set(1);
    let bits = Message::Bitfield(Bytes::from_static(&[0x40]));
    assert_eq!(first_messages(true, false, &full()), vec![Message::HaveAll]);
    assert_eq!(
        first_messages(true, false, &Bitfield::new(4)),
        vec![Message::HaveNone]
    );
    assert_eq!(first_messages(true, false, &some), vec![bits.clone()]);
    assert_eq!(
        first_messages(false, false, &full()),
        vec![Message::Bitfield(Bytes::from_static(&[0xf0]))]
    );
    assert_eq!(first_messages(false, false, &some), vec![bits]);
    assert_eq!(first_messages(false, false, &Bitfield::new(4)), vec![]);
}

#[test]
fn handshake_queues_our_extension_handshake_with_reqq() {
    let config = ConnectionConfig {
        listen_port: Some(6881),
        peer_ip: Some(std::net::Ipv4Addr::new(127, 0, 0, 2).into()),
        ..ConnectionConfig::default()
    };
    let mut c = Connection::new(config, geo(), Duration::ZERO);
    c.on_handshake(&handshake(false, true), &Bitfield::new(4), Duration::ZERO);
    let msgs = drain(&mut c);
    let [Message::Extended { id: 0, payload }] = &msgs[..] else {
        panic!("{msgs:?}");
    };
    let hs = ExtendedHandshake::parse(payload).unwrap();
    assert_eq!(hs.reqq, Some(250));
    assert_eq!(hs.port, Some(6881));
    assert_eq!(
        hs.your_ip,
        Some(std::net::Ipv4Addr::new(127, 0, 0, 2).into())
    );
    assert!(hs.client.unwrap().starts_with("seedbox"));
}

#[test]
fn our_dht_port_goes_to_peers_that_run_a_dht_node_too() {
    let with_dht = ConnectionConfig {
        dht_port: Some(7000),
        ..ConnectionConfig::default()
    };
    assert!(with_dht.handshake_reserved().supports_dht());
    assert!(!ConnectionConfig::default()
        .handshake_reserved()
        .supports_dht());
    let theirs = |dht: bool| Handshake {
        reserved: Reserved::default().with_fast(true).with_dht(dht),
        ..handshake(true, false)
    };
    let first = |config: &ConnectionConfig, dht: bool| {
        let mut c = Connection::new(config.clone(), geo(), Duration::ZERO);
        c.on_handshake(&theirs(dht), &full(), Duration::ZERO);
        drain(&mut c)
    };
    assert_eq!(
        first(&with_dht, true),
        vec![Message::HaveAll, Message::Port(7000)]
    );
    assert_eq!(first(&with_dht, false), vec![Message::HaveAll]);
    assert_eq!(
        first(&ConnectionConfig::default(), true),
        vec![Message::HaveAll]
    );
}

#[test]
fn messages_before_the_handshake_are_violations() {
    let mut c = Connection::new(ConnectionConfig::default(), geo(), Duration::ZERO);
    assert_eq!(
        msg(&mut c, Message::Interested),
        Err(Violation::BeforeHandshake("interested"))
    );
}

// ---- flags ----

#[test]
fn choke_and_interest_flags_report_changes_only() {
    let mut c = conn(false);
    assert!(c.peer_choking() && !c.peer_interested());
    assert!(c.am_choking() && !c.am_interested());
    assert_eq!(msg(&mut c, Message::Choke), Ok(None));
    assert_eq!(msg(&mut c, Message::Unchoke), Ok(Some(Event::Unchoked)));
    assert_eq!(msg(&mut c, Message::Unchoke), Ok(None));
    assert!(!c.peer_choking());
    assert_eq!(
        msg(&mut c, Message::Interested),
        Ok(Some(Event::Interested))
    );
    assert_eq!(msg(&mut c, Message::Interested), Ok(None));
    assert!(c.peer_interested());
    assert_eq!(
        msg(&mut c, Message::NotInterested),
        Ok(Some(Event::NotInterested))
    );
    assert_eq!(msg(&mut c, Message::NotInterested), Ok(None));
    assert_eq!(
        msg(&mut c, Message::Choke),
        Ok(Some(Event::Choked { dropped: vec![] }))
    );
    assert_eq!(msg(&mut c, Message::KeepAlive), Ok(None));
    assert_eq!(msg(&mut c, Message::Port(6881)), Ok(None));
}

#[test]
fn our_choke_unchoke_interest_queue_messages_on_change() {
    let mut c = conn(false);
    c.choke();
    assert_eq!(drain(&mut c), vec![]);
    c.unchoke();
    c.unchoke();
    assert!(!c.am_choking());
    assert_eq!(drain(&mut c), vec![Message::Unchoke]);
    c.choke();
    c.choke();
    assert_eq!(drain(&mut c), vec![Message::Choke]);
    c.set_interested(false);
    c.set_interested(true);
    c.set_interested(true);
    assert!(c.am_interested());
    c.set_interested(false);
    assert_eq!(
        drain(&mut c),
        vec![Message::Interested, Message::NotInterested]
    );
    assert!(c.have(3, &full()));
    assert_eq!(drain(&mut c), vec![Message::Have(3)]);
}

#[test]
fn a_peer_that_has_the_piece_is_not_told_but_sees_us_complete() {
    let mut ours = Bitfield::new(4);
    let mut c = conn(false);
    msg(&mut c, Message::Have(1)).unwrap();
    msg(&mut c, Message::Have(2)).unwrap();
    ours.set(0);
    assert!(c.have(0, &ours), "the peer lacks piece 0");
    ours.set(1);
    assert!(!c.have(1, &ours), "the peer has piece 1: suppressed");
    ours.set(3);
    assert!(c.have(3, &ours));
    ours.set(2);
    assert!(ours.is_full());
    assert!(
        c.have(2, &ours),
        "the piece that completes us is always sent"
    );
    assert_eq!(
        drain(&mut c),
        vec![Message::Have(0), Message::Have(3), Message::Have(2)]
    );
    // Opting out of suppression sends every piece.
    let config = ConnectionConfig {
        send_redundant_haves: true,
        ..ConnectionConfig::default()
    };
    let mut c = conn_with(config, false, false);
    msg(&mut c, Message::Have(1)).unwrap();
    let mut ours = Bitfield::new(4);
    ours.set(1);
    assert!(c.have(1, &ours));
    assert_eq!(drain(&mut c), vec![Message::Have(1)]);
}

// ---- piece availability ----

#[test]
fn have_before_the_handshake_is_not_sent_and_the_bitfield_covers_it() {
    let geometry = PieceGeometry::new(16384, 16384 * 8);
    let mut c = Connection::new(ConnectionConfig::default(), geometry, Duration::ZERO);
    let mut ours = Bitfield::new(8);
    ours.set(3);
    assert!(!c.have(3, &ours));
    assert_eq!(c.poll_message(Duration::ZERO), None);
    let theirs = Handshake::new(InfoHash([1; 20]), PeerId([2; 20]));
    c.on_handshake(&theirs, &ours, Duration::ZERO);
    let sent: Vec<Message> = std::iter::from_fn(|| c.poll_message(Duration::ZERO)).collect();
    assert!(
        sent.iter().all(|m| !matches!(m, Message::Have(_))),
        "{sent:?}"
    );
    assert!(
        sent.iter()
            .any(|m| matches!(m, Message::Bitfield(b) if b[0] == 0b0001_0000)),
        "{sent:?}"
    );
    ours.set(4);
    assert!(c.have(4, &ours));
    assert_eq!(c.poll_message(Duration::ZERO), Some(Message::Have(4)));
}

#[test]
fn have_sets_their_bitfield_and_is_range_checked() {
    let mut c = conn(false);
    assert_eq!(msg(&mut c, Message::Have(3)), Ok(Some(Event::Have(3))));
    assert_eq!(msg(&mut c, Message::Have(3)), Ok(None));
    assert!(c.their_have().has(3));
    assert_eq!(
        msg(&mut c, Message::Have(4)),
        Err(Violation::PieceOutOfRange {
            message: "have",
            piece: 4,
            pieces: 4
        })
    );
}

#[test]
fn bitfield_is_validated() {
    let mut c = conn(false);
    let good = Message::Bitfield(Bytes::from_static(&[0xa0]));
    assert_eq!(msg(&mut c, good), Ok(Some(Event::Availability)));
    assert_eq!(c.their_have().ones().collect::<Vec<_>>(), vec![0, 2]);

    let mut c = conn(false);
    let spare = Message::Bitfield(Bytes::from_static(&[0xf8]));
    assert_eq!(
        msg(&mut c, spare),
        Err(Violation::BadBitfield {
            bytes: 1,
            pieces: 4
        })
    );
    let mut c = conn(false);
    let long = Message::Bitfield(Bytes::from_static(&[0xf0, 0]));
    assert!(matches!(
        msg(&mut c, long),
        Err(Violation::BadBitfield { bytes: 2, .. })
    ));
    let mut c = conn(false);
    let short = Message::Bitfield(Bytes::new());
    assert!(matches!(
        msg(&mut c, short),
        Err(Violation::BadBitfield { bytes: 0, .. })
    ));
}

#[test]
fn availability_comes_once_and_before_haves() {
    let bf = || Message::Bitfield(Bytes::from_static(&[0xf0]));
    let mut c = conn(false);
    msg(&mut c, bf()).unwrap();
    assert_eq!(
        msg(&mut c, bf()),
        Err(Violation::AvailabilityRepeated("bitfield"))
    );
    let mut c = conn(false);
    msg(&mut c, Message::Have(0)).unwrap();
    assert_eq!(
        msg(&mut c, bf()),
        Err(Violation::AvailabilityRepeated("bitfield"))
    );
    let mut c = conn(true);
    msg(&mut c, Message::HaveNone).unwrap();
    assert_eq!(
        msg(&mut c, Message::HaveAll),
        Err(Violation::AvailabilityRepeated("have all"))
    );
    let mut c = conn(true);
    msg(&mut c, bf()).unwrap();
    assert_eq!(
        msg(&mut c, Message::HaveNone),
        Err(Violation::AvailabilityRepeated("have none"))
    );
    // Haves after the bitfield are fine.
    let mut c = conn(false);
    msg(&mut c, Message::Bitfield(Bytes::from_static(&[0x00]))).unwrap();
    assert_eq!(msg(&mut c, Message::Have(1)), Ok(Some(Event::Have(1))));
}

#[test]
fn have_all_and_have_none_with_fast() {
    let mut c = conn(true);
    assert_eq!(msg(&mut c, Message::HaveAll), Ok(Some(Event::Availability)));
    assert!(c.their_have().is_full());
    let mut c = conn(true);
    assert_eq!(
        msg(&mut c, Message::HaveNone),
        Ok(Some(Event::Availability))
    );
    assert_eq!(c.their_have().count(), 0);
}

#[test]
fn fast_messages_need_fast() {
    let b = blk(0, 0);
    for m in [
        Message::HaveAll,
        Message::HaveNone,
        Message::SuggestPiece(0),
        Message::RejectRequest(b),
        Message::AllowedFast(0),
    ] {
        let name = m.name();
        assert_eq!(
            msg(&mut conn(false), m),
            Err(Violation::FastNotNegotiated(name))
        );
    }
}

#[test]
fn suggest_and_allowed_fast_are_range_checked() {
    let mut c = conn(true);
    assert_eq!(
        msg(&mut c, Message::SuggestPiece(2)),
        Ok(Some(Event::Suggested(2)))
    );
    assert!(matches!(
        msg(&mut c, Message::SuggestPiece(4)),
        Err(Violation::PieceOutOfRange { piece: 4, .. })
    ));
    assert_eq!(
        msg(&mut c, Message::AllowedFast(1)),
        Ok(Some(Event::AllowedFast(1)))
    );
    assert_eq!(msg(&mut c, Message::AllowedFast(1)), Ok(None));
    assert_eq!(c.their_allowed_fast(), &[1]);
    assert!(matches!(
        msg(&mut c, Message::AllowedFast(9)),
        Err(Violation::PieceOutOfRange { piece: 9, .. })
    ));
}

#[test]
fn allowed_fast_from_the_peer_is_capped() {
    let geometry = PieceGeometry::new(16384, 16384 * 200);
    let mut c = Connection::new(ConnectionConfig::default(), geometry, Duration::ZERO);
    c.on_handshake(&handshake(true, false), &Bitfield::new(200), Duration::ZERO);
    for p in 0..200 {
        let ev = c.on_message(Message::AllowedFast(p), &Bitfield::new(200), Duration::ZERO);
        let expected = (p < MAX_THEIR_ALLOWED_FAST as u32).then_some(Event::AllowedFast(p));
        assert_eq!(ev, Ok(expected));
    }
    assert_eq!(c.their_allowed_fast().len(), MAX_THEIR_ALLOWED_FAST);
}

// ---- extension protocol ----

#[test]
fn extended_messages_need_the_extension_protocol() {
    let m = Message::Extended {
        id: 0,
        payload: Bytes::from_static(b"de"),
    };
    assert_eq!(
        msg(&mut conn(true), m),
        Err(Violation::ExtensionNotNegotiated)
    );
}

#[test]
fn extension_handshake_is_parsed_and_kept() {
    let mut c = conn_with(ConnectionConfig::default(), false, true);
    let payload = Bytes::from_static(b"d1:md6:ut_pexi7ee4:reqqi3ee");
    let ev = msg(&mut c, Message::Extended { id: 0, payload }).unwrap();
    let Some(Event::ExtendedHandshake(hs)) = ev else {
        panic!("{ev:?}");
    };
    assert_eq!(hs.id_for("ut_pex"), Some(7));
    assert_eq!(c.their_extensions().unwrap().reqq, Some(3));
    assert_eq!(c.request_capacity(), 3);

    let other = Message::Extended {
        id: 7,
        payload: Bytes::from_static(b"xyz"),
    };
    assert_eq!(
        msg(&mut c, other),
        Ok(Some(Event::Extended {
            id: 7,
            payload: Bytes::from_static(b"xyz")
        }))
    );
    let bad = Message::Extended {
        id: 0,
        payload: Bytes::from_static(b"le"),
    };
    assert!(matches!(
        msg(&mut c, bad),
        Err(Violation::BadExtendedHandshake(ExtensionError::NotADict(
            "list"
        )))
    ));
}

// ---- inbound requests (serving) ----

#[test]
fn requests_are_queued_while_unchoked_and_served_in_order() {
    let mut c = conn(false);
    c.unchoke();
    drain(&mut c);
    for b in [blk(0, 1), blk(0, 0), blk(3, 0)] {
        assert_eq!(
            msg(&mut c, Message::Request(b)),
            Ok(Some(Event::RequestQueued(b)))
        );
    }
    assert_eq!(c.queued_requests(), 3);
    assert_eq!(c.pop_request(s(1)), Some(blk(0, 1)));
    assert_eq!(c.pop_request(s(1)), Some(blk(0, 0)));
    assert_eq!(c.pop_request(s(1)), Some(blk(3, 0)));
    assert_eq!(c.pop_request(s(1)), None);
}

#[test]
fn invalid_requests_are_violations() {
    let ok = blk(0, 0);
    let cases = [
        BlockRef { length: 0, ..ok },
        BlockRef {
            length: BLOCK_SIZE + 1,
            ..ok
        },
        BlockRef {
            offset: 32768 - 100,
            length: 101,
            ..ok
        },
        BlockRef {
            piece: 3,
            offset: 0,
            length: 101,
        },
        BlockRef { piece: 4, ..ok },
        BlockRef {
            offset: u32::MAX,
            length: 16,
            ..ok
        },
    ];
    for fast in [false, true] {
        for b in cases {
            let mut c = conn(fast);
            c.unchoke();
            assert_eq!(
                msg(&mut c, Message::Request(b)),
                Err(Violation::InvalidRequest(b))
            );
        }
    }
}

#[test]
fn requests_for_pieces_we_lack() {
    let mut ours = Bitfield::new(4);
    ours.set(0);
    let b = blk(1, 0);
    let mut c = conn(false);
    c.unchoke();
    assert_eq!(
        c.on_message(Message::Request(b), &ours, Duration::ZERO),
        Err(Violation::RequestForMissingPiece(1))
    );
    let mut c = conn(true);
    c.unchoke();
    drain(&mut c);
    assert_eq!(
        c.on_message(Message::Request(b), &ours, Duration::ZERO),
        Ok(None)
    );
    assert_eq!(drain(&mut c), vec![Message::RejectRequest(b)]);
    assert_eq!(c.queued_requests(), 0);
}

#[test]
fn requests_while_choked_are_dropped_or_rejected() {
    let b = blk(2, 1);
    let mut c = conn(false);
    assert_eq!(msg(&mut c, Message::Request(b)), Ok(None));
    assert_eq!(c.queued_requests(), 0);
    assert_eq!(drain(&mut c), vec![]);

    let mut c = conn(true);
    assert_eq!(msg(&mut c, Message::Request(b)), Ok(None));
    assert_eq!(c.queued_requests(), 0);
    assert_eq!(drain(&mut c), vec![Message::RejectRequest(b)]);
}

#[test]
fn allowed_fast_pieces_are_served_while_choked() {
    let mut c = conn(true);
    assert!(c.allow_fast(2));
    assert!(c.allow_fast(2));
    assert_eq!(drain(&mut c), vec![Message::AllowedFast(2)]);
    assert_eq!(
        msg(&mut c, Message::Request(blk(2, 0))),
        Ok(Some(Event::RequestQueued(blk(2, 0))))
    );
    assert_eq!(msg(&mut c, Message::Request(blk(1, 0))), Ok(None));
    assert_eq!(drain(&mut c), vec![Message::RejectRequest(blk(1, 0))]);
    assert!(!c.allow_fast(4), "out of range");
    assert!(!conn(false).allow_fast(1), "needs Fast");
}

#[test]
fn a_fast_peer_flooding_without_reading_its_rejects_is_dropped() {
    let mut c = conn(true);
    // Choked: every request is refused with a reject that piles up in the outbox.
    for i in 0..250 {
        let b = blk(i % 4, 0);
        assert_eq!(msg(&mut c, Message::Request(b)), Ok(None), "request {i}");
    }
    assert_eq!(c.pending_messages(), 250);
    assert_eq!(
        msg(&mut c, Message::Request(blk(0, 0))),
        Err(Violation::RequestFlood(250))
    );
}

#[test]
fn a_fast_peer_reading_its_rejects_may_keep_asking() {
    let mut c = conn(true);
    for i in 0..10_000u32 {
        assert_eq!(msg(&mut c, Message::Request(blk(i % 4, 0))), Ok(None));
        assert!(matches!(
            c.poll_message(Duration::ZERO),
            Some(Message::RejectRequest(_))
        ));
    }
}

#[test]
fn duplicate_requests_are_queued_once() {
    let mut c = conn(false);
    c.unchoke();
    msg(&mut c, Message::Request(blk(0, 0))).unwrap();
    assert_eq!(msg(&mut c, Message::Request(blk(0, 0))), Ok(None));
    assert_eq!(c.queued_requests(), 1);
}

#[test]
fn request_queue_is_bounded_by_our_reqq() {
    let config = ConnectionConfig {
        max_inbound_requests: 2,
        ..ConnectionConfig::default()
    };
    let mut c = conn_with(config.clone(), false, false);
    c.unchoke();
    msg(&mut c, Message::Request(blk(0, 0))).unwrap();
    msg(&mut c, Message::Request(blk(0, 1))).unwrap();
    assert_eq!(
        msg(&mut c, Message::Request(blk(1, 0))),
        Err(Violation::RequestFlood(2))
    );

    let mut c = conn_with(config, true, false);
    c.unchoke();
    msg(&mut c, Message::Request(blk(0, 0))).unwrap();
    msg(&mut c, Message::Request(blk(0, 1))).unwrap();
    drain(&mut c);
    assert_eq!(msg(&mut c, Message::Request(blk(1, 0))), Ok(None));
    assert_eq!(drain(&mut c), vec![Message::RejectRequest(blk(1, 0))]);
    assert_eq!(c.queued_requests(), 2);
    // Serving one makes room again.
    c.pop_request(Duration::ZERO);
    assert!(matches!(
        msg(&mut c, Message::Request(blk(1, 0))),
        Ok(Some(Event::RequestQueued(_)))
    ));
}

#[test]
fn cancel_removes_a_queued_request() {
    let mut c = conn(false);
    c.unchoke();
    msg(&mut c, Message::Request(blk(0, 0))).unwrap();
    msg(&mut c, Message::Request(blk(0, 1))).unwrap();
    drain(&mut c);
    assert_eq!(
        msg(&mut c, Message::Cancel(blk(0, 0))),
        Ok(Some(Event::RequestCancelled(blk(0, 0))))
    );
    assert_eq!(msg(&mut c, Message::Cancel(blk(0, 0))), Ok(None));
    assert_eq!(drain(&mut c), vec![]);
    assert_eq!(c.pop_request(Duration::ZERO), Some(blk(0, 1)));
    assert_eq!(c.pop_request(Duration::ZERO), None);
}

#[test]
fn cancel_with_fast_is_answered_by_a_reject() {
    let mut c = conn(true);
    c.unchoke();
    msg(&mut c, Message::Request(blk(0, 0))).unwrap();
    drain(&mut c);
    assert_eq!(
        msg(&mut c, Message::Cancel(blk(0, 0))),
        Ok(Some(Event::RequestCancelled(blk(0, 0))))
    );
    assert_eq!(drain(&mut c), vec![Message::RejectRequest(blk(0, 0))]);
    // A cancel for something already served gets no answer: the piece was the answer.
    assert_eq!(msg(&mut c, Message::Cancel(blk(1, 0))), Ok(None));
    assert_eq!(drain(&mut c), vec![]);
}

#[test]
fn choking_drops_the_queue_without_fast() {
    let mut c = conn(false);
    c.unchoke();
    msg(&mut c, Message::Request(blk(0, 0))).unwrap();
    msg(&mut c, Message::Request(blk(0, 1))).unwrap();
    drain(&mut c);
    c.choke();
    assert_eq!(c.queued_requests(), 0);
    assert_eq!(drain(&mut c), vec![Message::Choke]);
}

#[test]
fn choking_rejects_the_queue_with_fast_but_keeps_allowed_fast() {
    let mut c = conn(true);
    c.allow_fast(3);
    c.unchoke();
    for b in [blk(0, 0), blk(3, 0), blk(0, 1)] {
        msg(&mut c, Message::Request(b)).unwrap();
    }
    drain(&mut c);
    c.choke();
    assert_eq!(
        drain(&mut c),
        vec![
            Message::Choke,
            Message::RejectRequest(blk(0, 0)),
            Message::RejectRequest(blk(0, 1)),
        ]
    );
    assert_eq!(c.pop_request(Duration::ZERO), Some(blk(3, 0)));
}

// ---- outbound requests (downloading) ----

/// A connection where the peer has pieces 0..=2 and has unchoked us.
fn leeching(fast: bool) -> Connection {
    let mut c = conn(fast);
    msg(&mut c, Message::Bitfield(Bytes::from_static(&[0xe0]))).unwrap();
    msg(&mut c, Message::Unchoke).unwrap();
    c
}

#[test]
fn request_checks_the_peer_and_the_block() {
    let mut c = Connection::new(ConnectionConfig::default(), geo(), Duration::ZERO);
    assert_eq!(
        c.request(blk(0, 0), Duration::ZERO),
        Err(RequestError::NoHandshake)
    );
    let mut c = conn(false);
    msg(&mut c, Message::Have(0)).unwrap();
    assert_eq!(
        c.request(blk(0, 0), Duration::ZERO),
        Err(RequestError::Choked)
    );
    let mut c = leeching(false);
    assert_eq!(
        c.request(blk(3, 0), Duration::ZERO),
        Err(RequestError::PeerLacksPiece(3))
    );
    let bad = BlockRef {
        length: BLOCK_SIZE + 1,
        ..blk(0, 0)
    };
    assert_eq!(
        c.request(bad, Duration::ZERO),
        Err(RequestError::InvalidBlock)
    );
    assert_eq!(c.request(blk(0, 0), s(5)), Ok(()));
    assert_eq!(
        c.request(blk(0, 0), s(5)),
        Err(RequestError::AlreadyRequested)
    );
    assert_eq!(drain(&mut c), vec![Message::Request(blk(0, 0))]);
    assert_eq!(c.outstanding(), &[(blk(0, 0), s(5))]);
}

#[test]
fn request_pipeline_is_bounded() {
    let config = ConnectionConfig {
        max_outbound_requests: 2,
        ..ConnectionConfig::default()
    };
    let mut c = conn_with(config, false, false);
    msg(&mut c, Message::Bitfield(Bytes::from_static(&[0xe0]))).unwrap();
    msg(&mut c, Message::Unchoke).unwrap();
    assert_eq!(c.request_capacity(), 2);
    c.request(blk(0, 0), Duration::ZERO).unwrap();
    c.request(blk(0, 1), Duration::ZERO).unwrap();
    assert_eq!(c.request_capacity(), 0);
    assert_eq!(
        c.request(blk(1, 0), Duration::ZERO),
        Err(RequestError::PipelineFull)
    );
    msg(&mut c, piece_msg(blk(0, 0))).unwrap();
    assert_eq!(c.request_capacity(), 1);
}

#[test]
fn allowed_fast_lets_us_request_while_choked() {
    let mut c = conn(true);
    msg(&mut c, Message::HaveAll).unwrap();
    assert_eq!(
        c.request(blk(1, 0), Duration::ZERO),
        Err(RequestError::Choked)
    );
    msg(&mut c, Message::AllowedFast(1)).unwrap();
    assert_eq!(c.request(blk(1, 0), Duration::ZERO), Ok(()));
    assert_eq!(
        c.request(blk(2, 0), Duration::ZERO),
        Err(RequestError::Choked)
    );
}

#[test]
fn blocks_are_matched_against_our_requests() {
    let mut c = leeching(false);
    c.request(blk(0, 0), Duration::ZERO).unwrap();
    let data = Bytes::from(vec![7u8; BLOCK_SIZE as usize]);
    let m = Message::Piece {
        piece: 0,
        offset: 0,
        data: data.clone(),
    };
    assert_eq!(
        msg(&mut c, m.clone()),
        Ok(Some(Event::Block {
            block: blk(0, 0),
            data
        }))
    );
    assert!(c.outstanding().is_empty());
    // The same block again, and a valid block never asked for: counted, dropped.
    assert_eq!(msg(&mut c, m), Ok(None));
    assert_eq!(msg(&mut c, piece_msg(blk(2, 1))), Ok(None));
    assert_eq!(c.unexpected_blocks(), 2);
}

#[test]
fn a_block_of_the_wrong_length_does_not_match() {
    let mut c = leeching(false);
    c.request(blk(0, 0), Duration::ZERO).unwrap();
    let short = BlockRef {
        length: 100,
        ..blk(0, 0)
    };
    assert_eq!(msg(&mut c, piece_msg(short)), Ok(None));
    assert_eq!(c.unexpected_blocks(), 1);
    assert_eq!(c.outstanding().len(), 1);
}

#[test]
fn invalid_blocks_are_violations() {
    let mut c = leeching(false);
    for b in [
        BlockRef {
            length: 0,
            ..blk(0, 0)
        },
        BlockRef {
            length: 200,
            ..blk(3, 0)
        },
        BlockRef {
            piece: 4,
            ..blk(0, 0)
        },
        BlockRef {
            length: BLOCK_SIZE * 2,
            ..blk(0, 0)
        },
    ] {
        assert_eq!(msg(&mut c, piece_msg(b)), Err(Violation::InvalidBlock(b)));
    }
}

#[test]
fn being_choked_without_fast_drops_our_requests() {
    let mut c = leeching(false);
    c.request(blk(0, 0), Duration::ZERO).unwrap();
    c.request(blk(1, 0), Duration::ZERO).unwrap();
    assert_eq!(
        msg(&mut c, Message::Choke),
        Ok(Some(Event::Choked {
            dropped: vec![blk(0, 0), blk(1, 0)]
        }))
    );
    assert!(c.outstanding().is_empty());
    assert!(c.peer_choking());
}

#[test]
fn being_choked_with_fast_keeps_requests_until_rejected() {
    let mut c = leeching(true);
    c.request(blk(0, 0), Duration::ZERO).unwrap();
    c.request(blk(1, 0), Duration::ZERO).unwrap();
    assert_eq!(
        msg(&mut c, Message::Choke),
        Ok(Some(Event::Choked { dropped: vec![] }))
    );
    assert_eq!(c.outstanding().len(), 2);
    assert_eq!(
        msg(&mut c, Message::RejectRequest(blk(0, 0))),
        Ok(Some(Event::Rejected(blk(0, 0))))
    );
    assert_eq!(msg(&mut c, Message::RejectRequest(blk(0, 0))), Ok(None));
    assert_eq!(c.outstanding(), &[(blk(1, 0), Duration::ZERO)]);
}

#[test]
fn cancel_withdraws_an_outstanding_request() {
    let mut c = leeching(true);
    c.request(blk(0, 0), Duration::ZERO).unwrap();
    drain(&mut c);
    assert!(c.cancel(blk(0, 0)));
    assert!(!c.cancel(blk(0, 0)));
    assert_eq!(drain(&mut c), vec![Message::Cancel(blk(0, 0))]);
    assert_eq!(msg(&mut c, piece_msg(blk(0, 0))), Ok(None));
    assert_eq!(c.unexpected_blocks(), 1);
}

// ---- timers ----

#[test]
fn handshake_timeout() {
    let mut c = Connection::new(ConnectionConfig::default(), geo(), s(100));
    assert_eq!(c.next_deadline(), s(120));
    assert_eq!(c.poll_timeout(s(119)), None);
    assert_eq!(c.poll_timeout(s(120)), Some(Timeout::Handshake));
    let mut c = Connection::new(ConnectionConfig::default(), geo(), s(100));
    c.on_handshake(&handshake(false, false), &full(), s(110));
    assert_eq!(c.poll_timeout(s(130)), None);
}

#[test]
fn idle_timeout_counts_from_the_last_message_received() {
    let mut c = Connection::new(ConnectionConfig::default(), geo(), Duration::ZERO);
    c.on_handshake(&handshake(false, false), &full(), s(10));
    c.on_message(Message::KeepAlive, &full(), s(100)).unwrap();
    // Keep our side busy so only the idle timer matters.
    c.have(0, &Bitfield::new(4));
    assert_eq!(c.poll_timeout(s(279)), None);
    assert_eq!(c.poll_timeout(s(280)), Some(Timeout::Idle));
}

#[test]
fn keepalive_is_queued_when_we_have_been_silent() {
    let mut c = Connection::new(ConnectionConfig::default(), geo(), Duration::ZERO);
    c.on_handshake(&handshake(false, false), &full(), Duration::ZERO);
    assert!(c.poll_message(s(10)).is_some()); // our bitfield, sent at 10 s
    assert_eq!(c.next_deadline(), s(100));
    assert_eq!(c.poll_timeout(s(99)), None);
    assert_eq!(c.pending_messages(), 0);
    assert_eq!(c.poll_timeout(s(100)), None);
    assert_eq!(c.poll_timeout(s(101)), None);
    assert_eq!(c.pending_messages(), 1, "one keep-alive, not two");
    assert_eq!(c.poll_message(s(101)), Some(Message::KeepAlive));
    assert_eq!(c.next_deadline(), s(180), "idle deadline comes first now");
    // Serving a block counts as sending.
    c.on_message(Message::KeepAlive, &full(), s(150)).unwrap();
    c.unchoke();
    c.poll_message(s(150));
    c.on_message(Message::Request(blk(0, 0)), &full(), s(150))
        .unwrap();
    assert_eq!(c.pop_request(s(200)), Some(blk(0, 0)));
    assert_eq!(c.poll_timeout(s(289)), None);
    assert_eq!(c.pending_messages(), 0);
    assert_eq!(c.poll_timeout(s(290)), None);
    assert_eq!(c.pending_messages(), 1);
}

#[test]
fn violations_name_the_problem() {
    assert_eq!(
        Violation::PieceOutOfRange {
            message: "have",
            piece: 9,
            pieces: 4
        }
        .to_string(),
        "have for piece 9, but the torrent has 4 pieces"
    );
    assert_eq!(
        Violation::InvalidRequest(blk(0, 0)).to_string(),
        "invalid request: piece 0 offset 0 length 16384"
    );
    assert_eq!(
        Violation::RequestFlood(250).to_string(),
        "request queue overflow: more than 250 outstanding requests"
    );
}

// ---- random drive: never panics, invariants hold ----

mod drive {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        Receive(Message),
        Choke,
        Unchoke,
        Interested(bool),
        Request(BlockRef),
        Cancel(BlockRef),
        Pop,
        AllowFast(u32),
        Tick(u64),
    }

    fn arb_block() -> impl Strategy<Value = BlockRef> {
        prop_oneof![
            (0u32..5, 0u32..3).prop_map(|(p, i)| geo().block(p, i)),
            (0u32..6, 0u32..40000, 0u32..20000).prop_map(|(piece, offset, length)| BlockRef {
                piece,
                offset,
                length
            }),
        ]
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            Just(Message::KeepAlive),
            Just(Message::Choke),
            Just(Message::Unchoke),
            Just(Message::Interested),
            Just(Message::NotInterested),
            Just(Message::HaveAll),
            Just(Message::HaveNone),
            (0u32..6).prop_map(Message::Have),
            (0u32..6).prop_map(Message::SuggestPiece),
            (0u32..6).prop_map(Message::AllowedFast),
            proptest::collection::vec(any::<u8>(), 0..3)
                .prop_map(|b| Message::Bitfield(Bytes::from(b))),
            arb_block().prop_map(Message::Request),
            arb_block().prop_map(Message::Cancel),
            arb_block().prop_map(Message::RejectRequest),
            arb_block().prop_map(|b| Message::Piece {
                piece: b.piece,
                offset: b.offset,
                data: Bytes::from(vec![0u8; b.length.min(20000) as usize]),
            }),
            (0u8..3, proptest::collection::vec(any::<u8>(), 0..20)).prop_map(|(id, p)| {
                Message::Extended {
                    id,
                    payload: Bytes::from(p),
                }
            }),
        ]
    }

    fn arb_step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => arb_message().prop_map(Step::Receive),
            1 => Just(Step::Choke),
            1 => Just(Step::Unchoke),
            1 => any::<bool>().prop_map(Step::Interested),
            2 => arb_block().prop_map(Step::Request),
            1 => arb_block().prop_map(Step::Cancel),
            2 => Just(Step::Pop),
            1 => (0u32..6).prop_map(Step::AllowFast),
            1 => (0u64..100).prop_map(Step::Tick),
        ]
    }

    proptest! {
        #[test]
        fn random_sessions_never_panic_and_keep_limits(
            fast in any::<bool>(),
            ext in any::<bool>(),
            have in 0u8..16,
            steps in proptest::collection::vec(arb_step(), 0..60),
        ) {
            let config = ConnectionConfig {
                max_inbound_requests: 3,
                max_outbound_requests: 4,
                ..ConnectionConfig::default()
            };
            let ours = Bitfield::from_bytes(&[have << 4], 4).unwrap();
            let mut c = Connection::new(config, geo(), Duration::ZERO);
            c.on_handshake(&handshake(fast, ext), &ours, Duration::ZERO);
            let mut now = Duration::ZERO;
            for step in steps {
                match step {
                    Step::Receive(m) => {
                        let fast_msg = m.is_fast_extension();
                        match c.on_message(m, &ours, now) {
                            Ok(_) => prop_assert!(fast || !fast_msg),
                            Err(_) => break,
                        }
                    }
                    Step::Choke => c.choke(),
                    Step::Unchoke => c.unchoke(),
                    Step::Interested(i) => c.set_interested(i),
                    Step::Request(b) => {
                        if c.request(b, now).is_ok() {
                            prop_assert!(c.their_have().has(b.piece));
                        }
                    }
                    Step::Cancel(b) => {
                        c.cancel(b);
                    }
                    Step::Pop => {
                        if let Some(b) = c.pop_request(now) {
                            prop_assert!(ours.has(b.piece));
                            prop_assert!(geo().is_valid_request(b, BLOCK_SIZE));
                        }
                    }
                    Step::AllowFast(p) => {
                        c.allow_fast(p);
                    }
                    Step::Tick(secs) => {
                        now += Duration::from_secs(secs);
                        let _ = c.poll_timeout(now);
                    }
                }
                prop_assert!(c.queued_requests() <= 3);
                prop_assert!(c.outstanding().len() <= 4);
                prop_assert_eq!(c.their_have().len(), 4);
                while let Some(m) = c.poll_message(now) {
                    prop_assert!(fast || !m.is_fast_extension(), "sent {:?} without Fast", m);
                    let extended = matches!(m, Message::Extended { .. });
                    prop_assert!(ext || !extended, "sent {:?} without BEP 10", m);
                }
            }
        }
    }
}

// ---- BEP 9: serving the info dictionary ----

fn serving(metadata_len: usize) -> (Connection, Bytes) {
    let metadata = Bytes::from((0..metadata_len).map(|i| i as u8).collect::<Vec<_>>());
    let config = ConnectionConfig {
        metadata: Some(metadata.clone()),
        ..ConnectionConfig::default()
    };
    let mut c = Connection::new(config, geo(), Duration::ZERO);
    c.on_handshake(&handshake(true, true), &full(), Duration::ZERO);
    let msgs = drain(&mut c);
    let hs = msgs
        .iter()
        .find_map(|m| match m {
            Message::Extended { id: 0, payload } => {
                Some(ExtendedHandshake::parse(payload).unwrap())
            }
            _ => None,
        })
        .expect("our extension handshake");
    assert_eq!(
        hs.id_for(ut_metadata::UT_METADATA),
        Some(ut_metadata::OUR_UT_METADATA_ID)
    );
    assert_eq!(hs.metadata_size, Some(metadata_len as u64));
    let theirs = Message::Extended {
        id: 0,
        payload: Bytes::from_static(b"d1:md11:ut_metadatai7eee"),
    };
    assert!(matches!(
        msg(&mut c, theirs),
        Ok(Some(Event::ExtendedHandshake(_)))
    ));
    (c, metadata)
}

fn metadata_request(piece: u32) -> Message {
    Message::Extended {
        id: ut_metadata::OUR_UT_METADATA_ID,
        payload: Bytes::from(MetadataMessage::Request { piece }.encode()),
    }
}

fn metadata_replies(c: &mut Connection) -> Vec<MetadataMessage> {
    drain(c)
        .into_iter()
        .map(|m| match m {
            Message::Extended { id: 7, payload } => ut_metadata::parse(&payload).unwrap(),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

#[test]
fn metadata_requests_are_answered_in_16_kib_pieces_and_rejected_past_the_end() {
    let (mut c, metadata) = serving(40_000);
    for piece in 0..4 {
        assert_eq!(msg(&mut c, metadata_request(piece)), Ok(None));
    }
    let replies = metadata_replies(&mut c);
    let mut got = Vec::new();
    for (i, r) in replies[..3].iter().enumerate() {
        let MetadataMessage::Data {
            piece,
            total_size,
            data,
        } = r
        else {
            panic!("{r:?}");
        };
        assert_eq!((*piece, *total_size), (i as u32, 40_000));
        got.extend_from_slice(data);
    }
    assert_eq!(got, metadata.to_vec());
    assert_eq!(replies[3], MetadataMessage::Reject { piece: 3 });
}

#[test]
fn a_metadata_request_flood_is_rejected_then_a_violation() {
    let (mut c, _) = serving(100);
    // 1 piece: 4 * 1 + 8 answered, then rejects up to reqq (250), then a violation.
    let mut violation = None;
    for i in 0..1000u32 {
        match msg(&mut c, metadata_request(0)) {
            Ok(_) => {}
            Err(v) => {
                violation = Some((i, v));
                break;
            }
        }
    }
    let (i, v) = violation.expect("a flood is a violation");
    assert_eq!(i, 12 + 250);
    assert!(matches!(v, Violation::MetadataFlood(_)));
    let replies = metadata_replies(&mut c);
    assert!(replies[..12]
        .iter()
        .all(|r| matches!(r, MetadataMessage::Data { .. })));
    assert!(replies[12..]
        .iter()
        .all(|r| matches!(r, MetadataMessage::Reject { .. })));
}

#[test]
fn malformed_metadata_messages_are_violations_and_unserved_torrents_pass_them_on() {
    let (mut c, _) = serving(100);
    let junk = Message::Extended {
        id: ut_metadata::OUR_UT_METADATA_ID,
        payload: Bytes::from_static(b"d8:msg_typei9ee"),
    };
    assert!(matches!(
        msg(&mut c, junk.clone()),
        Err(Violation::BadMetadataMessage(_))
    ));
    // Without metadata, the id is not ours to interpret: the caller gets it.
    let mut plain = conn_with(ConnectionConfig::default(), true, true);
    assert!(matches!(
        msg(&mut plain, junk),
        Ok(Some(Event::Extended { .. }))
    ));
}

// ---- BEP 11: peer exchange ----

/// A connection with PEX on (`pex`), its extension handshake checked, the peer's (`theirs`)
/// processed.
fn pex_conn(pex: bool, theirs: &'static [u8]) -> (Connection, ExtendedHandshake) {
    let config = ConnectionConfig {
        pex,
        ..ConnectionConfig::default()
    };
    let mut c = Connection::new(config, geo(), Duration::ZERO);
    c.on_handshake(&handshake(true, true), &full(), Duration::ZERO);
    let hs = drain(&mut c)
        .iter()
        .find_map(|m| match m {
            Message::Extended { id: 0, payload } => {
                Some(ExtendedHandshake::parse(payload).unwrap())
            }
            _ => None,
        })
        .expect("our extension handshake");
    let theirs = Message::Extended {
        id: 0,
        payload: Bytes::from_static(theirs),
    };
    assert!(matches!(
        msg(&mut c, theirs),
        Ok(Some(Event::ExtendedHandshake(_)))
    ));
    (c, hs)
}

fn pex_from_peer(added: &[&str]) -> Message {
    let m = pex::PexMessage {
        added: added
            .iter()
            .map(|a| pex::PexPeer {
                addr: a.parse().unwrap(),
                flags: pex::flags::SEED,
            })
            .collect(),
        dropped: Vec::new(),
    };
    Message::Extended {
        id: OUR_UT_PEX_ID,
        payload: Bytes::from(m.encode()),
    }
}

#[test]
fn pex_is_advertised_only_when_on_and_its_messages_become_events() {
    let (_, hs) = pex_conn(false, b"d1:md6:ut_pexi5eee");
    assert_eq!(hs.id_for(pex::UT_PEX), None, "off: not advertised");
    let (mut c, hs) = pex_conn(true, b"d1:md6:ut_pexi5eee");
    assert_eq!(hs.id_for(pex::UT_PEX), Some(OUR_UT_PEX_ID));
    let Ok(Some(Event::Pex(p))) = msg(&mut c, pex_from_peer(&["10.0.0.1:6881"])) else {
        panic!("a PEX event");
    };
    assert_eq!(p.message.added[0].addr, "10.0.0.1:6881".parse().unwrap());
    // Off (a private torrent): the id is not ours, the caller sees a plain extended message.
    let (mut off, _) = pex_conn(false, b"d1:md6:ut_pexi5eee");
    assert!(matches!(
        msg(&mut off, pex_from_peer(&["10.0.0.1:6881"])),
        Ok(Some(Event::Extended { .. }))
    ));
}

#[test]
fn pex_floods_and_junk_are_violations() {
    let (mut c, _) = pex_conn(true, b"d1:md6:ut_pexi5eee");
    for _ in 0..pex::MAX_RECEIVED_PER_INTERVAL {
        assert!(msg(&mut c, pex_from_peer(&["10.0.0.1:1"])).is_ok());
    }
    assert_eq!(
        msg(&mut c, pex_from_peer(&["10.0.0.1:1"])),
        Err(Violation::PexFlood)
    );
    let (mut c, _) = pex_conn(true, b"d1:md6:ut_pexi5eee");
    let junk = Message::Extended {
        id: OUR_UT_PEX_ID,
        payload: Bytes::from_static(b"d5:added5:abcdee"),
    };
    assert!(matches!(msg(&mut c, junk), Err(Violation::BadPex(_))));
}

#[test]
fn pex_goes_out_under_their_id_once_due_and_never_to_a_peer_without_it() {
    let mut swarm = PexSwarm::new();
    swarm.join("10.0.0.1:1".parse().unwrap(), 0);
    swarm.join("10.0.0.2:2".parse().unwrap(), 0);
    let (mut c, _) = pex_conn(true, b"d1:md6:ut_pexi5eee");
    assert_eq!(c.pex_due(), Some(PEX_FIRST_AFTER));
    assert!(!c.poll_pex(s(1), &mut swarm, None), "not due yet");
    assert!(c.poll_pex(PEX_FIRST_AFTER, &mut swarm, None));
    let [Message::Extended { id: 5, payload }] = &drain(&mut c)[..] else {
        panic!("one ut_pex message under the peer's id");
    };
    assert_eq!(
        pex::PexMessage::parse(payload).unwrap().message.added.len(),
        2
    );
    assert!(!c.poll_pex(s(30), &mut swarm, None), "one a minute");
    let (mut no, _) = pex_conn(true, b"d1:md11:ut_metadatai3eee");
    assert_eq!(no.pex_due(), None);
    assert!(!no.poll_pex(s(100), &mut swarm, None));
    assert!(drain(&mut no).is_empty());
}
