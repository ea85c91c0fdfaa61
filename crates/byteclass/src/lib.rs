//! Byte classes sixteen bytes at a time, for vpc-flow-alert's record splitter and the ends of
//! the JSON strings it reads: SSE2 on x86_64 and NEON on aarch64 (the Lambda function's
//! Graviton), which every processor of those architectures has, and eight bytes at a time in a
//! `u64` ([`swar`]) on any other.
//!
//! Each way gives the same masks, bit `k` for byte `k`. The tests compare them with a plain loop
//! over the bytes, on x86_64 natively and on aarch64 under qemu (`make test`).

pub mod swar;

/// The spaces of a block, bit `k` set when byte `k` is one; `None` when the block holds another
/// byte below `!` (a tab, a line break, any control character), which the splitter leaves to its
/// general path.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
pub fn spaces(block: &[u8; 16]) -> Option<u16> {
    let x = imp::load(block);
    let spaces = imp::bits(imp::equal(x, b' '));
    (imp::bits(imp::at_most(x, b' ')) == spaces).then_some(spaces)
}

/// The bytes of a block that stop a JSON string without escapes: `"`, `\` and control
/// characters (below 0x20), bit `k` for byte `k`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
pub fn string_stops(block: &[u8; 16]) -> u16 {
    let x = imp::load(block);
    let quotes = imp::or(imp::equal(x, b'"'), imp::equal(x, b'\\'));
    imp::bits(imp::or(quotes, imp::at_most(x, 0x1f)))
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub use swar::{spaces, string_stops};

/// Where the JSON string whose text starts at `from` stops: the index of the first `"`, `\` or
/// control character at or after `from`, or `None` when there is none. A string without escapes
/// ends there exactly when that byte is a quote.
#[inline]
pub fn string_stop(bytes: &[u8], from: usize) -> Option<usize> {
    // Strings in CloudWatch's documents are mostly shorter than a block: a plain loop, no
    // iterator to set up per string.
    let mut at = from;
    while let Some(block) = bytes.get(at..at + 16) {
        let stops = string_stops(block.try_into().expect("sixteen bytes"));
        if stops != 0 {
            return Some(at + stops.trailing_zeros() as usize);
        }
        at += 16;
    }
    swar::string_stop(bytes, at)
}

/// What [`spaces`] and [`string_stops`] are made of, with SSE2.
#[cfg(target_arch = "x86_64")]
mod imp {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };

    #[inline(always)]
    pub fn load(block: &[u8; 16]) -> __m128i {
        // SAFETY: an unaligned load of the sixteen bytes `block` refers to; SSE2 is part of
        // every x86_64 processor.
        unsafe { _mm_loadu_si128(block.as_ptr().cast()) }
    }

    /// The bytes of `x` equal to `byte`, each all ones or all zeros.
    #[inline(always)]
    #[allow(unused_unsafe)] // the intrinsics are safe to call from Rust 1.87 on
    pub fn equal(x: __m128i, byte: u8) -> __m128i {
        unsafe { _mm_cmpeq_epi8(x, _mm_set1_epi8(byte as i8)) }
    }

    /// The bytes of `x` at most `max`, unsigned: `min(x, max) == x`.
    #[inline(always)]
    #[allow(unused_unsafe)]
    pub fn at_most(x: __m128i, max: u8) -> __m128i {
        unsafe { _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8(max as i8)), x) }
    }

    #[inline(always)]
    #[allow(unused_unsafe)]
    pub fn or(a: __m128i, b: __m128i) -> __m128i {
        unsafe { _mm_or_si128(a, b) }
    }

    /// A mask of whole bytes as sixteen bits, bit `k` for byte `k`.
    #[inline(always)]
    #[allow(unused_unsafe)]
    pub fn bits(mask: __m128i) -> u16 {
        unsafe { _mm_movemask_epi8(mask) as u16 }
    }
}

/// What [`spaces`] and [`string_stops`] are made of, with NEON.
#[cfg(target_arch = "aarch64")]
mod imp {
    use std::arch::aarch64::{
        uint8x16_t, vaddv_u8, vandq_u8, vceqq_u8, vcleq_u8, vdupq_n_u8, vget_high_u8, vget_low_u8,
        vld1q_u8, vorrq_u8,
    };

