//! Stable, dependency-free hashes for cache keys and seeds: FNV-1a in 64 and 128 bits.
//! Stable across Rust versions and platforms (std's `DefaultHasher` is neither), so a
//! cached file found by its key stays found; collisions are no concern for keys of a
//! user's own files.

/// 64-bit FNV-1a of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// 128-bit FNV-1a, fed field by field.
#[derive(Clone)]
pub struct Fnv128(u128);

impl Default for Fnv128 {
    fn default() -> Self {
        Self(0x6c62_272e_07bb_0142_62b8_2175_6295_c58d)
    }
}

impl Fnv128 {
    pub fn update(&mut self, bytes: &[u8]) -> &mut Self {
        const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
        for &b in bytes {
            self.0 ^= b as u128;
            self.0 = self.0.wrapping_mul(PRIME);
        }
        self
    }
    /// A length-prefixed field, so `("ab", "c")` and `("a", "bc")` differ.
    pub fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.update(&(bytes.len() as u64).to_le_bytes())
            .update(bytes)
    }
    pub fn hex(&self) -> String {
        format!("{:032x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_published_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn fnv128_matches_the_published_vectors() {
        // FNV-1a 128 of "" and "a" (reference values of the FNV specification).
        assert_eq!(Fnv128::default().hex(), "6c62272e07bb014262b821756295c58d");
        assert_eq!(
            Fnv128::default().update(b"a").hex(),
            "d228cb696f1a8caf78912b704e4a8964"
        );
    }
}
