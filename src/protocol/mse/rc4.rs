//! RC4, the stream cipher of MSE/PE. Hand-written (a key schedule and a byte loop): the whole
//! algorithm is smaller than a dependency's glue, and the tests check it against RFC 6229.

/// An RC4 key stream: [`Rc4::apply`] encrypts or decrypts (the same XOR) in place.
#[derive(Clone)]
pub struct Rc4 {
    s: [u8; 256],
    i: u8,
    j: u8,
}

impl std::fmt::Debug for Rc4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rc4 { .. }")
    }
}

impl Rc4 {
    /// The key schedule of `key` (1 to 256 bytes).
    pub fn new(key: &[u8]) -> Rc4 {
        assert!(
            !key.is_empty() && key.len() <= 256,
            "RC4 key of 1 to 256 bytes"
        );
        let mut s = [0u8; 256];
        for (i, v) in s.iter_mut().enumerate() {
            *v = i as u8;
        }
        let mut j = 0u8;
        for i in 0..256 {
            j = j.wrapping_add(s[i]).wrapping_add(key[i % key.len()]);
            s.swap(i, j as usize);
        }
        Rc4 { s, i: 0, j: 0 }
    }

    /// The key schedule of `key` with the first `discard` bytes of key stream thrown away
    /// (MSE discards 1024).
    pub fn with_discard(key: &[u8], discard: usize) -> Rc4 {
        let mut rc4 = Rc4::new(key);
        let mut skip = [0u8; 256];
        let mut left = discard;
        while left > 0 {
            let n = left.min(skip.len());
            rc4.apply(&mut skip[..n]);
            left -= n;
        }
        rc4
    }

    /// XORs `data` with the next `data.len()` bytes of key stream.
    pub fn apply(&mut self, data: &mut [u8]) {
        let (mut i, mut j) = (self.i, self.j);
        let s = &mut self.s;
        for b in data {
            i = i.wrapping_add(1);
            let si = s[i as usize];
            j = j.wrapping_add(si);
            let sj = s[j as usize];
            s[i as usize] = sj;
            s[j as usize] = si;
            *b ^= s[si.wrapping_add(sj) as usize];
        }
        self.i = i;
        self.j = j;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(key: &[u8], skip: usize, len: usize) -> Vec<u8> {
        let mut rc4 = Rc4::with_discard(key, skip);
        let mut out = vec![0; len];
        rc4.apply(&mut out);
        out
    }

    #[test]
    fn rfc_6229_128_bit_key() {
        let key: Vec<u8> = (1..=16).collect();
        assert_eq!(
            hex::encode(stream(&key, 0, 16)),
            "9ac7cc9a609d1ef7b2932899cde41b97"
        );
        // The offset MSE starts at, after its 1024 discarded bytes.
        assert_eq!(
            hex::encode(stream(&key, 1024, 16)),
            "bdf0324e6083dcc6d3cedd3ca8c53c16"
        );
    }

    #[test]
    fn classic_vectors() {
        for (key, plain, cipher) in [
            ("Key", "Plaintext", "bbf316e8d940af0ad3"),
            ("Wiki", "pedia", "1021bf0420"),
            ("Secret", "Attack at dawn", "45a01f645fc35b383552544b9bf5"),
        ] {
            let mut data = plain.as_bytes().to_vec();
            Rc4::new(key.as_bytes()).apply(&mut data);
            assert_eq!(hex::encode(&data), cipher, "{key}");
        }
    }

    #[test]
    fn pieces_and_whole_give_the_same_stream() {
        let whole = stream(b"some key", 1024, 1000);
        let mut rc4 = Rc4::with_discard(b"some key", 1024);
        let mut pieces = vec![0u8; 1000];
        for chunk in pieces.chunks_mut(7) {
            rc4.apply(chunk);
        }
        assert_eq!(whole, pieces);
        // Decrypting is the same operation.
        let mut back = whole.clone();
        Rc4::with_discard(b"some key", 1024).apply(&mut back);
        assert_eq!(back, vec![0u8; 1000]);
    }
}
