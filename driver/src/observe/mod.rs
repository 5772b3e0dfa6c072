//! What watches a run while it goes, the same for a standalone run, a coordinator's run and the
//! dashboard: the live progress and its taps (`progress`), the stock poller (`watch`), and who
//! stopped a run and when (`stop`). `run` and `cluster` both use these; neither uses the other's
//! internals, so there is no import circle between them: `run` hands a run with a coordinator
//! to `cluster::client`, and `cluster` needs nothing of `run`.

pub mod progress;
pub mod stop;
pub mod watch;
