//! The canonical allowed-fast set of BEP 6: the pieces a peer may request while choked,
//! derived from its IPv4 address and the info-hash so that every peer behind one /24 gets the
//! same set (nothing to gain by reconnecting from another address in the same network).

use std::net::Ipv4Addr;

use sha1::{Digest, Sha1};

use crate::metainfo::InfoHash;

/// The first `k` pieces of BEP 6's allowed-fast sequence for a peer at `ip` in a torrent of
/// `piece_count` pieces (fewer when the torrent has fewer than `k` pieces).
pub fn allowed_fast_set(
    ip: Ipv4Addr,
    info_hash: &InfoHash,
    piece_count: u32,
    k: usize,
) -> Vec<u32> {
    let k = k.min(piece_count as usize);
    let mut set = Vec::with_capacity(k);
    let mut x = Vec::with_capacity(24);
    x.extend_from_slice(&(u32::from(ip) & 0xffff_ff00).to_be_bytes());
    x.extend_from_slice(info_hash.as_bytes());
    while set.len() < k {
        let digest: [u8; 20] = Sha1::digest(&x).into();
        for chunk in digest.chunks_exact(4) {
            if set.len() >= k {
                break;
            }
            let y = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let index = y % piece_count;
            if !set.contains(&index) {
                set.push(index);
            }
        }
        x.clear();
        x.extend_from_slice(&digest);
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bep6_test_vectors() {
        let ih = InfoHash([0xaa; 20]);
        let ip = Ipv4Addr::new(80, 4, 4, 200);
        assert_eq!(
            allowed_fast_set(ip, &ih, 1313, 7),
            vec![1059, 431, 808, 1217, 287, 376, 1188]
        );
        assert_eq!(
            allowed_fast_set(ip, &ih, 1313, 9),
            vec![1059, 431, 808, 1217, 287, 376, 1188, 353, 508]
        );
    }

    #[test]
    fn same_for_the_whole_slash_24() {
        let ih = InfoHash([0x11; 20]);
        let a = allowed_fast_set(Ipv4Addr::new(10, 0, 0, 1), &ih, 500, 10);
        let b = allowed_fast_set(Ipv4Addr::new(10, 0, 0, 254), &ih, 500, 10);
        let c = allowed_fast_set(Ipv4Addr::new(10, 0, 1, 1), &ih, 500, 10);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|&p| p < 500));
    }

    #[test]
    fn small_torrents_get_every_piece_and_empty_ones_nothing() {
        let ih = InfoHash([0x22; 20]);
        let mut set = allowed_fast_set(Ipv4Addr::LOCALHOST, &ih, 3, 10);
        set.sort_unstable();
        assert_eq!(set, vec![0, 1, 2]);
        assert!(allowed_fast_set(Ipv4Addr::LOCALHOST, &ih, 0, 10).is_empty());
    }
}
