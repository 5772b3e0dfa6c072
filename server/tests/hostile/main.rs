//! Hostile and careless clients against the checkout server: admin calls without the token,
//! requests that are not gRPC, malformed and repeated messages, connections that never speak
//! HTTP/2 or go idle, stream floods and the memory budget across connections, signals with streams open, file-descriptor exhaustion.
//! In-process where the server's own behaviour is enough; the real `server` binary where memory,
//! CPU time, signals or a resource limit of the process are measured. Loopback only.

mod admin;
mod budget;
mod flood;
mod process;
mod protocol;
mod support;
