//! What a flow log record is: the format that names its fields, and the record split into them.

pub mod format;
pub mod record;
