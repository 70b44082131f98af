//! Workflow replay: the saved histories under `tests/histories/` (replayed
//! by `tests/replay.rs`) and a determinism check of a stack's finished sagas.

use std::path::PathBuf;

use anyhow::Context;
use ordersaga_workflows::OrderWorkflow;
use temporalio_client::{UntypedWorkflow, WorkflowFetchHistoryOptions, WorkflowHistory};
use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};

use crate::Stack;

/// Where the saved workflow histories live (replayed by `tests/replay.rs`).
pub fn histories_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("histories")
}

/// A replayer for the order workflow as the code stands now.
pub fn replayer() -> anyhow::Result<WorkflowReplayer> {
    Ok(WorkflowReplayer::new(
        WorkflowReplayerOptions::new()
            .register_workflow::<OrderWorkflow>()?
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
