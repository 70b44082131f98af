//! What every shop binary needs once, so each `main.rs` stays a few lines:
//!
//! - [`settings`]: the one settings loader (defaults, `ordersaga.toml`,
//!   `ORDERSAGA_*` variables) and its [`settings::SettingsError`];
//! - [`secret`]: [`Secret`], a setting that cannot be printed;
//! - [`telemetry`]: logging set-up, text or JSON;
//! - [`connection`]: the Temporal client, through the SDK's envconfig;
//! - [`codec`]: payload encryption (AES-256-GCM key ring, the SDK codec);
//! - [`process`]: the shutdown signal;
//! - [`auth`]: bearer tokens verified into a [`auth::Principal`] (who calls,
//!   in which role), for the API and the codec server.
//!
//! The payments sandbox does not use it: it plays an outside company and
//! shares nothing with the shop but the wire format.

pub mod auth;
pub mod codec;
pub mod connection;
pub mod process;
pub mod secret;
pub mod settings;
pub mod telemetry;

pub use secret::Secret;
