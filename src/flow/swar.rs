//! Byte searches eight bytes at a time in a `u64` (SWAR): the splitter's spaces and the JSON
//! reader's string ends. Portable, so the arm64 function and an x86 laptop run the same code.
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

/// Where the JSON string whose text starts at `from` stops: the index of the first `"`, `\` or
/// control character at or after `from`, or `None` when there is none. A string without
/// escapes ends there exactly when that byte is a quote.
pub fn string_stop(bytes: &[u8], from: usize) -> Option<usize> {
    // Strings in CloudWatch's documents are mostly shorter than a word: a plain loop, no
    // iterator to set up per string.
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

    #[test]
    fn a_string_stops_at_its_first_quote_backslash_or_control_character() {
        let text = br#"{"srcaddr":"10.0.1.5","k":"a\"b","tab":"x	y","eni":"eni-0123456789abcdef0123456789abcdef"}"#;
        let naive = |from: usize| {
            text[from..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .map(|at| from + at)
        };
        for from in 0..=text.len() {
            assert_eq!(string_stop(text, from), naive(from), "{from}");
        }
        assert_eq!(string_stop(text, text.len() + 1), None);
    }
}
