//! The hashes and the base32 codec behind the varbinary functions, from
//! the RustCrypto, xxHash, CRC and data-encoding crates.

use hmac::{Hmac, Mac};
use sha1::Digest;

/// The digests Trino's `hmac_*` functions use.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Hash {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

pub(crate) fn sha1(data: &[u8]) -> Vec<u8> {
    sha1::Sha1::digest(data).to_vec()
}

pub(crate) fn xxhash64(data: &[u8]) -> u64 {
    twox_hash::XxHash64::oneshot(0, data)
}

/// MurmurHash3 x64 128-bit, seed 0: h1 then h2, each little-endian.
pub(crate) fn murmur3_x64_128(data: &[u8]) -> Vec<u8> {
    let mut reader = data;
    // Reading a slice cannot fail.
    let h = murmur3::murmur3_x64_128(&mut reader, 0).unwrap_or_default();
    let (h1, h2) = (h as u64, (h >> 64) as u64);
    let mut out = h1.to_le_bytes().to_vec();
    out.extend_from_slice(&h2.to_le_bytes());
    out
}

fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length.
    let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

pub(crate) fn hmac(hash: Hash, key: &[u8], data: &[u8]) -> Vec<u8> {
    match hash {
        Hash::Md5 => mac::<Hmac<md5::Md5>>(key, data),
        Hash::Sha1 => mac::<Hmac<sha1::Sha1>>(key, data),
        Hash::Sha256 => mac::<Hmac<sha2::Sha256>>(key, data),
        Hash::Sha512 => mac::<Hmac<sha2::Sha512>>(key, data),
    }
}

/// RFC 4648 base32, upper case, padded (Trino's `to_base32`).
pub(crate) fn base32_encode(data: &[u8]) -> String {
    data_encoding::BASE32.encode(data)
}

/// Padded or not, upper or lower case.
pub(crate) fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let upper = text.trim_end().to_ascii_uppercase();
    data_encoding::BASE32.decode(upper.as_bytes()).or_else(|_| data_encoding::BASE32_NOPAD.decode(upper.as_bytes())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(hex::encode(sha1(b"abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(xxhash64(b""), 0xEF46DB3751D8E999);
        // Trino's binary.md: murmur3(from_base64('aaaaaa')).
        assert_eq!(hex::encode(murmur3_x64_128(&[0x69, 0xa6, 0x9a, 0x69])), "ba5855635569b42f4920372ca0e396ef");
        // RFC 2202 / RFC 4231 test case 2.
        assert_eq!(hex::encode(hmac(Hash::Md5, b"Jefe", b"what do ya want for nothing?")), "750c783e6ab0b503eaa86e310a5db738");
        assert_eq!(
            hex::encode(hmac(Hash::Sha256, b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI======");
        assert_eq!(base32_decode("mzxw6ytboi").as_deref(), Some(&b"foobar"[..]));
    }
}
