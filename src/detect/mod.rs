//! Detection: which records are findings ([`rule`]), the findings of one delivery grouped per
//! source ([`activity`]), incidents that follow a source across deliveries and decide which
//! messages go out ([`incident`]), what a message says about one ([`alert`]), and the claims of one invocation gathered
//! in bounded memory ([`claims`]).

pub mod activity;
pub mod alert;
pub mod claims;
pub mod incident;
pub mod rule;
