//! Worker Deployment Versioning (docs/operations.md): the deployment and
//! build a worker announces, how the workflows of each of its task queues
//! move between builds, and the first build of a deployment taking the
//! work.
//!
//! Every SDK worker of a process announces the same version,
//! `{deployment_name}` / `{build_id}` ([`default_build_id`] unless
//! configured), and opts into versioning: Temporal then routes each
//! workflow task to a build the deployment's routing allows, never to
//! whichever worker polls first. The SDK takes the versioning behaviour per
//! worker (not per workflow type), so each behaviour has queues of its own
//! ([`behaviour`]).

use std::time::Duration;

use temporalio_client::{Client, NamespacedClient};
use temporalio_common::protos::temporal::api::workflowservice::v1::{
    DescribeWorkerDeploymentRequest, SetWorkerDeploymentCurrentVersionRequest,
};
use temporalio_common::worker::{
    VersioningBehavior, WorkerDeploymentOptions, WorkerDeploymentVersion, build_id_from_current_exe,
};

/// The build id a worker runs under unless configured: the crate version
/// and the git commit recorded at build time (`0.1.0+8d3ee1a0c5f2`), or,
/// built outside git, a checksum of the executable (`0.1.0+exe.1c2d3e4f`).
/// The `previous-build` feature (the upgrade test's old build) adds
/// `.previous`, so it never shares an id with the code it differs from.
pub fn default_build_id() -> String {
    let build = match option_env!("ORDERSAGA_GIT_COMMIT") {
        Some(commit) => commit.to_string(),
        None => format!("exe.{}", build_id_from_current_exe()),
    };
    let previous = if cfg!(feature = "previous-build") {
        ".previous"
    } else {
        ""
    };
    format!("{}+{build}{previous}", env!("CARGO_PKG_VERSION"))
}

/// The workflows a task queue carries, as far as versioning cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runs {
    /// Order sagas: they live minutes to days, and each stays on the build
    /// that started it (pinned). A new build takes new orders only, so it
    /// never has to replay a saga another build began, and an old build
    /// retires once its last order ends.
    Sagas,
    /// The outbox relays (they run for ever, continuing as new) and the
    /// reconciler's runs: they follow the current build at their next
    /// workflow task (auto-upgrade). Pinned, a relay would keep the old
    /// build alive for ever; their patches keep them replaying across
    /// builds.
    Services,
}

/// How the workflows of a queue move between builds.
pub fn behaviour(runs: Runs) -> VersioningBehavior {
    match runs {
        Runs::Sagas => VersioningBehavior::Pinned,
        Runs::Services => VersioningBehavior::AutoUpgrade,
    }
}

/// The SDK's deployment options of a worker of `version` on a queue that
/// carries `runs`.
pub fn deployment_options(
    version: &WorkerDeploymentVersion,
    runs: Runs,
) -> WorkerDeploymentOptions {
    WorkerDeploymentOptions::new(version.clone())
        .use_worker_versioning(true)
        .default_versioning_behavior(behaviour(runs))
        .build()
}

/// Until a deployment's routing is first set, Temporal gives its workers
/// nothing (new workflows wait for a current version). So that a fresh
/// deployment (a new namespace, the dev stack) works without an operator,
/// a worker whose deployment has never had a current version makes its
/// own build current, once the server knows the build (after its first
/// poll). From then on only operators move the routing
/// (`temporal worker deployment set-current-version`); a deployment an
/// operator sent back to unversioned workers is left so.
///
/// Returns once the deployment is routed, by this worker or another;
/// retries (every `retry`) while the server does not know the deployment
/// or the build yet.
pub async fn become_current_if_unrouted(
    client: Client,
    version: WorkerDeploymentVersion,
    retry: Duration,
) {
    loop {
        match try_become_current(&client, &version).await {
            Ok(Routed::ByUs) => {
                tracing::info!(
                    deployment = %version.deployment_name,
                    build_id = %version.build_id,
                    "first build of the deployment: made it the current version"
                );
                return;
            }
            Ok(Routed::Already) => return,
            Err(status) => {
                tracing::debug!(code = ?status.code(), message = status.message(), "deployment not routable yet");
            }
        }
        tokio::time::sleep(retry).await;
    }
}

enum Routed {
    ByUs,
    Already,
}

async fn try_become_current(
    client: &Client,
    version: &WorkerDeploymentVersion,
) -> Result<Routed, tonic::Status> {
    let mut service = client.connection().workflow_service();
    let described = service
        .describe_worker_deployment(tonic::Request::new(DescribeWorkerDeploymentRequest {
            namespace: client.namespace(),
            deployment_name: version.deployment_name.clone(),
        }))
        .await?
        .into_inner();
    let routing = described
        .worker_deployment_info
        .and_then(|info| info.routing_config)
        .unwrap_or_default();
    if routing.current_deployment_version.is_some()
        || routing.current_version_changed_time.is_some()
    {
        return Ok(Routed::Already);
    }
    // The token makes this fail if anyone changed the routing meanwhile.
    service
        .set_worker_deployment_current_version(tonic::Request::new(
            SetWorkerDeploymentCurrentVersionRequest {
                namespace: client.namespace(),
                deployment_name: version.deployment_name.clone(),
                build_id: version.build_id.clone(),
                conflict_token: described.conflict_token,
                identity: client.identity(),
                ..Default::default()
            },
        ))
        .await?;
    Ok(Routed::ByUs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_build_id_is_the_crate_version_and_the_commit() {
        let id = default_build_id();
        let (version, build) = id.split_once('+').expect("version+build");
        assert_eq!(version, env!("CARGO_PKG_VERSION"));
        match option_env!("ORDERSAGA_GIT_COMMIT") {
            Some(commit) => assert_eq!(build, commit),
            None => assert!(build.starts_with("exe."), "{build}"),
        }
    }

    #[test]
    fn sagas_are_pinned_and_services_follow_the_current_build() {
        assert_eq!(behaviour(Runs::Sagas), VersioningBehavior::Pinned);
        assert_eq!(behaviour(Runs::Services), VersioningBehavior::AutoUpgrade);
    }
}
