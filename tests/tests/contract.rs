//! The HTTP contract, fuzzed: `schemathesis` (PyPI) reads the API's own
//! `GET /openapi.json` and sends generated requests to a real stack (the
//! API, a worker, the Temporal dev server, SQLite), once per role's token.
//! It fails on any 5xx and on any answer outside the document (status,
//! content type, headers, body schema). First only invalid requests
//! (`--mode negative`, each of which must be refused, and which must
//! write nothing: every shop table's row count is the same after), then
//! every kind. Seeded and bounded (`SEED`, `EXAMPLES`): about two minutes.
//!
//! A Rust test rather than a script, so that `cargo test-e2e` and
//! `scripts/test` run it like every other end-to-end test, on the
//! harness's stack and tokens. `schemathesis` must be on `PATH`
//! (`scripts/test` installs it; `ORDERSAGA_SCHEMATHESIS` names another).

use std::collections::BTreeMap;

use anyhow::Context;
use ordersaga_runtime::auth::Role;
use ordersaga_tests::Stack;
use ordersaga_tests::auth::token;
use sqlx::Row;

/// The run's seed: the same requests every time.
const SEED: &str = "20261202";
/// Generated requests per operation and phase.
const EXAMPLES: &str = "10";

/// The callers: one token per role.
fn callers() -> [(&'static str, String); 3] {
    [
        ("customer", token(Role::Customer, "erin")),
        ("merchant", token(Role::Merchant, "mia")),
        ("operator", token(Role::Operator, "otto")),
    ]
}

/// Every shop table and its number of rows.
async fn row_counts(database_url: &str) -> anyhow::Result<BTreeMap<String, i64>> {
    let pool = sqlx::SqlitePool::connect(database_url).await?;
    let tables: Vec<String> = sqlx::query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .fetch_all(&pool)
    .await?
    .iter()
    .map(|row| row.try_get::<String, _>("name"))
    .collect::<Result<_, _>>()?;
    let mut counts = BTreeMap::new();
    for table in tables {
        let count: i64 = sqlx::query(&format!("SELECT COUNT(*) AS n FROM \"{table}\""))
            .fetch_one(&pool)
            .await?
            .try_get("n")?;
        counts.insert(table, count);
    }
    pool.close().await;
    Ok(counts)
}

/// One `schemathesis run` as `role`; fails with its report.
async fn schemathesis(
    stack: &Stack,
    workdir: &std::path::Path,
    role: &str,
    bearer: &str,
    mode: &str,
) -> anyhow::Result<()> {
    let program =
        std::env::var("ORDERSAGA_SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".to_string());
    let mut checks = vec![
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ];
    if mode == "negative" {
        checks.push("negative_data_rejection");
    }
    let output = tokio::process::Command::new(&program)
        .args(["run", &format!("{}/openapi.json", stack.http_base)])
        .args(["--url", &stack.http_base])
        .args(["--header", &format!("Authorization: Bearer {bearer}")])
        .args(["--checks", &checks.join(",")])
        .args(["--mode", mode])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", EXAMPLES, "--seed", SEED])
        .args(["--workers", "1", "--no-shrink", "--request-timeout", "30"])
        .args([
            "--suppress-health-check",
            "all",
            "--output-truncate",
            "false",
        ])
        .env("NO_COLOR", "1")
        // Its cache of past failures stays out of the source tree.
        .current_dir(workdir)
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| {
            format!("running {program}: install it with `python3 -m pip install schemathesis`")
        })?;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("--- schemathesis as {role}, {mode} ---\n{report}");
    anyhow::ensure!(
        output.status.success(),
        "schemathesis as {role} ({mode}) found answers outside the contract:\n{report}"
    );
    Ok(())
}

#[tokio::test]
async fn the_api_keeps_its_openapi_contract_under_fuzzing() -> anyhow::Result<()> {
    let stack = Stack::builder().start().await?;
    // Something to find: a product with stock, so generated orders and
    // ratings meet an existing sku too.
    stack.product("MUG-1", 1_000, 1_000).await?;

    let workdir = tempfile::tempdir()?;
    let before = row_counts(&stack.database_url).await?;
    for (role, bearer) in callers() {
        schemathesis(&stack, workdir.path(), role, &bearer, "negative").await?;
    }
    let after = row_counts(&stack.database_url).await?;
    assert_eq!(
        before, after,
        "a refused request wrote to the shop database"
    );

    for (role, bearer) in callers() {
        schemathesis(&stack, workdir.path(), role, &bearer, "all").await?;
    }
    Ok(())
}
