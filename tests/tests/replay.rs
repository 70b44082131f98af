//! Changing the workflow must not break running orders: every history in
//! `tests/histories/` (recorded from real sagas by the end-to-end tests with
//! `ORDERSAGA_RECORD_HISTORIES=1`) must replay against the current code.
//! No server needed.

use anyhow::Context;
use ordersaga_tests::{histories_dir, replayer};
use temporalio_client::WorkflowHistory;

#[tokio::test]
async fn saved_histories_replay_against_current_code() -> anyhow::Result<()> {
    let mut histories = Vec::new();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(histories_dir()).context("tests/histories")? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            histories.push(WorkflowHistory::from_json(&std::fs::read(&path)?)?);
            names.push(path.display().to_string());
        }
    }
    assert!(
        histories.len() >= 14,
        "expected the recorded sagas (confirmed, declined, out of stock, cancelled, worker killed, \
         and confirmed and out of stock with notifications; checkout: confirmed, expired, out of \
         stock refunded, polled, capture answer lost, capture declined, cancelled before payment), found {names:?}"
    );
    for checkout in [
        "checkout-confirmed",
        "checkout-expired",
        "checkout-out-of-stock-refunded",
        "checkout-polled",
        "checkout-capture-answer-lost",
        "checkout-capture-declined",
        "checkout-cancelled-before-payment",
        "checkout-confirmed-payment-status",
    ] {
        assert!(
            names
                .iter()
                .any(|n| n.ends_with(&format!("/{checkout}.json"))),
            "missing history {checkout}.json"
        );
    }
    // Sagas recorded with payload encryption on: encrypted, and they
    // replay (decrypted with the tests' key ring) like the others.
    for encrypted in ["encrypted-confirmed", "encrypted-payment-declined"] {
        let path = histories_dir().join(format!("{encrypted}.json"));
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("missing {encrypted}.json"))?;
        assert!(
            text.contains("YmluYXJ5L2VuY3J5cHRlZA==") && !text.contains("@example.com"),
            "{encrypted}.json holds binary/encrypted payloads and no email in clear"
        );
    }
    let results = replayer()?.replay_workflows(histories).await?;
    let failures: Vec<String> = results
        .iter()
        .zip(&names)
        .filter_map(|(r, n)| r.replay_failure.as_ref().map(|f| format!("{n}: {f:?}")))
        .collect();
    assert!(
        failures.is_empty(),
        "nondeterministic replays:\n{}",
        failures.join("\n")
    );
    Ok(())
}
