//! Every documented variable lands in its setting; bad values are refused.

use ordersaga_runtime::settings::{SettingsError, Sources};

use super::*;

fn load(vars: &[(&str, &str)]) -> Result<WorkerSettings, SettingsError> {
    WorkerSettings::from_sources(&Sources::default().vars(vars.iter().copied()))
}

#[test]
fn queues_parse_as_a_comma_separated_subset() {
    assert_eq!(
        parse_queues("notifications, shipping,notifications").unwrap(),
        [Queue::Notifications, Queue::Shipping]
    );
    assert_eq!(parse_queues("orders").unwrap(), [Queue::Orders]);
    assert!(parse_queues("").is_err());
    assert!(parse_queues("orders,email").is_err());
    assert_eq!(WorkerSettings::default().queues, Queue::ALL);
}

/// A send that can outlast its claim's lease lets another relay slot
/// claim and send the same email while the first still sends it.
#[test]
fn smtp_timeouts_that_do_not_fit_in_the_relay_lease_are_refused() {
    let smtp = [
        ("ORDERSAGA_SMTP_HOST", "smtp.example.com"),
        ("ORDERSAGA_SMTP_TIMEOUT_MS", "10000"),
    ];
    // Default lease (60 s): a connect and a command (20 s) fit in its
    // delivery budget (45 s).
    assert!(load(&smtp).is_ok());
    let too_short = [smtp.as_slice(), &[("ORDERSAGA_RELAY_LEASE_MS", "20000")]].concat();
    match load(&too_short) {
        Err(SettingsError::Invalid { name, problem }) => {
            assert_eq!(name, "ORDERSAGA_SMTP_TIMEOUT_MS");
            assert!(problem.contains("20000 ms lease"), "{problem}");
        }
        other => panic!("expected the SMTP timeout refused, got {other:?}"),
    }
    // The local mailbox has no SMTP timeout to fit.
    assert!(load(&[("ORDERSAGA_RELAY_LEASE_MS", "20000")]).is_ok());
}

#[test]
fn no_variables_give_the_defaults() {
    let s = load(&[]).unwrap();
    let d = WorkerSettings::default();
    assert_eq!(format!("{s:?}"), format!("{d:?}"));
}

