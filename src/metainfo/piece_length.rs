//! The automatic piece length of `seedbox create --piece-length auto` (and the default of
//! `seedbox sim` and `seedbox plan` for a given `--size`).

/// Smallest piece length `auto` picks: 16 KiB (one block).
pub const AUTO_MIN: u32 = 16 * 1024;
/// Largest piece length `auto` picks: 16 MiB.
pub const AUTO_MAX: u32 = 16 * 1024 * 1024;

/// The largest total size each piece length from 16 KiB up to 8 MiB is picked for (anything
/// larger gets 16 MiB). These are libtorrent's thresholds (`create_torrent.cpp`): for a
/// piece length `p` the limit is about `(p / 10)^2` bytes, i.e. a release gets the smallest
/// power of two at least ten times the square root of its size, so that its hash list
/// (20 bytes a piece) is about twice the square root of the size.
const SIZE_LIMITS: [u64; 10] = [
    2_684_355,       // 16 KiB
    10_737_418,      // 32 KiB
    42_949_673,      // 64 KiB
    171_798_692,     // 128 KiB
    687_194_767,     // 256 KiB
    2_748_779_069,   // 512 KiB
    10_995_116_278,  // 1 MiB
    43_980_465_111,  // 2 MiB
    175_921_860_444, // 4 MiB
    703_687_441_777, // 8 MiB
];

/// The documented automatic piece length (libtorrent's rule): the smallest power of two from
/// 16 KiB to 16 MiB whose square, divided by 100, is at least `total_length` (rounded as
/// libtorrent's table: 16 KiB up to 2,684,355 bytes, 32 KiB up to 10,737,418, 64 KiB up to
/// 42,949,673, ..., 8 MiB up to 703,687,441,777, 16 MiB beyond).
///
/// Small pieces let a new release spread among peers from the first seconds (a 1 MB file is
/// 62 pieces, not 4, which the missing-piece syndrome punishes); the square-root growth keeps
/// the `.torrent` of a big release small (100 GiB in 4 MiB pieces: 25,600 hashes, 500 KiB).
pub fn auto_piece_length(total_length: u64) -> u32 {
    let steps = SIZE_LIMITS
        .iter()
        .take_while(|&&limit| limit < total_length)
        .count();
    AUTO_MIN << steps
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u32 = 1024;
    const MIB: u32 = 1024 * 1024;

    #[test]
    fn documented_values() {
        assert_eq!(auto_piece_length(0), 16 * KIB);
        assert_eq!(auto_piece_length(1_000_000), 16 * KIB);
        assert_eq!(auto_piece_length(2_684_355), 16 * KIB);
        assert_eq!(auto_piece_length(2_684_356), 32 * KIB);
        assert_eq!(auto_piece_length(1 << 30), 512 * KIB);
        assert_eq!(auto_piece_length(100 << 30), 4 * MIB);
        assert_eq!(auto_piece_length(703_687_441_777), 8 * MIB);
        assert_eq!(auto_piece_length(703_687_441_778), AUTO_MAX);
        assert_eq!(auto_piece_length(u64::MAX), AUTO_MAX);
    }

    #[test]
    fn follows_the_square_root_rule_within_rounding() {
        // Every limit is (p / 10)^2 rounded to the nearest byte, p the piece length it picks.
        for (i, &limit) in SIZE_LIMITS.iter().enumerate() {
            let p = f64::from(AUTO_MIN << i);
            assert!(((p / 10.0).powi(2) - limit as f64).abs() <= 0.5, "{i}");
        }
    }

    #[test]
    fn grows_monotonically_in_powers_of_two() {
        let mut prev = 0;
        for shift in 0..50 {
            for size in [(1u64 << shift) - 1, 1 << shift, (1 << shift) + 1] {
                let p = auto_piece_length(size);
                assert!(p.is_power_of_two() && (AUTO_MIN..=AUTO_MAX).contains(&p));
                assert!(p >= prev);
                prev = p;
            }
        }
    }
}
