//! Shipment and order ids: decimal strings that look random but decode back to the shipment.
//!
//! Decoding keeps memory flat: a detail request finds its shipment from the id alone, so the
//! sandbox stores no id table even with hundreds of thousands of shipments.

use crate::prng::mix;

const BITS: u32 = 40;
const MASK: u64 = (1 << BITS) - 1;
const HALF: u32 = BITS / 2;
const MUL_A: u64 = 0x9e37_79b9_7f4b;
const MUL_B: u64 = 0xc2b2_ae3d_27d5;
const ACCOUNT_BITS: u32 = 11;

/// Most accounts one sandbox can hold (ids reserve 11 bits for the account).
pub(crate) const MAX_ACCOUNTS: usize = 1 << ACCOUNT_BITS;
/// Most shipments one account can hold per fulfilment method.
pub(crate) const MAX_INDEX: u64 = 1 << (BITS - ACCOUNT_BITS - 1);

/// Where a shipment lives: account number, fulfilment method (0 FBR, 1 FBB), position (0 = oldest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Key {
    pub account: usize,
    pub fbb: bool,
    pub index: u64,
}

impl Key {
    pub(crate) fn raw(self) -> u64 {
        (self.index << (ACCOUNT_BITS + 1)) | ((self.account as u64) << 1) | u64::from(self.fbb)
    }

    fn from_raw(raw: u64) -> Self {
        Self {
            account: ((raw >> 1) & ((1 << ACCOUNT_BITS) - 1)) as usize,
            fbb: raw & 1 == 1,
            index: raw >> (ACCOUNT_BITS + 1),
        }
    }
}

/// One family of ids (shipments, orders), each with its own key and decimal prefix.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IdCodec {
    key: u64,
    base: u64,
}

const fn inverse(a: u64) -> u64 {
    let mut inv = a;
    let mut i = 0;
    while i < 6 {
        inv = inv.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(inv)));
        i += 1;
    }
    inv
}

impl IdCodec {
    /// `base` is added to the scrambled value so ids of one family share a length and a leading digit.
    pub(crate) fn new(seed: u64, family: u64, base: u64) -> Self {
        Self {
            key: mix(seed ^ mix(family)) & MASK,
            base,
        }
    }

    pub(crate) fn encode(self, key: Key) -> String {
        let mut x = (key.raw() ^ self.key) & MASK;
        x = x.wrapping_mul(MUL_A) & MASK;
        x ^= x >> HALF;
        x = x.wrapping_mul(MUL_B) & MASK;
        x ^= x >> HALF;
        (x + self.base).to_string()
    }

    /// Any string that `encode` did not produce gives `None` or a key the caller must bounds-check.
    pub(crate) fn decode(self, id: &str) -> Option<Key> {
        if id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut x = id.parse::<u64>().ok()?.checked_sub(self.base)?;
        if x > MASK {
            return None;
        }
        x ^= x >> HALF;
        x = x.wrapping_mul(inverse(MUL_B)) & MASK;
        x ^= x >> HALF;
        x = x.wrapping_mul(inverse(MUL_A)) & MASK;
        Some(Key::from_raw((x ^ self.key) & MASK))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_decode_to_the_key_they_encode() {
        let codec = IdCodec::new(42, 1, 1_000_000_000_000);
        for key in [
            Key {
                account: 0,
                fbb: false,
                index: 0,
            },
            Key {
                account: 3,
                fbb: true,
                index: 123_456,
            },
            Key {
                account: MAX_ACCOUNTS - 1,
                fbb: true,
                index: MAX_INDEX - 1,
            },
        ] {
            let id = codec.encode(key);
            assert_eq!(id.len(), 13, "{id}");
            assert_eq!(codec.decode(&id), Some(key));
        }
    }

    #[test]
    fn other_families_and_junk_do_not_decode() {
        let codec = IdCodec::new(42, 1, 1_000_000_000_000);
        assert_eq!(codec.decode("abc"), None);
        assert_eq!(codec.decode(""), None);
        assert_eq!(codec.decode("12"), None);
        assert_eq!(codec.decode("99999999999999999"), None);
    }
}
