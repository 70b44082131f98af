//! The worker process: polls Temporal task queues and runs what each queue
//! carries. Run as many as you like per queue; Temporal spreads the work.
//!
//! - `orders`: the order saga ([`OrderWorkflow`]) and its activities, and
//!   on the `reconciler` queue the reconciler ([`ReconcileOrdersWorkflow`])
//!   that a Temporal Schedule starts every few minutes
//!   ([`ensure_reconciler`]);
//! - `notifications`: [`NotificationWorkflow`] and `SendEmail` (SMTP or the
//!   local mailbox);
//! - `shipping`: [`ShippingWorkflow`] and `RequestShipment`.
//!
//! One process serves any subset ([`WorkerSettings::queues`], `--queues`),
//! so each service can be deployed and scaled as its own fleet, with its own
//! concurrency limits. [`WorkerSettings::load`] reads the configuration
//! ([`settings`]), [`run`] runs until its shutdown future resolves and then
//! drains in-flight work; every activity runs in a span naming its order
//! ([`spans`]). Workers announce a Worker Deployment Version and opt into
//! versioning: sagas stay on the build that started them, the relays and
//! the reconciler follow the current build ([`versioning`],
//! docs/operations.md).

pub mod settings;
pub mod spans;
pub mod versioning;

pub use settings::{
    ArgsError, Queue, QueueLimits, QueuesError, USAGE, WorkerSettings, parse_queues,
};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ordersaga_activities::attention::watch_needs_attention;
use ordersaga_activities::gateway::paypal::{BuildError, PayPalGateway};
use ordersaga_activities::mail::MailError;
use ordersaga_activities::{
    AttentionActivities, BusinessMetrics, LeaseTooShort, Mailer, NotificationActivities,
    OrderActivities, ReconcileActivities, RelayActivities, ShippingActivities, SimulatedGateway,
    SpendingActivities,
};
use ordersaga_domain::Topic;
use ordersaga_domain::names::{NOTIFICATIONS_TASK_QUEUE, SHIPPING_TASK_QUEUE};
use ordersaga_domain::names::{
    RECONCILE_SCHEDULE_ID, RECONCILE_WORKFLOW_ID, RECONCILER_TASK_QUEUE,
};
use ordersaga_events::Relay;
use ordersaga_runtime::connection::{ConnectError, connect};
use ordersaga_store::{Store, StoreError};
use ordersaga_workflows::{
    NotificationWorkflow, OrderWorkflow, OutboxRelayWorkflow, ReconcileOrdersWorkflow,
    RelayWorkflowInput, ShippingWorkflow,
};
use temporalio_client::errors::WorkflowStartError;
use temporalio_client::schedules::{
    CreateScheduleOptions, ScheduleAction, ScheduleError, ScheduleOverlapPolicy, ScheduleSpec,
};
use temporalio_client::{Client, WorkflowIdConflictPolicy, WorkflowStartOptions};
use temporalio_common::telemetry::metrics::CoreMeter;
use temporalio_common::telemetry::{
    PrometheusExporterOptions, TelemetryOptions, start_prometheus_metric_exporter,
};
use temporalio_sdk::runtime::worker_tuner::{FixedSizeSlotSupplier, TunerHolder};
use temporalio_sdk::runtime::{PollerBehavior, RuntimeOptions};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};
use versioning::Runs;

