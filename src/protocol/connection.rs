//! A sans-IO peer connection: the protocol state of one peer, shared by the seed server, the
//! leecher and the simulator.
//!
//! The caller owns the socket and the clock. It parses the peer's [`Handshake`] and passes it to
//! [`Connection::on_handshake`], decodes messages with [`MessageDecoder`](super::MessageDecoder)
//! and passes each to [`Connection::on_message`], which updates the state and reports what
//! changed as an [`Event`] or a [`Violation`] (drop the peer). Messages to send pile up in an
//! outbox drained with [`Connection::poll_message`]; blocks to serve come from
//! [`Connection::pop_request`] (the caller writes [`piece_header`](super::wire::piece_header)
//! and the block's bytes itself, without copying them). Time is a `Duration` since an arbitrary
//! origin: [`Connection::poll_timeout`] says when to give up on the peer and queues keep-alives,
//! [`Connection::next_deadline`] says when to call it next.
//!
//! Rules enforced (BEP 3 and, when both sides advertise it, BEP 6 Fast and BEP 10):
//! - piece availability (bitfield / have all / have none) comes at most once, before any
//!   `have`; its length and spare bits must match the torrent; `have` must be in range;
//! - Fast extension messages need Fast negotiated, extended messages need BEP 10 negotiated;
//! - inbound requests must lie inside a piece, be at most [`BLOCK_SIZE`] long and name a piece
//!   we have; they are queued only while we unchoke the peer (or for allowed-fast pieces), up
//!   to [`ConnectionConfig::max_inbound_requests`] (our advertised `reqq`). With Fast, every
//!   request we will not serve gets a `reject request`; without it, requests while choked are
//!   dropped silently and a flood or a request for a missing piece is a violation; with Fast,
//!   rejects piling up unsent (as many as `reqq`) make a further refused request a violation,
//!   so a peer that floods requests and does not read cannot grow our memory;
//! - choking the peer drops its queue (with Fast, allowed-fast requests stay and the others are
//!   rejected); a `cancel` removes a queued request (with Fast, answered by a reject);
//! - our outbound requests are tracked: a `piece` must match one of them (others are counted
//!   as unexpected and dropped), and when the peer chokes us without Fast they are all dropped.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;

use super::extension::{ExtendedHandshake, ExtensionError, EXTENDED_HANDSHAKE_ID};
use super::pex::{self, ParsedPex, PexError, PexSchedule, PexSwarm, OUR_UT_PEX_ID};
use super::ut_metadata::{self, MetadataMessage, MetadataMessageError, OUR_UT_METADATA_ID};
use super::wire::{Handshake, Message, Reserved};
use crate::swarm::{Bitfield, BlockRef, PieceGeometry, BLOCK_SIZE};

/// Tunables of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// The reserved bytes of our handshake (what we offer to negotiate).
    pub reserved: Reserved,
    /// Most inbound requests queued at once; advertised as `reqq` in our extension handshake.
    pub max_inbound_requests: u32,
    /// Most outbound requests outstanding at once (further capped by the peer's `reqq`).
    pub max_outbound_requests: u32,
    /// Give up when the peer's handshake has not arrived this long after [`Connection::new`].
    pub handshake_timeout: Duration,
    /// Give up when nothing at all has been received for this long.
    pub idle_timeout: Duration,
    /// Queue a keep-alive when we have sent nothing for this long.
    pub keepalive_interval: Duration,
    /// Announce every piece we complete to every peer, even to peers that have it already
    /// (off by default: see [`Connection::have`]).
    pub send_redundant_haves: bool,
    /// Our TCP listen port, advertised as `p` in our extension handshake.
    pub listen_port: Option<u16>,
    /// The peer's address as we see it, advertised as `yourip` in our extension handshake.
    pub peer_ip: Option<IpAddr>,
    /// The torrent's info dictionary, exactly as hashed: when set, BEP 9 `ut_metadata` is
    /// advertised with its size and requests for it are answered in 16 KiB pieces.
    pub metadata: Option<Bytes>,
    /// BEP 11 peer exchange: advertise `ut_pex`, accept the peer's messages (as
    /// [`Event::Pex`]) and send ours with [`Connection::poll_pex`]. Never for a private
    /// torrent.
    pub pex: bool,
    /// Our DHT node's UDP port (BEP 5), never for a private torrent: with it the handshake's
    /// DHT bit is set ([`ConnectionConfig::handshake_reserved`]) and a peer that sets it too
    /// is sent a `port` message after the handshake, so its node can add ours.
    pub dht_port: Option<u16>,
}

