//! One uTP connection (BEP 29), sans-IO: the caller passes received packets, the time, and
//! the bytes to send, and takes back datagrams to send and bytes received in order.
//!
//! Reliability: cumulative and selective acks, fast retransmit after three duplicate or
//! selective acks past a hole, retransmission on a timeout (RFC 6298 estimator, 500 ms
//! floor, doubling, given up after `max_timeouts`). Congestion: slow start, then LEDBAT
//! (RFC 6817) steering the one-way queuing delay to `target_delay_us`, with the window
//! halved on a loss. Memory is bounded both ways: the send buffer by `send_buffer`, received
//! bytes (in order and out of order) by the advertised `recv_window`.

use std::collections::{HashMap, VecDeque};

use super::packet::{Header, PacketType, Sack, HEADER_LEN, MAX_SACK_BYTES};

/// Settings of one connection.
#[derive(Debug, Clone)]
pub struct UtpConfig {
    /// Largest datagram sent, header included (1,400: below any path MTU on the Internet).
    pub max_packet: usize,
    /// Receive buffer (in-order plus out-of-order bytes): what is advertised as `wnd_size`.
    pub recv_window: usize,
    /// Bytes the application may queue for sending.
    pub send_buffer: usize,
    /// LEDBAT's target queuing delay (RFC 6817: 100 ms).
    pub target_delay_us: u32,
    /// Largest congestion window (128 KiB: a burst of a full window must fit the peer's
    /// UDP receive buffer, about 200 KiB by default on Linux, or all of it is lost at once).
    pub max_cwnd: usize,
    /// Consecutive timeouts after which the connection is given up.
    pub max_timeouts: u32,
    /// SYN retransmissions before an outgoing connection is given up.
    pub syn_retries: u32,
    /// First retransmission timeout, and the SYN's.
    pub initial_rto_us: u64,
    /// Floor of the retransmission timeout.
    pub min_rto_us: u64,
}

impl Default for UtpConfig {
    fn default() -> UtpConfig {
        UtpConfig {
            max_packet: 1400,
            recv_window: 1 << 20,
            send_buffer: 1 << 20,
            target_delay_us: 100_000,
            max_cwnd: 128 << 10,
            max_timeouts: 6,
            syn_retries: 2,
            initial_rto_us: 1_000_000,
            min_rto_us: 500_000,
        }
    }
}

/// Where a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Our SYN is out, no answer yet.
    SynSent,
    /// Data flows.
    Connected,
    /// Over: see [`CloseReason`].
    Closed(CloseReason),
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Both sides sent FIN and every byte was acknowledged.
    Finished,
    /// The peer sent RESET.
    Reset,
    /// Nothing was acknowledged through `max_timeouts` timeouts (or the SYN retries).
    TimedOut,
    /// Our SYN was refused: an ICMP port unreachable came back (nothing listens there).
    Unreachable,
}

/// A packet sent and not yet acknowledged.
#[derive(Debug)]
struct Sent {
    seq: u16,
    kind: PacketType,
    payload: Vec<u8>,
    sent_at: u64,
    transmissions: u32,
    need_resend: bool,
}

/// Whether `a` comes before `b` in wrapping sequence space.
fn seq_lt(a: u16, b: u16) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000
}

/// Packets past a hole that are kept at most.
const MAX_OUT_OF_ORDER: usize = 1024;
/// A loss detected by this many later packets acknowledged is resent at once.
const DUP_ACK_THRESHOLD: u32 = 3;
/// Base delays are the minimum of the current and the previous minute (RFC 6817's history).
const BASE_DELAY_BUCKET_US: u64 = 60_000_000;

