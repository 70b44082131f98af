//! Email: rendering a [`Notification`] from the template files under
//! `activities/templates/email/` (minijinja; plain-text and HTML parts) and
//! delivering it, over SMTP or into a local mailbox folder of `.eml` files.
//!
//! This module knows nothing of retries or idempotency; the `SendEmail`
//! activity ([`crate::notify`]) owns those.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use minijinja::Environment;
use minijinja::value::Serde;
use ordersaga_domain::{Money, Notification};
use ordersaga_runtime::Secret;
use serde::Serialize;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text (local test servers only).
    None,
    /// Plain connection upgraded with `STARTTLS` (required, usually port 587).
    StartTls,
    /// TLS from the first byte (usually port 465).
    Tls,
}

impl std::str::FromStr for SmtpTls {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "none" | "off" | "plain" => Ok(Self::None),
            "starttls" => Ok(Self::StartTls),
            "tls" | "smtps" => Ok(Self::Tls),
            other => Err(format!(
                "SMTP TLS must be none, starttls or tls, got {other:?}"
            )),
        }
    }
}

/// An SMTP relay to deliver through.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// Host name (also the TLS server name).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Transport security.
    pub tls: SmtpTls,
    /// User name, if the relay wants authentication.
    pub username: Option<String>,
    /// Password.
    pub password: Option<Secret>,
    /// Limit for connecting and for each SMTP command.
    pub timeout: Duration,
}

/// Where emails go.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A real SMTP relay.
    Smtp(SmtpSettings),
    /// The embedded default: each message is written as
    /// `{stage}.{subject}.eml` into this folder (open it with any mail
    /// client). Named by the email's identity, so a re-send overwrites.
    Mailbox(PathBuf),
}

/// What the notifications service needs to write and send emails.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// Where emails go.
    pub delivery: Delivery,
    /// The `From:` mailbox, e.g. `Ordersaga Shop <shop@example.com>`.
    pub from: String,
    /// The merchant's address for stock alerts, if any.
    pub merchant: Option<String>,
    /// Base URL of the shop's API, for "follow your order" links.
    pub public_url: String,
    /// The shop's name in greetings and footers.
    pub shop_name: String,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            delivery: Delivery::Mailbox(PathBuf::from(".data/mailbox")),
            from: "Ordersaga Shop <shop@ordersaga.localhost>".to_string(),
            merchant: None,
            public_url: "http://127.0.0.1:8080".to_string(),
            shop_name: "Ordersaga Shop".to_string(),
        }
    }
}

/// Why an email could not be rendered or delivered.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// A template failed to render (a bug in a template file).
    #[error("email template {name} failed")]
    Template {
        /// The template.
        name: String,
        /// The engine's error.
        #[source]
        source: minijinja::Error,
    },
    /// An address does not form a valid mailbox.
    #[error("invalid email address {0:?}")]
    Address(String),
    /// A merchant alert, but no merchant address is configured.
    #[error("no merchant email address is configured (ORDERSAGA_MERCHANT_EMAIL)")]
    NoMerchant,
    /// The message could not be assembled.
    #[error("building the email failed")]
    Build(#[from] lettre::error::Error),
    /// The SMTP relay failed or refused.
    #[error("SMTP delivery failed")]
    Smtp(#[from] lettre::transport::smtp::Error),
    /// Writing to the local mailbox failed.
    #[error("writing to the local mailbox failed")]
    Mailbox(#[from] std::io::Error),
}

impl MailError {
    /// Whether retrying cannot help: a bad address, a missing setting, a
    /// broken template, or a permanent (5xx) SMTP refusal.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Template { .. } | Self::Address(_) | Self::NoMerchant | Self::Build(_) => true,
            Self::Smtp(e) => e.is_permanent(),
            Self::Mailbox(_) => false,
        }
    }
}

/// An email ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text part.
    pub text: String,
    /// HTML part.
    pub html: String,
    /// The deterministic `Message-ID` of (subject, stage).
    pub message_id: String,
    /// `{stage}.{subject}`: the mailbox file name without `.eml`.
    pub key: String,
}

