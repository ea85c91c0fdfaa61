//! One flow log record: a line split on runs of whitespace, read through a [`FlowFormat`].
//!
//! The split records where fields start and end into a buffer the caller reuses, so reading a record allocates
//! nothing; the fields stay `&str` slices of the line they came from.

use crate::flow::format::FlowFormat;
use crate::flow::swar::{below, byte_bits, equal, word};

/// Splits lines into fields, reusing one buffer of field edges for every line.
#[derive(Debug, Default)]
pub struct RecordSplitter {
    /// Where each field starts and ends, in turn: field i is `edges[2i]..edges[2i + 1]`.
    edges: Vec<u32>,
}

/// A record whose field count matches its format. Fields that are `-` read as absent.
/// Fields borrow from the line (`'a`), not from the splitter's buffer (`'s`).
#[derive(Debug, Clone, Copy)]
pub struct FlowRecord<'s, 'a> {
    line: &'a str,
    edges: &'s [u32],
}

impl RecordSplitter {
    /// Splits `line` on runs of ASCII whitespace. Returns `None` when the number of fields is
    /// not the format's (the record is malformed) or the line is longer than 4 GiB.
    pub fn split<'s, 'a>(
        &'s mut self,
        line: &'a str,
        format: &FlowFormat,
    ) -> Option<FlowRecord<'s, 'a>> {
        let want = format.len();
        if line.len() > u32::MAX as usize {
            return None;
        }
        self.edges.clear();
        if self.split_spaces(line.as_bytes(), want).is_none() {
            self.edges.clear();
            self.split_whitespace(line.as_bytes(), want);
        }
        (self.edges.len() == 2 * want).then_some(FlowRecord {
            line,
            edges: &self.edges,
        })
    }

    /// The fast path for records separated by spaces, sixteen bytes at a time (SWAR): finds where
    /// fields start and end from bit masks instead of looking at every byte, and records every
    /// edge without asking which kind it is (they alternate). `None` when the line holds another
    /// whitespace or control character, for [`Self::split_whitespace`]. Stops early once there
    /// are more than `want` fields.
    fn split_spaces(&mut self, bytes: &[u8], want: usize) -> Option<()> {
        // Room for every edge up to one block past `want` fields, and the last end: written in
        // place, then cut to the count.
        let room = 2 * want + 18;
        self.edges.resize(room, 0);
        let edges_out = &mut self.edges[..];
        let mut count = 0;
        let mut prev_space = 1u32; // the line starts as if after a space
        let whole = bytes.len() / 16 * 16;
        let mut tail = [b' '; 16]; // the short last block, padded with spaces
        tail[..bytes.len() - whole].copy_from_slice(&bytes[whole..]);
        let blocks = bytes[..whole]
            .chunks_exact(16)
            .chain((whole < bytes.len()).then_some(&tail[..]));
        for (block_index, block) in blocks.enumerate() {
            let (lo, hi) = block.split_at(8);
            let (lo, hi) = (word(lo.try_into().unwrap()), word(hi.try_into().unwrap()));
            let (low_lo, low_hi) = (below(lo, 0x21), below(hi, 0x21));
            if low_lo != equal(lo, b' ') || low_hi != equal(hi, b' ') {
                return None;
            }
            let spaces = byte_bits(low_lo) | byte_bits(low_hi) << 8;
            // A bit where a byte differs from the one before it: a field starts or ends there.
            let mut edges = (spaces ^ ((spaces << 1) | prev_space)) & 0xffff;
            prev_space = spaces >> 15;
            let base = (block_index * 16) as u32;
            while edges != 0 {
                edges_out[count] = base + edges.trailing_zeros();
                count += 1;
                edges &= edges - 1;
            }
            if count > 2 * want {
                break; // too many fields: no need to read the rest
            }
        }
        if prev_space == 0 && count <= 2 * want {
            edges_out[count] = bytes.len() as u32;
            count += 1;
        }
        self.edges.truncate(count);
        Some(())
    }

    /// The general path: any ASCII whitespace separates fields, one byte at a time.
    fn split_whitespace(&mut self, bytes: &[u8], want: usize) {
        let mut in_field = false;
        for (i, &b) in bytes.iter().enumerate() {
            if b.is_ascii_whitespace() == in_field {
                self.edges.push(i as u32);
                in_field = !in_field;
                if self.edges.len() > 2 * want {
                    return;
                }
            }
        }
        if in_field {
            self.edges.push(bytes.len() as u32);
        }
    }
}

