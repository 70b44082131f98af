//! The pages' templates (minijinja, compiled into the binary; names ending
//! in `.html` are HTML-escaped) and the filters they use.

use std::sync::OnceLock;

use minijinja::{Environment, Error, ErrorKind, Value};
use ordersaga_domain::{Currency, Money};

/// Every template, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("error.html", include_str!("templates/error.html")),
    ("login.html", include_str!("templates/login.html")),
    ("fields.html", include_str!("templates/fields.html")),
    ("catalog.html", include_str!("templates/catalog.html")),
    ("product.html", include_str!("templates/product.html")),
    ("cart.html", include_str!("templates/cart.html")),
    ("orders.html", include_str!("templates/orders.html")),
    ("order.html", include_str!("templates/order.html")),
    ("order_live.html", include_str!("templates/order_live.html")),
    (
        "console_orders.html",
        include_str!("templates/console_orders.html"),
    ),
    (
        "console_order.html",
        include_str!("templates/console_order.html"),
    ),
    (
        "console_products.html",
        include_str!("templates/console_products.html"),
    ),
    (
        "console_stock.html",
        include_str!("templates/console_stock.html"),
    ),
    (
        "console_alerts.html",
        include_str!("templates/console_alerts.html"),
    ),
    (
        "console_shipments.html",
        include_str!("templates/console_shipments.html"),
    ),
];

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            if let Err(e) = env.add_template(name, source) {
                // A bug caught by the test below; the page answers 500.
                tracing::error!(template = name, error = %e, "template does not compile");
            }
        }
        env.add_filter("money", money);
        env.add_filter("stars", stars);
        env
    })
}

/// Renders `name` with `ctx`.
pub fn render(name: &str, ctx: Value) -> Result<String, Error> {
    environment().get_template(name)?.render(ctx)
}

/// `{"minor_units": 2598, "currency": "EUR"}` -> `25.98 EUR`.
fn money(value: Value) -> Result<String, Error> {
    let bad = || {
        Error::new(
            ErrorKind::InvalidOperation,
            "money needs minor_units and currency",
        )
    };
    let minor = value.get_attr("minor_units")?.as_i64().ok_or_else(bad)?;
    let currency = value.get_attr("currency")?;
    let currency = Currency::parse(currency.as_str().ok_or_else(bad)?).map_err(|_| bad())?;
    Ok(Money::new(minor, currency).to_string())
}

/// An average rating as `4.5 of 5`, or `not rated yet`.
fn stars(value: Value) -> String {
    match f64::try_from(value) {
        Ok(avg) => format!("{avg:.1} of 5"),
        Err(_) => "not rated yet".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use minijinja::value::Serde;

    use super::*;

    #[test]
    fn every_template_compiles() {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
    }

    #[test]
    fn money_and_stars_read_as_people_write_them() {
        let m = Value::from(Serde(
            serde_json::json!({"minor_units": 2598, "currency": "EUR"}),
        ));
        assert_eq!(money(m).unwrap(), "25.98 EUR");
        assert_eq!(stars(Value::from(4.5)), "4.5 of 5");
        assert_eq!(stars(Value::from(())), "not rated yet");
    }

    #[test]
    fn pages_escape_what_users_typed() {
        let page = render(
            "error.html",
            minijinja::context! { title => "x", message => "<script>alert(1)</script>" },
        )
        .unwrap();
        assert!(page.contains("&lt;script&gt;"), "{page}");
        assert!(!page.contains("<script>alert"), "{page}");
    }
}