/// Why the worker stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The shop database is unreachable or its migrations failed.
    #[error("shop database")]
    Store(#[from] StoreError),
    /// Temporal is unreachable or misconfigured.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The mail settings are invalid (e.g. a malformed `From:` address).
    #[error("mail settings")]
    Mail(#[from] MailError),
    /// The SMTP timeouts do not fit in the outbox relay's lease.
    #[error("relay settings")]
    Relay(#[from] LeaseTooShort),
    /// The checkout gateway's HTTP client could not be built.
    #[error("checkout gateway")]
    Checkout(#[from] BuildError),
    /// The SDK refused the worker's setup or failed while running.
    #[error("temporal worker: {0}")]
    Sdk(String),
}

fn sdk(e: impl std::fmt::Display) -> WorkerError {
    WorkerError::Sdk(e.to_string())
}

fn tuner(workflow_tasks: usize, activities: usize, local_activities: usize) -> TunerHolder {
    TunerHolder::builder()
        .workflow_task_slot_supplier(FixedSizeSlotSupplier::new(workflow_tasks))
        .activity_task_slot_supplier(FixedSizeSlotSupplier::new(activities))
        .local_activity_task_slot_supplier(FixedSizeSlotSupplier::new(local_activities))
        .nexus_task_slot_supplier(FixedSizeSlotSupplier::new(1))
        .build()
}

/// Core splits a workflow-task poll maximum between new tasks and the
/// sticky queue by this ratio. temporalio-sdk 1.1.1 never hands
/// `WorkerOptions::nonsticky_to_sticky_poll_ratio` to core, whose default
/// is this value, so it is what applies whatever is set.
const NEW_TASK_POLL_SHARE: usize = 5;

/// The workflow-task poll maximum that gives the saga's queue
/// `new_task_polls` polls for new orders (the rest poll the sticky queue).
fn saga_poll_maximum(new_task_polls: usize) -> usize {
    new_task_polls * NEW_TASK_POLL_SHARE
}

/// One SDK worker of a service: a task queue, what runs on it, and so its
/// versioning behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SdkWorker {
    /// The orders queue: the sagas (pinned).
    Sagas,
    /// The reconciler's queue (auto-upgrade), served with the orders.
    Reconciler,
    /// The notifications queue: the email relay (auto-upgrade).
    Notifications,
    /// The shipping queue: the shipping relay (auto-upgrade).
    Shipping,
}

impl SdkWorker {
    /// The SDK workers a service runs.
    fn of(queue: Queue) -> &'static [SdkWorker] {
        match queue {
            Queue::Orders => &[SdkWorker::Sagas, SdkWorker::Reconciler],
            Queue::Notifications => &[SdkWorker::Notifications],
            Queue::Shipping => &[SdkWorker::Shipping],
        }
    }

    fn runs(self) -> Runs {
        match self {
            SdkWorker::Sagas => Runs::Sagas,
            SdkWorker::Reconciler | SdkWorker::Notifications | SdkWorker::Shipping => {
                Runs::Services
            }
        }
    }
}

/// The SDK worker options of one SDK worker.
fn worker_options(
    worker: SdkWorker,
    settings: &WorkerSettings,
    store: &Store,
    client: &Client,
    business: &BusinessMetrics,
) -> Result<WorkerOptions, WorkerError> {
    let checkout = || -> Result<_, WorkerError> {
        Ok(match &settings.paypal {
            Some(paypal) => Some(Arc::new(PayPalGateway::new(paypal.clone())?)),
            None => None,
        })
    };
    let reconcile = |checkout: Option<Arc<PayPalGateway>>| {
        let reconcile =
            ReconcileActivities::new(store.clone(), client.clone()).with_metrics(business.clone());
        match checkout {
            Some(checkout) => reconcile.with_checkout(checkout),
            None => reconcile,
        }
    };
    let options = match worker {
        SdkWorker::Sagas => {
            let gateway = Arc::new(SimulatedGateway::new(
                store.clone(),
                settings.gateway_latency,
            ));
            let mut activities = OrderActivities::new(store.clone(), gateway)
                .with_metrics(business.clone())
                .with_shop_url(settings.shop_url.clone())
                .with_partial_availability(
                    settings.partial_availability,
                    settings.amendment_deadline.as_secs(),
                );
            let checkout = checkout()?;
            if let Some(paypal) = &settings.paypal {
                tracing::info!(base_url = %paypal.base_url, "checkout payments through the PayPal adapter");
            } else {
                // Said at start-up, not only when the first checkout order fails.
                tracing::warn!(
                    "no checkout gateway (ORDERSAGA_PAYPAL_BASE_URL unset): checkout orders on this worker fail with GATEWAY_NOT_CONFIGURED"
                );
            }
            if let Some(checkout) = &checkout {
                activities = activities.with_checkout(checkout.clone());
            }
            WorkerOptions::new(settings.task_queue.as_str())
                .register_workflow::<OrderWorkflow>()
                .map_err(sdk)?
                .register_activities(activities)
                .register_activities(AttentionActivities::new(store.clone(), business.clone()))
                .register_activities(SpendingActivities::new(store.clone()))
                // Reconciler runs that the schedule started on this queue
                // before the reconciler had a queue of its own.
                .register_workflow::<ReconcileOrdersWorkflow>()
                .map_err(sdk)?
                .register_activities(reconcile(checkout))
                // A waiting poll holds a slot, so the polls get theirs on
                // top of the tasks processed at once.
                .tuner(tuner(
                    settings.max_concurrent_workflow_tasks
                        + settings.new_task_polls.map_or(0, saga_poll_maximum),
                    settings.max_concurrent_activities,
                    settings.max_concurrent_local_activities,
                ))
        }
        // One run at a time (the schedule skips overlaps), a step at a time.
        SdkWorker::Reconciler => WorkerOptions::new(RECONCILER_TASK_QUEUE)
            .register_workflow::<ReconcileOrdersWorkflow>()
            .map_err(sdk)?
            .register_activities(reconcile(checkout()?))
            .tuner(tuner(2, 2, 1)),
        SdkWorker::Notifications => {
            let mailer = Arc::new(Mailer::new(settings.mail.clone())?);
            let notifications =
                || NotificationActivities::new(store.clone(), mailer.clone(), settings.email_retry);
            WorkerOptions::new(NOTIFICATIONS_TASK_QUEUE)
                .register_workflow::<OutboxRelayWorkflow>()
                .map_err(sdk)?
                .register_activities(
                    RelayActivities::new(store.clone(), settings.relay)
                        .with_email(Arc::new(notifications()))
                        .with_metrics(business.clone()),
                )
                // Sagas from before the outbox send through these.
                .register_workflow::<NotificationWorkflow>()
                .map_err(sdk)?
                .register_activities(notifications())
                .tuner(tuner(
                    settings.notifications.max_workflow_tasks,
                    settings.notifications.max_activities,
                    1,
                ))
        }
        SdkWorker::Shipping => WorkerOptions::new(SHIPPING_TASK_QUEUE)
            .register_workflow::<OutboxRelayWorkflow>()
            .map_err(sdk)?
            .register_activities(
                RelayActivities::new(store.clone(), settings.relay)
                    .with_shipping()
                    .with_metrics(business.clone()),
            )
            // Each shipment's life (started by the courier's dispatch
            // through the API; by the relay before, and as a child by sagas
            // from before the outbox).
            .register_workflow::<ShippingWorkflow>()
            .map_err(sdk)?
            .register_activities(
                ShippingActivities::new(store.clone()).with_metrics(business.clone()),
            )
            // A shipment's steps are local activities (patch
            // `shipment-local-steps-v1`): as many as its activities.
            .tuner(tuner(
                settings.shipping.max_workflow_tasks,
                settings.shipping.max_activities,
                settings.shipping.max_activities,
            )),
    };
    Ok(options
        .maybe_workflow_task_poller_behavior(
            settings
                .new_task_polls
                .filter(|_| worker == SdkWorker::Sagas)
                .map(|polls| PollerBehavior::SimpleMaximum(saga_poll_maximum(polls))),
        )
        // Pinned to what `saga_poll_maximum` assumes, should the SDK start
        // passing it on.
        .nonsticky_to_sticky_poll_ratio(1.0 / NEW_TASK_POLL_SHARE as f32)
        .worker_plugin(spans::ActivitySpans::plugin())
        .max_cached_workflows(match worker {
            SdkWorker::Shipping => settings.shipping_max_cached_workflows,
            _ => settings.max_cached_workflows,
        })
        .sticky_queue_schedule_to_start_timeout(settings.sticky_timeout)
        .graceful_shutdown_period(settings.graceful_shutdown)
        .deployment_options(versioning::deployment_options(
            &settings.deployment_version(),
            worker.runs(),
        ))
        .build())
}

/// Starts each outbox topic's relay workflow unless it runs already. Every
/// worker does this, whatever its queues: with no worker on a service's
/// queue the relay's first task waits there (a visible backlog) and the
/// service's first worker picks it up.
pub async fn ensure_relays(client: &Client, settings: &WorkerSettings) -> Result<(), WorkerError> {
    for (input, queue) in [
        (
            RelayWorkflowInput {
                topic: Topic::Email,
                slots: settings.email_relay_slots,
            },
            NOTIFICATIONS_TASK_QUEUE,
        ),
        (
            RelayWorkflowInput {
                topic: Topic::Shipment,
                slots: settings.shipping_relay_slots,
            },
            SHIPPING_TASK_QUEUE,
        ),
    ] {
        let options = WorkflowStartOptions::new(queue, input.workflow_id())
            .id_conflict_policy(WorkflowIdConflictPolicy::UseExisting)
            .static_summary(format!("Relays the outbox's {} messages", input.topic))
            .build();
        match client
            .start_workflow(OutboxRelayWorkflow::run, input, options)
            .await
        {
            Ok(_) | Err(WorkflowStartError::AlreadyStarted { .. }) => {}
            Err(e) => return Err(sdk(e)),
        }
    }
    Ok(())
}

/// Creates the reconciler's Temporal Schedule (`ordersaga-reconciler`,
/// on the Web UI's Schedules page), or brings an existing one to this
/// worker's interval and input, so a changed setting takes effect with the
/// next deployment. Only workers serving the orders queue manage it (its
/// runs are on that queue); `reconcile_every = None` leaves it alone.
/// Overlapping runs are skipped.
pub async fn ensure_reconciler(
    client: &Client,
    settings: &WorkerSettings,
) -> Result<(), WorkerError> {
    let Some(every) = settings.reconcile_every else {
        return Ok(());
    };
    if !settings.queues.contains(&Queue::Orders) {
        return Ok(());
    }
    let action = || {
        ScheduleAction::start_workflow(
            ReconcileOrdersWorkflow::run,
            settings.reconcile,
            RECONCILER_TASK_QUEUE,
            RECONCILE_WORKFLOW_ID,
        )
    };
    let options = CreateScheduleOptions::builder()
        .action(action())
        .spec(ScheduleSpec::from_interval(every))
        .overlap_policy(ScheduleOverlapPolicy::Skip)
        .note("ordersaga: finds orders the saga cannot finish on its own (docs/reliability.md)")
        .build();
    match client.create_schedule(RECONCILE_SCHEDULE_ID, options).await {
        Ok(_) => {
            tracing::info!(
                every_secs = every.as_secs(),
                "created the reconciler schedule"
            );
            Ok(())
        }
        Err(ScheduleError::Rpc(status)) if status.code() == tonic::Code::AlreadyExists => {
            let action = action();
            client
                .get_schedule_handle(RECONCILE_SCHEDULE_ID)
                .update(
                    move |u| {
                        u.set_spec(ScheduleSpec::from_interval(every))
                            .set_action(action);
                    },
                    Default::default(),
                )
                .await
                .map_err(sdk)
        }
        Err(e) => Err(sdk(e)),
    }
}

/// Runs one SDK worker per selected service until `shutdown` resolves,
/// then lets in-flight tasks finish (up to
/// [`WorkerSettings::graceful_shutdown`]) and returns.
///
/// The SDK's worker future is not `Send`: await this on the task that owns
/// the runtime (e.g. in `main`, or a thread with a current-thread runtime).
/// The services' workers are joined on that one task.
pub async fn run(
    settings: WorkerSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    // Also checked when loading; settings built in code pass here too.
    settings.relay.check_delivery(&settings.mail.delivery)?;
    let events = settings.events.clone();
    let store = Store::connect(&settings.database_url)
        .await?
        .with_events(events.nats.is_some());
    let client = connect(&settings.temporal).await?;
    ensure_relays(&client, &settings).await?;
    ensure_reconciler(&client, &settings).await?;

    // Kept alive until the worker stops: dropping it stops serving /metrics.
    let metrics_server = settings
        .metrics_addr
        .map(|addr| {
            tracing::info!(%addr, "serving Prometheus metrics");
            start_prometheus_metric_exporter(
                PrometheusExporterOptions::builder()
                    .socket_addr(addr)
                    .build(),
            )
        })
        .transpose()
        .map_err(sdk)?;
    let meter = metrics_server
        .as_ref()
        .map(|m| -> Arc<dyn CoreMeter> { m.meter.clone() });
    // Business counters share the SDK's meter, so /metrics serves both.
    let business = meter
        .as_ref()
        .map_or_else(BusinessMetrics::noop, BusinessMetrics::new);
    let runtime_options = RuntimeOptions::builder()
        .telemetry_options(TelemetryOptions::builder().maybe_metrics(meter).build())
        .build()
        .map_err(sdk)?;
    let runtime = Runtime::from_current_tokio(runtime_options).map_err(sdk)?;

    let mut workers = Vec::with_capacity(settings.queues.len() + 1);
    for queue in &settings.queues {
        for sdk_worker in SdkWorker::of(*queue) {
            let options = worker_options(*sdk_worker, &settings, &store, &client, &business)?;
            let worker = Worker::new(&runtime, client.clone(), options).map_err(sdk)?;
            workers.push(worker);
        }
    }
    let stops: Vec<_> = workers.iter().map(|w| w.shutdown_handle()).collect();
    let names: Vec<&str> = settings.queues.iter().map(|q| q.as_str()).collect();
    // The orders service owns the needs-attention gauge (when exported).
    let gauge = (metrics_server.is_some() && settings.queues.contains(&Queue::Orders))
        .then(|| tokio::spawn(watch_needs_attention(store.clone(), business.clone())));
    // The event relay: every worker with NATS configured runs one; a lease
    // lets one publish at a time.
    let (stop_relay, relay_stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = events.nats.map(|nats| {
        let relay = Relay::new(store.clone(), nats, events.stream, events.relay);
        tokio::spawn(relay.run(async {
            let _ = relay_stopped.await;
        }))
    });
    // Runs until the deployment is routed (at once, unless it is new).
    let routing = tokio::spawn(versioning::become_current_if_unrouted(
        client.clone(),
        settings.deployment_version(),
        Duration::from_millis(200),
    ));
    tracing::info!(
        queues = ?names,
        orders_task_queue = %settings.task_queue,
        deployment = %settings.deployment_name,
        build_id = %settings.build_id,
        "worker polling"
    );

    let running = futures::future::join_all(workers.iter_mut().map(|w| w.run()));
    tokio::pin!(running);
    let results = tokio::select! {
        r = &mut running => r,
        () = shutdown => {
            tracing::info!("shutdown requested, draining in-flight tasks");
            for stop in &stops {
                stop();
            }
            running.await
        }
    };
    routing.abort();
    if let Some(gauge) = gauge {
        gauge.abort();
    }
    let _ = stop_relay.send(());
    if let Some(relay) = relay {
        match relay.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "event relay stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "event relay panicked"),
        }
    }
    store.close().await;
    drop(metrics_server);
    results.into_iter().collect::<Result<(), _>>().map_err(sdk)
}
