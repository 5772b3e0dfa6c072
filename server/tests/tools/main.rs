//! The standard gRPC tools against an in-process server: `grpcurl`, the payloads of the
//! README's `ghz` commands, and the k6 script. The tools are not on a fresh machine, so these
//! tests are ignored by default; `bash .ci/tools.sh` installs them and
//! `cargo test --workspace -- --ignored` runs the tests, which fail when a tool is missing.

mod ghz;
mod grpcurl;
mod k6;
mod support;
