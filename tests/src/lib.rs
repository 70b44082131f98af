//! End-to-end harness: [`Stack::builder`] starts the API on port 0 and a
//! worker on a random task queue over a fresh shop database, on a Temporal
//! namespace of its own on the test binary's one dev server. Tests then talk
//! to it over real gRPC and HTTP.
//!
//! - [`server`]: the Temporal dev server (the installed `temporal` CLI, free
//!   ports, nothing downloaded), started once per test binary and shared:
//!   each stack gets a namespace of its own, so the fixed `notifications`
//!   and `shipping` queues and the relays' workflow ids never meet another
//!   test's.
//! - [`stack`]: the API and workers, in-process ([`Stack::start_worker`]) or
//!   as the real `ordersaga-worker` binary ([`Stack::spawn_worker_process`])
//!   when a test needs to SIGKILL one.
//! - [`sandbox`]: the payments sandbox in this process; a checkout stack
//!   ([`StackBuilder::checkout`]) has one wired to the API's webhook and the
//!   workers' PayPal adapter, gateway-only tests start their own.
//! - [`smtp`]: a real SMTP server (`tests/smtp/server.py` on aiosmtpd) that a
//!   test can stop and start again ([`Stack::start_smtp`]); without it email
//!   goes to the stack's mailbox folder ([`Stack::mailbox_dir`]).
//! - [`nats`]: a NATS JetStream server of the test's own ([`NatsServer`]),
//!   and the shop's event stream read back; a stack publishes its domain
//!   events there with [`StackBuilder::events`].
//! - [`db`]: SQLite and PostgreSQL test databases, [`both_backends!`].
//! - [`replay`]: the saved histories and the replayer.
//! - [`fixtures`]: products, `PlaceOrder` requests, an order's email and a mailbox mailer.
//! - [`browser`]: a real headless Chromium driving the sandbox's pages.
//! - [`chaos`]: the chaos suite behind the `ordersaga-chaos` binary.
//! - [`otlp`]: an OTLP/gRPC trace receiver, for the trace test and the
//!   bench's `ordersaga-otlp-sink` binary.
//! - [`actions`]: Temporal Cloud billable Actions of a history, behind the
//!   `ordersaga-actions` binary.
//! - [`auth`]: test tokens and the clients that send them (the stack's
//!   default clients act as an operator).

pub mod actions;
pub mod auth;
pub mod browser;
pub mod chaos;
pub mod db;
pub mod fixtures;
pub mod nats;
pub mod otlp;
pub mod replay;
pub mod sandbox;
pub mod server;
pub mod smtp;
pub mod stack;

use std::future::Future;
use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub use db::TestDatabase;
pub use fixtures::{create_product, place_request};
pub use nats::NatsServer;
pub use replay::{TEST_CODEC_KEYS, histories_dir, replayer};
pub use sandbox::{Sandbox, SandboxCounts, TEST_WEBHOOK_SECRET};
pub use server::DevServer;
pub use smtp::{ReceivedMail, SmtpServer};
pub use stack::{Stack, StackBuilder, TEST_EMAIL_RETRY};

/// A free TCP port on 127.0.0.1 for a process to bind later.
///
/// The OS picks it; a connection to it closed from the listening side
/// first then leaves that side in TIME_WAIT (60 s on Linux), and while it
/// does the OS gives the port to no other `bind(:0)`, yet an explicit bind
/// with SO_REUSEADDR (std, tokio, Go, asyncio) still takes it. Released
/// bare, it could go to the next `bind(:0)` before our process binds it: the
/// Temporal CLI picks its dev server's internal ports that way, and a dev
/// server that loses one dies on a nil listener (temporalio/cli#667).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = StdListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let client = std::net::TcpStream::connect(addr)?;
    let (listening_side, _) = listener.accept()?;
    drop(listening_side);
    drop(client);
    Ok(addr.port())
}

/// How long a saga may take to end in a test (generous: the machine may be
/// busy; a passing run takes well under a second per order).
pub const ORDER_TIMEOUT: Duration = Duration::from_secs(60);

/// Polls `check` until it yields `Some`, or fails after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() > deadline {
            match last_err {
                Some(e) => bail!("timed out waiting for {what}; last error: {e:#}"),
                None => bail!("timed out waiting for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the server `child` just spawned accepts connections on
/// `port`; kills it and says why (`hint` when it exited) if it never does.
async fn until_listening(
    what: &str,
    port: u16,
    child: &mut tokio::process::Child,
    hint: &str,
) -> anyhow::Result<()> {
    let addr = format!("127.0.0.1:{port}");
    let ready = eventually(what, Duration::from_secs(15), || {
        let addr = addr.clone();
        async move { Ok(tokio::net::TcpStream::connect(&addr).await.ok().map(|_| ())) }
    })
    .await;
    if let Err(e) = ready {
        let _ = child.start_kill();
        if let Ok(Some(status)) = child.try_wait() {
            anyhow::bail!("{what} exited with {status}{hint}");
        }
        return Err(e);
    }
    Ok(())
}

/// Makes a child die with the thread that spawns it (so with the test, or
/// with the test binary for a thread that lives as long), even on SIGKILL
/// or abort.
fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    #[allow(unsafe_code)]
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// `target/<profile>/ordersaga-worker`, next to this test binary's `deps/`.
pub fn worker_binary() -> anyhow::Result<PathBuf> {
    built_binary("ordersaga-worker")
}

/// `target/<profile>/{name}`: a workspace binary, next to this test
/// binary's `deps/`.
pub fn built_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("test binary has no target directory")?;
    let bin = profile_dir.join(name);
    if !bin.is_file() {
        bail!(
            "{} not found: build the binaries first (`cargo build --bins`; scripts/test does)",
            bin.display()
        );
    }
    Ok(bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port from [`free_port`] is held in TIME_WAIT, so no `bind(:0)`
    /// gets it, and is still ours to bind.
    #[test]
    fn a_free_port_is_held_from_other_pickers_and_still_bindable() -> anyhow::Result<()> {
        let port = free_port()?;
        let local = format!("0100007F:{port:04X}");
        let tcp = std::fs::read_to_string("/proc/net/tcp")?;
        const TIME_WAIT: &str = "06";
        let held = tcp.lines().skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&TIME_WAIT)
        });
        assert!(held, "no TIME_WAIT socket on port {port}:\n{tcp}");
        StdListener::bind(("127.0.0.1", port))?;
        Ok(())
    }
}
