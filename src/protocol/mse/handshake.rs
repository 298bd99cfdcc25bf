//! The MSE handshake as two state machines, [`Initiator`] (A, who connects) and
//! [`Responder`] (B, who accepts):
//!
//! ```text
//! 1 A->B: Ya, PadA
//! 2 B->A: Yb, PadB
//! 3 A->B: HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
//!         ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
//! 4 B->A: ENCRYPT(VC, crypto_select, len(PadD), PadD), ENCRYPT2(payload)
//! 5 A->B: ENCRYPT2(payload)
//! ```
//!
//! HASH is SHA-1; ENCRYPT is RC4 keyed with HASH('keyA', S, SKEY) from A and
//! HASH('keyB', S, SKEY) from B, first 1024 bytes discarded; ENCRYPT2 is the same RC4 stream
//! when `rc4` was selected, nothing when `plaintext` was. VC is 8 zero bytes. Pads are 0 to
//! 512 random bytes, so each side finds its sync point (B: HASH('req1', S); A: ENCRYPT(VC))
//! by searching at most 512 bytes past the public key, and gives up beyond.

use rand::{Rng, RngCore};
use sha1::{Digest, Sha1};

use super::dh::{KeyPair, KEY_BYTES, PRIVATE_BYTES};
use super::rc4::Rc4;
use super::CryptoMethod;

/// The longest PadA, PadB, PadC or PadD.
pub const MAX_PAD: usize = 512;
/// Key-stream bytes thrown away before the first use.
const RC4_DISCARD: usize = 1024;
/// The verification constant.
const VC: [u8; 8] = [0; 8];
/// The plain BitTorrent handshake's first 20 bytes.
const PLAIN_PREFIX: &[u8; 20] = b"\x13BitTorrent protocol";

/// Why an MSE handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MseError {
    /// The other side's public key is 0, 1 or P-1 and above.
    #[error("degenerate Diffie-Hellman public key")]
    BadPublicKey,
    /// The sync point was not within 512 bytes of padding.
    #[error("no MSE sync point within {MAX_PAD} bytes of padding")]
    NoSync,
    /// The decrypted verification constant is not 8 zero bytes (wrong key or garbage).
    #[error("bad MSE verification constant")]
    BadVc,
    /// A padding length over 512.
    #[error("MSE padding of {0} bytes (at most {MAX_PAD})")]
    PadTooLong(usize),
    /// The SKEY names no torrent we have.
    #[error("MSE handshake for a torrent we do not have")]
    UnknownTorrent,
    /// No method offered is one we accept.
    #[error("no acceptable MSE method in crypto_provide {0:#x}")]
    NoCommonMethod(u32),
    /// The responder selected something we did not provide, or not exactly one method.
    #[error("MSE crypto_select {0:#x} is not one of the methods provided")]
    BadSelect(u32),
    /// Bytes after the handshake finished, or a call after a failure.
    #[error("MSE handshake already over")]
    Finished,
}

/// Where a handshake stands after the bytes given.
#[derive(Debug)]
pub enum Progress {
    /// Waiting for more bytes (send [`Initiator::take_output`] / [`Responder::take_output`]
    /// first).
    NeedMore,
    /// The handshake is over; everything from here on goes through the [`Established`]
    /// stream. Its last output still has to be sent.
    Done(Box<Established>),
}

/// The RC4 streams of an `rc4` connection.
#[derive(Clone, Debug)]
pub struct StreamCipher {
    /// Encrypts what we send.
    pub encrypt: Rc4,
    /// Decrypts what we receive.
    pub decrypt: Rc4,
}

/// The outcome of a handshake.
#[derive(Debug)]
pub struct Established {
    /// The torrent (SKEY) the connection is for.
    pub info_hash: [u8; 20],
    /// The method selected.
    pub method: CryptoMethod,
    /// The RC4 streams when `method` is `rc4`.
    pub cipher: Option<StreamCipher>,
    /// Payload received with or after the handshake (the responder's IA included), already
    /// decrypted: the start of the BitTorrent stream.
    pub payload: Vec<u8>,
}

/// Whether the first bytes of an incoming connection are a plain BitTorrent handshake
/// (`Some(true)`), an MSE one (`Some(false)`: anything else), or too few to tell (`None`).
pub fn is_plain_handshake(first: &[u8]) -> Option<bool> {
    let n = first.len().min(PLAIN_PREFIX.len());
    if first[..n] != PLAIN_PREFIX[..n] {
        return Some(false);
    }
    (n == PLAIN_PREFIX.len()).then_some(true)
}