#[test]
fn every_documented_variable_lands_in_its_setting() {
    let s = load(&[
        ("ORDERSAGA_DATABASE_URL", "postgres://db/shop"),
        ("ORDERSAGA_QUEUES", "shipping,orders"),
        ("ORDERSAGA_TASK_QUEUE", "orders-b"),
        ("ORDERSAGA_MAX_WORKFLOW_TASKS", "1"),
        ("ORDERSAGA_MAX_ACTIVITIES", "2"),
        ("ORDERSAGA_MAX_LOCAL_ACTIVITIES", "3"),
        ("ORDERSAGA_MAX_CACHED_WORKFLOWS", "4"),
        ("ORDERSAGA_SHIPPING_MAX_CACHED_WORKFLOWS", "9"),
        ("ORDERSAGA_NOTIFICATIONS_MAX_WORKFLOW_TASKS", "5"),
        ("ORDERSAGA_NOTIFICATIONS_MAX_ACTIVITIES", "6"),
        ("ORDERSAGA_SHIPPING_MAX_WORKFLOW_TASKS", "7"),
        ("ORDERSAGA_SHIPPING_MAX_ACTIVITIES", "8"),
        ("ORDERSAGA_ORDERS_NEW_TASK_POLLS", "10"),
        ("ORDERSAGA_SMTP_HOST", "smtp.example.com"),
        ("ORDERSAGA_SMTP_TLS", "tls"),
        ("ORDERSAGA_SMTP_USERNAME", "shop"),
        ("ORDERSAGA_SMTP_PASSWORD", "pw"),
        ("ORDERSAGA_SMTP_TIMEOUT_MS", "900"),
        ("ORDERSAGA_MAIL_FROM", "Shop <shop@example.com>"),
        ("ORDERSAGA_PUBLIC_URL", "https://shop.example.com"),
        ("ORDERSAGA_SHOP_NAME", "Example"),
        ("ORDERSAGA_MERCHANT_EMAIL", "m@example.com"),
        ("ORDERSAGA_EMAIL_RETRY_INITIAL_MS", "10"),
        ("ORDERSAGA_EMAIL_RETRY_MAX_MS", "20"),
        ("ORDERSAGA_EMAIL_RETRY_HORIZON_SECS", "30"),
        ("ORDERSAGA_RELAY_BATCH", "9"),
        ("ORDERSAGA_RELAY_POLL_MS", "11"),
        ("ORDERSAGA_RELAY_RUN_MS", "12"),
        ("ORDERSAGA_RELAY_LEASE_MS", "13000"),
        ("ORDERSAGA_EMAIL_RELAY_SLOTS", "14"),
        ("ORDERSAGA_SHIPPING_RELAY_SLOTS", "15"),
        ("ORDERSAGA_STICKY_TIMEOUT_MS", "16"),
        ("ORDERSAGA_GRACEFUL_SHUTDOWN_MS", "17"),
        ("ORDERSAGA_GATEWAY_LATENCY_MS", "18"),
        (
            "ORDERSAGA_PAYPAL_BASE_URL",
            "https://api-m.sandbox.paypal.com/",
        ),
        ("ORDERSAGA_SHOP_URL", "https://shop.example.com"),
        ("ORDERSAGA_PAYPAL_CLIENT_ID", "id"),
        ("ORDERSAGA_PAYPAL_CLIENT_SECRET", "cs"),
        ("ORDERSAGA_PAYPAL_TIMEOUT_MS", "19"),
        ("ORDERSAGA_METRICS_ADDR", "127.0.0.1:9464"),
        ("ORDERSAGA_RECONCILE_EVERY_SECS", "20"),
        ("ORDERSAGA_RECONCILE_GRACE_SECS", "21"),
        ("ORDERSAGA_RECONCILE_LIMIT", "22"),
        ("ORDERSAGA_NATS_URL", "nats://nats.internal:4222"),
        ("ORDERSAGA_EVENTS_RELAY_LEASE_MS", "3000"),
    ])
    .unwrap();
    let ms = Duration::from_millis;
    // The events' own variables (events/src/settings.rs tests them all).
    assert_eq!(
        s.events.nats.as_ref().map(|n| n.url.as_str()),
        Some("nats://nats.internal:4222")
    );
    assert_eq!(s.events.relay.lease, ms(3000));
    assert_eq!(s.database_url, "postgres://db/shop");
    assert_eq!(s.queues, [Queue::Shipping, Queue::Orders]);
    assert_eq!(s.task_queue, "orders-b");
    assert_eq!(
        (
            s.max_concurrent_workflow_tasks,
            s.max_concurrent_activities,
            s.max_concurrent_local_activities,
            s.max_cached_workflows,
            s.shipping_max_cached_workflows
        ),
        (1, 2, 3, 4, 9)
    );
    assert_eq!(s.new_task_polls, Some(10));
    assert_eq!(
        (s.notifications, s.shipping),
        (
            QueueLimits {
                max_workflow_tasks: 5,
                max_activities: 6
            },
            QueueLimits {
                max_workflow_tasks: 7,
                max_activities: 8
            }
        )
    );
    let Delivery::Smtp(smtp) = &s.mail.delivery else {
        panic!("{:?}", s.mail.delivery);
    };
    assert_eq!(
        (smtp.host.as_str(), smtp.port, smtp.tls, smtp.timeout),
        ("smtp.example.com", 465, SmtpTls::Tls, ms(900))
    );
    assert_eq!(smtp.username.as_deref(), Some("shop"));
    assert_eq!(smtp.password.as_ref().map(Secret::expose), Some("pw"));
    assert_eq!(s.mail.from, "Shop <shop@example.com>");
    assert_eq!(s.mail.public_url, "https://shop.example.com");
    assert_eq!(s.mail.shop_name, "Example");
    assert_eq!(s.mail.merchant.as_deref(), Some("m@example.com"));
    assert_eq!(
        s.email_retry,
        EmailRetry {
            initial: ms(10),
            max: ms(20),
            horizon: Duration::from_secs(30)
        }
    );
    assert_eq!(
        (s.relay.batch, s.relay.poll, s.relay.run_for, s.relay.lease),
        (9, ms(11), ms(12), ms(13_000))
    );
    assert_eq!((s.email_relay_slots, s.shipping_relay_slots), (14, 15));
    assert_eq!(
        (s.sticky_timeout, s.graceful_shutdown, s.gateway_latency),
        (ms(16), ms(17), ms(18))
    );
    assert_eq!(s.shop_url.as_deref(), Some("https://shop.example.com"));
    let paypal = s.paypal.unwrap();
    assert_eq!(paypal.base_url, "https://api-m.sandbox.paypal.com");
    assert_eq!(paypal.client_id, "id");
    assert_eq!(paypal.client_secret.expose(), "cs");
    assert_eq!(paypal.timeout, ms(19));
    // PayPal has no void endpoint: the adapter abandons instead.
    assert_eq!(paypal.void_mode, VoidMode::Abandon);
    assert_eq!(s.metrics_addr, Some("127.0.0.1:9464".parse().unwrap()));
    assert_eq!(s.reconcile_every, Some(Duration::from_secs(20)));
    assert_eq!(
        s.reconcile,
        ReconcileInput {
            grace_secs: 21,
            limit: 22
        }
    );
    let off = load(&[("ORDERSAGA_RECONCILE_EVERY_SECS", "0")]).unwrap();
    assert_eq!(off.reconcile_every, None);
}