impl ConnectionConfig {
    /// The reserved bytes our handshake carries: [`ConnectionConfig::reserved`], with the DHT
    /// bit when [`ConnectionConfig::dht_port`] is set.
    pub fn handshake_reserved(&self) -> Reserved {
        self.reserved.with_dht(self.dht_port.is_some())
    }
}

/// How long after the handshake the first PEX message goes out (the peer's extension
/// handshake, with its listen port, has arrived by then and the swarm knows it).
pub const PEX_FIRST_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// Most `allowed fast` pieces remembered from one peer; later ones are ignored (BEP 6 sets are
/// around 10 pieces; this bounds memory and the per-message search against a hostile peer).
pub const MAX_THEIR_ALLOWED_FAST: usize = 64;

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            reserved: Reserved::seedbox(),
            max_inbound_requests: 250,
            max_outbound_requests: 250,
            handshake_timeout: Duration::from_secs(20),
            // Peers send keep-alives about every 2 minutes; leave them a margin.
            idle_timeout: Duration::from_secs(180),
            keepalive_interval: Duration::from_secs(90),
            send_redundant_haves: false,
            listen_port: None,
            peer_ip: None,
            metadata: None,
            pex: false,
            dht_port: None,
        }
    }
}

/// A protocol violation by the peer: drop the connection.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A message arrived before the handshake was processed.
    #[error("{0} message before the handshake")]
    BeforeHandshake(&'static str),
    /// A second bitfield / have all / have none, or one after a `have`.
    #[error("{0} message after piece availability was already given")]
    AvailabilityRepeated(&'static str),
    /// A bitfield of the wrong length or with spare bits set.
    #[error(
        "bitfield of {bytes} bytes does not fit {pieces} pieces (wrong length or spare bits set)"
    )]
    BadBitfield {
        /// Bytes received.
        bytes: usize,
        /// The torrent's piece count.
        pieces: u32,
    },
    /// A piece index past the end of the torrent.
    #[error("{message} for piece {piece}, but the torrent has {pieces} pieces")]
    PieceOutOfRange {
        /// The message name.
        message: &'static str,
        /// The piece index.
        piece: u32,
        /// The torrent's piece count.
        pieces: u32,
    },
    /// A Fast extension message though Fast was not negotiated.
    #[error("{0} message but the Fast extension was not negotiated")]
    FastNotNegotiated(&'static str),
    /// An extended message though the extension protocol was not negotiated.
    #[error("extended message but the extension protocol was not negotiated")]
    ExtensionNotNegotiated,
    /// A malformed `ut_metadata` message.
    #[error("bad ut_metadata message: {0}")]
    BadMetadataMessage(#[from] MetadataMessageError),
    /// A malformed `ut_pex` message.
    #[error("bad ut_pex message: {0}")]
    BadPex(#[from] PexError),
    /// More `ut_pex` messages than BEP 11 allows (one a minute; a few more are tolerated).
    #[error(
        "ut_pex flood: more than {} messages within a minute",
        pex::MAX_RECEIVED_PER_INTERVAL
    )]
    PexFlood,
    /// More `ut_metadata` requests than the torrent's metadata could ever need.
    #[error("ut_metadata request flood ({0} requests)")]
    MetadataFlood(u32),
    /// The peer's extension handshake is malformed.
    #[error(transparent)]
    BadExtendedHandshake(#[from] ExtensionError),
    /// A request outside its piece, empty, or longer than 16 KiB.
    #[error("invalid request: piece {} offset {} length {}", .0.piece, .0.offset, .0.length)]
    InvalidRequest(BlockRef),
    /// A request for a piece we do not have (without Fast, which would let us reject it).
    #[error("request for piece {0}, which we do not have")]
    RequestForMissingPiece(u32),
    /// More requests queued than our advertised `reqq` (without Fast), or, with Fast, so many
    /// refused requests that their rejects pile up unsent (the peer floods and does not read).
    #[error("request queue overflow: more than {0} outstanding requests")]
    RequestFlood(u32),
    /// A `piece` message whose block lies outside its piece or is empty or oversized.
    #[error("invalid block: piece {} offset {} length {}", .0.piece, .0.offset, .0.length)]
    InvalidBlock(BlockRef),
}

/// Why [`Connection::poll_timeout`] gives up on a peer.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// The peer's handshake did not arrive in time.
    #[error("handshake timed out")]
    Handshake,
    /// Nothing was received for too long.
    #[error("peer idle for too long")]
    Idle,
}