fn hash(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// HASH('req2', SKEY): what a responder looks an incoming connection's torrent up by.
pub fn skey_hash(info_hash: &[u8; 20]) -> [u8; 20] {
    hash(&[b"req2", info_hash])
}

fn xor20(a: &[u8; 20], b: &[u8; 20]) -> [u8; 20] {
    let mut out = [0u8; 20];
    for i in 0..20 {
        out[i] = a[i] ^ b[i];
    }
    out
}

/// The two RC4 streams of a side: (`ours`, `theirs`), keyed `keyA`/`keyB` by role.
fn streams(s: &[u8; KEY_BYTES], skey: &[u8; 20], initiator: bool) -> (Rc4, Rc4) {
    let a = Rc4::with_discard(&hash(&[b"keyA", s, skey]), RC4_DISCARD);
    let b = Rc4::with_discard(&hash(&[b"keyB", s, skey]), RC4_DISCARD);
    if initiator {
        (a, b)
    } else {
        (b, a)
    }
}

/// Received bytes and how far the handshake has consumed them.
#[derive(Default)]
struct Input {
    bytes: Vec<u8>,
    pos: usize,
}

impl Input {
    /// The next `n` bytes, consumed, when they have all arrived.
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.bytes.len() - self.pos < n {
            return None;
        }
        self.pos += n;
        Some(&self.bytes[self.pos - n..self.pos])
    }

    /// The next `n` bytes decrypted with `rc4`, consumed, when they have all arrived.
    fn take_decrypted(&mut self, n: usize, rc4: &mut Rc4) -> Option<Vec<u8>> {
        let mut out = self.take(n)?.to_vec();
        rc4.apply(&mut out);
        Some(out)
    }

    /// Finds `pattern` starting within `MAX_PAD` bytes of the current position and consumes
    /// through it. `Err` when enough bytes arrived to know it is not there.
    fn sync(&mut self, pattern: &[u8]) -> Result<bool, MseError> {
        let window = &self.bytes[self.pos..];
        let last_start = window.len().saturating_sub(pattern.len()).min(MAX_PAD);
        if window.len() >= pattern.len() {
            if let Some(at) = (0..=last_start).find(|&i| &window[i..i + pattern.len()] == pattern) {
                self.pos += at + pattern.len();
                return Ok(true);
            }
        }
        if window.len() >= MAX_PAD + pattern.len() {
            return Err(MseError::NoSync);
        }
        Ok(false)
    }

    /// Everything not consumed, decrypted with `rc4` when given.
    fn rest(&mut self, rc4: Option<&mut Rc4>) -> Vec<u8> {
        let mut rest = self.bytes.split_off(self.pos);
        self.pos = self.bytes.len();
        if let Some(rc4) = rc4 {
            rc4.apply(&mut rest);
        }
        rest
    }
}

fn random_pad(rng: &mut impl RngCore, out: &mut Vec<u8>) {
    let len = rng.gen_range(0..=MAX_PAD);
    let start = out.len();
    out.resize(start + len, 0);
    rng.fill_bytes(&mut out[start..]);
}

fn private_key(rng: &mut impl RngCore) -> KeyPair {
    let mut private = [0u8; PRIVATE_BYTES];
    rng.fill_bytes(&mut private);
    KeyPair::from_private(private)
}

enum InitiatorState {
    /// Waiting for Yb.
    AwaitKey,
    /// Searching for ENCRYPT(VC) in PadB.
    AwaitVc { ours: Rc4, theirs: Rc4, vc: [u8; 8] },
    /// Waiting for crypto_select and len(PadD).
    AwaitSelect { ours: Rc4, theirs: Rc4 },
    /// Waiting for PadD.
    AwaitPadD {
        ours: Rc4,
        theirs: Rc4,
        method: CryptoMethod,
        len: usize,
    },
    /// Done or failed.
    Over,
}

/// The connecting side (A) of an MSE handshake for one torrent.
pub struct Initiator {
    keys: KeyPair,
    info_hash: [u8; 20],
    provide: u32,
    initial_payload: Vec<u8>,
    input: Input,
    output: Vec<u8>,
    state: InitiatorState,
}

impl Initiator {
    /// Starts a handshake for `info_hash`, offering the methods in `provide` (bits of
    /// [`CryptoMethod::bit`]). Its first output (Ya, PadA) is ready at once.
    pub fn new(info_hash: [u8; 20], provide: u32, rng: &mut impl RngCore) -> Initiator {
        let keys = private_key(rng);
        let mut output = keys.public.to_vec();
        random_pad(rng, &mut output);
        Initiator {
            keys,
            info_hash,
            provide,
            initial_payload: Vec::new(),
            input: Input::default(),
            output,
            state: InitiatorState::AwaitKey,
        }
    }

