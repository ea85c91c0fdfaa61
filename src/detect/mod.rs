//! Detection: which records are findings ([`rule`]), the findings of one delivery grouped per
//! source ([`activity`]), incidents that follow a source across deliveries and decide which
//! messages go out ([`incident`]), and what a message says about one ([`alert`]).

pub mod activity;
pub mod alert;
pub mod incident;
pub mod rule;
