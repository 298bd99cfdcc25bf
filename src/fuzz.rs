//! Fuzz entry points: one function per fuzz target under `fuzz/`.
//!
//! Each function takes arbitrary bytes, feeds them to a parser or state machine, and panics
//! only when an invariant breaks (a round trip that changes the value, a crash inside the
//! code under test). The cargo-fuzz targets are one-line wrappers around these functions, and
//! `tests/fuzz_corpus.rs` replays the committed corpus through the very same functions, so a
//! crash found by fuzzing stays a regression test in `cargo test`.

use std::time::Duration;

use bytes::BytesMut;

use crate::bencode::{self, Owned};
use crate::metainfo::{InfoHash, Torrent};
use crate::protocol::{
    Connection, ConnectionConfig, ExtendedHandshake, Handshake, MessageDecoder, PeerId, Reserved,
};
use crate::swarm::{Bitfield, PieceGeometry};
use crate::tracker::{udp_codec, AnnounceRequest, ScrapeRequest, ScrapeResponse, TrackerReply};

/// A fuzz target's body: arbitrary bytes in, a panic only on a broken invariant.
pub type Target = fn(&[u8]);

/// The fuzz targets, by name: what `fuzz/fuzz_targets/NAME.rs` calls and what the corpus
/// replay looks up for `fuzz/corpus/NAME/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("bencode", bencode),
    ("metainfo", metainfo),
    ("peer_wire", peer_wire),
    ("extended_handshake", extended_handshake),
    ("http_tracker", http_tracker),
    ("udp_tracker", udp_tracker),
    ("sim_arrivals", sim_arrivals),
    ("units", units),
    ("mse_handshake", mse_handshake),
    ("admin_http", admin_http),
    ("magnet", magnet),
    ("ut_metadata", ut_metadata),
    ("ut_pex", ut_pex),
    ("utp", utp),
];

/// Bencode: a value that decodes re-encodes canonically and decodes to the same value.
pub fn bencode(data: &[u8]) {
    let _ = bencode::decode_prefix(data);
    let Ok(value) = bencode::decode(data) else {
        return;
    };
    let owned = Owned::from(&value);
    let encoded = owned.encode();
    let again = bencode::decode(&encoded).expect("a canonical encoding decodes");
    assert_eq!(
        Owned::from(&again),
        owned,
        "decode, encode, decode changed the value"
    );
    assert_eq!(again.raw, &encoded[..]);
}

/// Metainfo: a torrent that parses, re-encoded canonically, parses to the same torrent (and
/// the same info-hash when its info dictionary was canonical already).
pub fn metainfo(data: &[u8]) {
    let Ok(first) = Torrent::from_bytes(data) else {
        return;
    };
    let (root, _) = bencode::decode_prefix(data).expect("a parsed torrent decodes");
    let encoded = Owned::from(&root).encode();
    let second = Torrent::from_bytes(&encoded).expect("a re-encoded torrent parses");
    assert_eq!(first.name, second.name);
    assert_eq!(first.multi_file, second.multi_file);
    assert_eq!(first.piece_length, second.piece_length);
    assert_eq!(first.files, second.files);
    assert_eq!(first.total_length, second.total_length);
    assert_eq!(first.private, second.private);
    assert_eq!(first.source, second.source);
    assert_eq!(first.announce, second.announce);
    assert_eq!(first.announce_list, second.announce_list);
    assert_eq!(first.url_list, second.url_list);
    assert_eq!(first.comment, second.comment);
    assert_eq!(first.created_by, second.created_by);
    assert_eq!(first.creation_date, second.creation_date);
    assert_eq!(first.info_hash_v2.is_some(), second.info_hash_v2.is_some());
    assert_eq!(first.piece_count(), second.piece_count());
    for piece in 0..first.piece_count() {
        assert_eq!(first.piece_hash(piece), second.piece_hash(piece));
    }
    let info = root.get("info").expect("a parsed torrent has info");
    if Owned::from(info).encode() == info.raw {
        assert_eq!(first.info_hash, second.info_hash);
    }
    assert_eq!(first.geometry().piece_count(), first.piece_count());
    let _ = first.magnet();
}