    /// Sends `payload` (IA, at most 65,535 bytes) inside the handshake, encrypted with
    /// RC4 whatever method is selected; by default there is none and the BitTorrent
    /// handshake follows the handshake.
    pub fn set_initial_payload(&mut self, payload: Vec<u8>) {
        assert!(
            payload.len() <= usize::from(u16::MAX),
            "IA of at most 65,535 bytes"
        );
        self.initial_payload = payload;
    }

    /// Bytes to send now.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// Takes bytes received from the responder.
    pub fn receive(&mut self, data: &[u8]) -> Result<Progress, MseError> {
        if matches!(self.state, InitiatorState::Over) {
            return Err(MseError::Finished);
        }
        self.input.bytes.extend_from_slice(data);
        let result = self.advance();
        if !matches!(result, Ok(Progress::NeedMore)) {
            self.state = InitiatorState::Over;
        }
        result
    }

    /// With the responder's key Yb: sends HASH('req1', S), the torrent's obfuscated hash and
    /// the encrypted VC, crypto_provide, len(PadC) = 0, len(IA), IA; then waits for its VC.
    fn send_request(&mut self, yb: &[u8; KEY_BYTES]) -> Result<InitiatorState, MseError> {
        let s = self.keys.shared_secret(yb).ok_or(MseError::BadPublicKey)?;
        let (mut ours, theirs) = streams(&s, &self.info_hash, true);
        self.output.extend_from_slice(&hash(&[b"req1", &s]));
        self.output
            .extend_from_slice(&xor20(&skey_hash(&self.info_hash), &hash(&[b"req3", &s])));
        let ia = std::mem::take(&mut self.initial_payload);
        let mut header = Vec::with_capacity(16 + ia.len());
        header.extend_from_slice(&VC);
        header.extend_from_slice(&self.provide.to_be_bytes());
        header.extend_from_slice(&0u16.to_be_bytes());
        header.extend_from_slice(&(ia.len() as u16).to_be_bytes());
        header.extend_from_slice(&ia);
        ours.apply(&mut header);
        self.output.extend_from_slice(&header);
        let mut vc = VC;
        theirs.clone().apply(&mut vc);
        Ok(InitiatorState::AwaitVc { ours, theirs, vc })
    }

    /// The responder's crypto_select (one method we provided) and len(PadD), bounded.
    fn parse_select(&self, b: &[u8]) -> Result<(CryptoMethod, usize), MseError> {
        let select = u32::from_be_bytes(b[..4].try_into().expect("4 bytes"));
        let len = usize::from(u16::from_be_bytes([b[4], b[5]]));
        let method = match select {
            0x01 => CryptoMethod::Plaintext,
            0x02 => CryptoMethod::Rc4,
            _ => return Err(MseError::BadSelect(select)),
        };
        if self.provide & select == 0 {
            return Err(MseError::BadSelect(select));
        }
        if len > MAX_PAD {
            return Err(MseError::PadTooLong(len));
        }
        Ok((method, len))
    }

    fn advance(&mut self) -> Result<Progress, MseError> {
        loop {
            match std::mem::replace(&mut self.state, InitiatorState::Over) {
                InitiatorState::AwaitKey => {
                    let Some(yb) = self.input.take(KEY_BYTES) else {
                        self.state = InitiatorState::AwaitKey;
                        return Ok(Progress::NeedMore);
                    };
                    let yb: [u8; KEY_BYTES] = yb.try_into().expect("96 bytes");
                    self.state = self.send_request(&yb)?;
                }
                InitiatorState::AwaitVc {
                    ours,
                    mut theirs,
                    vc,
                } => {
                    if !self.input.sync(&vc)? {
                        self.state = InitiatorState::AwaitVc { ours, theirs, vc };
                        return Ok(Progress::NeedMore);
                    }
                    theirs.apply(&mut [0u8; 8]);
                    self.state = InitiatorState::AwaitSelect { ours, theirs };
                }
                InitiatorState::AwaitSelect { ours, mut theirs } => {
                    let Some(b) = self.input.take_decrypted(6, &mut theirs) else {
                        self.state = InitiatorState::AwaitSelect { ours, theirs };
                        return Ok(Progress::NeedMore);
                    };
                    let (method, len) = self.parse_select(&b)?;
                    self.state = InitiatorState::AwaitPadD {
                        ours,
                        theirs,
                        method,
                        len,
                    };
                }
                InitiatorState::AwaitPadD {
                    ours,
                    mut theirs,
                    method,
                    len,
                } => {
                    if self.input.take_decrypted(len, &mut theirs).is_none() {
                        self.state = InitiatorState::AwaitPadD {
                            ours,
                            theirs,
                            method,
                            len,
                        };
                        return Ok(Progress::NeedMore);
                    }
                    return Ok(Progress::Done(Box::new(finish(
                        self.info_hash,
                        method,
                        ours,
                        theirs,
                        Vec::new(),
                        &mut self.input,
                    ))));
                }
                InitiatorState::Over => return Err(MseError::Finished),
            }
        }
    }
}

