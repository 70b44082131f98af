//! `ordersaga-api`: the gRPC + HTTP front door. Configuration:
//! `ordersaga.toml`, `ORDERSAGA_*` and `TEMPORAL_*` environment variables.
//!
//! `ordersaga-api token --customer ID | --merchant [NAME] | --operator [NAME]
//! | --courier [NAME] [--ttl DURATION]` prints a bearer token signed with the configured
//! HS256 secret (`ORDERSAGA_AUTH_HS256_SECRET`): local development and
//! tests only; production tokens come from the identity provider.
//!
//! `ordersaga-api web-user USERNAME ROLE [CUSTOMER_ID]` reads a password
//! from standard input and prints the user as one JSON object for the web
//! pages' users file (`ORDERSAGA_WEB_USERS_FILE`, a JSON array of them),
//! the password as an Argon2id hash.

use std::time::Duration;

use anyhow::{Context, bail};
use ordersaga_api::{Api, ApiSettings};
use ordersaga_runtime::auth::{Claims, KeySource, Role};
use ordersaga_runtime::process::shutdown_signal;
use ordersaga_runtime::settings::Load;
use ordersaga_runtime::telemetry;

const USAGE: &str = "usage: ordersaga-api [token (--customer ID | --merchant [NAME] | \
                     --operator [NAME] | --courier [NAME]) [--ttl DURATION] | web-user USERNAME ROLE [CUSTOMER_ID] \
                     < password]";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => serve().await,
        Some("token") => token(&args[1..]),
        Some("web-user") => web_user(&args[1..]),
        Some(_) => bail!("{USAGE}"),
    }
}

async fn serve() -> anyhow::Result<()> {
    telemetry::init("info")?;
    let settings = ApiSettings::load().context("API configuration")?;
    let api = Api::build(settings).await?;
    tracing::info!(grpc = %api.grpc_addr()?, http = %api.http_addr()?, "API listening");
    let ran = api.run(shutdown_signal()).await;
    telemetry::shutdown().await;
    ran?;
    tracing::info!("API stopped");
    Ok(())
}

/// Prints a development token for the role asked.
fn token(args: &[String]) -> anyhow::Result<()> {
    let mut subject_role: Option<(String, Role)> = None;
    let mut ttl = Duration::from_secs(12 * 3600);
    let mut args = args.iter().peekable();
    while let Some(arg) = args.next() {
        let role = match arg.as_str() {
            "--customer" => Role::Customer,
            "--merchant" => Role::Merchant,
            "--operator" => Role::Operator,
            "--courier" => Role::Courier,
            "--ttl" => {
                let value = args.next().context(USAGE)?;
                ttl = humantime::parse_duration(value).context("--ttl: e.g. 30m, 12h")?;
                continue;
            }
            _ => bail!("{USAGE}"),
        };
        let name = args.next_if(|a| !a.starts_with("--")).cloned();
        let subject = match (role, name) {
            (_, Some(name)) => name,
            (Role::Customer, None) => bail!("--customer needs the customer id"),
            (role, None) => role.as_str().to_string(),
        };
        if subject_role.replace((subject, role)).is_some() {
            bail!("{USAGE}");
        }
    }
    let (subject, role) = subject_role.context(USAGE)?;
    let settings = ApiSettings::load().context("API configuration")?;
    let Some(KeySource::Hs256(secret)) = &settings.auth.keys else {
        bail!("tokens are minted with ORDERSAGA_AUTH_HS256_SECRET, which is not set");
    };
    let claims = Claims::new(&settings.auth, &subject, role, ttl);
    println!("{}", claims.sign_hs256(secret)?);
    Ok(())
}

/// Prints a web user (password from standard input) as JSON.
fn web_user(args: &[String]) -> anyhow::Result<()> {
    let (username, role, customer_id) = match args {
        [u, r] => (u, r, None),
        [u, r, c] => (u, r, Some(c.as_str())),
        _ => bail!("{USAGE}"),
    };
    let role: Role = role.parse().map_err(anyhow::Error::msg)?;
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .context("reading the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        bail!("an empty password: give one on standard input");
    }
    let user =
        ordersaga_api::web::users::WebUser::with_password(username, password, role, customer_id)?;
    println!(
        "{}",
        serde_json::json!({
            "username": user.username,
            "password_hash": user.password_hash,
            "role": user.role,
            "customer_id": user.customer_id,
        })
    );
    Ok(())
}
