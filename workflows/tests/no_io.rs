//! Workflow code must be deterministic, and the surest way to keep I/O out
//! of it is to not link any: this test runs `cargo tree` on this crate and
//! fails if a database, HTTP, mail, socket or async-runtime crate, or a
//! shop crate that carries one, is in its normal dependencies.
//!
//! Two crates are expected and harmless: `temporalio-workflow` reaches the
//! generated Temporal protos, which pull `tonic` with only its `codegen`
//! feature (message types, no transport) and `tokio` with only `sync`
//! (in-memory channels, no runtime, sockets or files).

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;
use std::process::Command;

/// Crates that must never be linked by workflow code.
const FORBIDDEN: &[&str] = &[
    // the shop's I/O crates
    "ordersaga-activities",
    "ordersaga-store",
    "ordersaga-runtime",
    // the SDK's client and worker (gRPC connections, the tokio runtime)
    "temporalio-client",
    "temporalio-common",
    "temporalio-sdk",
    "temporalio-sdk-core",
    // databases, HTTP, mail, TLS, sockets
    "sqlx",
    "sqlx-core",
    "libsqlite3-sys",
    "reqwest",
    "lettre",
    "hyper",
    "hyper-util",
    "h2",
    "axum",
    "rustls",
    "mio",
    "socket2",
];

/// Features that would give an allowed crate I/O or a runtime.
const FORBIDDEN_FEATURES: &[(&str, &[&str])] = &[
    (
        "tokio",
        &[
            "net",
            "fs",
            "io-std",
            "process",
            "signal",
            "time",
            "rt",
            "rt-multi-thread",
        ],
    ),
    ("tonic", &["transport", "channel", "server", "router"]),
];

fn cargo_tree(args: &[&str]) -> Result<String, Box<dyn Error>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let out = Command::new(cargo)
        .args([
            "tree",
            "--locked",
            "--manifest-path",
            manifest,
            "-e",
            "normal",
        ])
        .args(args)
        .output()?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!("cargo tree failed: {stderr}").into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

#[test]
fn workflow_crate_links_no_io() -> Result<(), Box<dyn Error>> {
    // One line per package: `name vX.Y.Z (...)|feature,feature`.
    let tree = cargo_tree(&["--prefix", "none", "--format", "{p}|{f}"])?;
    let mut features: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for line in tree.lines() {
        let (package, enabled) = line.split_once('|').unwrap_or((line, ""));
        let name = package.split_whitespace().next().unwrap_or_default();
        let entry = features.entry(name).or_default();
        entry.extend(
            enabled
                .split([',', ' '])
                .filter(|f| !f.is_empty() && *f != "(*)"),
        );
    }
    assert!(
        features.contains_key("temporalio-workflow"),
        "unexpected cargo tree output:\n{tree}"
    );

    let mut problems = Vec::new();
    for name in FORBIDDEN.iter().filter(|n| features.contains_key(**n)) {
        problems.push(format!(
            "{name} is linked:\n{}",
            cargo_tree(&["--invert", name])?
        ));
    }
    for (name, bad) in FORBIDDEN_FEATURES {
        let enabled = features.get(name).into_iter().flatten();
        let found: Vec<&&str> = enabled.filter(|f| bad.contains(f)).collect();
        if !found.is_empty() {
            problems.push(format!(
                "{name} has features {found:?}:\n{}",
                cargo_tree(&["--invert", name, "-e", "features"])?
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "ordersaga-workflows must link no I/O:\n\n{}",
        problems.join("\n\n")
    );
    Ok(())
}
