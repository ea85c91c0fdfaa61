//! One flow log record: a line split on runs of whitespace, read through a [`FlowFormat`].
//!
//! The split records byte spans into a buffer the caller reuses, so reading a record allocates
//! nothing; the fields stay `&str` slices of the line they came from.

use crate::format::FlowFormat;

/// Splits lines into fields, reusing one buffer of spans for every line.
#[derive(Debug, Default)]
pub struct RecordSplitter {
    spans: Vec<(u32, u32)>,
}

/// A record whose field count matches its format. Fields that are `-` read as absent.
/// Fields borrow from the line (`'a`), not from the splitter's buffer (`'s`).
#[derive(Debug, Clone, Copy)]
pub struct FlowRecord<'s, 'a> {
    line: &'a str,
    spans: &'s [(u32, u32)],
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
        self.spans.clear();
        let bytes = line.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if i == bytes.len() {
                break;
            }
            let start = i;
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if self.spans.len() == want {
                return None; // one field too many: no need to read the rest
            }
            self.spans.push((start as u32, i as u32));
        }
        (self.spans.len() == want).then_some(FlowRecord {
            line,
            spans: &self.spans,
        })
    }
}

impl<'a> FlowRecord<'_, 'a> {
    /// The text of the field at `index`, `-` included.
    pub fn raw(&self, index: usize) -> &'a str {
        let (start, end) = self.spans[index];
        // The spans were cut at ASCII whitespace, so they fall on char boundaries.
        &self.line[start as usize..end as usize]
    }

    /// The field at `index` when the format has it and it is not `-`.
    pub fn get(&self, index: Option<usize>) -> Option<&'a str> {
        index.map(|i| self.raw(i)).filter(|v| *v != "-")
    }

    /// How many fields the record has.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether the record has no fields (never true for a record of a valid format).
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
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
