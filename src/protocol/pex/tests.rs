use super::*;

fn v4(a: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, a)), port)
}

fn v6(a: u16, port: u16) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, a)),
        port,
    )
}

fn peer(addr: SocketAddr, flags: u8) -> PexPeer {
    PexPeer { addr, flags }
}

const SECS: fn(u64) -> Duration = Duration::from_secs;

#[test]
fn encodes_compact_lists_with_matching_flags() {
    let msg = PexMessage {
        added: vec![
            peer(v4(1, 6881), flags::SEED),
            peer(v6(2, 51413), flags::UTP),
        ],
        dropped: vec![v4(3, 80)],
    };
    let bytes = msg.encode();
    let want: &[u8] = b"d5:added6:\x0a\x00\x00\x01\x1a\xe17:added.f1:\x02\
6:added618:\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\xc8\xd5\
8:added6.f1:\x04\
7:dropped6:\x0a\x00\x00\x03\x00\x50\
8:dropped60:e";
    assert_eq!(bytes, want);
    let parsed = PexMessage::parse(&bytes).unwrap();
    assert_eq!(parsed.message, msg);
    assert_eq!(parsed.ignored, 0);
}

#[test]
fn parses_a_libtorrent_style_message_and_tolerates_missing_flags() {
    // added with no added.f: flags 0; unknown keys ignored; port 0 skipped.
    let payload = b"d5:added12:\x7f\x00\x00\x01\x1a\xe1\x7f\x00\x00\x02\x00\x001:xi1e7:dropped0:e";
    let p = PexMessage::parse(payload).unwrap();
    assert_eq!(
        p.message.added,
        vec![peer("127.0.0.1:6881".parse().unwrap(), 0)]
    );
    assert!(p.message.dropped.is_empty());
    assert_eq!(
        PexMessage::parse(b"de").unwrap().message,
        PexMessage::default()
    );
}

#[test]
fn bad_messages_are_errors_naming_the_key() {
    let err = |p: &[u8]| PexMessage::parse(p).unwrap_err().to_string();
    assert!(err(b"d5:added").contains("not valid bencode"));
    assert_eq!(err(b"le"), "ut_pex message is a list, not a dictionary");
    assert!(err(b"d5:added5:abcdee").contains("\"added\": 5 bytes is not a multiple of 6"));
    assert!(err(b"d6:added66:abcdefe").contains("\"added6\""));
    assert!(err(b"d7:droppedi1ee").contains("\"dropped\": expected a byte string"));
}

/// A message of `n` IPv4 peers added and `n` dropped.
fn big_message(n: usize) -> Vec<u8> {
    let added = (0..n)
        .map(|i| {
            peer(
                SocketAddr::new(IpAddr::V4(Ipv4Addr::from(i as u32 + 1)), 1000),
                0,
            )
        })
        .collect();
    let dropped = (0..n)
        .map(|i| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(i as u32 + 1)), 2000))
        .collect();
    PexMessage { added, dropped }.encode()
}

#[test]
fn ten_thousand_entries_are_capped_and_the_rest_ignored() {
    let bytes = big_message(10_000);
    let p = PexMessage::parse(&bytes).unwrap();
    assert_eq!(p.message.added.len(), MAX_PARSED_ENTRIES);
    assert_eq!(p.message.dropped.len(), MAX_PARSED_ENTRIES);
    assert_eq!(p.ignored, 2 * (10_000 - MAX_PARSED_ENTRIES));
    assert_eq!(p.message.added[0].addr, "0.0.0.1:1000".parse().unwrap());
}