/// Peer wire: the first 4 bytes choose the torrent's shape and what both sides negotiated;
/// the rest is the peer's byte stream after the handshake, decoded message by message (each
/// decoded message must re-encode to a message that decodes the same) and driven through
/// [`Connection::on_message`] until the peer breaks the protocol.
pub fn peer_wire(data: &[u8]) {
    let Some((head, stream)) = data.split_first_chunk::<4>() else {
        return;
    };
    let flags = head[0];
    let pieces = 1 + u32::from(u16::from_le_bytes([head[1], head[2]]) % 1024);
    let piece_length = (16 * 1024) << (head[3] % 4);
    let short_last = u64::from(head[3] >> 2) * 1000 % u64::from(piece_length);
    let total = u64::from(pieces) * u64::from(piece_length) - short_last;
    let geometry = PieceGeometry::new(piece_length, total);
    let ours = Reserved::seedbox()
        .with_fast(flags & 1 != 0)
        .with_extension_protocol(flags & 2 != 0);
    let theirs = Reserved([0; 8])
        .with_fast(flags & 4 != 0)
        .with_extension_protocol(flags & 8 != 0);
    let our_have = match flags >> 4 & 3 {
        0 => Bitfield::new(geometry.piece_count()),
        1 => Bitfield::full(geometry.piece_count()),
        _ => {
            let mut have = Bitfield::new(geometry.piece_count());
            for piece in (0..geometry.piece_count()).step_by(3) {
                have.set(piece);
            }
            have
        }
    };
    let config = ConnectionConfig {
        reserved: ours,
        ..ConnectionConfig::default()
    };
    let mut now = Duration::ZERO;
    let mut conn = Connection::new(config, geometry, now);
    let handshake = Handshake {
        reserved: theirs,
        ..Handshake::new(InfoHash([1; 20]), PeerId([2; 20]))
    };
    conn.on_handshake(&handshake, &our_have, now);
    if flags & 0x40 != 0 {
        // Ask for a few blocks so that `piece` and `reject` messages can match requests.
        conn.unchoke();
        conn.set_interested(true);
        for piece in 0..geometry.piece_count().min(4) {
            for block in geometry.blocks(piece) {
                let _ = conn.request(block, now);
            }
        }
    }
    let decoder = MessageDecoder::for_piece_count(geometry.piece_count());
    let mut buf = BytesMut::from(stream);
    loop {
        let msg = match decoder.decode(&mut buf) {
            Ok(Some(msg)) => msg,
            Ok(None) => break,
            Err(e) if e.is_fatal() => break,
            Err(_) => continue,
        };
        let mut encoded = BytesMut::new();
        msg.encode(&mut encoded);
        assert_eq!(encoded.len(), msg.encoded_len());
        let again = MessageDecoder::new(u32::MAX - 1)
            .decode(&mut encoded)
            .expect("an encoded message decodes");
        assert_eq!(
            again.as_ref(),
            Some(&msg),
            "decode, encode, decode changed it"
        );
        assert!(encoded.is_empty());
        now += Duration::from_millis(250);
        if conn.on_message(msg, &our_have, now).is_err() {
            break;
        }
        while conn.pop_request(now).is_some() {}
        while conn.poll_message(now).is_some() {}
        let _ = conn.poll_timeout(now);
    }
}

/// BEP 10 extended handshake: parse, and a parsed handshake re-encodes to one that parses the
/// same.
pub fn extended_handshake(data: &[u8]) {
    let Ok(hs) = ExtendedHandshake::parse(data) else {
        return;
    };
    let again = ExtendedHandshake::parse(&hs.encode()).expect("an encoded handshake parses");
    assert_eq!(again, hs);
}

/// HTTP tracker: the first byte picks the parser (the server's request head and announce /
/// scrape query parsers, or the client's announce / scrape reply decoders); requests that
/// parse re-encode to a query that parses the same.
pub fn http_tracker(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            if let Ok(Some(head)) = crate::tracker::server::http::parse_head(rest, 8192) {
                assert!(head.len <= rest.len());
                let query = head
                    .target
                    .iter()
                    .position(|&b| b == b'?')
                    .map_or(&[][..], |q| &head.target[q + 1..]);
                let _ = AnnounceRequest::parse_query(query);
                let _ = ScrapeRequest::parse_query(query);
            }
        }
        1 => {
            if let Ok(req) = AnnounceRequest::parse_query(rest) {
                let again = AnnounceRequest::parse_query(req.to_query().as_bytes())
                    .expect("an encoded announce parses");
                assert_eq!(again, req);
            }
            if let Ok(req) = ScrapeRequest::parse_query(rest) {
                let again = ScrapeRequest::parse_query(req.to_query().as_bytes())
                    .expect("an encoded scrape parses");
                assert_eq!(again, req);
            }
        }
        2 => {
            if let Ok(TrackerReply::Ok(reply)) = TrackerReply::decode(rest) {
                let _ = reply.encode(true, false);
                let _ = reply.encode(false, false);
            }
        }
        _ => {
            if let Ok(reply) = ScrapeResponse::decode(rest) {
                let again = ScrapeResponse::decode(&reply.encode()).expect("encoded scrape");
                assert_eq!(again, reply);
            }
        }
    }
}

