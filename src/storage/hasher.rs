//! Parallel piece hashing over a [`MappedStorage`]: `create`, `verify` and the seed's start-up
//! check all go through here.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::MappedStorage;

/// Pieces a worker takes at a time: large enough to keep the shared counter cold, small
/// enough to balance the tail.
const CHUNK: u32 = 8;

/// How far ahead of the hashers the prefetcher maps pages, in bytes: enough to hide a disk
/// read, little enough that the page cache keeps it until it is hashed.
const PREFETCH_AHEAD: u64 = 64 << 20;

/// How long the prefetcher waits when it is [`PREFETCH_AHEAD`] in front.
const PREFETCH_WAIT: Duration = Duration::from_micros(500);

/// Hashes every piece on `threads` threads. Each entry is the piece's SHA-1, or `None` when
/// part of the piece is not on disk. `progress` is advanced by the bytes of each piece done,
/// so a caller can draw a progress bar from another thread.
///
/// Beside the hashers, one prefetcher thread runs ahead of them and maps the next pieces'
/// pages ([`MappedStorage::populate`]), so the hashers spend their time in SHA-1 rather than in
/// page faults (as mktorrent's reader thread feeds its hashers; `benches/create.sh` and
/// `bench-results/create.md` give the effect).
pub fn hash_pieces(
    storage: &MappedStorage,
    threads: usize,
    progress: &AtomicU64,
) -> Vec<Option<[u8; 20]>> {
    let geometry = storage.layout().geometry();
    let count = geometry.piece_count();
    let next = AtomicU32::new(0);
    let threads = threads.clamp(1, (count as usize).div_ceil(CHUNK as usize).max(1));
    let mut results = vec![None; count as usize];
    let finished = AtomicBool::new(false);
    let parts: Vec<Vec<(u32, Option<[u8; 20]>)>> = std::thread::scope(|scope| {
        scope.spawn(|| prefetch(storage, &next, &finished, threads));
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let start = next.fetch_add(CHUNK, Ordering::Relaxed);
                        if start >= count {
                            break;
                        }
                        for piece in start..(start + CHUNK).min(count) {
                            done.push((piece, storage.hash_piece(piece)));
                            let size = u64::from(geometry.piece_size(piece));
                            progress.fetch_add(size, Ordering::Relaxed);
                        }
                    }
                    done
                })
            })
            .collect();
        let parts = workers
            .into_iter()
            .map(|w| w.join().expect("hashing thread panicked"))
            .collect();
        finished.store(true, Ordering::Relaxed);
        parts
    });
    for (piece, hash) in parts.into_iter().flatten() {
        results[piece as usize] = hash;
    }
    results
}

/// Maps pages piece by piece in order, staying at most [`PREFETCH_AHEAD`] bytes in front of
/// the next piece the hashers will take (`next`), and unmaps pieces well behind it
/// ([`MappedStorage::release`]), until every piece is taken or `finished`. A piece released
/// while a slow hasher still reads it is only mapped again: the bytes are the same.
fn prefetch(storage: &MappedStorage, next: &AtomicU32, finished: &AtomicBool, threads: usize) {
    let geometry = storage.layout().geometry();
    let count = geometry.piece_count();
    let piece_length = u64::from(geometry.piece_size(0)).max(1);
    let ahead = u32::try_from(PREFETCH_AHEAD / piece_length)
        .unwrap_or(u32::MAX)
        .max(1);
    // Pieces the hashers may still be reading: each has taken at most two chunks lately.
    let behind = CHUNK.saturating_mul(2 * threads as u32);
    let mut piece = 0;
    let mut released = 0;
    while !finished.load(Ordering::Relaxed) {
        let taken = next.load(Ordering::Relaxed).min(count);
        while released + behind < taken {
            storage.release(released);
            released += 1;
        }
        if piece >= count {
            if taken >= count {
                break;
            }
            std::thread::sleep(PREFETCH_WAIT);
            continue;
        }
        if piece < taken {
            // The hashers overtook us: those pieces are being read already.
            piece = taken;
            continue;
        }
        if piece >= taken.saturating_add(ahead) {
            std::thread::sleep(PREFETCH_WAIT);
            continue;
        }
        storage.populate(piece);
        piece += 1;
    }
}

/// The number of threads "all cores" means here.
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::super::{FileSlot, Layout};
    use super::*;
    use sha1::{Digest, Sha1};

    #[test]
    fn parallel_hashes_match_sequential_sha1_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let cuts = [0usize, 1, 40_000, 40_000, 99_999, 100_000];
        let mut files = Vec::new();
        for (i, w) in cuts.windows(2).enumerate() {
            let path = dir.path().join(format!("f{i}"));
            std::fs::write(&path, &data[w[0]..w[1]]).unwrap();
            files.push(FileSlot {
                path,
                offset: w[0] as u64,
                length: (w[1] - w[0]) as u64,
                padding: false,
            });
        }
        let storage = MappedStorage::open(Layout::new(files, 4096)).unwrap();
        let progress = AtomicU64::new(0);
        for threads in [1, 3] {
            let hashes = hash_pieces(&storage, threads, &progress);
            assert_eq!(hashes.len(), 25);
            for (i, h) in hashes.iter().enumerate() {
                let chunk = &data[i * 4096..((i + 1) * 4096).min(data.len())];
                let want: [u8; 20] = Sha1::digest(chunk).into();
                assert_eq!(h.unwrap(), want, "piece {i}");
            }
        }
        assert_eq!(progress.load(Ordering::Relaxed), 200_000);
    }
}
