//! The sandbox plays an outside company (PayPal): it may share the webhook
//! wire contract with the shop and nothing else. This fails when a shop
//! crate creeps into its dependencies.

use std::process::Command;

/// The one `ordersaga-*` crate the sandbox may link besides itself.
const ALLOWED: &[&str] = &["ordersaga-payment-sandbox", "ordersaga-webhook-signature"];

#[test]
fn the_sandbox_links_no_shop_crate() {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--manifest-path",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
            "-p",
            "ordersaga-payment-sandbox",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let shop: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with("ordersaga-") && !ALLOWED.contains(name))
        .collect();
    assert!(tree.contains("ordersaga-webhook-signature"), "{tree}");
    assert!(
        shop.is_empty(),
        "the sandbox depends on shop crates: {shop:?}"
    );
}