/// Every template file, compiled into the binary so a deployed worker
/// cannot run with templates that do not match its code.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/email/base.html")),
    ("lines.txt", include_str!("../templates/email/lines.txt")),
    ("lines.html", include_str!("../templates/email/lines.html")),
    (
        "order-received.subject.txt",
        include_str!("../templates/email/order-received.subject.txt"),
    ),
    (
        "order-received.txt",
        include_str!("../templates/email/order-received.txt"),
    ),
    (
        "order-received.html",
        include_str!("../templates/email/order-received.html"),
    ),
    (
        "order-amended.subject.txt",
        include_str!("../templates/email/order-amended.subject.txt"),
    ),
    (
        "order-amended.txt",
        include_str!("../templates/email/order-amended.txt"),
    ),
    (
        "order-amended.html",
        include_str!("../templates/email/order-amended.html"),
    ),
    (
        "order-confirmed.subject.txt",
        include_str!("../templates/email/order-confirmed.subject.txt"),
    ),
    (
        "order-confirmed.txt",
        include_str!("../templates/email/order-confirmed.txt"),
    ),
    (
        "order-confirmed.html",
        include_str!("../templates/email/order-confirmed.html"),
    ),
    (
        "order-failed.subject.txt",
        include_str!("../templates/email/order-failed.subject.txt"),
    ),
    (
        "order-failed.txt",
        include_str!("../templates/email/order-failed.txt"),
    ),
    (
        "order-failed.html",
        include_str!("../templates/email/order-failed.html"),
    ),
    (
        "low-stock-alert.subject.txt",
        include_str!("../templates/email/low-stock-alert.subject.txt"),
    ),
    (
        "low-stock-alert.txt",
        include_str!("../templates/email/low-stock-alert.txt"),
    ),
    (
        "low-stock-alert.html",
        include_str!("../templates/email/low-stock-alert.html"),
    ),
    (
        "shipment-dispatched.subject.txt",
        include_str!("../templates/email/shipment-dispatched.subject.txt"),
    ),
    (
        "shipment-dispatched.txt",
        include_str!("../templates/email/shipment-dispatched.txt"),
    ),
    (
        "shipment-dispatched.html",
        include_str!("../templates/email/shipment-dispatched.html"),
    ),
    (
        "shipment-delivered.subject.txt",
        include_str!("../templates/email/shipment-delivered.subject.txt"),
    ),
    (
        "shipment-delivered.txt",
        include_str!("../templates/email/shipment-delivered.txt"),
    ),
    (
        "shipment-delivered.html",
        include_str!("../templates/email/shipment-delivered.html"),
    ),
];

#[derive(Serialize)]
struct LineView {
    sku: String,
    quantity: i64,
    unit_price: String,
    amount: String,
}

/// Everything a template may use. Fields that do not apply to a stage are
/// empty.
#[derive(Serialize, Default)]
struct EmailView {
    shop_name: String,
    message_id: String,
    order_id: String,
    customer_id: String,
    status_url: String,
    payment_url: String,
    lines: Vec<LineView>,
    total: String,
    reason: String,
    refunded: bool,
    ship_to: Vec<String>,
    sku: String,
    product_name: String,
    on_hand: i64,
    threshold: i64,
    /// `ORDER_AMENDED`: the lines that cannot be served, their refund and
    /// the customer's time to decide (`lines` and `total` are then the
    /// amended order's).
    missing: Vec<LineView>,
    refund: String,
    deadline: String,
}

fn line_view(l: &ordersaga_domain::OrderLine) -> LineView {
    LineView {
        sku: l.sku.to_string(),
        quantity: l.quantity,
        unit_price: l.unit_price.to_string(),
        amount: amount(l.unit_price, l.quantity),
    }
}

