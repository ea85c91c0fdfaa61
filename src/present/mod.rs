//! Presentation: the words a person reads ([`render`]) and the SNS messages ([`message`]).

pub mod message;
pub mod render;
