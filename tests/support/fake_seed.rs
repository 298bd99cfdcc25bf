//! A misbehaving seed for fault tests, built on seedbox's own wire codec over blocking
//! sockets: it serves real data but corrupts it or hangs up on purpose.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use seedbox::metainfo::Torrent;
use seedbox::protocol::{Handshake, Message, MessageDecoder, PeerId};
use seedbox::swarm::Bitfield;

/// How the fake seed misbehaves.
#[derive(Clone, Copy, Debug)]
pub enum Misbehaviour {
    /// Flip one byte of the first block of every piece it serves.
    CorruptEveryPiece,
    /// Serve `blocks` blocks, then half of the next one, then close the connection.
    DisconnectMidBlock { blocks: usize },
}

/// A running fake seed; stops accepting on drop.
pub struct FakeSeed {
    /// Its port on 127.0.0.1.
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl Drop for FakeSeed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

impl FakeSeed {
    /// Serves `content` (the torrent's bytes end to end) with `how`.
    pub fn start(torrent: &Torrent, content: Vec<u8>, how: Misbehaviour) -> FakeSeed {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let (info_hash, pieces, piece_length) = (
            torrent.info_hash,
            torrent.piece_count(),
            torrent.piece_length,
        );
        let content = Arc::new(content);
        let stop2 = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let content = content.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, info_hash, pieces, piece_length, &content, how);
                });
            }
        });
        FakeSeed { port, stop }
    }
}

fn serve(
    mut s: TcpStream,
    info_hash: seedbox::metainfo::InfoHash,
    pieces: u32,
    piece_length: u32,
    content: &[u8],
    how: Misbehaviour,
) -> std::io::Result<()> {
    let mut hs = [0u8; 68];
    s.read_exact(&mut hs)?;
    let theirs = Handshake::parse(&hs).map_err(std::io::Error::other)?;
    if theirs.info_hash != info_hash {
        return Ok(());
    }
    let mut rng = rand::thread_rng();
    let ours = Handshake::new(info_hash, PeerId::generate(&mut rng));
    s.write_all(&ours.encode())?;
    let mut out = BytesMut::new();
    Message::Bitfield(bytes::Bytes::copy_from_slice(
        Bitfield::full(pieces).as_bytes(),
    ))
    .encode(&mut out);
    Message::Unchoke.encode(&mut out);
    s.write_all(&out)?;
    let decoder = MessageDecoder::for_piece_count(pieces);
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 16384];
    let mut served = 0usize;
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Ok(Some(m)) = decoder.decode(&mut buf) {
            let Message::Request(b) = m else { continue };
            let start = b.piece as usize * piece_length as usize + b.offset as usize;
            let mut data = content[start..start + b.length as usize].to_vec();
            let mut out = BytesMut::new();
            match how {
                Misbehaviour::CorruptEveryPiece => {
                    if b.offset == 0 {
                        data[0] ^= 0xff;
                    }
                }
                Misbehaviour::DisconnectMidBlock { blocks } if served == blocks => {
                    let msg = Message::Piece {
                        piece: b.piece,
                        offset: b.offset,
                        data: data.into(),
                    };
                    msg.encode(&mut out);
                    let half = out.len() / 2;
                    s.write_all(&out[..half])?;
                    return Ok(());
                }
                Misbehaviour::DisconnectMidBlock { .. } => {}
            }
            Message::Piece {
                piece: b.piece,
                offset: b.offset,
                data: data.into(),
            }
            .encode(&mut out);
            s.write_all(&out)?;
            served += 1;
        }
    }
}
