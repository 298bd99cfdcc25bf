//! Micro-benchmarks of the hot sans-IO parts: SHA-1 (`sha1` against `ring`) per piece size,
//! the wire codec, the piece picker (a whole download, per block, and availability updates),
//! and one choker round over 10,000 peers.
//! Run: `cargo bench --bench micro` (results in target/criterion).

use std::time::Duration;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::SeedableRng;

use seedbox::protocol::wire::{piece_header, Message, MessageDecoder};
use seedbox::swarm::BlockRef;
use seedbox::swarm::{Bitfield, Choker, ChokerConfig, PeerSnapshot, PieceGeometry, Slots};
use seedbox::swarm::{Picker, PickerConfig};

fn sha1(c: &mut Criterion) {
    let mut group = c.benchmark_group("sha1");
    for size in [16 << 10, 256 << 10, 1 << 20, 4 << 20] {
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("sha1-crate", size), &data, |b, d| {
            use sha1::{Digest, Sha1};
            b.iter(|| Sha1::digest(d))
        });
        group.bench_with_input(BenchmarkId::new("ring", size), &data, |b, d| {
            b.iter(|| ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, d))
        });
    }
    group.finish();
}

fn wire(c: &mut Criterion) {
    let mut group = c.benchmark_group("wire");
    let block = BlockRef {
        piece: 7,
        offset: 16384,
        length: 16384,
    };
    let mut stream = BytesMut::new();
    for _ in 0..1000 {
        Message::Request(block).encode(&mut stream);
    }
    let stream = stream.freeze();
    group.throughput(Throughput::Elements(1000));
    group.bench_function("decode-1000-requests", |b| {
        let decoder = MessageDecoder::for_piece_count(10_000);
        b.iter(|| {
            let mut buf = BytesMut::from(&stream[..]);
            let mut n = 0;
            while let Ok(Some(_)) = decoder.decode(&mut buf) {
                n += 1;
            }
            n
        })
    });
    group.bench_function("encode-1000-requests", |b| {
        let mut out = BytesMut::with_capacity(17 * 1000);
        b.iter(|| {
            out.clear();
            for _ in 0..1000 {
                Message::Request(block).encode(&mut out);
            }
            out.len()
        })
    });
    group.bench_function("piece-header-1000", |b| {
        b.iter(|| {
            (0..1000u32)
                .map(|i| piece_header(criterion::black_box(i), 0, 16384)[8])
                .fold(0u8, u8::wrapping_add)
        })
    });
    group.finish();
}

fn choker(c: &mut Criterion) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let peers: Vec<PeerSnapshot<u32>> = (0..10_000u32)
        .map(|i| PeerSnapshot {
            upload_rate: u64::from(i * 7919 % 10_007),
            download_rate: u64::from(i * 104_729 % 10_009),
            interested: i % 5 != 0,
            last_block_at: Some(Duration::from_secs(100)),
            ..PeerSnapshot::new(i, Duration::from_secs(u64::from(i % 120)))
        })
        .collect();
    let mut group = c.benchmark_group("choker");
    for (name, slots) in [
        ("4-slots", Slots::Limited(4)),
        ("unlimited", Slots::Unlimited),
    ] {
        group.bench_function(BenchmarkId::new("round-10000-peers", name), |b| {
            let mut choker = Choker::new(ChokerConfig {
                slots,
                optimistic: true,
            });
            let mut t = 0u64;
            b.iter(|| {
                t += 10;
                choker
                    .round(Duration::from_secs(t), &peers, &mut rng)
                    .unchoke
                    .len()
            })
        });
    }
    group.finish();
}

/// Bitfields of `peers` peers over `pieces` pieces, each piece held with probability 1/2
/// (peer 0 is a seed, so everything is available).
fn random_bitfields(peers: u32, pieces: u32, rng: &mut impl rand::Rng) -> Vec<Bitfield> {
    (0..peers)
        .map(|p| {
            if p == 0 {
                return Bitfield::full(pieces);
            }
            let mut b = Bitfield::new(pieces);
            for i in 0..pieces {
                if rng.gen_bool(0.5) {
                    b.set(i);
                }
            }
            b
        })
        .collect()
}

fn picker(c: &mut Criterion) {
    // 1,024 pieces of 256 KiB (16 blocks each, 16,384 blocks), 50 peers.
    const PIECES: u32 = 1024;
    const PEERS: u32 = 50;
    let geometry = PieceGeometry::new(256 * 1024, u64::from(PIECES) * 256 * 1024);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let fields = random_bitfields(PEERS, PIECES, &mut rng);
    let mut group = c.benchmark_group("picker");
    group.sample_size(20);
    group.throughput(Throughput::Elements(u64::from(PIECES) * 16));
    // The whole download: peers in turn ask for 8 blocks, which all arrive; every completed
    // piece is verified. Per element = per block picked and received.
    group.bench_function("download-16384-blocks-50-peers", |b| {
        b.iter(|| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
            let mut picker: Picker<u32> = Picker::new(geometry, PickerConfig::default(), &mut rng);
            for (k, f) in fields.iter().enumerate() {
                picker.peer_bitfield(k as u32, f).unwrap();
            }
            let mut buf = Vec::with_capacity(8);
            let mut peer = 0u32;
            while !picker.is_complete() {
                buf.clear();
                picker.pick_into(peer, &fields[peer as usize], 8, &mut rng, &mut buf);
                for &block in &buf {
                    if picker.block_received(block, peer).piece_complete {
                        picker.piece_verified(block.piece);
                    }
                }
                peer = (peer + 1) % PEERS;
            }
        })
    });
    group.finish();

    // Availability upkeep: HAVE messages from peers into a 16,384-piece torrent.
    let mut group = c.benchmark_group("picker");
    const BIG: u32 = 16_384;
    let geometry = PieceGeometry::new(256 * 1024, u64::from(BIG) * 256 * 1024);
    group.throughput(Throughput::Elements(u64::from(BIG)));
    group.bench_function("have-16384-pieces", |b| {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        b.iter(|| {
            let mut picker: Picker<u32> = Picker::new(geometry, PickerConfig::default(), &mut rng);
            picker.peer_have_none(1).unwrap();
            for piece in 0..BIG {
                picker.peer_have(1, piece).unwrap();
            }
            picker.availability(BIG - 1)
        })
    });
    group.finish();
}

criterion_group!(benches, sha1, wire, picker, choker);
criterion_main!(benches);
