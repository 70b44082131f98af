//! A real NATS JetStream server of the test's own (`nats-server -js` on a
//! free port with its own storage folder), so a test can stop and restart
//! it without disturbing the machine's server on 4222 or another test;
//! and reading its event stream back.

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::Context;
use async_nats::jetstream;
use ordersaga_events::read::{self, Since, StreamEvent};
use ordersaga_events::{NatsSettings, StreamSettings, nats};
use tokio::process::{Child, Command};

use crate::{die_with_parent, free_port, until_listening};

/// `$ORDERSAGA_TEST_NATS_SERVER`, else `nats-server` on `PATH`, else the
/// Debian package's `/usr/sbin/nats-server`.
fn server_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("ORDERSAGA_TEST_NATS_SERVER").filter(|b| !b.is_empty()) {
        return PathBuf::from(bin);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("nats-server"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nats-server"))
}

/// A `nats-server -js` on a free port; its storage folder survives
/// [`Self::stop`] and [`Self::start_again`].
pub struct NatsServer {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts one; returns once it accepts connections.
    pub async fn start() -> anyhow::Result<Self> {
        let mut server = Self {
            child: None,
            port: free_port()?,
            dir: tempfile::tempdir()?,
        };
        server.start_again().await?;
        Ok(server)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Settings to reach it.
    pub fn settings(&self) -> NatsSettings {
        NatsSettings::at(self.url())
    }

    /// Starts it (again) on its port and storage; returns once it accepts
    /// connections.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        let bin = server_binary();
        let mut cmd = Command::new(&bin);
        cmd.args([
            "-a",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-js",
            "-sd",
        ])
        .arg(self.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
        die_with_parent(cmd.as_std_mut());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {} (apt-get install nats-server)", bin.display()))?;
        until_listening("the test NATS server", self.port, &mut child, "").await?;
        self.child = Some(child);
        Ok(())
    }

    /// Kills it: nothing can publish until [`Self::start_again`].
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }

    /// A JetStream context on it.
    pub async fn jetstream(&self) -> anyhow::Result<jetstream::Context> {
        let client = nats::connect(&self.settings(), "ordersaga-tests", true).await?;
        Ok(jetstream::new(client))
    }

    /// Every event in the shop's stream, in stream order (none while the
    /// stream does not exist yet).
    pub async fn events(&self) -> anyhow::Result<Vec<StreamEvent>> {
        let js = self.jetstream().await?;
        let stream = StreamSettings::default().name;
        if js.get_stream(&stream).await.is_err() {
            return Ok(Vec::new());
        }
        let mut events = Vec::new();
        read::replay(&js, &stream, nats::ALL_SUBJECTS, Since::Start, |e| {
            events.push(e);
        })
        .await?;
        Ok(events)
    }
}