/// UDP tracker (BEP 15): requests and replies (IPv4 and IPv6) that parse re-encode to packets
/// that parse the same.
pub fn udp_tracker(data: &[u8]) {
    if let Ok(req) = udp_codec::Request::parse(data) {
        let again = udp_codec::Request::parse(&req.encode()).expect("encoded request parses");
        assert_eq!(again, req);
    }
    for ipv6 in [false, true] {
        if let Ok(resp) = udp_codec::Response::parse(data, ipv6) {
            let again =
                udp_codec::Response::parse(&resp.encode(), ipv6).expect("encoded reply parses");
            assert_eq!(again, resp);
        }
    }
}

/// The simulator's `--arrivals` grammar: a schedule that parses draws its first arrivals
/// in order and inside the schedule.
pub fn sim_arrivals(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crate::cli::units::parse_peer_class(text);
    let Ok(schedule) = crate::cli::units::parse_schedule(text) else {
        return;
    };
    let mut arrivals = crate::sim::arrivals::Arrivals::new(&schedule);
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
    let mut last = 0;
    for _ in 0..64 {
        let Some(t) = arrivals.next(&mut rng) else {
            break;
        };
        assert!(t >= last && t <= arrivals.end());
        last = t;
    }
}

/// The command line's size, rate and duration parsers.
pub fn units(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crate::cli::units::parse_size(text);
    let _ = crate::cli::units::parse_rate(text);
    let _ = crate::cli::units::parse_duration(text);
}

/// MSE/PE handshake (BEP 8 style obfuscation). The first byte picks what the bytes are:
/// raw input to a responder, raw input to an initiator, or corruption of an honest exchange
/// (an initiator and a responder talking, with the input's bytes XORed into the initiator's
/// stream from the offset the second byte names, and appended after it).
pub fn mse_handshake(data: &[u8]) {
    use crate::protocol::mse::{
        is_plain_handshake, EncryptionPolicy, Initiator, Progress, Responder,
    };
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let _ = is_plain_handshake(rest);
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(u64::from(mode));
    let policy = [
        EncryptionPolicy::Allow,
        EncryptionPolicy::Prefer,
        EncryptionPolicy::Require,
    ][usize::from(mode >> 2) % 3];
    let served =
        |hash: &[u8; 20]| (*hash == crate::protocol::mse::skey_hash(&[1; 20])).then_some([1; 20]);
    match mode % 3 {
        0 => {
            let mut responder = Responder::new(policy.accepted(), &mut rng);
            for chunk in rest.chunks(97) {
                match responder.receive(chunk, &served) {
                    Ok(Progress::NeedMore) => drop(responder.take_output()),
                    _ => break,
                }
            }
        }
        1 => {
            let mut initiator = Initiator::new([1; 20], policy.provide(), &mut rng);
            drop(initiator.take_output());
            for chunk in rest.chunks(97) {
                match initiator.receive(chunk) {
                    Ok(Progress::NeedMore) => drop(initiator.take_output()),
                    _ => break,
                }
            }
        }
        _ => {
            let Some((&at, noise)) = rest.split_first() else {
                return;
            };
            let mut initiator = Initiator::new([1; 20], policy.provide(), &mut rng);
            let mut responder = Responder::new(policy.accepted(), &mut rng);
            let mut sent = 0usize;
            for _ in 0..8 {
                let mut out = initiator.take_output();
                for (i, byte) in out.iter_mut().enumerate() {
                    let pos = sent + i;
                    if let Some(x) = pos
                        .checked_sub(usize::from(at) * 4)
                        .and_then(|k| noise.get(k))
                    {
                        *byte ^= x;
                    }
                }
                sent += out.len();
                let done_r = match responder.receive(&out, &served) {
                    Ok(Progress::NeedMore) => false,
                    Ok(Progress::Done(_)) => true,
                    Err(_) => return,
                };
                let back = responder.take_output();
                match initiator.receive(&back) {
                    Ok(Progress::NeedMore) => {}
                    Ok(Progress::Done(_)) if done_r => return,
                    Ok(Progress::Done(_)) => {}
                    Err(_) => return,
                }
            }
        }
    }
}