/// One uTP connection's state machine.
#[derive(Debug)]
pub struct Connection {
    cfg: UtpConfig,
    state: State,
    recv_id: u16,
    send_id: u16,
    /// The next sequence number to send.
    seq_nr: u16,
    /// The last sequence number received in order.
    ack_nr: u16,
    // Sending.
    send_buf: VecDeque<u8>,
    /// Bytes of `send_buf` that must end a packet (see [`Connection::end_packet`]).
    packet_end: Option<usize>,
    inflight: VecDeque<Sent>,
    bytes_in_flight: usize,
    cwnd: usize,
    slow_start: bool,
    ssthresh: usize,
    peer_wnd: usize,
    srtt: Option<u64>,
    rttvar: u64,
    rto: u64,
    rto_deadline: Option<u64>,
    timeouts: u32,
    last_ack: u16,
    dup_acks: u32,
    /// Losses at or before this sequence number were already answered by halving the window.
    loss_seq: u16,
    base_delay: [u32; 2],
    base_bucket_start: u64,
    fin_wanted: bool,
    fin_seq: Option<u16>,
    fin_acked: bool,
    // Receiving.
    ready: VecDeque<u8>,
    out_of_order: HashMap<u16, (PacketType, Vec<u8>)>,
    ooo_bytes: usize,
    eof_seq: Option<u16>,
    eof: bool,
    ack_pending: bool,
    /// Our receive time minus the peer's timestamp, for the next `timestamp_diff`.
    reply_delay: u32,
    last_received: u64,
    window_was_small: bool,
    heard_data: bool,
    /// Opened by the peer's SYN (not by us).
    incoming: bool,
    /// A SYN is to be answered by a STATE before anything else (peers want a STATE).
    answer_syn: bool,
    /// Our first sequence number (what a STATE answering a SYN carries).
    first_seq: u16,
}

impl Connection {
    fn new(cfg: UtpConfig, recv_id: u16, send_id: u16, seq_nr: u16, now: u64) -> Connection {
        let mss = cfg.max_packet - HEADER_LEN;
        Connection {
            rto: cfg.initial_rto_us,
            ssthresh: cfg.max_cwnd,
            peer_wnd: cfg.recv_window,
            cwnd: 2 * mss,
            cfg,
            state: State::Connected,
            recv_id,
            send_id,
            seq_nr,
            ack_nr: 0,
            send_buf: VecDeque::new(),
            packet_end: None,
            inflight: VecDeque::new(),
            bytes_in_flight: 0,
            slow_start: true,
            srtt: None,
            rttvar: 0,
            rto_deadline: None,
            timeouts: 0,
            last_ack: seq_nr.wrapping_sub(1),
            dup_acks: 0,
            loss_seq: seq_nr.wrapping_sub(1),
            base_delay: [u32::MAX; 2],
            base_bucket_start: now,
            fin_wanted: false,
            fin_seq: None,
            fin_acked: false,
            ready: VecDeque::new(),
            out_of_order: HashMap::new(),
            ooo_bytes: 0,
            eof_seq: None,
            eof: false,
            ack_pending: false,
            reply_delay: 0,
            last_received: now,
            window_was_small: false,
            heard_data: false,
            incoming: false,
            answer_syn: false,
            first_seq: seq_nr,
        }
    }

    /// Opens a connection: `recv_id` is ours (packets to us carry it), the peer's is
    /// `recv_id + 1`; `seq_nr` the SYN's sequence number. The SYN is the first datagram of
    /// [`Connection::poll_transmit`].
    pub fn connect(cfg: UtpConfig, recv_id: u16, seq_nr: u16, now: u64) -> Connection {
        let mut c = Connection::new(cfg, recv_id, recv_id.wrapping_add(1), seq_nr, now);
        c.state = State::SynSent;
        c.inflight.push_back(Sent {
            seq: seq_nr,
            kind: PacketType::Syn,
            payload: Vec::new(),
            sent_at: now,
            transmissions: 0,
            need_resend: true,
        });
        c.seq_nr = seq_nr.wrapping_add(1);
        c
    }

