//! Inputs: event bytes and files ([`decode`]) to records, fed through the rule ([`scan`]).

pub mod decode;
pub mod events;
pub mod files;
pub mod pipe;
pub mod scan;
