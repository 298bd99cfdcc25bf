//! Building vectored writes: control messages and `piece` messages whose payloads are `Bytes`
//! views of the memory map, gathered into one `writev` without copying a block.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::protocol::wire::{piece_header, PIECE_HEADER_LEN};
use crate::swarm::BlockRef;

/// Gathers one write: the pending control bytes first, then each block as its 13-byte header
/// and its data. The headers share one small allocation; block data is not copied.
pub fn gather(control: &mut BytesMut, blocks: &[(BlockRef, Bytes)]) -> Vec<Bytes> {
    let control_len = control.len();
    control.reserve(blocks.len() * PIECE_HEADER_LEN);
    for (b, data) in blocks {
        control.put_slice(&piece_header(b.piece, b.offset, data.len() as u32));
    }
    let mut head = control.split().freeze();
    let mut segments = Vec::with_capacity(1 + 2 * blocks.len());
    if control_len > 0 {
        segments.push(head.split_to(control_len));
    }
    for (_, data) in blocks {
        segments.push(head.split_to(PIECE_HEADER_LEN));
        if !data.is_empty() {
            segments.push(data.clone());
        }
    }
    segments
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
        let segs = gather(&mut control, &[(b1, d1.clone()), (b2, d2.clone())]);
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
        let segs = gather(&mut control, &[(b, Bytes::from_static(b"xy"))]);
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].len(), PIECE_HEADER_LEN);
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