/// A deadline in words: `24 hours`, `90 minutes`, `30 seconds`.
fn deadline_words(secs: u64) -> String {
    match secs {
        s if s >= 3600 && s % 3600 == 0 => format!("{} hours", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

fn amount(unit: Money, quantity: i64) -> String {
    unit.times(quantity)
        .map_or_else(|_| "-".to_string(), |m| m.to_string())
}

/// Renders and delivers emails.
pub struct Mailer {
    settings: MailSettings,
    from: Mailbox,
    templates: Environment<'static>,
    transport: Transport,
}

enum Transport {
    Smtp(Box<AsyncSmtpTransport<Tokio1Executor>>),
    Mailbox(PathBuf),
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Checks the settings, loads the templates and prepares the transport
    /// (no connection is made until the first send).
    pub fn new(settings: MailSettings) -> Result<Self, MailError> {
        let from = settings
            .from
            .parse::<Mailbox>()
            .map_err(|_| MailError::Address(settings.from.clone()))?;
        let mut templates = Environment::new();
        for (name, source) in TEMPLATES {
            templates
                .add_template(name, source)
                .map_err(|source| MailError::Template {
                    name: (*name).to_string(),
                    source,
                })?;
        }
        let transport = match &settings.delivery {
            Delivery::Mailbox(dir) => Transport::Mailbox(dir.clone()),
            Delivery::Smtp(s) => {
                let builder = match s.tls {
                    SmtpTls::None => {
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
                    }
                    SmtpTls::StartTls => {
                        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host)?
                    }
                    SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host)?,
                };
                let mut builder = builder.port(s.port).timeout(Some(s.timeout));
                if let (Some(user), Some(password)) = (&s.username, &s.password) {
                    builder = builder.credentials(Credentials::new(
                        user.clone(),
                        password.expose().to_string(),
                    ));
                }
                Transport::Smtp(Box::new(builder.build()))
            }
        };
        Ok(Self {
            settings,
            from,
            templates,
            transport,
        })
    }

    fn render_one(&self, name: &str, view: &EmailView) -> Result<String, MailError> {
        self.templates
            .get_template(name)
            .and_then(|t| t.render(Serde(view)))
            .map_err(|source| MailError::Template {
                name: name.to_string(),
                source,
            })
    }

    /// Renders the email of a notification from its stage's templates.
    pub fn render(&self, n: &Notification) -> Result<RenderedEmail, MailError> {
        let stage = n.stage();
        let mut view = EmailView {
            shop_name: self.settings.shop_name.clone(),
            message_id: n.message_id(),
            ..EmailView::default()
        };
        let to = match n {
            Notification::Order(e) => {
                view.order_id = e.order_id.to_string();
                view.customer_id = e.customer_id.to_string();
                view.status_url = format!(
                    "{}/v1/orders/{}",
                    self.settings.public_url.trim_end_matches('/'),
                    e.order_id
                );
                view.lines = e
                    .lines
                    .iter()
                    .map(|l| LineView {
                        sku: l.sku.to_string(),
                        quantity: l.quantity,
                        unit_price: l.unit_price.to_string(),
                        amount: amount(l.unit_price, l.quantity),
                    })
                    .collect();
                view.total = e.total.to_string();
                // The reason in plain words; the failure code stays internal.
                view.reason = e
                    .reason
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                view.refunded = e.refunded;
                view.ship_to = e.ship_to.as_ref().map(|a| a.lines()).unwrap_or_default();
                view.payment_url = e.payment_url.clone().unwrap_or_default();
                if let Some(a) = &e.amendment {
                    view.lines = a.lines.iter().map(line_view).collect();
                    view.missing = a.missing.iter().map(line_view).collect();
                    view.total = Money {
                        minor: e.total.minor.saturating_sub(a.refund.minor),
                        currency: e.total.currency,
                    }
                    .to_string();
                    view.refund = a.refund.to_string();
                    view.deadline = deadline_words(a.deadline_secs);
                }
                e.to.to_string()
            }
            Notification::LowStock(a) => {
                view.sku = a.sku.to_string();
                view.product_name = a.product_name.clone();
                view.on_hand = a.on_hand;
                view.threshold = a.threshold;
                self.settings
                    .merchant
                    .clone()
                    .ok_or(MailError::NoMerchant)?
            }
        };
        let slug = stage.slug();
        let subject = self.render_one(&format!("{slug}.subject.txt"), &view)?;
        Ok(RenderedEmail {
            to,
            subject: subject.trim().to_string(),
            text: self.render_one(&format!("{slug}.txt"), &view)?,
            html: self.render_one(&format!("{slug}.html"), &view)?,
            message_id: view.message_id,
            key: format!("{slug}.{}", n.subject_id()),
        })
    }

    /// Builds the MIME message: `multipart/alternative` with the plain-text
    /// and the HTML part, and the deterministic `Message-ID`.
    pub fn message(&self, email: &RenderedEmail) -> Result<Message, MailError> {
        let to = email
            .to
            .parse::<Mailbox>()
            .map_err(|_| MailError::Address(email.to.clone()))?;
        Ok(Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .message_id(Some(email.message_id.clone()))
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(email.text.clone()),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(email.html.clone()),
                    ),
            )?)
    }

    /// Delivers the email once (no retries here), in a span of its own
    /// (the message key names it, never the recipient).
    #[tracing::instrument(
        name = "smtp",
        skip_all,
        fields(otel.name = "smtp send", otel.kind = "client", key = %email.key)
    )]
    pub async fn send(&self, email: &RenderedEmail) -> Result<(), MailError> {
        let message = self.message(email)?;
        match &self.transport {
            Transport::Smtp(smtp) => {
                smtp.send(message).await?;
                Ok(())
            }
            Transport::Mailbox(dir) => {
                tokio::fs::create_dir_all(dir).await?;
                // Write then rename: a reader never sees half a message and
                // a crash leaves at most a stray temporary file.
                let path = dir.join(format!("{}.eml", email.key));
                let tmp = dir.join(format!(".{}.eml.tmp", email.key));
                tokio::fs::write(&tmp, message.formatted()).await?;
                tokio::fs::rename(&tmp, &path).await?;
                Ok(())
            }
        }
    }
}
