//! A real SMTP server for the notification tests: `tests/smtp/server.py`
//! (aiosmtpd), which stores each accepted message as JSON in a folder.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use ordersaga_activities::{SmtpSettings, SmtpTls};
use tokio::process::{Child, Command};

use crate::{die_with_parent, until_listening};

/// One message as the test SMTP server received and decoded it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ReceivedMail {
    /// Envelope recipients.
    pub rcpt_tos: Vec<String>,
    /// `From:` header.
    pub from: String,
    /// `To:` header.
    pub to: String,
    /// `Subject:` header, decoded.
    pub subject: String,
    /// `Message-ID:` header.
    pub message_id: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
}

/// A real SMTP server (`tests/smtp/server.py`, aiosmtpd) on a fixed port,
/// storing what it accepts in a folder. [`Self::stop`] and [`Self::start_again`]
/// simulate an outage; the folder survives them.
pub struct SmtpServer {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    out: PathBuf,
    rcpt_delay: Duration,
    data_reply_delay: Duration,
}

impl SmtpServer {
    /// Starts it on `port`, storing messages in `out`. `rcpt_delay` holds
    /// each `RCPT`; `data_reply_delay` holds each `250` after `DATA`, the
    /// message already stored.
    pub async fn start(
        port: u16,
        out: PathBuf,
        rcpt_delay: Duration,
        data_reply_delay: Duration,
    ) -> anyhow::Result<Self> {
        let mut server = Self {
            child: None,
            port,
            out,
            rcpt_delay,
            data_reply_delay,
        };
        server.start_again().await?;
        Ok(server)
    }

    /// Starts it (again) on its port; returns once it accepts connections.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("smtp/server.py");
        let mut cmd = Command::new("python3");
        cmd.arg(&script)
            .args(["--port", &self.port.to_string()])
            .arg("--out")
            .arg(&self.out)
            .args(["--rcpt-delay-ms", &self.rcpt_delay.as_millis().to_string()])
            .args([
                "--data-reply-delay-ms",
                &self.data_reply_delay.as_millis().to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        die_with_parent(cmd.as_std_mut());
        let mut child = cmd
            .spawn()
            .context("starting tests/smtp/server.py (needs `pip install aiosmtpd`)")?;
        until_listening(
            "the test SMTP server",
            self.port,
            &mut child,
            " (is aiosmtpd installed?)",
        )
        .await?;
        self.child = Some(child);
        Ok(())
    }

    /// Kills it: connections are refused until [`Self::start_again`].
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }

    /// Settings for a worker to deliver here (plain SMTP).
    pub fn settings(&self) -> SmtpSettings {
        SmtpSettings {
            host: "127.0.0.1".to_string(),
            port: self.port,
            tls: SmtpTls::None,
            username: None,
            password: None,
            timeout: Duration::from_secs(10),
        }
    }

    /// Every message accepted so far, in arrival order.
    pub fn messages(&self) -> anyhow::Result<Vec<ReceivedMail>> {
        let mut files = Vec::new();
        if self.out.is_dir() {
            for entry in std::fs::read_dir(&self.out)? {
                let path = entry?.path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name.ends_with(".json") && !name.starts_with('.') {
                    files.push(path);
                }
            }
        }
        // Names start with the arrival time in ns.
        files.sort();
        files
            .iter()
            .map(|p| Ok(serde_json::from_slice(&std::fs::read(p)?)?))
            .collect()
    }

    /// The server's `RCPT`/`DATA` log so far.
    pub fn events(&self) -> String {
        std::fs::read_to_string(self.out.join("events.log")).unwrap_or_default()
    }
}