/// Why [`Connection::request`] refused to request a block.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// The handshake has not been processed yet.
    #[error("handshake not done")]
    NoHandshake,
    /// The peer chokes us and the piece is not allowed-fast.
    #[error("peer is choking us")]
    Choked,
    /// The peer does not have the piece.
    #[error("peer does not have piece {0}")]
    PeerLacksPiece(u32),
    /// The block is not inside its piece, empty, or longer than 16 KiB.
    #[error("invalid block")]
    InvalidBlock,
    /// The block is already requested from this peer.
    #[error("block already requested")]
    AlreadyRequested,
    /// As many requests are outstanding as the peer accepts.
    #[error("request pipeline full")]
    PipelineFull,
}

/// What changed after an inbound message (at most one event per message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The peer chokes us. Without Fast, `dropped` lists the outstanding requests it discarded
    /// (give them to another peer); with Fast it is empty and each will be rejected or served.
    Choked {
        /// Outstanding requests that will not be served.
        dropped: Vec<BlockRef>,
    },
    /// The peer unchokes us.
    Unchoked,
    /// The peer became interested in us.
    Interested,
    /// The peer is no longer interested in us.
    NotInterested,
    /// The peer has a new piece.
    Have(u32),
    /// The peer's whole availability arrived (bitfield, have all or have none); see
    /// [`Connection::their_have`].
    Availability,
    /// A request was queued; take it with [`Connection::pop_request`].
    RequestQueued(BlockRef),
    /// The peer cancelled a queued request.
    RequestCancelled(BlockRef),
    /// A block we requested arrived.
    Block {
        /// The block.
        block: BlockRef,
        /// Its bytes (shared with the receive buffer, not copied).
        data: Bytes,
    },
    /// The peer rejected one of our outstanding requests (Fast).
    Rejected(BlockRef),
    /// The peer suggests a piece (Fast).
    Suggested(u32),
    /// We may request this piece even while choked (Fast).
    AllowedFast(u32),
    /// The peer's extension handshake; also kept in [`Connection::their_extensions`].
    ExtendedHandshake(Box<ExtendedHandshake>),
    /// A `ut_pex` message (BEP 11): peers the sender knows, capped (see [`ParsedPex`]).
    Pex(Box<ParsedPex>),
    /// An extended message other than the handshake, for the caller's extension handlers.
    Extended {
        /// Our extended id it was sent under.
        id: u8,
        /// Its payload.
        payload: Bytes,
    },
}

/// The protocol state of one peer connection.
#[derive(Debug)]
pub struct Connection {
    handshaken: bool,
    fast: bool,
    extension_protocol: bool,
    am_choking: bool,
    am_interested: bool,
    peer_choking: bool,
    peer_interested: bool,
    availability_known: bool,
    /// Most requests outstanding at once: ours, capped by the peer's `reqq`.
    outbound_limit: u32,
    /// The peer's `reqq` (BEP 10), once its extension handshake arrived.
    their_reqq: Option<u32>,
    their_have: Bitfield,
    last_received: Duration,
    /// Oldest first; blocks mostly arrive in request order, so retiring one is O(1).
    outstanding: VecDeque<(BlockRef, Duration)>,
    outbox: VecDeque<Message>,
    /// Pieces we may request while the peer chokes us.
    their_allowed_fast: Vec<u32>,
    geometry: PieceGeometry,
    inbound: VecDeque<BlockRef>,
    last_sent: Duration,
    /// [`ConnectionConfig::max_inbound_requests`], read on every request.
    max_inbound_requests: u32,
    /// [`ConnectionConfig::send_redundant_haves`], read on every piece we complete.
    send_redundant_haves: bool,
    // Cold: set up once, or read by timers; boxed so that the record a message touches
    // stays small.
    config: Box<ConnectionConfig>,
    /// Pieces the peer may request while we choke it (we told it with `allowed fast`).
    our_allowed_fast: Vec<u32>,
    their_extensions: Option<Box<ExtendedHandshake>>,
    unexpected_blocks: u64,
    /// `ut_metadata` requests received.
    metadata_requests: u32,
    /// When PEX goes out and how much came in (with [`ConnectionConfig::pex`]).
    pex: Option<Box<PexSchedule>>,
    created: Duration,
}

impl Connection {
    /// A connection to a peer of a torrent with `geometry`, opened at `now` (its handshake
    /// timeout starts now). Both sides start choking and not interested.
    pub fn new(config: ConnectionConfig, geometry: PieceGeometry, now: Duration) -> Self {
        let pex = config
            .pex
            .then(|| Box::new(PexSchedule::new(now, PEX_FIRST_AFTER)));
        Connection {
            outbound_limit: config.max_outbound_requests,
            their_reqq: None,
            max_inbound_requests: config.max_inbound_requests,
            send_redundant_haves: config.send_redundant_haves,
            config: Box::new(config),
            geometry,
            handshaken: false,
            fast: false,
            extension_protocol: false,
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            their_have: Bitfield::new(geometry.piece_count()),
            availability_known: false,
            their_extensions: None,
            our_allowed_fast: Vec::new(),
            their_allowed_fast: Vec::new(),
            inbound: VecDeque::new(),
            outstanding: VecDeque::new(),
            outbox: VecDeque::new(),
            unexpected_blocks: 0,
            metadata_requests: 0,
            pex,
            created: now,
            last_received: now,
            last_sent: now,
        }
    }

