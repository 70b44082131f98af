//! What every ordersaga binary needs once, so each `main.rs` stays a few
//! lines: the Temporal connection ([`connection`]) and the shutdown signal
//! ([`process`]).

pub mod connection;
pub mod process;