impl<'a> FlowRecord<'_, 'a> {
    /// The text of the field at `index`, `-` included.
    pub fn raw(&self, index: usize) -> &'a str {
        let (start, end) = (self.edges[2 * index], self.edges[2 * index + 1]);
        // The edges were cut at ASCII whitespace, so they fall on char boundaries.
        &self.line[start as usize..end as usize]
    }

    /// The field at `index` when the format has it and it is not `-`.
    pub fn get(&self, index: Option<usize>) -> Option<&'a str> {
        index.map(|i| self.raw(i)).filter(|v| *v != "-")
    }

    /// How many fields the record has.
    pub fn len(&self) -> usize {
        self.edges.len() / 2
    }

    /// Whether the record has no fields (never true for a record of a valid format).
    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REJECT: &str = "2 123456789010 eni-1235b8ca123456789 172.31.9.69 172.31.9.12 49761 3389 6 20 4249 1418530010 1418530070 REJECT OK";

    #[test]
    fn fields_are_read_by_the_formats_positions() {
        let format = FlowFormat::default_v2();
        let mut splitter = RecordSplitter::default();
        let record = splitter.split(REJECT, &format).unwrap();
        assert_eq!(record.get(format.srcaddr), Some("172.31.9.69"));
        assert_eq!(record.raw(format.action), "REJECT");
        assert_eq!(record.get(format.pkt_srcaddr), None);
    }

    #[test]
    fn runs_of_spaces_and_tabs_separate_fields_like_one_space() {
        let format = FlowFormat::default_v2();
        let mut splitter = RecordSplitter::default();
        let spaced = REJECT.replace(' ', "  \t").replace("OK", "OK\r\n");
        let record = splitter.split(&spaced, &format).unwrap();
        assert_eq!(record.len(), 14);
        assert_eq!(record.raw(13), "OK");
    }

    #[test]
    fn a_dash_reads_as_absent_in_any_field() {
        let format = FlowFormat::default_v2();
        let mut splitter = RecordSplitter::default();
        let nodata =
            "2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA";
        let record = splitter.split(nodata, &format).unwrap();
        assert_eq!(record.get(format.srcaddr), None);
        assert_eq!(record.get(format.packets), None);
        assert_eq!(record.get(format.start), Some("1431280876"));
    }

    #[test]
    fn the_fast_and_the_general_split_agree() {
        let format = FlowFormat::parse("a b c d e f g h i j k l m n action srcaddr").unwrap();
        let mut fast = RecordSplitter::default();
        let mut general = RecordSplitter::default();
        for line in [
            "",
            " ",
            "a",
            "abcdefgh",
            "abcdefg h",
            "  abcdefghij   k l  ",
            REJECT,
            "x\u{e9}y 1234567 89",
            "a\tb",
        ] {
            for want in [1, 2, 3, 14, 16] {
                fast.edges.clear();
                general.edges.clear();
                let f = fast.split_spaces(line.as_bytes(), want);
                general.split_whitespace(line.as_bytes(), want);
                if f.is_some() {
                    // Both stop once they know there are too many fields, at different points.
                    let fields = |e: &[u32]| e.len().min(2 * want + 1);
                    assert_eq!(
                        fields(&fast.edges),
                        fields(&general.edges),
                        "{line:?} {want}"
                    );
                    if fast.edges.len() <= 2 * want {
                        assert_eq!(fast.edges, general.edges, "{line:?} {want}");
                    }
                } else {
                    assert!(line.contains('\t'), "{line:?}");
                }
            }
        }
        assert!(fast.split("a\tb c", &format).is_none());
    }

    #[test]
    fn a_record_with_too_few_or_too_many_fields_is_malformed() {
        let format = FlowFormat::default_v2();
        let mut splitter = RecordSplitter::default();
        assert!(splitter
            .split("2 123456789010 REJECT OK", &format)
            .is_none());
        assert!(splitter
            .split(&format!("{REJECT} extra"), &format)
            .is_none());
        assert!(splitter.split("", &format).is_none());
    }
}