    /// Processes the peer's handshake (the caller has checked its info-hash and peer id):
    /// settles which extensions both sides support and queues our piece availability (have
    /// all / have none with Fast, else a bitfield unless we have nothing) and, with BEP 10, our
    /// extension handshake, then, when both run a DHT node, our DHT port (BEP 5).
    pub fn on_handshake(&mut self, theirs: &Handshake, our_have: &Bitfield, now: Duration) {
        self.last_received = now;
        if self.handshaken {
            return;
        }
        self.handshaken = true;
        let ours = self.config.reserved;
        self.fast = ours.supports_fast() && theirs.reserved.supports_fast();
        self.extension_protocol =
            ours.supports_extension_protocol() && theirs.reserved.supports_extension_protocol();
        if self.fast && our_have.is_full() {
            self.outbox.push_back(Message::HaveAll);
        } else if self.fast && our_have.count() == 0 {
            self.outbox.push_back(Message::HaveNone);
        } else if our_have.count() > 0 {
            let bits = Bytes::copy_from_slice(our_have.as_bytes());
            self.outbox.push_back(Message::Bitfield(bits));
        }
        if self.extension_protocol {
            let mut hs = ExtendedHandshake::seedbox(
                self.config.max_inbound_requests,
                self.config.listen_port,
                self.config.peer_ip,
            );
            if let Some(metadata) = &self.config.metadata {
                hs.extensions
                    .insert(ut_metadata::UT_METADATA.into(), OUR_UT_METADATA_ID);
                hs.metadata_size = Some(metadata.len() as u64);
            }
            if self.config.pex {
                hs.extensions.insert(pex::UT_PEX.into(), OUR_UT_PEX_ID);
            }
            self.outbox.push_back(hs.to_message());
        }
        if let (Some(port), true) = (self.config.dht_port, theirs.reserved.supports_dht()) {
            self.outbox.push_back(Message::Port(port));
        }
    }

    /// Processes one message from the peer. `our_have` is our current bitfield (requests for
    /// pieces outside it are refused). An `Err` means the peer broke the protocol: drop it.
    pub fn on_message(
        &mut self,
        msg: Message,
        our_have: &Bitfield,
        now: Duration,
    ) -> Result<Option<Event>, Violation> {
        if !self.handshaken {
            return Err(Violation::BeforeHandshake(msg.name()));
        }
        self.last_received = now;
        if msg.is_fast_extension() && !self.fast {
            return Err(Violation::FastNotNegotiated(msg.name()));
        }
        Ok(match msg {
            // A peer's DHT port is not used: the node finds nodes through its lookups.
            Message::KeepAlive | Message::Port(_) => None,
            Message::Choke => self.peer_chokes(),
            Message::Unchoke => {
                let changed = self.peer_choking;
                self.peer_choking = false;
                changed.then_some(Event::Unchoked)
            }
            Message::Interested => {
                let changed = !self.peer_interested;
                self.peer_interested = true;
                changed.then_some(Event::Interested)
            }
            Message::NotInterested => {
                let changed = self.peer_interested;
                self.peer_interested = false;
                changed.then_some(Event::NotInterested)
            }
            Message::Have(piece) => {
                self.in_range("have", piece)?;
                self.availability_known = true;
                self.their_have.set(piece).then_some(Event::Have(piece))
            }
            Message::Bitfield(_) | Message::HaveAll | Message::HaveNone => {
                self.on_availability(msg)?
            }
            Message::Request(block) => self.on_request(block, our_have)?,
            Message::Cancel(block) => self.on_cancel(block),
            Message::Piece {
                piece,
                offset,
                data,
            } => self.on_piece(piece, offset, data)?,
            Message::RejectRequest(block) => {
                let pos = self.outstanding.iter().position(|(b, _)| *b == block);
                pos.map(|i| {
                    self.outstanding.remove(i);
                    Event::Rejected(block)
                })
            }
            Message::SuggestPiece(piece) => {
                self.in_range("suggest piece", piece)?;
                Some(Event::Suggested(piece))
            }
            Message::AllowedFast(piece) => self.on_allowed_fast(piece)?,
            Message::Extended { id, payload } => self.on_extended(id, payload, now)?,
        })
    }

