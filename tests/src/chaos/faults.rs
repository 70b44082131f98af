//! The faults of a chaos run: a seeded schedule of process kills (worker,
//! API, Temporal dev server), sandbox faults set through its controls and
//! SMTP outages, injected one after the other at their moments.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_json::{Value, json};

use super::procs::Cluster;

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// SIGKILL a worker, start it again.
    KillWorker,
    /// SIGKILL the API, start it again.
    KillApi,
    /// SIGKILL the Temporal dev server, start it again on its database.
    KillTemporal,
    /// The sandbox answers a burst of PayPal calls with 503.
    Sandbox5xx,
    /// The sandbox commits a capture and loses its answer.
    LostCapture,
    /// PayPal calls hang, then 504.
    SandboxHang,
    /// The sandbox refuses refunds for a while.
    RefundRefusal,
    /// The SMTP server is down for a while.
    SmtpDown,
}

impl FaultKind {
    /// Every kind, in report order.
    pub const ALL: [Self; 8] = [
        Self::KillWorker,
        Self::KillApi,
        Self::KillTemporal,
        Self::Sandbox5xx,
        Self::LostCapture,
        Self::SandboxHang,
        Self::RefundRefusal,
        Self::SmtpDown,
    ];

    /// Name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Self::KillWorker => "kill worker",
            Self::KillApi => "kill api",
            Self::KillTemporal => "kill temporal",
            Self::Sandbox5xx => "sandbox 5xx burst",
            Self::LostCapture => "lost capture answer",
            Self::SandboxHang => "sandbox hang",
            Self::RefundRefusal => "refund refusal",
            Self::SmtpDown => "smtp down",
        }
    }

    /// A process crash (counts towards the duplicate-email allowance).
    pub fn is_crash(self) -> bool {
        matches!(self, Self::KillWorker | Self::KillApi | Self::KillTemporal)
    }
}

/// A fault at a moment, with the random parts of it drawn up front.
#[derive(Debug, Clone)]
pub struct Fault {
    /// From the start of the workload.
    pub at: Duration,
    /// What.
    pub kind: FaultKind,
    /// How long the process or server stays down (or a fault stays armed).
    pub down: Duration,
    /// Which worker, for [`FaultKind::KillWorker`].
    pub worker: usize,
    /// Calls affected, for the counted sandbox faults.
    pub count: u32,
}

/// `per_kind` faults of every kind at random moments within `window`.
pub fn schedule(rng: &mut StdRng, per_kind: usize, workers: usize, window: Duration) -> Vec<Fault> {
    let mut faults: Vec<Fault> = FaultKind::ALL
        .iter()
        .flat_map(|k| std::iter::repeat_n(*k, per_kind))
        .map(|kind| Fault {
            at: window.mul_f64(rng.gen_range(0.0..1.0)),
            kind,
            down: Duration::from_millis(match kind {
                FaultKind::SmtpDown | FaultKind::RefundRefusal => rng.gen_range(2_000..8_000),
                _ => rng.gen_range(0..2_000),
            }),
            worker: rng.gen_range(0..workers.max(1)),
            count: rng.gen_range(1..=4),
        })
        .collect();
    faults.shuffle(rng);
    faults.sort_by_key(|f| f.at);
    faults
}

/// What was injected, per kind, and what could not be.
#[derive(Debug, Default, Clone)]
pub struct Injected {
    /// Faults injected.
    pub done: BTreeMap<FaultKind, usize>,
    /// Faults that failed to inject, with why.
    pub failed: Vec<(FaultKind, String)>,
}

/// Injects `faults` in order at their moments (late ones at once). A fault
/// that cannot be injected is recorded, not fatal, unless a process does
/// not come back: then the run cannot go on.
pub async fn inject(
    cluster: &mut Cluster,
    faults: Vec<Fault>,
    start: tokio::time::Instant,
) -> anyhow::Result<Injected> {
    let controls = Controls::new(cluster.sandbox_base())?;
    let mut injected = Injected::default();
    for f in faults {
        tokio::time::sleep_until(start + f.at).await;
        tracing::info!(fault = f.kind.name(), at = ?f.at, "injecting");
        let result = match f.kind {
            FaultKind::KillWorker => {
                let i = f.worker % cluster.worker_count();
                cluster.kill_worker(i, f.down).await
            }
            FaultKind::KillApi => cluster.kill_api(f.down).await,
            FaultKind::KillTemporal => cluster.kill_temporal(f.down).await,
            FaultKind::Sandbox5xx => {
                controls
                    .set(json!({"fail_next": f.count * 2, "fail_status": 503}))
                    .await
            }
            FaultKind::LostCapture => {
                controls
                    .set(json!({"lose_capture_answer_next": f.count.min(2), "hang_ms": 3000}))
                    .await
            }
            FaultKind::SandboxHang => {
                controls
                    .set(json!({"timeout_next": f.count, "hang_ms": 3000}))
                    .await
            }
            FaultKind::RefundRefusal => match controls.set(json!({"refuse_refunds": true})).await {
                Ok(()) => {
                    tokio::time::sleep(f.down).await;
                    controls.set(json!({"refuse_refunds": false})).await
                }
                Err(e) => Err(e),
            },
            FaultKind::SmtpDown => match cluster.smtp.stop().await {
                Ok(()) => {
                    tokio::time::sleep(f.down).await;
                    cluster.smtp.start_again().await
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(()) => *injected.done.entry(f.kind).or_default() += 1,
            // A process that does not come back ends the run.
            Err(e) if f.kind.is_crash() => return Err(e.context(f.kind.name())),
            Err(e) => injected.failed.push((f.kind, format!("{e:#}"))),
        }
    }
    Ok(injected)
}

/// The sandbox's `POST /sandbox/controls`.
pub struct Controls {
    http: reqwest::Client,
    url: String,
}

impl Controls {
    /// The controls of the sandbox at `base`.
    pub fn new(base: String) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
            url: format!("{base}/sandbox/controls"),
        })
    }

    /// Applies a patch of controls.
    pub async fn set(&self, patch: Value) -> anyhow::Result<()> {
        let r = self.http.post(&self.url).json(&patch).send().await?;
        let status = r.status();
        anyhow::ensure!(
            status.is_success(),
            "controls {patch}: {status}: {}",
            r.text().await.unwrap_or_default()
        );
        Ok(())
    }

    /// Back to no faults (the buyers keep following their emails).
    pub async fn clear(&self) -> anyhow::Result<()> {
        self.set(
            json!({"fail_next": 0, "timeout_next": 0, "lose_capture_answer_next": 0,
                        "lose_refund_answer_next": 0}),
        )
        .await
    }
}