    /// Bit `k` of each half's byte `k`: a mask ANDed with it and summed across each half gives
    /// the mask as bits (NEON has no instruction that gathers them).
    const WEIGHTS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];

    #[inline(always)]
    pub fn load(block: &[u8; 16]) -> uint8x16_t {
        // SAFETY: a load of the sixteen bytes `block` refers to; NEON is part of every aarch64
        // processor.
        unsafe { vld1q_u8(block.as_ptr()) }
    }

    /// The bytes of `x` equal to `byte`, each all ones or all zeros.
    #[inline(always)]
    #[allow(unused_unsafe)] // the intrinsics are safe to call from Rust 1.87 on
    pub fn equal(x: uint8x16_t, byte: u8) -> uint8x16_t {
        unsafe { vceqq_u8(x, vdupq_n_u8(byte)) }
    }

    /// The bytes of `x` at most `max`, unsigned.
    #[inline(always)]
    #[allow(unused_unsafe)]
    pub fn at_most(x: uint8x16_t, max: u8) -> uint8x16_t {
        unsafe { vcleq_u8(x, vdupq_n_u8(max)) }
    }

    #[inline(always)]
    #[allow(unused_unsafe)]
    pub fn or(a: uint8x16_t, b: uint8x16_t) -> uint8x16_t {
        unsafe { vorrq_u8(a, b) }
    }

    /// A mask of whole bytes as sixteen bits, bit `k` for byte `k`.
    #[inline(always)]
    #[allow(unused_unsafe)]
    pub fn bits(mask: uint8x16_t) -> u16 {
        let weighted = unsafe { vandq_u8(mask, load(&WEIGHTS)) };
        let (low, high) = unsafe {
            (
                vaddv_u8(vget_low_u8(weighted)),
                vaddv_u8(vget_high_u8(weighted)),
            )
        };
        u16::from(low) | u16::from(high) << 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The masks of a block, one byte at a time.
    fn plain(block: &[u8; 16]) -> (Option<u16>, u16) {
        let mask = |hit: &dyn Fn(u8) -> bool| {
            (0..16)
                .filter(|&k| hit(block[k]))
                .fold(0u16, |m, k| m | 1 << k)
        };
        let spaces = mask(&|b| b == b' ');
        let spaces = (mask(&|b| b <= b' ') == spaces).then_some(spaces);
        (spaces, mask(&|b| b == b'"' || b == b'\\' || b < 0x20))
    }

    /// Blocks with every byte value at every place, among bytes near the edges of the classes,
    /// then pseudo-random ones.
    fn blocks() -> impl Iterator<Item = [u8; 16]> {
        let fill = *b"a \"\\\x1f\x20\x21\x7f\x80\xff\x00\t\n{9-";
        let each_place = (0..=255u8).flat_map(move |b| {
            (0..16).flat_map(move |k| {
                [[b'a'; 16], fill].map(|mut block| {
                    block[k] = b;
                    block
                })
            })
        });
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let random = (0..100_000).map(move |_| {
            let mut block = [0u8; 16];
            for byte in &mut block {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Mostly the classes' own bytes, so that masks are often mixed.
                *byte = match x % 4 {
                    0 => b' ',
                    1 => fill[(x >> 8) as usize % 16],
                    _ => (x >> 16) as u8,
                };
            }
            block
        });
        each_place.chain(random)
    }

    #[test]
    fn each_way_gives_the_masks_a_plain_loop_gives() {
        for block in blocks() {
            let (spaces_, stops) = plain(&block);
            assert_eq!(spaces(&block), spaces_, "{block:?}");
            assert_eq!(string_stops(&block), stops, "{block:?}");
            assert_eq!(swar::spaces(&block), spaces_, "swar {block:?}");
            assert_eq!(swar::string_stops(&block), stops, "swar {block:?}");
        }
    }

    #[test]
    fn a_string_stops_at_its_first_quote_backslash_or_control_character() {
        let text = [
            &br#"{"srcaddr":"10.0.1.5","k":"a\"b","tab":"x"#[..],
            b"\ty\",\"eni\":\"eni-0123456789abcdef0123456789abcdef\",",
            br#""long":"a string longer than two blocks of sixteen bytes","#,
            // Multi-byte characters and bytes that are not UTF-8: never a stop.
            b"\"utf8\":\"\xc3\xa9t\xc3\xa9 \xe2\x82\xac\xf0\x9f\x98\x80 \x80\xff\"}",
        ]
        .concat();
        let text = &text[..];
        let naive = |from: usize| {
            text[from..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .map(|at| from + at)
        };
        for from in 0..=text.len() {
            assert_eq!(string_stop(text, from), naive(from), "{from}");
            assert_eq!(swar::string_stop(text, from), naive(from), "swar {from}");
        }
        assert_eq!(string_stop(text, text.len() + 1), None);
    }
}
