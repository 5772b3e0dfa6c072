//! Distributed runs: a coordinator hands each run to its workers and merges what they report;
//! the client submits runs to it and follows them. All three speak `flashsale.v1.Coordinator`
//! ([`wire`]) and share a secret ([`auth`]). A distributed run has the same lifecycle as a
//! standalone one: live progress, stock polling, cancellation (`CancelRun`, or the client going
//! away), final audit and report.

pub mod auth;
pub mod client;
pub mod coordinator;
pub mod wire;
pub mod worker;
