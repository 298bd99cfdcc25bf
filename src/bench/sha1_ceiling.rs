//! The SHA-1 ceiling: how fast this machine hashes bytes already in memory, the bound for
//! `create`, `verify` and the seed's start-up check.

use std::time::{Duration, Instant};

/// Which SHA-1 implementation to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sha1Impl {
    /// The `sha1` crate (SHA-NI when the CPU has it).
    Sha1Crate,
    /// `ring`'s legacy SHA-1.
    Ring,
}

/// Hashes `piece_length`-byte pieces of an in-memory buffer on `threads` threads for about
/// `duration`; returns bytes hashed per second in total.
pub fn sha1_throughput(
    which: Sha1Impl,
    piece_length: usize,
    threads: usize,
    duration: Duration,
) -> f64 {
    let buf: Vec<u8> = (0..piece_length).map(|i| (i * 31 % 251) as u8).collect();
    let started = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut bytes = 0u64;
                    let mut sink = 0u8;
                    while started.elapsed() < duration {
                        sink ^= hash(which, &buf)[0];
                        bytes += buf.len() as u64;
                    }
                    std::hint::black_box(sink);
                    bytes
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    total as f64 / started.elapsed().as_secs_f64()
}

fn hash(which: Sha1Impl, data: &[u8]) -> [u8; 20] {
    match which {
        Sha1Impl::Sha1Crate => {
            use sha1::{Digest, Sha1};
            Sha1::digest(data).into()
        }
        Sha1Impl::Ring => {
            let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, data);
            d.as_ref().try_into().expect("20 bytes")
        }
    }
}
