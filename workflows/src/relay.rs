//! [`OutboxRelayWorkflow`]: one per outbox topic, on its service's task
//! queue (`outbox-relay-email` on `notifications`, `outbox-relay-shipment`
//! on `shipping`). It keeps `slots` `RelayOutbox` activities running, round
//! after round, and continues as new before its history grows long.
//!
//! It is what makes the outbox a Temporal service: its activities run on
//! whichever workers poll that queue (add workers, add slots' hosts), an
//! outage shows as the relay activity's last failure in the Web UI, and
//! with no worker on the queue its task waits there, visibly.

use std::time::Duration;

use ordersaga_domain::Topic;
use ordersaga_domain::contracts::{RelayContract, RelayInput};
use ordersaga_domain::names::{
    INDEPENDENT_SLOTS_PATCH, OUTBOX_RELAY_WORKFLOW_ID_PREFIX, OUTBOX_RELAY_WORKFLOW_TYPE,
};
use serde::{Deserialize, Serialize};
use temporalio_workflow::{
    ActivityExecutionError, ActivityOptions, ContinueAsNewOptions, RetryPolicy, WorkflowContext,
    WorkflowContextView, WorkflowResult, join_all, workflow, workflow_methods,
};

/// Rounds per run before continuing as new: a round is a few events per
/// slot, so a run's history stays in the hundreds of events.
const ROUNDS_PER_RUN: u32 = 50;

/// Input of [`OutboxRelayWorkflow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayWorkflowInput {
    /// The topic it drains.
    pub topic: Topic,
    /// Relay activities running at once (each claims its own batches).
    pub slots: u32,
}

impl RelayWorkflowInput {
    /// The relay's workflow id: `outbox-relay-{topic}`, one per namespace.
    pub fn workflow_id(&self) -> String {
        format!("{OUTBOX_RELAY_WORKFLOW_ID_PREFIX}{}", self.topic)
    }
}

#[workflow]
pub struct OutboxRelayWorkflow {
    input: RelayWorkflowInput,
}

#[workflow_methods]
impl OutboxRelayWorkflow {
    #[init]
    pub fn new(_ctx: &WorkflowContextView, input: RelayWorkflowInput) -> Self {
        Self { input }
    }

    /// Runs until cancelled or terminated, continuing as new every
    /// [`ROUNDS_PER_RUN`] rounds of each slot. Each slot runs its rounds on
    /// its own (patch `relay-independent-slots-v1`): a slot that fails and
    /// waits out its retry holds no other; runs recorded before the patch
    /// keep their shape, every slot's round ending together.
    #[run(name = OUTBOX_RELAY_WORKFLOW_TYPE)]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<()> {
        let input = ctx.state(|s| s.input);
        let independent_slots = ctx.patched(INDEPENDENT_SLOTS_PATCH);
        let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(600))
            // A relay on a dead worker is noticed within seconds and
            // retried elsewhere; its claims return when their lease ends.
            .heartbeat_timeout(Duration::from_secs(10))
            // An outage is waited out, however long: the messages keep
            // their own backoff and horizon in the outbox.
            .retry_policy(
                RetryPolicy::builder()
                    .initial_interval(Duration::from_secs(1))
                    .backoff_coefficient(2.0)
                    .maximum_interval(Duration::from_secs(60))
                    .build(),
            )
            .summary(format!("RelayOutbox {}", input.topic))
            .build();
        let round = |slot| {
            ctx.execute_activity(
                RelayContract::relay_outbox,
                RelayInput {
                    topic: input.topic,
                    slot,
                },
                options.clone(),
            )
        };
        if independent_slots {
            let slots = (0..input.slots.max(1)).map(|slot| async move {
                for _ in 0..ROUNDS_PER_RUN {
                    round(slot).await?;
                }
                Ok::<_, ActivityExecutionError>(())
            });
            for done in join_all(slots).await {
                done?;
            }
        } else {
            for _ in 0..ROUNDS_PER_RUN {
                for done in join_all((0..input.slots.max(1)).map(round)).await {
                    done?;
                }
            }
        }
        ctx.continue_as_new(input, ContinueAsNewOptions::default())?;
        Ok(())
    }
}
