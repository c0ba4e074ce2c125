//! Shipment and order ids: decimal strings that look random but decode back to the shipment.
//!
//! Decoding keeps memory flat: a detail request finds its shipment from the id alone, so the
//! sandbox stores no id table even with hundreds of thousands of shipments.
//!
//! A key packs into 40 bits: the fulfilment method (1 bit), the account (14 bits, so 16,384
//! accounts: a 10,000-shop benchmark is one sandbox) and the index (25 bits, 33,554,432
//! shipments per account and method). The scrambled 40-bit value plus a family's base keeps
//! every id 13 digits long.

use crate::prng::mix;

const BITS: u32 = 40;
const MASK: u64 = (1 << BITS) - 1;
const HALF: u32 = BITS / 2;
const MUL_A: u64 = 0x9e37_79b9_7f4b;
const MUL_B: u64 = 0xc2b2_ae3d_27d5;
const ACCOUNT_BITS: u32 = 14;

/// Most accounts one sandbox can hold (ids reserve 14 bits for the account).
pub(crate) const MAX_ACCOUNTS: usize = 1 << ACCOUNT_BITS;
/// Most shipments one account can hold per fulfilment method.
pub(crate) const MAX_INDEX: u64 = 1 << (BITS - ACCOUNT_BITS - 1);
// bench/scale-shops.sh runs 10,000 shops on one sandbox; the ingest benches put 100,000
// shipments of one method in one account.
const _: () = assert!(MAX_ACCOUNTS >= 10_000 && MAX_INDEX > 100_000);

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
    fn neighbouring_keys_at_the_largest_account_stay_distinct() {
        let codec = IdCodec::new(7, 2, 4_000_000_000_000);
        let last = MAX_ACCOUNTS - 1;
        let keys = [
            (last, false, 0),
            (last, true, 0),
            (last, false, 1),
            (last - 1, false, 0),
            (9_999, true, 99_999),
        ]
        .map(|(account, fbb, index)| Key {
            account,
            fbb,
            index,
        });
        let ids = keys.map(|k| codec.encode(k));
        for (key, id) in keys.iter().zip(&ids) {
            assert_eq!(id.len(), 13, "{id}");
            assert_eq!(codec.decode(id), Some(*key));
        }
        let mut unique = ids.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
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
