//! The AWS edge: publishing to SNS ([`publish`]).

pub mod publish;