/// The admin HTTP server's request parser, with small limits so the fuzzer reaches them; a
/// complete request never claims more bytes than it was given.
pub fn admin_http(data: &[u8]) {
    use crate::service::admin::http::{parse_request, Limits, Parsed};
    let limits = Limits {
        max_head: 1024,
        max_body: 2048,
    };
    if let Ok(Parsed::Complete(request, used)) = parse_request(data, limits) {
        assert!(used <= data.len());
        assert!(request.body.len() <= limits.max_body);
        for segment in request.path.split('/') {
            let _ = crate::service::admin::api::parse_info_hash(segment);
        }
    }
}

/// Magnet links: a link that parses, rebuilt by [`crate::metainfo::magnet_link`] from what was
/// parsed, parses to the same info-hash and trackers.
pub fn magnet(data: &[u8]) {
    let Ok(m) = crate::metainfo::magnet::parse(data) else {
        return;
    };
    let name = m.name.clone().unwrap_or_default();
    let link = crate::metainfo::magnet_link(&m.info_hash, None, &name, &m.trackers);
    let again = crate::metainfo::magnet::parse(link.as_bytes()).expect("a built link parses");
    assert_eq!(again.info_hash, m.info_hash);
    assert_eq!(again.trackers, m.trackers);
}

/// `ut_metadata` messages: one that parses re-encodes to one that parses to the same message,
/// and an assembly fed it never panics.
pub fn ut_metadata(data: &[u8]) {
    use crate::protocol::ut_metadata::{parse, MetadataAssembly};
    let Ok(msg) = parse(data) else {
        return;
    };
    assert_eq!(
        parse(&msg.encode()).expect("an encoded message parses"),
        msg
    );
    if let Ok(mut assembly) = MetadataAssembly::new(InfoHash([0; 20]), Some(data.len() as u64)) {
        let _ = assembly.next_request(2);
        let _ = assembly.on_message(msg);
    }
}

/// `ut_pex` messages: at most [`crate::protocol::pex::MAX_PARSED_ENTRIES`] entries of each
/// kind are kept, and what was kept re-encodes to a message that parses to the same entries.
pub fn ut_pex(data: &[u8]) {
    use crate::protocol::pex::{PexMessage, MAX_PARSED_ENTRIES};
    let Ok(parsed) = PexMessage::parse(data) else {
        return;
    };
    let m = parsed.message;
    assert!(m.added.len() <= MAX_PARSED_ENTRIES && m.dropped.len() <= MAX_PARSED_ENTRIES);
    let again = PexMessage::parse(&m.encode())
        .expect("an encoded message parses")
        .message;
    let sorted = |m: &PexMessage| {
        let (mut a, mut d) = (m.added.clone(), m.dropped.clone());
        a.sort();
        d.sort();
        (a, d)
    };
    assert_eq!(sorted(&again), sorted(&m));
}

/// uTP: a header that decodes re-encodes to one that decodes the same; a socket fed the
/// input as datagrams (each a length byte, a source byte and the bytes) from a few addresses,
/// with its timers and transmissions run, never panics and keeps within its limits.
pub fn utp(data: &[u8]) {
    use crate::protocol::utp::{Header, SocketConfig, UtpSocket};
    if let Ok((header, _)) = Header::decode(data) {
        let mut out = Vec::new();
        header.encode(&mut out);
        let (again, _) = Header::decode(&out).expect("an encoded header decodes");
        assert_eq!(again, header);
    }
    let cfg = SocketConfig::default();
    let max = cfg.max_connections;
    let mut socket = UtpSocket::new(cfg, 7);
    let (mut rest, mut now, mut out, mut woken) = (data, 1_000u64, Vec::new(), Vec::new());
    while let [len, source, tail @ ..] = rest {
        let (datagram, next) = tail.split_at(usize::from(*len).min(tail.len()));
        let from = std::net::SocketAddr::from(([127, 0, 0, 1 + source % 4], 6881));
        let _ = socket.on_datagram(from, datagram, now);
        now += u64::from(*source) * 1_000;
        socket.on_tick(now, &mut woken);
        for _ in 0..64 {
            out.clear();
            if socket.poll_transmit(now, &mut out).is_none() {
                break;
            }
        }
        assert!(socket.len() <= max);
        rest = next;
    }
}
