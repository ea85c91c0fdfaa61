//! Byte classes eight bytes at a time in a `u64` (SWAR), on any processor: the masks of the
//! crate for architectures without SSE2 or NEON, and the tail of a string shorter than a block.
//!
//! A mask has the high bit of each matching byte set and every other bit clear. Each test is
//! exact: it looks at the low seven bits without letting a carry cross into the next byte,
//! and at the high bit on its own.

const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGH: u64 = 0x8080_8080_8080_8080;
const ONES: u64 = 0x0101_0101_0101_0101;

/// Eight bytes read as one little-endian word: byte k is bits 8k..8k+8.
pub fn word(bytes: &[u8; 8]) -> u64 {
    u64::from_le_bytes(*bytes)
}

/// The bytes of `x` below `limit` (at most 0x80).
pub fn below(x: u64, limit: u8) -> u64 {
    // A 7-bit byte plus (0x80 - limit) reaches the high bit exactly when it is at least `limit`.
    let add = ONES * u64::from(0x80 - limit);
    !(((x & LOW7) + add) | x) & HIGH
}

/// The bytes of `x` equal to `byte`.
pub fn equal(x: u64, byte: u8) -> u64 {
    let y = x ^ (ONES * u64::from(byte));
    !(((y & LOW7) + LOW7) | y) & HIGH
}

/// Gathers the high bits of a mask's eight bytes into one byte: bit k for byte k.
pub fn byte_bits(mask: u64) -> u32 {
    ((mask >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32
}

/// The index of the first byte of a mask (`mask` not zero).
pub fn first(mask: u64) -> usize {
    (mask.trailing_zeros() / 8) as usize
}

/// [`crate::spaces`], two words at a time.
pub fn spaces(block: &[u8; 16]) -> Option<u16> {
    let [lo, hi] = halves(block);
    let (low_lo, low_hi) = (below(lo, 0x21), below(hi, 0x21));
    if low_lo != equal(lo, b' ') || low_hi != equal(hi, b' ') {
        return None;
    }
    Some((byte_bits(low_lo) | byte_bits(low_hi) << 8) as u16)
}

/// [`crate::string_stops`], two words at a time.
pub fn string_stops(block: &[u8; 16]) -> u16 {
    let [lo, hi] = halves(block).map(|x| equal(x, b'"') | equal(x, b'\\') | below(x, 0x20));
    (byte_bits(lo) | byte_bits(hi) << 8) as u16
}

fn halves(block: &[u8; 16]) -> [u64; 2] {
    let (lo, hi) = block.split_at(8);
    [lo, hi].map(|half| word(half.try_into().expect("eight bytes")))
}

/// [`crate::string_stop`], a word at a time.
pub fn string_stop(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let x = word(chunk.try_into().expect("eight bytes"));
        let stops = equal(x, b'"') | equal(x, b'\\') | below(x, 0x20);
        if stops != 0 {
            return Some(at + first(stops));
        }
        at += 8;
    }
    bytes
        .get(at..)?
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|offset| at + offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(mask: u64) -> Vec<usize> {
        (0..8).filter(|k| mask >> (8 * k + 7) & 1 == 1).collect()
    }

    #[test]
    fn each_mask_matches_exactly_the_bytes_it_names() {
        for b in 0..=255u8 {
            let x = word(&[b, 0x41, b, 0xff, 0x00, b, 0x80, 0x7f]);
            let expect = |hit: &dyn Fn(u8) -> bool| -> Vec<usize> {
                [b, 0x41, b, 0xff, 0x00, b, 0x80, 0x7f]
                    .iter()
                    .enumerate()
                    .filter(|(_, &v)| hit(v))
                    .map(|(k, _)| k)
                    .collect()
            };
            assert_eq!(bytes_of(equal(x, b'"')), expect(&|v| v == b'"'), "{b}");
            assert_eq!(bytes_of(equal(x, b)), expect(&|v| v == b), "{b}");
            assert_eq!(bytes_of(below(x, 0x20)), expect(&|v| v < 0x20), "{b}");
            assert_eq!(bytes_of(below(x, 0x21)), expect(&|v| v < 0x21), "{b}");
        }
    }
}
