//! Building vectored writes: control messages and `piece` messages whose payloads are `Bytes`
//! views of the memory map, gathered into one `writev` without copying a block.

use std::io;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_uring::net::TcpStream;

use super::zerocopy::ZeroCopyRing;

use crate::protocol::wire::{piece_header, PIECE_HEADER_LEN};
use crate::swarm::BlockRef;

/// Gathers one write into `segments` (cleared first): the pending control bytes, then each
/// block as its 13-byte header followed by its data, given as `parts` in block order (one part
/// per file extent, see [`MappedStorage::block_parts`](crate::storage::MappedStorage::block_parts);
/// the parts of a block add up to its length). The headers share one small allocation; block
/// data is not copied.
pub fn gather(
    control: &mut BytesMut,
    blocks: &[BlockRef],
    parts: &[Bytes],
    segments: &mut Vec<Bytes>,
) {
    segments.clear();
    let control_len = control.len();
    control.reserve(blocks.len() * PIECE_HEADER_LEN);
    for b in blocks {
        control.put_slice(&piece_header(b.piece, b.offset, b.length));
    }
    let mut head = control.split().freeze();
    if control_len > 0 {
        segments.push(head.split_to(control_len));
    }
    let mut parts = parts.iter();
    for b in blocks {
        segments.push(head.split_to(PIECE_HEADER_LEN));
        let mut left = b.length as usize;
        while left > 0 {
            let Some(p) = parts.next() else { break };
            left = left.saturating_sub(p.len());
            if !p.is_empty() {
                segments.push(p.clone());
            }
        }
    }
}

/// Zero-copy sends for writes of more than `threshold` bytes.
pub struct ZeroCopy<'a> {
    /// The core's ring.
    pub ring: &'a Rc<ZeroCopyRing>,
    /// Writes larger than this go zero-copy.
    pub threshold: usize,
}

/// Writes `segments` in order (one `writev`, or one zero-copy `SENDMSG_ZC` when `zero_copy`
/// is given and they hold more than its threshold). Returns the bytes written (possibly
/// fewer than all) and the segments.
pub async fn write(
    stream: &TcpStream,
    zero_copy: Option<&ZeroCopy<'_>>,
    segments: Vec<Bytes>,
) -> (io::Result<usize>, Vec<Bytes>) {
    match zero_copy {
        Some(z) if segments.iter().map(Bytes::len).sum::<usize>() > z.threshold => {
            z.ring.send(stream.as_raw_fd(), segments).await
        }
        _ => stream.writev(segments).await,
    }
}

/// Drops the first `written` bytes of `segments` after a partial write: whole segments are
/// removed, the one cut in the middle is advanced. Returns the bytes still to write.
pub fn consume(segments: &mut Vec<Bytes>, mut written: usize) -> usize {
    let mut done = 0;
    for s in segments.iter_mut() {
        if written >= s.len() {
            written -= s.len();
            done += 1;
        } else {
            s.advance(written);
            break;
        }
    }
    segments.drain(..done);
    segments.iter().map(Bytes::len).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Message;

    fn concat(segments: &[Bytes]) -> Vec<u8> {
        segments.iter().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn a_batch_is_control_then_piece_messages() {
        let mut control = BytesMut::new();
        Message::Unchoke.encode(&mut control);
        let b1 = BlockRef {
            piece: 3,
            offset: 16384,
            length: 5,
        };
        let b2 = BlockRef {
            piece: 4,
            offset: 0,
            length: 3,
        };
        let d1 = Bytes::from_static(b"hello");
        let d2 = Bytes::from_static(b"abc");
        let mut segs = Vec::new();
        gather(
            &mut control,
            &[b1, b2],
            &[d1.clone(), d2.clone()],
            &mut segs,
        );
        assert_eq!(segs.len(), 5);
        assert!(control.is_empty());
        // The block data is the very same memory, not a copy.
        assert_eq!(segs[2].as_ptr(), d1.as_ptr());
        let mut expected = BytesMut::new();
        Message::Unchoke.encode(&mut expected);
        for (b, d) in [(b1, d1), (b2, d2)] {
            Message::Piece {
                piece: b.piece,
                offset: b.offset,
                data: d,
            }
            .encode(&mut expected);
        }
        assert_eq!(concat(&segs), expected.to_vec());
    }

    #[test]
    fn no_control_no_empty_segment() {
        let mut control = BytesMut::new();
        let b = BlockRef {
            piece: 0,
            offset: 0,
            length: 2,
        };
        let mut segs = vec![Bytes::from_static(b"stale")];
        gather(&mut control, &[b], &[Bytes::from_static(b"xy")], &mut segs);
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].len(), PIECE_HEADER_LEN);
    }

    #[test]
    fn a_block_spanning_files_is_sent_from_its_parts() {
        let mut control = BytesMut::new();
        let b1 = BlockRef {
            piece: 0,
            offset: 0,
            length: 6,
        };
        let b2 = BlockRef {
            piece: 0,
            offset: 6,
            length: 2,
        };
        let parts = [
            Bytes::from_static(b"abc"),
            Bytes::from_static(b"de"),
            Bytes::from_static(b"f"),
            Bytes::from_static(b"gh"),
        ];
        let mut segs = Vec::new();
        gather(&mut control, &[b1, b2], &parts, &mut segs);
        assert_eq!(segs.len(), 6);
        let mut expected = BytesMut::new();
        for (b, d) in [(b1, &b"abcdef"[..]), (b2, &b"gh"[..])] {
            Message::Piece {
                piece: b.piece,
                offset: b.offset,
                data: Bytes::copy_from_slice(d),
            }
            .encode(&mut expected);
        }
        assert_eq!(concat(&segs), expected.to_vec());
    }

    #[test]
    fn consume_handles_every_cut() {
        let mk = || {
            vec![
                Bytes::from_static(b"abc"),
                Bytes::from_static(b"de"),
                Bytes::from_static(b"fghi"),
            ]
        };
        let all = concat(&mk());
        for cut in 0..=all.len() {
            let mut segs = mk();
            let left = consume(&mut segs, cut);
            assert_eq!(left, all.len() - cut);
            assert_eq!(concat(&segs), all[cut..].to_vec(), "cut {cut}");
            assert!(segs.iter().all(|s| !s.is_empty()));
        }
    }
}
