//! Workflow replay: the saved histories under `tests/histories/` (replayed
//! by `tests/replay.rs`) and a determinism check of a stack's finished sagas.

use std::path::PathBuf;

use anyhow::Context;
use ordersaga_runtime::codec::{CodecSettings, data_converter};
use ordersaga_workflows::{OrderWorkflow, ShippingWorkflow};
use temporalio_client::{UntypedWorkflow, WorkflowFetchHistoryOptions, WorkflowHistory};
use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};

use crate::Stack;

/// The key ring every test process encrypts payloads with (a test key,
/// public on purpose): the recorded histories of encrypted sagas decrypt
/// with it.
pub const TEST_CODEC_KEYS: &str = "test-1:l9JejCTYl4tNuZFWw7pI0PAHdQ7SoNDUiZ8CCSY+jJc=";

/// Where the saved workflow histories live (replayed by `tests/replay.rs`).
pub fn histories_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("histories")
}

/// A replayer for the order and shipping workflows as the code stands now, decrypting
/// with [`TEST_CODEC_KEYS`] (histories recorded before encryption pass
/// through).
pub fn replayer() -> anyhow::Result<WorkflowReplayer> {
    let ring = CodecSettings::with_keys(TEST_CODEC_KEYS).key_ring()?;
    Ok(WorkflowReplayer::new(
        WorkflowReplayerOptions::new()
            .register_workflow::<OrderWorkflow>()?
            .register_workflow::<ShippingWorkflow>()?
            .data_converter(data_converter(ring))
            .build(),
    )?)
}

impl Stack {
    /// Replays a finished saga's history against the current workflow code
    /// (a determinism check), and saves it under [`histories_dir`] as
    /// `{name}.json` when `ORDERSAGA_RECORD_HISTORIES=1`.
    pub async fn replay_check(&self, workflow_id: &str, name: &str) -> anyhow::Result<()> {
        let handle = self
            .client
            .get_workflow_handle::<UntypedWorkflow>(workflow_id.to_string());
        let history = handle.fetch_history(WorkflowFetchHistoryOptions::default());
        let json = history.to_json().await?;
        replayer()?
            .replay_workflow(WorkflowHistory::from_json(&json)?)
            .await
            .with_context(|| format!("replaying {workflow_id}"))?;
        if std::env::var("ORDERSAGA_RECORD_HISTORIES").as_deref() == Ok("1") {
            std::fs::create_dir_all(histories_dir())?;
            std::fs::write(histories_dir().join(format!("{name}.json")), json)?;
        }
        Ok(())
    }
}
