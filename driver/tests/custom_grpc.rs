//! A custom gRPC checkout: the test suite's own service `shop.v1` (driver/tests/shop), its
//! methods resolved through server reflection or from `--proto`, called with dynamic messages.
//! [`transport`]: the connection itself; [`cli`]: the driver binary driven only by flags or a
//! spec file, buggy failing the audit and safe passing; [`tls`]: over TLS.

mod shop;

#[path = "support/binary.rs"]
mod binary;

#[path = "custom_grpc/cli.rs"]
mod cli;
#[path = "custom_grpc/tls.rs"]
mod tls;
#[path = "custom_grpc/transport.rs"]
mod transport;