    /// A `piece` field naming a piece the torrent has not is a violation.
    fn in_range(&self, message: &'static str, piece: u32) -> Result<(), Violation> {
        let pieces = self.geometry.piece_count();
        if piece < pieces {
            Ok(())
        } else {
            Err(Violation::PieceOutOfRange {
                message,
                piece,
                pieces,
            })
        }
    }

    /// A bitfield, have all or have none: the peer's whole availability, once, first.
    fn on_availability(&mut self, msg: Message) -> Result<Option<Event>, Violation> {
        let pieces = self.geometry.piece_count();
        self.their_have = match msg {
            Message::Bitfield(bits) => {
                self.check_first_availability("bitfield")?;
                Bitfield::from_bytes(&bits, pieces).ok_or(Violation::BadBitfield {
                    bytes: bits.len(),
                    pieces,
                })?
            }
            Message::HaveAll => {
                self.check_first_availability("have all")?;
                Bitfield::full(pieces)
            }
            _ => {
                self.check_first_availability("have none")?;
                Bitfield::new(pieces)
            }
        };
        Ok(Some(Event::Availability))
    }

    /// The peer cancelled one of its queued requests (rejected, with the fast extension).
    fn on_cancel(&mut self, block: BlockRef) -> Option<Event> {
        let pos = self.inbound.iter().position(|b| *b == block);
        pos.and_then(|i| self.inbound.remove(i)).map(|b| {
            if self.fast {
                self.outbox.push_back(Message::RejectRequest(b));
            }
            Event::RequestCancelled(b)
        })
    }

    /// A block arrived: an event if we asked for it, else counted as unexpected.
    fn on_piece(
        &mut self,
        piece: u32,
        offset: u32,
        data: Bytes,
    ) -> Result<Option<Event>, Violation> {
        let length = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let block = BlockRef {
            piece,
            offset,
            length,
        };
        if !self.geometry.is_valid_request(block, BLOCK_SIZE) {
            return Err(Violation::InvalidBlock(block));
        }
        Ok(
            match self.outstanding.iter().position(|(b, _)| *b == block) {
                Some(i) => {
                    self.outstanding.remove(i);
                    Some(Event::Block { block, data })
                }
                None => {
                    self.unexpected_blocks += 1;
                    None
                }
            },
        )
    }

    /// The peer allows a piece while choking us (kept up to a bound, each piece once).
    fn on_allowed_fast(&mut self, piece: u32) -> Result<Option<Event>, Violation> {
        self.in_range("allowed fast", piece)?;
        if self.their_allowed_fast.len() >= MAX_THEIR_ALLOWED_FAST
            || self.their_allowed_fast.contains(&piece)
        {
            return Ok(None);
        }
        self.their_allowed_fast.push(piece);
        Ok(Some(Event::AllowedFast(piece)))
    }

    /// A BEP 10 message: the extended handshake (its `reqq` bounds our requests), a BEP 9
    /// metadata message when we serve metadata, or any other for the caller.
    fn on_extended(
        &mut self,
        id: u8,
        payload: Bytes,
        now: Duration,
    ) -> Result<Option<Event>, Violation> {
        if !self.extension_protocol {
            return Err(Violation::ExtensionNotNegotiated);
        }
        if id == EXTENDED_HANDSHAKE_ID {
            let hs = ExtendedHandshake::parse(&payload)?;
            self.their_reqq = hs.reqq;
            self.outbound_limit = self
                .config
                .max_outbound_requests
                .min(hs.reqq.unwrap_or(u32::MAX));
            self.their_extensions = Some(Box::new(hs.clone()));
            Ok(Some(Event::ExtendedHandshake(Box::new(hs))))
        } else if id == OUR_UT_METADATA_ID && self.config.metadata.is_some() {
            self.on_metadata_message(&payload)?;
            Ok(None)
        } else if let (OUR_UT_PEX_ID, Some(schedule)) = (id, self.pex.as_mut()) {
            if !schedule.on_received(now) {
                return Err(Violation::PexFlood);
            }
            let parsed = pex::PexMessage::parse(&payload)?;
            Ok(Some(Event::Pex(Box::new(parsed))))
        } else {
            Ok(Some(Event::Extended { id, payload }))
        }
    }