/// The [`Established`] stream: `payload` then what is left of `input`, decrypted for `rc4`.
fn finish(
    info_hash: [u8; 20],
    method: CryptoMethod,
    ours: Rc4,
    mut theirs: Rc4,
    mut payload: Vec<u8>,
    input: &mut Input,
) -> Established {
    let rc4 = method == CryptoMethod::Rc4;
    payload.extend_from_slice(&input.rest(rc4.then_some(&mut theirs)));
    Established {
        info_hash,
        method,
        cipher: rc4.then_some(StreamCipher {
            encrypt: ours,
            decrypt: theirs,
        }),
        payload,
    }
}

enum ResponderState {
    /// Waiting for Ya.
    AwaitKey,
    /// Searching for HASH('req1', S) in PadA.
    AwaitReq1 { s: Box<[u8; KEY_BYTES]> },
    /// Waiting for HASH('req2', SKEY) xor HASH('req3', S).
    AwaitSkey { s: Box<[u8; KEY_BYTES]> },
    /// Waiting for VC, crypto_provide and len(PadC).
    AwaitProvide { keys: Box<Keyed> },
    /// Waiting for PadC and len(IA).
    AwaitPadC {
        keys: Box<Keyed>,
        provide: u32,
        len: usize,
    },
    /// Waiting for IA.
    AwaitIa {
        keys: Box<Keyed>,
        provide: u32,
        len: usize,
    },
    /// Done or failed.
    Over,
}

/// A responder's streams once the torrent is known.
struct Keyed {
    info_hash: [u8; 20],
    ours: Rc4,
    theirs: Rc4,
}

/// The accepting side (B) of an MSE handshake, for any of the torrents it serves.
pub struct Responder {
    keys: KeyPair,
    accepted: Vec<CryptoMethod>,
    input: Input,
    output: Vec<u8>,
    state: ResponderState,
    pad: Vec<u8>,
}

impl Responder {
    /// Starts answering a handshake, selecting the first method of `accepted` the initiator
    /// provides. It sends Yb once Ya has arrived.
    pub fn new(accepted: &[CryptoMethod], rng: &mut impl RngCore) -> Responder {
        let keys = private_key(rng);
        let mut pad = Vec::new();
        random_pad(rng, &mut pad);
        Responder {
            keys,
            accepted: accepted.to_vec(),
            input: Input::default(),
            output: Vec::new(),
            state: ResponderState::AwaitKey,
            pad,
        }
    }

    /// Bytes to send now.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// Takes bytes received from the initiator. `torrent_of` maps HASH('req2', info-hash)
    /// ([`skey_hash`]) to the info-hash of a torrent we serve.
    pub fn receive(
        &mut self,
        data: &[u8],
        torrent_of: &dyn Fn(&[u8; 20]) -> Option<[u8; 20]>,
    ) -> Result<Progress, MseError> {
        if matches!(self.state, ResponderState::Over) {
            return Err(MseError::Finished);
        }
        self.input.bytes.extend_from_slice(data);
        let result = self.advance(torrent_of);
        if !matches!(result, Ok(Progress::NeedMore)) {
            self.state = ResponderState::Over;
        }
        result
    }

    /// With the initiator's IA: selects the first accepted method it provides, sends the
    /// encrypted VC, crypto_select and len(PadD) = 0, and ends the handshake.
    fn select(&mut self, keys: Keyed, provide: u32, ia: Vec<u8>) -> Result<Progress, MseError> {
        let method = self
            .accepted
            .iter()
            .copied()
            .find(|m| provide & m.bit() != 0)
            .ok_or(MseError::NoCommonMethod(provide))?;
        let Keyed {
            info_hash,
            mut ours,
            theirs,
        } = keys;
        let mut header = Vec::with_capacity(14);
        header.extend_from_slice(&VC);
        header.extend_from_slice(&method.bit().to_be_bytes());
        header.extend_from_slice(&0u16.to_be_bytes());
        ours.apply(&mut header);
        self.output.extend_from_slice(&header);
        Ok(Progress::Done(Box::new(finish(
            info_hash,
            method,
            ours,
            theirs,
            ia,
            &mut self.input,
        ))))
    }

