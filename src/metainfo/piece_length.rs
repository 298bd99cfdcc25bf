//! The automatic piece length of `seedbox create --piece-length auto`.

/// Smallest piece length `auto` picks: 256 KiB.
pub const AUTO_MIN: u32 = 256 * 1024;
/// Largest piece length `auto` picks: 16 MiB.
pub const AUTO_MAX: u32 = 16 * 1024 * 1024;
/// `auto` aims for at most this many pieces.
pub const AUTO_TARGET_PIECES: u64 = 4096;

/// The documented automatic piece length: the smallest power of two from 256 KiB to 16 MiB
/// that cuts `total_length` into at most 4096 pieces (16 MiB for anything above 64 GiB).
///
/// Few thousand pieces keep the `.torrent` small (4096 hashes are 80 KiB) while pieces stay
/// small enough to spread a new release across peers quickly.
pub fn auto_piece_length(total_length: u64) -> u32 {
    let mut len = AUTO_MIN;
    while len < AUTO_MAX && total_length.div_ceil(u64::from(len)) > AUTO_TARGET_PIECES {
        len *= 2;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_values() {
        assert_eq!(auto_piece_length(0), AUTO_MIN);
        assert_eq!(auto_piece_length(1024 * 1024 * 1024), AUTO_MIN);
        assert_eq!(auto_piece_length(1024 * 1024 * 1024 + 1), 512 * 1024);
        assert_eq!(auto_piece_length(4 << 30), 1024 * 1024);
        assert_eq!(auto_piece_length(1 << 40), AUTO_MAX);
    }
}