    /// Accepts the SYN `syn`: our receive id is its id + 1, our first sequence number
    /// `seq_nr`. The STATE that answers it is the first datagram to send.
    pub fn accept(cfg: UtpConfig, syn: &Header, seq_nr: u16, now: u64) -> Connection {
        let mut c = Connection::new(
            cfg,
            syn.connection_id.wrapping_add(1),
            syn.connection_id,
            seq_nr,
            now,
        );
        c.ack_nr = syn.seq_nr;
        c.peer_wnd = syn.wnd_size as usize;
        c.reply_delay = (now as u32).wrapping_sub(syn.timestamp_us);
        c.answer_syn = true;
        c.incoming = true;
        c
    }

    /// Where the connection is.
    pub fn state(&self) -> State {
        self.state
    }

    /// The id packets to us carry.
    pub fn recv_id(&self) -> u16 {
        self.recv_id
    }

    /// The id packets to the peer carry.
    pub fn send_id(&self) -> u16 {
        self.send_id
    }

    /// Whether the connection is over.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed(_))
    }

    /// Whether this accepted connection heard nothing but the SYN from the peer yet: it may
    /// be one of a flood of forged SYNs (whose source addresses never see our answer).
    pub fn is_half_open(&self) -> bool {
        self.incoming && self.state == State::Connected && !self.heard_data
    }

    /// A one-line summary of the sender's state, for logs.
    pub fn summary(&self) -> String {
        format!(
            "{:?} cwnd {} peer_wnd {} in_flight {} ({} packets, {} to resend) queued {} rto {} ms timeouts {} seq {} ack {} last_ack {} ready {} ooo {}",
            self.state,
            self.cwnd,
            self.peer_wnd,
            self.bytes_in_flight,
            self.inflight.len(),
            self.inflight.iter().filter(|s| s.need_resend).count(),
            self.send_buf.len(),
            self.rto / 1000,
            self.timeouts,
            self.seq_nr,
            self.ack_nr,
            self.last_ack,
            self.ready.len(),
            self.out_of_order.len()
        )
    }

    /// The current congestion window, bytes.
    pub fn cwnd(&self) -> usize {
        self.cwnd
    }

    fn mss(&self) -> usize {
        self.cfg.max_packet - HEADER_LEN
    }

    /// Queues `data` for sending; returns the bytes taken (fewer when the send buffer is
    /// full, 0 once closed or closing).
    pub fn write(&mut self, data: &[u8]) -> usize {
        if self.is_closed() || self.fin_wanted {
            return 0;
        }
        let n = data
            .len()
            .min(self.cfg.send_buffer.saturating_sub(self.send_buf.len()));
        self.send_buf.extend(&data[..n]);
        n
    }

    /// Ends a packet after the bytes queued so far: what is written next goes in a later
    /// packet. Transmission 3.00 (libutp) parses no message that arrives in the same packet
    /// as the handshake until another packet comes, so the handshake ends its packet.
    pub fn end_packet(&mut self) {
        if !self.send_buf.is_empty() {
            self.packet_end = Some(self.send_buf.len());
        }
    }

    /// Bytes the send buffer can take now.
    pub fn send_space(&self) -> usize {
        if self.is_closed() || self.fin_wanted {
            return 0;
        }
        self.cfg.send_buffer.saturating_sub(self.send_buf.len())
    }

    /// Bytes queued or in flight, not yet acknowledged.
    pub fn unacked(&self) -> usize {
        self.send_buf.len() + self.bytes_in_flight
    }

    /// Takes received in-order bytes into `buf`; returns how many.
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.ready.len());
        let (a, b) = self.ready.as_slices();
        let from_a = n.min(a.len());
        buf[..from_a].copy_from_slice(&a[..from_a]);
        buf[from_a..n].copy_from_slice(&b[..n - from_a]);
        self.ready.drain(..n);
        // A window that was too small for a packet has opened: tell the peer.
        if self.window_was_small && self.recv_window_left() >= self.mss() {
            self.window_was_small = false;
            self.ack_pending = true;
        }
        n
    }

    /// Bytes ready to read.
    pub fn readable(&self) -> usize {
        self.ready.len()
    }

    /// Whether the peer's stream has ended and every byte before its FIN was read.
    pub fn is_eof(&self) -> bool {
        self.eof && self.ready.is_empty()
    }

    /// Ends our side: a FIN follows the queued bytes.
    pub fn close(&mut self) {
        self.fin_wanted = true;
    }

    fn recv_window_left(&self) -> usize {
        self.cfg
            .recv_window
            .saturating_sub(self.ready.len() + self.ooo_bytes)
    }

    /// When [`Connection::on_tick`] must run next (µs), if ever.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.is_closed() {
            return None;
        }
        self.rto_deadline
    }

    /// Handles a packet addressed to this connection (its id already matched).
    pub fn on_packet(&mut self, h: &Header, payload: &[u8], now: u64) {
        if self.state == State::Closed(CloseReason::Finished)
            && matches!(h.kind, PacketType::Data | PacketType::Fin)
        {
            // Our last ack was lost: the peer repeats its FIN.
            self.ack_pending = true;
            return;
        }
        if self.is_closed() {
            return;
        }
        self.last_received = now;
        self.reply_delay = (now as u32).wrapping_sub(h.timestamp_us);
        match h.kind {
            PacketType::Reset => {
                self.state = State::Closed(CloseReason::Reset);
                return;
            }
            PacketType::Syn => {
                // Our STATE was lost: answer the repeated SYN again.
                if h.seq_nr == self.ack_nr {
                    self.answer_syn = true;
                }
                return;
            }
            _ => {}
        }
        if self.state == State::SynSent {
            // The answer to our SYN is a STATE whose seq_nr is the peer's first data packet's.
            // Data before it (its STATE lost) is ignored: it is sent again.
            if h.kind != PacketType::State {
                return;
            }
            self.state = State::Connected;
            self.ack_nr = h.seq_nr.wrapping_sub(1);
        }
        self.peer_wnd = h.wnd_size as usize;
        self.on_ack(h, now);
        if matches!(h.kind, PacketType::Data | PacketType::Fin) {
            self.on_data(h, payload);
        }
        self.check_finished();
    }

    fn check_finished(&mut self) {
        if self.fin_acked && self.eof && self.state == State::Connected {
            self.state = State::Closed(CloseReason::Finished);
        }
    }

    fn on_ack(&mut self, h: &Header, now: u64) {
        // Acks for packets never sent are forged or confused: ignore them.
        if !seq_lt(h.ack_nr, self.seq_nr) {
            return;
        }
        let mut acked_bytes = 0usize;
        let mut newest_rtt = None;
        while let Some(front) = self.inflight.front() {
            if seq_lt(h.ack_nr, front.seq) {
                break;
            }
            let s = self.inflight.pop_front().expect("front exists");
            acked_bytes += self.account_acked(&s, now, &mut newest_rtt);
        }
        let mut sacked_past_hole = 0u32;
        if let Some(sack) = &h.sack {
            // Packets the peer holds past the hole, whether just acked or earlier.
            sacked_past_hole = (0..sack.len() * 8).filter(|&b| sack.get(b)).count() as u32;
            let mut i = 0;
            while i < self.inflight.len() {
                let d = self.inflight[i].seq.wrapping_sub(h.ack_nr).wrapping_sub(2) as usize;
                if d < sack.len() * 8 && sack.get(d) {
                    let s = self.inflight.remove(i).expect("index in range");
                    acked_bytes += self.account_acked(&s, now, &mut newest_rtt);
                } else {
                    i += 1;
                }
            }
        }
        if let Some(r) = newest_rtt {
            self.rtt_sample(r);
        }
        // Duplicate acks: the same ack_nr again while data is outstanding.
        if acked_bytes == 0 && h.ack_nr == self.last_ack && !self.inflight.is_empty() {
            if h.kind == PacketType::State {
                self.dup_acks += 1;
            }
        } else if h.ack_nr != self.last_ack {
            self.dup_acks = 0;
        }
        self.last_ack = h.ack_nr;
        if let Some(fin) = self.fin_seq {
            if !seq_lt(h.ack_nr, fin) {
                self.fin_acked = true;
            }
        }
        if (self.dup_acks >= DUP_ACK_THRESHOLD || sacked_past_hole >= DUP_ACK_THRESHOLD)
            && !self.inflight.is_empty()
        {
            self.fast_retransmit();
        }
        if acked_bytes > 0 {
            self.timeouts = 0;
            self.congestion_update(acked_bytes, h.timestamp_diff_us, now);
            self.rto_deadline = if self.inflight.is_empty() {
                None
            } else {
                Some(now + self.rto)
            };
        }
    }

    fn account_acked(&mut self, s: &Sent, now: u64, newest_rtt: &mut Option<u64>) -> usize {
        self.bytes_in_flight -= s.payload.len();
        if s.transmissions == 1 {
            *newest_rtt = Some(now.saturating_sub(s.sent_at));
        }
        s.payload.len().max(1)
    }

    fn fast_retransmit(&mut self) {
        let first = &mut self.inflight[0];
        if first.transmissions > 1 && !seq_lt(self.loss_seq, first.seq) {
            return;
        }
        if !first.need_resend {
            first.need_resend = true;
        }
        self.dup_acks = 0;
        if seq_lt(self.loss_seq, first.seq) {
            // One halving per window of losses.
            self.loss_seq = self.seq_nr.wrapping_sub(1);
            self.cwnd = (self.cwnd / 2).max(self.mss());
            self.ssthresh = self.cwnd;
            self.slow_start = false;
        }
    }

    fn rtt_sample(&mut self, r: u64) {
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(s) => {
                self.rttvar = (3 * self.rttvar + s.abs_diff(r)) / 4;
                self.srtt = Some((7 * s + r) / 8);
            }
        }
        self.rto = (self.srtt.unwrap_or(r) + 4 * self.rttvar).max(self.cfg.min_rto_us);
    }

    fn congestion_update(&mut self, acked: usize, delay_us: u32, now: u64) {
        let mss = self.mss();
        if now.saturating_sub(self.base_bucket_start) >= BASE_DELAY_BUCKET_US {
            self.base_delay = [u32::MAX, self.base_delay[0]];
            self.base_bucket_start = now;
        }
        let queuing = if delay_us == 0 {
            0
        } else {
            self.base_delay[0] = self.base_delay[0].min(delay_us);
            let base = self.base_delay[0].min(self.base_delay[1]);
            delay_us.wrapping_sub(base).min(u32::MAX / 2)
        };
        let target = self.cfg.target_delay_us.max(1);
        if self.slow_start {
            self.cwnd += acked;
            if self.cwnd >= self.ssthresh || queuing > target / 2 {
                self.slow_start = false;
            }
        } else {
            let off_target = (f64::from(target) - f64::from(queuing)) / f64::from(target);
            let delta = off_target.clamp(-1.0, 1.0) * acked as f64 * mss as f64 / self.cwnd as f64;
            self.cwnd = (self.cwnd as f64 + delta).max(mss as f64) as usize;
        }
        self.cwnd = self.cwnd.clamp(mss, self.cfg.max_cwnd);
    }

    fn on_data(&mut self, h: &Header, payload: &[u8]) {
        self.ack_pending = true;
        self.heard_data = true;
        let dist = h.seq_nr.wrapping_sub(self.ack_nr);
        if dist == 0 || dist >= 0x8000 {
            return; // a duplicate: the ack goes out again
        }
        if let Some(eof) = self.eof_seq {
            if seq_lt(eof, h.seq_nr) {
                return; // past the peer's FIN
            }
        }
        if h.kind == PacketType::Fin {
            self.eof_seq = Some(h.seq_nr);
        }
        if payload.len() > self.recv_window_left() {
            self.window_was_small = true;
            return; // the peer overran our window: dropped, it resends
        }
        if dist == 1 {
            self.deliver(h.kind, payload, h.seq_nr);
            loop {
                let next = self.ack_nr.wrapping_add(1);
                let Some((kind, p)) = self.out_of_order.remove(&next) else {
                    break;
                };
                self.ooo_bytes -= p.len();
                self.deliver(kind, &p, next);
            }
        } else if usize::from(dist) <= MAX_OUT_OF_ORDER
            && self.out_of_order.len() < MAX_OUT_OF_ORDER
            && !self.out_of_order.contains_key(&h.seq_nr)
        {
            self.ooo_bytes += payload.len();
            self.out_of_order
                .insert(h.seq_nr, (h.kind, payload.to_vec()));
        }
        if self.recv_window_left() < self.mss() {
            self.window_was_small = true;
        }
    }

    fn deliver(&mut self, kind: PacketType, payload: &[u8], seq: u16) {
        self.ack_nr = seq;
        self.ready.extend(payload);
        if kind == PacketType::Fin || self.eof_seq == Some(seq) {
            self.eof = true;
            self.out_of_order.clear();
            self.ooo_bytes = 0;
        }
    }

    /// Applies timeouts: retransmission, and giving up.
    pub fn on_tick(&mut self, now: u64) {
        let Some(deadline) = self.rto_deadline else {
            return;
        };
        if now < deadline || self.is_closed() {
            return;
        }
        self.timeouts += 1;
        let limit = if self.state == State::SynSent {
            self.cfg.syn_retries
        } else {
            self.cfg.max_timeouts
        };
        if self.timeouts > limit {
            self.state = State::Closed(CloseReason::TimedOut);
            return;
        }
        if self.inflight.is_empty() {
            // A zero-window probe: let one packet out.
            self.peer_wnd = self.peer_wnd.max(self.mss());
            self.rto_deadline = None;
            return;
        }
        self.rto = (self.rto * 2).min(60_000_000);
        self.cwnd = self.mss();
        self.slow_start = false;
        self.loss_seq = self.seq_nr.wrapping_sub(1);
        for s in self.inflight.iter_mut() {
            s.need_resend = true;
        }
        self.rto_deadline = Some(now + self.rto);
    }

    fn header(&self, kind: PacketType, seq: u16, now: u64) -> Header {
        let sack = if self.out_of_order.is_empty() {
            None
        } else {
            let mut s = Sack::new(MAX_SACK_BYTES);
            for &seq in self.out_of_order.keys() {
                let d = seq.wrapping_sub(self.ack_nr).wrapping_sub(2) as usize;
                s.set(d);
            }
            // Shortest mask (in 4-byte words) that keeps every set bit.
            let last = (0..MAX_SACK_BYTES * 8).rev().find(|&i| s.get(i));
            let words = last.map_or(1, |l| l / 32 + 1);
            let mut t = Sack::new(words * 4);
            for i in 0..words * 32 {
                if s.get(i) {
                    t.set(i);
                }
            }
            Some(t)
        };
        Header {
            kind,
            connection_id: if kind == PacketType::Syn {
                self.recv_id
            } else {
                self.send_id
            },
            timestamp_us: now as u32,
            timestamp_diff_us: self.reply_delay,
            wnd_size: self.recv_window_left() as u32,
            seq_nr: seq,
            ack_nr: self.ack_nr,
            sack,
        }
    }

    /// Writes the next datagram to send into `out` (cleared first); `false` when there is
    /// nothing to send now.
    pub fn poll_transmit(&mut self, now: u64, out: &mut Vec<u8>) -> bool {
        out.clear();
        if self.state == State::Closed(CloseReason::Finished) && self.ack_pending {
            self.ack_pending = false;
            self.header(PacketType::State, self.seq_nr, now).encode(out);
            return true;
        }
        if self.is_closed() {
            return false;
        }
        if self.answer_syn {
            // Always the first sequence number, even when data went out since.
            self.answer_syn = false;
            self.header(PacketType::State, self.first_seq, now)
                .encode(out);
            return true;
        }
        // Retransmissions first (the SYN's included).
        if let Some(i) = self.inflight.iter().position(|s| s.need_resend) {
            let (kind, seq) = (self.inflight[i].kind, self.inflight[i].seq);
            let h = self.header(kind, seq, now);
            h.encode(out);
            let s = &mut self.inflight[i];
            out.extend_from_slice(&s.payload);
            s.need_resend = false;
            s.transmissions += 1;
            s.sent_at = now;
            if kind != PacketType::Syn {
                self.ack_pending = false;
            }
            self.rto_deadline.get_or_insert(now + self.rto);
            return true;
        }
        if self.state == State::SynSent {
            return false;
        }
        let window = self.cwnd.min(self.peer_wnd);
        if !self.send_buf.is_empty() {
            let room = window.saturating_sub(self.bytes_in_flight);
            let mut n = self.send_buf.len().min(self.mss());
            if let Some(end) = self.packet_end {
                n = n.min(end);
            }
            if n <= room || (self.bytes_in_flight == 0 && self.peer_wnd > 0) {
                let n = n.min(self.peer_wnd.max(1));
                let payload: Vec<u8> = self.send_buf.drain(..n).collect();
                self.packet_end = self.packet_end.map(|e| e - n).filter(|&e| e > 0);
                self.push_sent(PacketType::Data, payload, now, out);
                return true;
            }
            if self.peer_wnd == 0 && self.inflight.is_empty() && self.rto_deadline.is_none() {
                self.rto_deadline = Some(now + self.rto);
            }
        } else if self.fin_wanted && self.fin_seq.is_none() {
            self.fin_seq = Some(self.seq_nr);
            self.push_sent(PacketType::Fin, Vec::new(), now, out);
            return true;
        }
        if self.ack_pending {
            self.ack_pending = false;
            self.header(PacketType::State, self.seq_nr, now).encode(out);
            return true;
        }
        false
    }

    fn push_sent(&mut self, kind: PacketType, payload: Vec<u8>, now: u64, out: &mut Vec<u8>) {
        let seq = self.seq_nr;
        self.seq_nr = self.seq_nr.wrapping_add(1);
        self.header(kind, seq, now).encode(out);
        out.extend_from_slice(&payload);
        self.bytes_in_flight += payload.len();
        self.inflight.push_back(Sent {
            seq,
            kind,
            payload,
            sent_at: now,
            transmissions: 1,
            need_resend: false,
        });
        self.ack_pending = false;
        self.rto_deadline.get_or_insert(now + self.rto);
    }

    /// A RESET for this connection, to send when the application aborts it.
    pub fn reset_packet(&self, now: u64, out: &mut Vec<u8>) {
        out.clear();
        self.header(PacketType::Reset, self.seq_nr, now).encode(out);
    }

    /// An ICMP port unreachable came back from the peer's address: ends a connection whose
    /// SYN is unanswered (nothing listens there), as TCP's connect fails on a refusal. A live
    /// connection ignores it (such errors are easy to forge, and a path may recover).
    pub fn on_unreachable(&mut self) {
        if self.state == State::SynSent {
            self.state = State::Closed(CloseReason::Unreachable);
        }
    }

    /// Marks the connection closed (after the application aborted it with a RESET).
    pub fn abort(&mut self) {
        self.state = State::Closed(CloseReason::Reset);
    }
}