    /// Answers a BEP 9 request with the piece of the info dictionary, or a reject past its
    /// end. A connection is served at most every piece a few times over (a client that lost
    /// some retries); beyond that requests are rejected, and a peer that keeps asking after
    /// as many rejects as our `reqq` is flooding.
    fn on_metadata_message(&mut self, payload: &Bytes) -> Result<(), Violation> {
        let MetadataMessage::Request { piece } = ut_metadata::parse_shared(payload)? else {
            // Data and rejects answer requests we never make on a served torrent.
            return Ok(());
        };
        let Some(metadata) = &self.config.metadata else {
            return Ok(());
        };
        self.metadata_requests = self.metadata_requests.saturating_add(1);
        let budget = 4 * ut_metadata::piece_count(metadata.len() as u64) + 8;
        if self.metadata_requests > budget.saturating_add(self.config.max_inbound_requests) {
            return Err(Violation::MetadataFlood(self.metadata_requests));
        }
        let Some(their_id) = self
            .their_extensions
            .as_ref()
            .and_then(|h| h.id_for(ut_metadata::UT_METADATA))
        else {
            // It never said under which id it takes ut_metadata: nothing can be sent back.
            return Ok(());
        };
        let reply = match ut_metadata::piece_of(metadata, piece) {
            Some(data) if self.metadata_requests <= budget => MetadataMessage::Data {
                piece,
                total_size: metadata.len() as u64,
                data,
            },
            _ => MetadataMessage::Reject { piece },
        };
        self.outbox.push_back(Message::Extended {
            id: their_id,
            payload: Bytes::from(reply.encode()),
        });
        Ok(())
    }

    fn check_first_availability(&mut self, message: &'static str) -> Result<(), Violation> {
        if self.availability_known {
            return Err(Violation::AvailabilityRepeated(message));
        }
        self.availability_known = true;
        Ok(())
    }

    fn peer_chokes(&mut self) -> Option<Event> {
        if self.peer_choking {
            return None;
        }
        self.peer_choking = true;
        let dropped = if self.fast {
            Vec::new()
        } else {
            self.outstanding.drain(..).map(|(b, _)| b).collect()
        };
        Some(Event::Choked { dropped })
    }

    /// Refuses a request: a reject with Fast, silence without.
    fn refuse(&mut self, block: BlockRef) {
        if self.fast {
            self.outbox.push_back(Message::RejectRequest(block));
        }
    }

    /// Refuses an inbound request; with Fast, a violation when the outbox already holds as many
    /// messages as the request queue may (the peer floods faster than it reads its rejects).
    fn refuse_request(&mut self, block: BlockRef) -> Result<Option<Event>, Violation> {
        let limit = self.max_inbound_requests;
        if self.fast && self.outbox.len() >= limit.max(16) as usize {
            return Err(Violation::RequestFlood(limit));
        }
        self.refuse(block);
        Ok(None)
    }

    fn on_request(
        &mut self,
        block: BlockRef,
        our_have: &Bitfield,
    ) -> Result<Option<Event>, Violation> {
        if !self.geometry.is_valid_request(block, BLOCK_SIZE) {
            return Err(Violation::InvalidRequest(block));
        }
        if !our_have.has(block.piece) {
            if !self.fast {
                return Err(Violation::RequestForMissingPiece(block.piece));
            }
            return self.refuse_request(block);
        }
        if self.am_choking && !self.our_allowed_fast.contains(&block.piece) {
            return self.refuse_request(block);
        }
        if self.inbound.contains(&block) {
            return Ok(None);
        }
        let limit = self.max_inbound_requests;
        if self.inbound.len() >= limit as usize {
            if !self.fast {
                return Err(Violation::RequestFlood(limit));
            }
            return self.refuse_request(block);
        }
        self.inbound.push_back(block);
        Ok(Some(Event::RequestQueued(block)))
    }

    /// Takes the next queued inbound request to serve (oldest first). The caller sends
    /// [`piece_header`](super::wire::piece_header) and the block's bytes; `now` counts as a
    /// send for the keep-alive timer.
    pub fn pop_request(&mut self, now: Duration) -> Option<BlockRef> {
        let block = self.inbound.pop_front()?;
        self.last_sent = now;
        Some(block)
    }

    /// Takes the next message to send; `now` counts as a send for the keep-alive timer.
    pub fn poll_message(&mut self, now: Duration) -> Option<Message> {
        let msg = self.outbox.pop_front()?;
        self.last_sent = now;
        Some(msg)
    }

    /// Chokes the peer (no-op if already choked): queues `choke` and drops its queued requests,
    /// except, with Fast, those for allowed-fast pieces; with Fast the dropped ones are rejected.
    pub fn choke(&mut self) {
        if self.am_choking {
            return;
        }
        self.am_choking = true;
        self.outbox.push_back(Message::Choke);
        let queue = std::mem::take(&mut self.inbound);
        for block in queue {
            if self.fast && self.our_allowed_fast.contains(&block.piece) {
                self.inbound.push_back(block);
            } else {
                self.refuse(block);
            }
        }
    }

