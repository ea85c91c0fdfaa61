//! Detection: which records are findings ([`rule`]), the findings of one delivery grouped per
//! source ([`alert`]), and incidents that follow a source across deliveries ([`incident`]).

pub mod alert;
pub mod rule;