    fn advance(
        &mut self,
        torrent_of: &dyn Fn(&[u8; 20]) -> Option<[u8; 20]>,
    ) -> Result<Progress, MseError> {
        loop {
            match std::mem::replace(&mut self.state, ResponderState::Over) {
                ResponderState::AwaitKey => {
                    let Some(ya) = self.input.take(KEY_BYTES) else {
                        self.state = ResponderState::AwaitKey;
                        return Ok(Progress::NeedMore);
                    };
                    let ya: [u8; KEY_BYTES] = ya.try_into().expect("96 bytes");
                    let s = self.keys.shared_secret(&ya).ok_or(MseError::BadPublicKey)?;
                    self.output.extend_from_slice(&self.keys.public);
                    self.output.append(&mut self.pad);
                    self.state = ResponderState::AwaitReq1 { s: Box::new(s) };
                }
                ResponderState::AwaitReq1 { s } => {
                    if !self.input.sync(&hash(&[b"req1", &s[..]]))? {
                        self.state = ResponderState::AwaitReq1 { s };
                        return Ok(Progress::NeedMore);
                    }
                    self.state = ResponderState::AwaitSkey { s };
                }
                ResponderState::AwaitSkey { s } => {
                    let Some(x) = self.input.take(20) else {
                        self.state = ResponderState::AwaitSkey { s };
                        return Ok(Progress::NeedMore);
                    };
                    let x: [u8; 20] = x.try_into().expect("20 bytes");
                    let req2 = xor20(&x, &hash(&[b"req3", &s[..]]));
                    let info_hash = torrent_of(&req2).ok_or(MseError::UnknownTorrent)?;
                    let (ours, theirs) = streams(&s, &info_hash, false);
                    let keys = Box::new(Keyed {
                        info_hash,
                        ours,
                        theirs,
                    });
                    self.state = ResponderState::AwaitProvide { keys };
                }
                ResponderState::AwaitProvide { mut keys } => {
                    let Some(b) = self.input.take_decrypted(14, &mut keys.theirs) else {
                        self.state = ResponderState::AwaitProvide { keys };
                        return Ok(Progress::NeedMore);
                    };
                    if b[..8] != VC {
                        return Err(MseError::BadVc);
                    }
                    let provide = u32::from_be_bytes(b[8..12].try_into().expect("4 bytes"));
                    let len = usize::from(u16::from_be_bytes([b[12], b[13]]));
                    if len > MAX_PAD {
                        return Err(MseError::PadTooLong(len));
                    }
                    self.state = ResponderState::AwaitPadC { keys, provide, len };
                }
                ResponderState::AwaitPadC {
                    mut keys,
                    provide,
                    len,
                } => {
                    let Some(b) = self.input.take_decrypted(len + 2, &mut keys.theirs) else {
                        self.state = ResponderState::AwaitPadC { keys, provide, len };
                        return Ok(Progress::NeedMore);
                    };
                    let ia = usize::from(u16::from_be_bytes([b[len], b[len + 1]]));
                    self.state = ResponderState::AwaitIa {
                        keys,
                        provide,
                        len: ia,
                    };
                }
                ResponderState::AwaitIa {
                    mut keys,
                    provide,
                    len,
                } => {
                    let Some(ia) = self.input.take_decrypted(len, &mut keys.theirs) else {
                        self.state = ResponderState::AwaitIa { keys, provide, len };
                        return Ok(Progress::NeedMore);
                    };
                    return self.select(*keys, provide, ia);
                }
                ResponderState::Over => return Err(MseError::Finished),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const HASH: [u8; 20] = [0xab; 20];
    const BOTH: u32 = 0x03;
    const PLAIN: &[CryptoMethod] = &[CryptoMethod::Plaintext, CryptoMethod::Rc4];
    const RC4: &[CryptoMethod] = &[CryptoMethod::Rc4, CryptoMethod::Plaintext];

    fn lookup(req2: &[u8; 20]) -> Option<[u8; 20]> {
        (*req2 == skey_hash(&HASH)).then_some(HASH)
    }

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    /// Runs a handshake, passing bytes in chunks of `chunk`; returns both ends.
    fn pair(
        provide: u32,
        accepted: &[CryptoMethod],
        seed: u64,
        chunk: usize,
    ) -> Result<(Established, Established), MseError> {
        let mut r = rng(seed);
        let mut a = Initiator::new(HASH, provide, &mut r);
        let mut b = Responder::new(accepted, &mut r);
        let (mut a_done, mut b_done) = (None, None);
        for _ in 0..10_000 {
            let to_b = a.take_output();
            for c in to_b.chunks(chunk) {
                if let Progress::Done(e) = b.receive(c, &lookup)? {
                    b_done = Some(e);
                }
            }
            let to_a = b.take_output();
            for c in to_a.chunks(chunk) {
                if let Progress::Done(e) = a.receive(c)? {
                    a_done = Some(e);
                }
            }
            if let (Some(_), Some(_)) = (&a_done, &b_done) {
                return Ok((*a_done.unwrap(), *b_done.unwrap()));
            }
        }
        panic!("handshake did not finish");
    }

    /// `from` sends `data` to `to` through their streams; returns what `to` reads.
    fn carry(from: &mut Established, to: &mut Established, data: &[u8]) -> Vec<u8> {
        let mut wire = data.to_vec();
        if let Some(c) = &mut from.cipher {
            c.encrypt.apply(&mut wire);
        }
        if from.cipher.is_some() {
            assert_ne!(wire, data, "rc4 bytes go encrypted");
        }
        if let Some(c) = &mut to.cipher {
            c.decrypt.apply(&mut wire);
        }
        wire
    }

    #[test]
    fn two_ends_agree_on_every_method_and_carry_bytes_both_ways() {
        for (provide, accepted, want) in [
            (BOTH, PLAIN, CryptoMethod::Plaintext),
            (BOTH, RC4, CryptoMethod::Rc4),
            (0x02, PLAIN, CryptoMethod::Rc4),
            (0x01, RC4, CryptoMethod::Plaintext),
            (BOTH, &[CryptoMethod::Rc4][..], CryptoMethod::Rc4),
        ] {
            for seed in 0..20 {
                for chunk in [1, 7, 100, 10_000] {
                    let (mut a, mut b) = pair(provide, accepted, seed, chunk).unwrap();
                    assert_eq!((a.method, b.method), (want, want));
                    assert_eq!((a.info_hash, b.info_hash), (HASH, HASH));
                    assert!(a.payload.is_empty() && b.payload.is_empty());
                    assert_eq!(a.cipher.is_some(), want == CryptoMethod::Rc4);
                    for round in 0..3u8 {
                        let msg = vec![round; 1000 + usize::from(round)];
                        assert_eq!(carry(&mut a, &mut b, &msg), msg);
                        assert_eq!(carry(&mut b, &mut a, &msg), msg);
                    }
                }
            }
        }
    }

    #[test]
    fn initial_payload_and_bytes_after_the_handshake_reach_the_payload() {
        for accepted in [PLAIN, RC4] {
            let mut r = rng(5);
            let mut a = Initiator::new(HASH, BOTH, &mut r);
            a.set_initial_payload(b"\x13BitTorrent protocol".to_vec());
            let mut b = Responder::new(accepted, &mut r);
            assert!(matches!(
                b.receive(&a.take_output(), &lookup),
                Ok(Progress::NeedMore)
            ));
            assert!(matches!(
                a.receive(&b.take_output()),
                Ok(Progress::NeedMore)
            ));
            let Ok(Progress::Done(mut b_end)) = b.receive(&a.take_output(), &lookup) else {
                panic!("responder not done");
            };
            assert_eq!(b_end.payload, b"\x13BitTorrent protocol");
            // The responder's first payload bytes arrive with step 4.
            let mut step4 = b.take_output();
            let mut hello = b"hello".to_vec();
            if let Some(c) = &mut b_end.cipher {
                c.encrypt.apply(&mut hello);
            }
            step4.extend_from_slice(&hello);
            let Ok(Progress::Done(a_end)) = a.receive(&step4) else {
                panic!("initiator not done");
            };
            assert_eq!(a_end.payload, b"hello");
            assert_eq!(a_end.method, b_end.method);
        }
    }

    #[test]
    fn known_answer_from_an_independent_implementation() {
        // From /usr/bin/python3 (hashlib and a textbook RC4): with S of dh.rs's vector and
        // SKEY = 0xab * 20, ENCRYPT(VC, crypto_provide 3, 0, 0) of A and ENCRYPT(VC) of B,
        // HASH('req1', S) and HASH('req2', SKEY) xor HASH('req3', S).
        let s: [u8; KEY_BYTES] = hex::decode(KAT_S).unwrap().try_into().unwrap();
        let (mut a, _) = streams(&s, &HASH, true);
        let (mut b, _) = streams(&s, &HASH, false);
        let mut header = [0u8; 16];
        header[11] = 3;
        a.apply(&mut header);
        let mut vc = VC;
        b.apply(&mut vc);
        assert_eq!(hex::encode(header), KAT_A_HEADER);
        assert_eq!(hex::encode(vc), KAT_B_VC);
        assert_eq!(hex::encode(hash(&[b"req1", &s])), KAT_REQ1);
        assert_eq!(
            hex::encode(xor20(&skey_hash(&HASH), &hash(&[b"req3", &s]))),
            KAT_REQ23
        );
    }

    const KAT_S: &str = "478531421d985de779c1fd27f0fe13f8a8e15b9e171f3d1bb7d2830b0f8c94241a5fe6560179bae85b6143d1b35e936ec89d2493892249207efd26e998332ed835dd7a90481517d4c9e58175d644e232317e1e970e55b48ec7cbe8fab193d842";
    const KAT_A_HEADER: &str = "89f5581312fe27530ecaf1a265e4e9c4";
    const KAT_B_VC: &str = "bdfc28174b9e3ead";
    const KAT_REQ1: &str = "0a6d483c3bc61484a210fa0f37d99062fd569483";
    const KAT_REQ23: &str = "7b64f4798be365412d9162cd7f2b5651f7448530";

    /// Ya with `pad` bytes of PadA (instead of the initiator's own) against a responder.
    fn with_pad_a(pad: usize) -> Result<Progress, MseError> {
        let mut r = rng(1);
        let mut a = Initiator::new(HASH, BOTH, &mut r);
        let mut b = Responder::new(PLAIN, &mut r);
        let mut step1 = a.take_output()[..KEY_BYTES].to_vec();
        step1.resize(KEY_BYTES + pad, 0x5a);
        assert!(matches!(b.receive(&step1, &lookup)?, Progress::NeedMore));
        assert!(matches!(a.receive(&b.take_output())?, Progress::NeedMore));
        b.receive(&a.take_output(), &lookup)
    }

    /// Yb with `pad` bytes of PadB (instead of the responder's own) against an initiator.
    fn with_pad_b(pad: usize) -> Result<Progress, MseError> {
        let mut r = rng(2);
        let mut a = Initiator::new(HASH, BOTH, &mut r);
        let mut b = Responder::new(PLAIN, &mut r);
        b.receive(&a.take_output(), &lookup)?;
        let mut step2 = b.take_output()[..KEY_BYTES].to_vec();
        step2.resize(KEY_BYTES + pad, 0xa5);
        assert!(matches!(a.receive(&step2)?, Progress::NeedMore));
        assert!(matches!(
            b.receive(&a.take_output(), &lookup)?,
            Progress::Done(_)
        ));
        a.receive(&b.take_output())
    }

    #[test]
    fn padding_up_to_512_bytes_is_searched_and_no_further() {
        for pad in [0, 1, 511, 512] {
            assert!(
                matches!(with_pad_a(pad), Ok(Progress::Done(_))),
                "PadA {pad}"
            );
            assert!(
                matches!(with_pad_b(pad), Ok(Progress::Done(_))),
                "PadB {pad}"
            );
        }
        for pad in [513, 600] {
            assert_eq!(with_pad_a(pad).unwrap_err(), MseError::NoSync, "PadA {pad}");
            assert_eq!(with_pad_b(pad).unwrap_err(), MseError::NoSync, "PadB {pad}");
        }
    }

    #[test]
    fn garbage_fails_once_the_sync_window_is_past_and_never_before() {
        let mut r = rng(3);
        let mut garbage = vec![0u8; 4096];
        r.fill_bytes(&mut garbage);
        // Responder: Ya, then 512 + 20 bytes without HASH('req1', S).
        let mut b = Responder::new(PLAIN, &mut r);
        let limit = KEY_BYTES + MAX_PAD + 20;
        for (i, byte) in garbage.iter().enumerate() {
            match b.receive(&[*byte], &lookup) {
                Ok(Progress::NeedMore) => assert!(i + 1 < limit, "still waiting at {}", i + 1),
                Err(MseError::NoSync) => {
                    assert_eq!(i + 1, limit);
                    break;
                }
                other => panic!("{other:?} at {i}"),
            }
        }
        assert_eq!(b.receive(b"more", &lookup).unwrap_err(), MseError::Finished);
        // Initiator: Yb, then 512 + 8 bytes without ENCRYPT(VC).
        let mut a = Initiator::new(HASH, BOTH, &mut r);
        let limit = KEY_BYTES + MAX_PAD + 8;
        assert!(matches!(
            a.receive(&garbage[..limit - 1]),
            Ok(Progress::NeedMore)
        ));
        assert_eq!(
            a.receive(&garbage[limit - 1..limit]).unwrap_err(),
            MseError::NoSync
        );
    }

    #[test]
    fn degenerate_keys_are_refused() {
        let mut r = rng(4);
        let mut b = Responder::new(PLAIN, &mut r);
        assert_eq!(
            b.receive(&[0u8; KEY_BYTES], &lookup).unwrap_err(),
            MseError::BadPublicKey
        );
        let mut a = Initiator::new(HASH, BOTH, &mut r);
        let mut one = [0u8; KEY_BYTES];
        one[KEY_BYTES - 1] = 1;
        assert_eq!(a.receive(&one).unwrap_err(), MseError::BadPublicKey);
    }

    #[test]
    fn an_unknown_torrent_and_no_common_method_are_refused() {
        let mut r = rng(6);
        let mut a = Initiator::new([0x11; 20], BOTH, &mut r);
        let mut b = Responder::new(PLAIN, &mut r);
        b.receive(&a.take_output(), &lookup).unwrap();
        a.receive(&b.take_output()).unwrap();
        assert_eq!(
            b.receive(&a.take_output(), &lookup).unwrap_err(),
            MseError::UnknownTorrent
        );
        assert_eq!(
            pair(0x01, &[CryptoMethod::Rc4], 7, 64).unwrap_err(),
            MseError::NoCommonMethod(0x01)
        );
        assert_eq!(
            pair(0x04, PLAIN, 7, 64).unwrap_err(),
            MseError::NoCommonMethod(0x04)
        );
    }

    /// Runs to the responder's step-3 input, flips each `mask` into byte `at` of the encrypted
    /// header after HASH('req2') xor HASH('req3') (RC4 flips the same plaintext bit).
    fn tampered_step3(flips: &[(usize, u8)]) -> Result<Progress, MseError> {
        let mut r = rng(8);
        let mut a = Initiator::new(HASH, BOTH, &mut r);
        let mut b = Responder::new(PLAIN, &mut r);
        b.receive(&a.take_output(), &lookup).unwrap();
        a.receive(&b.take_output()).unwrap();
        let mut step3 = a.take_output();
        for (at, mask) in flips {
            step3[40 + at] ^= mask;
        }
        b.receive(&step3, &lookup)
    }

    #[test]
    fn a_tampered_header_is_refused() {
        // Step 3's encrypted part: VC 0..8, crypto_provide 8..12, len(PadC) 12..14, len(IA).
        assert_eq!(tampered_step3(&[(0, 1)]).unwrap_err(), MseError::BadVc);
        assert_eq!(tampered_step3(&[(7, 0x80)]).unwrap_err(), MseError::BadVc);
        assert_eq!(
            tampered_step3(&[(11, 0x03)]).unwrap_err(),
            MseError::NoCommonMethod(0)
        );
        assert_eq!(
            tampered_step3(&[(12, 0x03)]).unwrap_err(),
            MseError::PadTooLong(0x300)
        );
        assert_eq!(
            tampered_step3(&[(12, 0x02), (13, 0x01)]).unwrap_err(),
            MseError::PadTooLong(513)
        );
        // len(PadC) 512 is allowed: it waits for the padding.
        assert!(matches!(
            tampered_step3(&[(12, 0x02)]),
            Ok(Progress::NeedMore)
        ));
    }

    #[test]
    fn a_select_the_initiator_did_not_provide_is_refused() {
        for (mask, select) in [(0x03, 0x02), (0x02, 0x03), (0x80, 0x81)] {
            let mut r = rng(9);
            let mut a = Initiator::new(HASH, 0x01, &mut r);
            let mut b = Responder::new(PLAIN, &mut r);
            b.receive(&a.take_output(), &lookup).unwrap();
            let step2 = b.take_output();
            a.receive(&step2).unwrap();
            assert!(matches!(
                b.receive(&a.take_output(), &lookup),
                Ok(Progress::Done(_))
            ));
            let mut step4 = b.take_output();
            // crypto_select is bytes 8..12 of step 4; the plaintext select is 0x01.
            step4[11] ^= mask;
            assert_eq!(a.receive(&step4).unwrap_err(), MseError::BadSelect(select));
        }
    }

    #[test]
    fn plain_handshakes_are_told_from_mse_by_their_first_bytes() {
        let plain = b"\x13BitTorrent protocol\0\0\0\0\0\0\0\0";
        assert_eq!(is_plain_handshake(&plain[..]), Some(true));
        assert_eq!(is_plain_handshake(&plain[..20]), Some(true));
        assert_eq!(is_plain_handshake(&plain[..19]), None);
        assert_eq!(is_plain_handshake(&plain[..1]), None);
        assert_eq!(is_plain_handshake(b""), None);
        assert_eq!(is_plain_handshake(b"\x13BitTorrent protocoX"), Some(false));
        assert_eq!(is_plain_handshake(b"\x12"), Some(false));
        assert_eq!(is_plain_handshake(&[0xff; 96]), Some(false));
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic either side and are refused within a bounded length.
        #[test]
        fn random_input_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..2000), seed in 0u64..1000) {
            let mut r = rng(seed);
            let mut b = Responder::new(PLAIN, &mut r);
            let _ = b.receive(&data, &lookup);
            let mut a = Initiator::new(HASH, BOTH, &mut r);
            let _ = a.receive(&data);
        }
    }
}