    /// Unchokes the peer (no-op if already unchoked): queues `unchoke`.
    pub fn unchoke(&mut self) {
        if self.am_choking {
            self.am_choking = false;
            self.outbox.push_back(Message::Unchoke);
        }
    }

    /// Sets our interest in the peer, queueing `interested` / `not interested` on a change.
    pub fn set_interested(&mut self, interested: bool) {
        if self.am_interested != interested {
            self.am_interested = interested;
            self.outbox.push_back(if interested {
                Message::Interested
            } else {
                Message::NotInterested
            });
        }
    }

    /// Announces a piece we completed (`our_have` already includes it): queues `have` and
    /// returns true, or returns false when nothing needs sending.
    ///
    /// Before the handshake nothing is sent: the availability [`Connection::on_handshake`]
    /// queues is taken from our bitfield then, so it covers the piece, and a `have` ahead of
    /// the handshake is a protocol violation. Unless
    /// [`ConnectionConfig::send_redundant_haves`] is set, a peer that has the piece already is
    /// not told ("have suppression": such a peer never requests it, so the `have` tells it
    /// nothing it acts on); the piece that completes our download is always announced, so
    /// every peer sees us become a seed.
    #[inline]
    pub fn have(&mut self, piece: u32, our_have: &Bitfield) -> bool {
        if !self.handshaken {
            return false;
        }
        if !self.send_redundant_haves && self.their_have.has(piece) && !our_have.is_full() {
            return false;
        }
        self.outbox.push_back(Message::Have(piece));
        true
    }

    /// Lets the peer request `piece` even while we choke it (Fast only; returns false and does
    /// nothing without Fast or for a piece out of range). Choosing the set (BEP 6's canonical
    /// algorithm or otherwise) is the caller's business.
    pub fn allow_fast(&mut self, piece: u32) -> bool {
        if !self.fast || piece >= self.geometry.piece_count() {
            return false;
        }
        if !self.our_allowed_fast.contains(&piece) {
            self.our_allowed_fast.push(piece);
            self.outbox.push_back(Message::AllowedFast(piece));
        }
        true
    }

    /// Requests a block from the peer: checks it is valid, the peer has the piece, does not
    /// choke us (or allowed the piece fast), is not already asked for it and has pipeline room;
    /// then queues the `request` and tracks it.
    pub fn request(&mut self, block: BlockRef, now: Duration) -> Result<(), RequestError> {
        if !self.handshaken {
            return Err(RequestError::NoHandshake);
        }
        if !self.geometry.is_valid_request(block, BLOCK_SIZE) {
            return Err(RequestError::InvalidBlock);
        }
        if !self.their_have.has(block.piece) {
            return Err(RequestError::PeerLacksPiece(block.piece));
        }
        if self.peer_choking && !(self.fast && self.their_allowed_fast.contains(&block.piece)) {
            return Err(RequestError::Choked);
        }
        if self.outstanding.iter().any(|(b, _)| *b == block) {
            return Err(RequestError::AlreadyRequested);
        }
        if self.request_capacity() == 0 {
            return Err(RequestError::PipelineFull);
        }
        self.outstanding.push_back((block, now));
        self.outbox.push_back(Message::Request(block));
        Ok(())
    }

    /// Withdraws an outstanding request: queues `cancel`. Returns false if it was not
    /// outstanding. (With Fast the peer still answers with the block or a reject; a block that
    /// arrives anyway is counted as unexpected.)
    pub fn cancel(&mut self, block: BlockRef) -> bool {
        match self.outstanding.iter().position(|(b, _)| *b == block) {
            Some(i) => {
                self.outstanding.remove(i);
                self.outbox.push_back(Message::Cancel(block));
                true
            }
            None => false,
        }
    }

    /// Sends the peer PEX when due ([`PexSchedule::poll`] over `swarm`, the torrent's view;
    /// `recipient`: the peer's listen address, left out of its first message). Returns
    /// whether a message was queued. Nothing goes out before the peer's extension handshake,
    /// nor to a peer that does not take `ut_pex`, nor without [`ConnectionConfig::pex`].
    pub fn poll_pex(
        &mut self,
        now: Duration,
        swarm: &mut PexSwarm,
        recipient: Option<std::net::SocketAddr>,
    ) -> bool {
        let Some(schedule) = self.pex.as_mut() else {
            return false;
        };
        let Some(their_id) = self
            .their_extensions
            .as_ref()
            .and_then(|h| h.id_for(pex::UT_PEX))
        else {
            return false;
        };
        match schedule.poll(now, swarm, recipient) {
            Some(payload) => {
                self.outbox.push_back(Message::Extended {
                    id: their_id,
                    payload,
                });
                true
            }
            None => false,
        }
    }

