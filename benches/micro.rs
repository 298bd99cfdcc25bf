//! Micro-benchmarks of the hot sans-IO parts: SHA-1 (`sha1` against `ring`) per piece size,
//! the wire codec, and one choker round over 10,000 peers.
//! Run: `cargo bench --bench micro` (results in target/criterion).

use std::time::Duration;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::SeedableRng;

use seedbox::protocol::wire::{piece_header, Message, MessageDecoder};
use seedbox::swarm::BlockRef;
use seedbox::swarm::{Choker, ChokerConfig, PeerSnapshot, Slots};

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

criterion_group!(benches, sha1, wire, choker);
criterion_main!(benches);
