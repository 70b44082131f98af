//! `ordersaga-actions`: the Temporal Cloud billable Actions, events and
//! bytes of recorded workflow histories, as a markdown table (see
//! `ordersaga_tests::actions` for the rules). Offline: it reads files.
//!
//! ```text
//! ordersaga-actions [HISTORY.json ...]   # default: every tests/histories/*.json
//! ```

use std::path::PathBuf;

use anyhow::Context;
use ordersaga_tests::actions::{count, table};
use ordersaga_tests::histories_dir;
use temporalio_common::protos::temporal::api::history::v1::History;

fn main() -> anyhow::Result<()> {
    let mut files: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if files.is_empty() {
        for entry in std::fs::read_dir(histories_dir())? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                files.push(path);
            }
        }
        files.sort();
    }
    let mut rows = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let history: History = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a recorded history", file.display()))?;
        let name = file
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        rows.push((name, count(&history)));
    }
    print!("{}", table(&rows));
    Ok(())
}
