//! What every ordersaga binary needs from its process: one shutdown signal.

/// Resolves on SIGINT (Ctrl-C) or SIGTERM, whichever comes first; the
/// binaries hand it to their `run(.., shutdown)` for a graceful drain.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            // No SIGTERM handler can be installed: Ctrl-C still works.
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = term => {},
    }
}