#[test]
fn per_queue_limits_override_the_older_names_and_smtp_ports_follow_tls() {
    let s = load(&[
        ("ORDERSAGA_ORDERS_MAX_WORKFLOW_TASKS", "21"),
        ("ORDERSAGA_MAX_WORKFLOW_TASKS", "1"),
        ("ORDERSAGA_ORDERS_MAX_ACTIVITIES", "22"),
        ("ORDERSAGA_ORDERS_MAX_LOCAL_ACTIVITIES", "23"),
        ("ORDERSAGA_MAILBOX_DIR", "/tmp/mail"),
        ("ORDERSAGA_PAYPAL_BASE_URL", "http://127.0.0.1:8090"),
        ("ORDERSAGA_PAYPAL_VOID", "abandon"),
    ])
    .unwrap();
    assert_eq!(
        (
            s.max_concurrent_workflow_tasks,
            s.max_concurrent_activities,
            s.max_concurrent_local_activities
        ),
        (21, 22, 23)
    );
    assert!(matches!(&s.mail.delivery, Delivery::Mailbox(p) if p == &PathBuf::from("/tmp/mail")));
    let paypal = s.paypal.unwrap();
    assert_eq!(paypal.void_mode, VoidMode::Abandon);
    assert_eq!(paypal.client_secret.expose(), "sandbox-secret");

    for (tls, port) in [("none", 25), ("starttls", 587), ("TLS", 465)] {
        let s = load(&[("ORDERSAGA_SMTP_HOST", "h"), ("ORDERSAGA_SMTP_TLS", tls)]).unwrap();
        let Delivery::Smtp(smtp) = s.mail.delivery else {
            panic!("no SMTP");
        };
        assert_eq!(smtp.port, port, "{tls}");
    }
    assert!(load(&[("ORDERSAGA_PAYPAL_VOID", "never")]).is_err());
}

#[test]
fn bad_values_name_their_variable_and_hide_secrets() {
    for (name, value) in [
        ("ORDERSAGA_QUEUES", "orders,email"),
        ("ORDERSAGA_SMTP_TLS", "ssl3"),
        ("ORDERSAGA_SMTP_PORT", "99999"),
        ("ORDERSAGA_RELAY_POLL_MS", "fast"),
        ("ORDERSAGA_METRICS_ADDR", "9464"),
        ("ORDERSAGA_ORDERS_NEW_TASK_POLLS", "0"),
        ("ORDERSAGA_ORDERS_NEW_TASK_POLLS", "101"),
        ("ORDERSAGA_RELAY_BATCH", "0"),
        ("ORDERSAGA_RELAY_BATCH", "1001"),
    ] {
        let err = load(&[(name, value)]).unwrap_err();
        assert!(err.to_string().starts_with(&format!("{name}: ")), "{err}");
    }
    let s = load(&[
        ("ORDERSAGA_SMTP_HOST", "h"),
        ("ORDERSAGA_SMTP_PASSWORD", "hunter2"),
        ("ORDERSAGA_PAYPAL_BASE_URL", "http://sandbox"),
        ("ORDERSAGA_PAYPAL_CLIENT_SECRET", "s3cr3t"),
    ])
    .unwrap();
    let printed = format!("{s:?}");
    assert!(!printed.contains("hunter2") && !printed.contains("s3cr3t"));
}

#[test]
fn the_command_line_picks_the_queues() {
    let mut s = WorkerSettings::default();
    s.apply_args(["--queues".to_string(), "notifications".to_string()])
        .unwrap();
    assert_eq!(s.queues, [Queue::Notifications]);
    s.apply_args(["--queues=orders,shipping".to_string()])
        .unwrap();
    assert_eq!(s.queues, [Queue::Orders, Queue::Shipping]);
    assert!(matches!(
        s.apply_args(["--help".to_string()]),
        Err(ArgsError::Help)
    ));
    assert!(matches!(
        s.apply_args(["--queues".to_string()]),
        Err(ArgsError::MissingValue)
    ));
    assert!(matches!(
        s.apply_args(["--queue".to_string()]),
        Err(ArgsError::Unknown(_))
    ));
}

#[test]
fn the_deployment_and_build_are_configurable_and_never_empty() {
    let defaults = load(&[]).unwrap();
    assert_eq!(defaults.deployment_name, "ordersaga");
    assert_eq!(defaults.build_id, crate::versioning::default_build_id());
    let set = load(&[
        ("ORDERSAGA_DEPLOYMENT_NAME", "shop"),
        ("ORDERSAGA_BUILD_ID", "2026-12-02.1"),
    ])
    .unwrap();
    assert_eq!(
        (set.deployment_name.as_str(), set.build_id.as_str()),
        ("shop", "2026-12-02.1")
    );
    assert!(load(&[("ORDERSAGA_BUILD_ID", " ")]).is_err());
    // An empty variable counts as unset.
    let empty = load(&[("ORDERSAGA_DEPLOYMENT_NAME", "")]).unwrap();
    assert_eq!(empty.deployment_name, "ordersaga");
}
