//! Integration tests: the real binary on temp copies of real vaults (and, for snapshots, real
//! HTTP servers on 127.0.0.1). One test binary, so linking happens once.

mod common;

mod bad_input;
mod browser;
mod crash;
mod history;
mod hostile;
mod layers;
mod marks;
mod remote;
mod safety;
mod scan;
mod snapshot;
mod upkeep;
mod wacz;
mod watch;
