//! One flow log record: a line split on runs of whitespace, read through a [`FlowFormat`].
//!
//! The split records where fields start and end into a buffer the caller reuses, so reading a record allocates
//! nothing; the fields stay `&str` slices of the line they came from.

use crate::flow::format::FlowFormat;

/// Splits lines into fields, reusing one buffer of field edges for every line.
#[derive(Debug, Default)]
pub struct RecordSplitter {
    /// Where each field starts and ends, in turn: field i is `edges[2i]..edges[2i + 1]`. The
    /// buffer keeps its length between lines, so splitting a line writes its edges in place;
    /// the record holds as many as the split wrote.
    edges: Vec<u32>,
    /// How many edges the last split wrote when it made a record; 0 when it made none.
    last: usize,
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
        // Whitespace at either end makes no field; without it (a file's line break above all)
        // the line takes the fast path, which refuses any whitespace but a space.
        self.last = 0;
        let line = line.trim_ascii();
        let want = format.len();
        if line.len() > u32::MAX as usize {
            return None;
        }
        // Room for every edge up to one block past `want` fields, and the last end.
        let room = 2 * want + 17;
        if self.edges.len() < room {
            self.edges.resize(room, 0);
        }
        let count = split_spaces(&mut self.edges, line.as_bytes(), want)
            .unwrap_or_else(|| split_whitespace(&mut self.edges, line.as_bytes(), want));
        if count != 2 * want {
            return None;
        }
        self.last = count;
        Some(FlowRecord {
            line,
            edges: &self.edges[..count],
        })
    }

    /// Where the fields of the last record split start and end, in turn (as in a record); empty
    /// when the last line split made none.
    pub fn last_edges(&self) -> &[u32] {
        &self.edges[..self.last]
    }
}

/// The fast path for records separated by spaces, sixteen bytes at a time ([`byteclass`]):
/// finds where fields start and end from bit masks instead of looking at every byte, and
/// records every edge without asking which kind it is (they alternate). Returns how many edges it wrote, or `None`
/// when the line holds another whitespace or control character, for [`split_whitespace`].
/// Stops early once there are more than `want` fields.
fn split_spaces(out: &mut [u32], bytes: &[u8], want: usize) -> Option<usize> {
    let mut count = 0;
    let mut prev_space = 1u32; // the line starts as if after a space
    let mut blocks = bytes.chunks_exact(16);
    let mut base = 0;
    for block in blocks.by_ref() {
        let spaces = byteclass::spaces(block.try_into().expect("blocks of sixteen"))?;
        block_edges(out, &mut count, spaces, base, &mut prev_space);
        if count > 2 * want {
            return Some(count); // too many fields: no need to read the rest
        }
        base += 16;
    }
    let rest = blocks.remainder();
    if !rest.is_empty() {
        // The short last block, as if padded with spaces: the line's last sixteen bytes are
        // read, and their mask shifted down past the bytes already read (copying them into a
        // padded buffer would make the processor wait for the copy before it can load it).
        let padding = 0xffff << rest.len();
        let spaces = match bytes.last_chunk::<16>() {
            Some(last) => byteclass::spaces(last)? >> (16 - rest.len()) | padding,
            None => {
                let mut tail = [b' '; 16];
                tail[..rest.len()].copy_from_slice(rest);
                byteclass::spaces(&tail)?
            }
        };
        block_edges(out, &mut count, spaces, base, &mut prev_space);
    }
    if prev_space == 0 && count <= 2 * want {
        out[count] = bytes.len() as u32;
        count += 1;
    }
    Some(count)
}

/// Writes the edges of one sixteen-byte block that starts at `base`, from its `spaces` (bit k
/// for byte k); `prev_space` carries whether the byte before it was a space.
#[inline(always)]
fn block_edges(out: &mut [u32], count: &mut usize, spaces: u16, base: u32, prev_space: &mut u32) {
    let spaces = u32::from(spaces);
    // A bit where a byte differs from the one before it: a field starts or ends there.
    let mut edges = (spaces ^ ((spaces << 1) | *prev_space)) & 0xffff;
    *prev_space = spaces >> 15;
    while edges != 0 {
        out[*count] = base + edges.trailing_zeros();
        *count += 1;
        edges &= edges - 1;
    }
}

/// The general path: any ASCII whitespace separates fields, one byte at a time.
fn split_whitespace(out: &mut [u32], bytes: &[u8], want: usize) -> usize {
    let mut count = 0;
    let mut in_field = false;
    for (i, &b) in bytes.iter().enumerate() {
        if b.is_ascii_whitespace() == in_field {
            out[count] = i as u32;
            count += 1;
            in_field = !in_field;
            if count > 2 * want {
                return count;
            }
        }
    }
    if in_field {
        out[count] = bytes.len() as u32;
        count += 1;
    }
    count
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
        let mut fast = vec![0; 64];
        let mut general = vec![0; 64];
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
                let f = split_spaces(&mut fast, line.as_bytes(), want);
                let g = split_whitespace(&mut general, line.as_bytes(), want);
                if let Some(f) = f {
                    // Both stop once they know there are too many fields, at different points.
                    let fields = |n: usize| n.min(2 * want + 1);
                    assert_eq!(fields(f), fields(g), "{line:?} {want}");
                    if f <= 2 * want {
                        assert_eq!(fast[..f], general[..g], "{line:?} {want}");
                    }
                } else {
                    assert!(line.contains('\t'), "{line:?}");
                }
            }
        }
        // Every length across two blocks, fields ending at each block's edges, and a tab in
        // the first block, in a short last block and in a line's last sixteen bytes.
        for len in 1..=40 {
            for (step, tab) in [
                (3, None),
                (5, None),
                (16, None),
                (4, Some(2)),
                (5, Some(len - 1)),
            ] {
                let mut line: Vec<u8> = (0..len)
                    .map(|p| if p % step == step - 1 { b' ' } else { b'x' })
                    .collect();
                if let Some(at) = tab {
                    line[at.min(len - 1)] = b'\t';
                }
                for want in [1, 3, 14] {
                    let f = split_spaces(&mut fast, &line, want);
                    let g = split_whitespace(&mut general, &line, want);
                    let shown = String::from_utf8_lossy(&line);
                    match f {
                        Some(f) => {
                            // A tab is seen unless the fields ran over before it.
                            assert!(tab.is_none() || f > 2 * want, "{shown:?} {want}");
                            let fields = |n: usize| n.min(2 * want + 1);
                            assert_eq!(fields(f), fields(g), "{shown:?} {want}");
                            if f <= 2 * want {
                                assert_eq!(fast[..f], general[..g], "{shown:?} {want}");
                            }
                        }
                        None => assert!(tab.is_some(), "{shown:?}"),
                    }
                }
            }
        }
        let mut fast = RecordSplitter::default();
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