#[test]
fn the_first_message_lists_the_others_and_rounds_send_diffs() {
    let mut swarm = PexSwarm::new();
    let (a, b, c) = (v4(1, 1), v4(2, 2), v6(3, 3));
    swarm.join(a, 0);
    swarm.join(b, flags::SEED);
    let mut to_a = PexSchedule::new(SECS(0), SECS(2));
    assert_eq!(to_a.poll(SECS(1), &mut swarm, Some(a)), None, "not yet due");
    let first = to_a.poll(SECS(2), &mut swarm, Some(a)).unwrap();
    let first = PexMessage::parse(&first).unwrap().message;
    assert_eq!(first.added, vec![peer(b, flags::SEED)], "not a itself");
    // Nothing changed: nothing is sent at the next round.
    assert_eq!(to_a.poll(SECS(70), &mut swarm, Some(a)), None);
    swarm.join(c, flags::UTP);
    swarm.leave(b);
    // Due at the next round, a minute after the last.
    let at = to_a.next_at();
    assert!(at > SECS(70) && at <= SECS(132), "{at:?}");
    assert_eq!(to_a.poll(at - SECS(1), &mut swarm, Some(a)), None);
    let diff = PexMessage::parse(&to_a.poll(at, &mut swarm, Some(a)).unwrap())
        .unwrap()
        .message;
    assert_eq!(diff.added, vec![peer(c, flags::UTP)]);
    assert_eq!(diff.dropped, vec![b]);
    // Never two messages within a minute.
    let next = to_a.next_at();
    assert!(next >= at + PEX_INTERVAL);
}

#[test]
fn flags_learned_later_reach_first_messages() {
    let mut swarm = PexSwarm::new();
    let (a, b) = (v4(1, 1), v4(2, 2));
    swarm.join(a, 0);
    swarm.join(b, 0);
    swarm.add_flags(a, flags::SEED);
    swarm.add_flags(v4(9, 9), flags::SEED);
    assert_eq!(swarm.len(), 2, "no flags for a peer not connected");
    let first = swarm.first_message(Some(b)).unwrap();
    let first = PexMessage::parse(&first).unwrap().message;
    assert_eq!(first.added, vec![peer(a, flags::SEED)]);
}

#[test]
fn a_peer_alone_gets_no_message() {
    let mut swarm = PexSwarm::new();
    let a = v4(1, 1);
    swarm.join(a, 0);
    let mut s = PexSchedule::new(SECS(0), SECS(0));
    assert_eq!(s.poll(SECS(0), &mut swarm, Some(a)), None);
}

#[test]
fn a_round_carries_at_most_fifty_each_way_and_the_rest_follows() {
    let mut swarm = PexSwarm::new();
    for i in 0..120u16 {
        swarm.join(v4((i % 250) as u8, 1000 + i), 0);
    }
    let mut s = PexSchedule::new(SECS(0), SECS(0));
    let first = PexMessage::parse(&s.poll(SECS(0), &mut swarm, None).unwrap()).unwrap();
    assert_eq!(first.message.added.len(), MAX_SENT_ENTRIES);
    let mut seen = 0;
    let mut now = SECS(0);
    for _ in 0..4 {
        now = s.next_at();
        if let Some(m) = s.poll(now, &mut swarm, None) {
            let m = PexMessage::parse(&m).unwrap().message;
            assert!(m.added.len() <= MAX_SENT_ENTRIES);
            seen += m.added.len();
        }
    }
    assert!(now >= SECS(60 * 3));
    // Rounds 2 and 3 carry the 70 the first round could not.
    assert_eq!(seen, 70, "50 in round 1, then 50 and 20");
}

#[test]
fn a_peer_connected_twice_stays_until_both_leave() {
    let mut swarm = PexSwarm::new();
    swarm.join(v4(1, 1), 0);
    swarm.join(v4(1, 1), flags::SEED);
    swarm.leave(v4(1, 1));
    assert_eq!(swarm.len(), 1);
    swarm.leave(v4(1, 1));
    assert!(swarm.is_empty());
    swarm.leave(v4(1, 1));
    assert!(swarm.is_empty());
}

#[test]
fn a_sixth_message_within_a_minute_is_a_flood() {
    let mut s = PexSchedule::new(SECS(0), SECS(0));
    for i in 0..5 {
        assert!(s.on_received(SECS(i)));
    }
    assert!(!s.on_received(SECS(10)));
    // A minute after the oldest, one more is fine.
    assert!(s.on_received(SECS(60)));
}