    /// When [`Connection::poll_pex`] may next send (`None`: never, PEX is off, or the peer
    /// does not take it).
    pub fn pex_due(&self) -> Option<Duration> {
        let schedule = self.pex.as_ref()?;
        match &self.their_extensions {
            Some(h) if h.id_for(pex::UT_PEX).is_none() => None,
            _ => Some(schedule.next_at()),
        }
    }

    /// How many more requests the peer accepts now: our limit, capped by its `reqq`.
    pub fn request_capacity(&self) -> usize {
        (self.outbound_limit as usize).saturating_sub(self.outstanding.len())
    }

    /// The `reqq` of the peer's extension handshake, if it sent one with it.
    pub fn their_reqq(&self) -> Option<u32> {
        self.their_reqq
    }

    /// Checks the timers: `Some` means drop the peer. Queues a keep-alive when we have sent
    /// nothing for [`ConnectionConfig::keepalive_interval`] (and nothing else is queued).
    pub fn poll_timeout(&mut self, now: Duration) -> Option<Timeout> {
        if !self.handshaken {
            if now >= self.created + self.config.handshake_timeout {
                return Some(Timeout::Handshake);
            }
            return None;
        }
        if now >= self.last_received + self.config.idle_timeout {
            return Some(Timeout::Idle);
        }
        if now >= self.last_sent + self.config.keepalive_interval && self.outbox.is_empty() {
            self.outbox.push_back(Message::KeepAlive);
        }
        None
    }

    /// When [`Connection::poll_timeout`] next has something to do.
    pub fn next_deadline(&self) -> Duration {
        if !self.handshaken {
            return self.created + self.config.handshake_timeout;
        }
        (self.last_received + self.config.idle_timeout)
            .min(self.last_sent + self.config.keepalive_interval)
    }

    /// Whether the peer's handshake has been processed.
    pub fn is_handshaken(&self) -> bool {
        self.handshaken
    }

    /// Whether both sides support the Fast extension (BEP 6).
    pub fn fast(&self) -> bool {
        self.fast
    }

    /// Whether both sides support the extension protocol (BEP 10).
    pub fn extension_protocol(&self) -> bool {
        self.extension_protocol
    }

    /// Whether we choke the peer.
    pub fn am_choking(&self) -> bool {
        self.am_choking
    }

    /// Whether we are interested in the peer.
    pub fn am_interested(&self) -> bool {
        self.am_interested
    }

    /// Whether the peer chokes us.
    pub fn peer_choking(&self) -> bool {
        self.peer_choking
    }

    /// Whether the peer is interested in us.
    pub fn peer_interested(&self) -> bool {
        self.peer_interested
    }

    /// The pieces the peer has.
    pub fn their_have(&self) -> &Bitfield {
        &self.their_have
    }

    /// The peer's extension handshake, once received.
    pub fn their_extensions(&self) -> Option<&ExtendedHandshake> {
        self.their_extensions.as_deref()
    }

    /// Pieces we may request while the peer chokes us.
    pub fn their_allowed_fast(&self) -> &[u32] {
        &self.their_allowed_fast
    }

    /// Number of inbound requests waiting to be served.
    pub fn queued_requests(&self) -> usize {
        self.inbound.len()
    }

    /// Our outstanding requests with the time each was made, oldest first.
    pub fn outstanding(&self) -> &VecDeque<(BlockRef, Duration)> {
        &self.outstanding
    }

    /// For a `piece` message answering one of our outstanding requests, the time since that
    /// request was made (a request-to-block sample for pipeline sizing); call it before
    /// [`Connection::on_message`], which retires the request.
    pub fn request_age(&self, msg: &Message, now: Duration) -> Option<Duration> {
        let Message::Piece {
            piece,
            offset,
            data,
        } = msg
        else {
            return None;
        };
        let block = BlockRef {
            piece: *piece,
            offset: *offset,
            length: data.len() as u32,
        };
        self.outstanding
            .iter()
            .find(|(b, _)| *b == block)
            .map(|(_, sent)| now.saturating_sub(*sent))
    }

    /// Blocks received that we had not requested (or had cancelled), dropped.
    pub fn unexpected_blocks(&self) -> u64 {
        self.unexpected_blocks
    }

    /// Messages waiting in the outbox.
    pub fn pending_messages(&self) -> usize {
        self.outbox.len()
    }
}

#[cfg(test)]
mod tests;
