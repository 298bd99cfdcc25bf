//! MSE's Diffie-Hellman key exchange: generator 2 over the 768-bit prime of the spec, public
//! keys and the shared secret as 96 big-endian bytes.

use num_bigint::BigUint;

/// Bytes of a public key or shared secret.
pub const KEY_BYTES: usize = 96;

/// Bytes of a private key (160 bits, as the spec asks for at least 128).
pub const PRIVATE_BYTES: usize = 20;

/// The prime P of the spec.
const PRIME_HEX: &[u8] = b"FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563";

fn prime() -> BigUint {
    BigUint::parse_bytes(PRIME_HEX, 16).expect("valid prime literal")
}

fn to_key_bytes(n: &BigUint) -> [u8; KEY_BYTES] {
    let bytes = n.to_bytes_be();
    let mut out = [0u8; KEY_BYTES];
    out[KEY_BYTES - bytes.len()..].copy_from_slice(&bytes);
    out
}

/// One side's key pair.
pub struct KeyPair {
    private: BigUint,
    /// G^private mod P.
    pub public: [u8; KEY_BYTES],
}

impl KeyPair {
    /// The key pair of a private key (random bytes from the caller).
    pub fn from_private(private: [u8; PRIVATE_BYTES]) -> KeyPair {
        let private = BigUint::from_bytes_be(&private);
        let public = BigUint::from(2u32).modpow(&private, &prime());
        KeyPair {
            private,
            public: to_key_bytes(&public),
        }
    }

    /// The shared secret S with the other side's public key, or `None` for a degenerate key
    /// (0, 1 or P-1 and above), which would make S predictable.
    pub fn shared_secret(&self, theirs: &[u8; KEY_BYTES]) -> Option<[u8; KEY_BYTES]> {
        let p = prime();
        let y = BigUint::from_bytes_be(theirs);
        let one = BigUint::from(1u32);
        if y <= one || y >= &p - &one {
            return None;
        }
        Some(to_key_bytes(&y.modpow(&self.private, &p)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // From /usr/bin/python3: pow(2, int('01'*20, 16), P) and the secret with int('02'*20, 16).
    const YA: &str = "d0e3956c8bb7401546dd5f47415fec488545a032debe8a9705aff32021c9ace338096db3b46ab61bd5dced30a7f7963ab0757540bd866106adbd811151f6fdbf4209b3bde658e0079aac8cd96313a29c2d63ff789e0ac4e0d60f9d1b0b387720";
    const S: &str = "478531421d985de779c1fd27f0fe13f8a8e15b9e171f3d1bb7d2830b0f8c94241a5fe6560179bae85b6143d1b35e936ec89d2493892249207efd26e998332ed835dd7a90481517d4c9e58175d644e232317e1e970e55b48ec7cbe8fab193d842";

    #[test]
    fn known_answer() {
        let a = KeyPair::from_private([1; 20]);
        let b = KeyPair::from_private([2; 20]);
        assert_eq!(hex::encode(a.public), YA);
        assert_eq!(hex::encode(a.shared_secret(&b.public).unwrap()), S);
        assert_eq!(hex::encode(b.shared_secret(&a.public).unwrap()), S);
    }

    #[test]
    fn degenerate_public_keys_are_refused() {
        let a = KeyPair::from_private([7; 20]);
        let mut one = [0u8; KEY_BYTES];
        one[KEY_BYTES - 1] = 1;
        assert!(a.shared_secret(&[0; KEY_BYTES]).is_none());
        assert!(a.shared_secret(&one).is_none());
        assert!(a.shared_secret(&[0xff; KEY_BYTES]).is_none());
        let p_minus_1 = to_key_bytes(&(prime() - 1u32));
        assert!(a.shared_secret(&p_minus_1).is_none());
    }

    #[test]
    fn small_public_keys_keep_their_leading_zeros() {
        let mut two = [0u8; KEY_BYTES];
        two[KEY_BYTES - 1] = 2;
        let a = KeyPair::from_private(
            [0; 19]
                .iter()
                .chain(&[1])
                .copied()
                .collect::<Vec<_>>()
                .try_into()
                .unwrap(),
        );
        assert_eq!(a.public, two);
    }
}