#[test]
fn self_and_junk_addresses_are_not_dialled() {
    let ours = [
        "0.0.0.0:6881".parse().unwrap(),
        "192.0.2.7:7000".parse().unwrap(),
    ];
    assert!(!is_dialable("127.0.0.1:6881".parse().unwrap(), &ours));
    assert!(!is_dialable("192.0.2.7:7000".parse().unwrap(), &ours));
    assert!(!is_dialable("10.0.0.1:0".parse().unwrap(), &ours));
    assert!(!is_dialable("0.0.0.0:80".parse().unwrap(), &ours));
    assert!(!is_dialable("224.0.0.1:80".parse().unwrap(), &ours));
    assert!(!is_dialable("255.255.255.255:80".parse().unwrap(), &ours));
    assert!(is_dialable("127.0.0.1:6882".parse().unwrap(), &ours));
    assert!(is_dialable("192.0.2.7:6881".parse().unwrap(), &ours[1..]));
}

proptest::proptest! {
    #[test]
    fn random_payloads_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
        let _ = PexMessage::parse(&bytes);
    }

    #[test]
    fn messages_roundtrip(
        added in proptest::collection::vec((proptest::prelude::any::<[u8; 4]>(), 1u16.., proptest::prelude::any::<u8>(), proptest::prelude::any::<bool>()), 0..60),
        dropped in proptest::collection::vec((proptest::prelude::any::<[u8; 16]>(), proptest::prelude::any::<u16>()), 0..60),
    ) {
        // IPv4 first, as the encoding groups them.
        let mut a: Vec<PexPeer> = added.iter().filter(|x| !x.3).map(|&(ip, port, f, _)| peer(SocketAddr::new(IpAddr::V4(ip.into()), port), f)).collect();
        a.extend(added.iter().filter(|x| x.3).map(|&(ip, port, f, _)| {
            let mut o = [0u8; 16];
            o[..4].copy_from_slice(&ip);
            o[15] = 1;
            peer(SocketAddr::new(IpAddr::V6(o.into()), port), f)
        }));
        let d: Vec<SocketAddr> = dropped.iter().map(|&(ip, port)| SocketAddr::new(IpAddr::V6(ip.into()), port)).collect();
        let msg = PexMessage { added: a, dropped: d };
        let parsed = PexMessage::parse(&msg.encode()).unwrap();
        proptest::prop_assert_eq!(parsed.ignored, 0);
        proptest::prop_assert_eq!(parsed.message, msg);
    }

    #[test]
    fn the_swarm_view_converges_to_the_live_set(
        ops in proptest::collection::vec((0u8..30, proptest::prelude::any::<bool>()), 0..200),
    ) {
        // A peer that follows every round's diff from its first message knows the live set
        // once the rounds have caught up.
        let mut swarm = PexSwarm::new();
        let mut view: std::collections::BTreeSet<SocketAddr> = Default::default();
        let mut s = PexSchedule::new(SECS(0), SECS(0));
        let mut now = SECS(0);
        let me = v4(200, 9);
        for chunk in ops.chunks(20) {
            for &(who, join) in chunk {
                let a = v4(who, 1);
                if join { swarm.join(a, 0) } else { swarm.leave(a) }
            }
            if let Some(m) = s.poll(now, &mut swarm, Some(me)) {
                let m = PexMessage::parse(&m).unwrap().message;
                view.extend(m.added.iter().map(|p| p.addr));
                for d in m.dropped { view.remove(&d); }
            }
            now = s.next_at();
        }
        for _ in 0..3 {
            if let Some(m) = s.poll(now, &mut swarm, Some(me)) {
                let m = PexMessage::parse(&m).unwrap().message;
                view.extend(m.added.iter().map(|p| p.addr));
                for d in m.dropped { view.remove(&d); }
            }
            now = s.next_at();
        }
        let live: std::collections::BTreeSet<SocketAddr> = swarm.live.keys().copied().collect();
        proptest::prop_assert_eq!(view, live);
    }
}
