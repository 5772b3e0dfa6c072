//! Distributed runs: a coordinator hands each run to its workers and merges what they report;
//! the client submits runs to it. All three speak `flashsale.v1.Coordinator` ([`wire`]).

pub mod auth;
pub mod client;
pub mod coordinator;
pub mod parts;
pub mod verify;
pub mod wire;
pub mod worker;
