//! How to reach the customer: their email address and where to ship.
//! Both are validated at `PlaceOrder`; a value of these types is well-formed
//! wherever it travels (workflow inputs, emails, shipping requests).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an email address or a shipping address was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    /// The email address is not a plain `local@domain.tld` address.
    #[error("customer_email must be an address like name@example.com, got {0:?}")]
    BadEmail(String),
    /// A required address field is missing or blank.
    #[error("shipping_address.{0} is required")]
    Missing(&'static str),
    /// An address field is too long or contains control characters.
    #[error("shipping_address.{field} must be at most {max} printable characters")]
    BadField {
        /// Which field.
        field: &'static str,
        /// Its longest accepted length.
        max: usize,
    },
    /// The postal code has characters other than letters, digits, space and `-`.
    #[error("shipping_address.postal_code must be 1 to 16 letters, digits, spaces or '-'")]
    BadPostalCode,
    /// The country is not a two-letter ISO 3166-1 code.
    #[error("shipping_address.country must be a two-letter ISO 3166-1 code (e.g. DE), got {0:?}")]
    BadCountry(String),
}

fn shown(value: &str) -> String {
    value.chars().take(80).collect()
}

/// A customer's email address: `local@domain` with a dotted domain, no
/// spaces, quotes, angle brackets or control characters, at most 254 bytes.
/// Deliberately stricter than RFC 5321 (no quoted local parts, no IP
/// literals): what passes here is accepted by every SMTP server and cannot
/// inject headers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Parses and normalises (trims; lowercases the domain).
    pub fn parse(value: &str) -> Result<Self, ContactError> {
        let bad = || ContactError::BadEmail(shown(value));
        let value = value.trim();
        let (local, domain) = value.rsplit_once('@').ok_or_else(bad)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local.bytes().all(|b| {
                b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b) || b >= 0x80
            });
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = domain.len() <= 253
            && labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !local_ok || !domain_ok || value.len() > 254 {
            return Err(bad());
        }
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = ContactError;
    fn try_from(value: String) -> Result<Self, ContactError> {
        Self::parse(&value)
    }
}

impl From<EmailAddress> for String {
    fn from(e: EmailAddress) -> Self {
        e.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an order ships to, as the customer gave it at `PlaceOrder`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShippingAddress {
    /// Recipient's name.
    pub name: String,
    /// Street and number.
    pub line1: String,
    /// Flat, floor, company (may be empty).
    #[serde(default)]
    pub line2: String,
    /// City.
    pub city: String,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: String,
}

/// Longest name, street line or city.
pub const MAX_ADDRESS_FIELD: usize = 100;

fn text_field(field: &'static str, value: &str, required: bool) -> Result<String, ContactError> {
    let value = value.trim();
    if value.is_empty() {
        return if required {
            Err(ContactError::Missing(field))
        } else {
            Ok(String::new())
        };
    }
    if value.chars().count() > MAX_ADDRESS_FIELD || value.chars().any(char::is_control) {
        return Err(ContactError::BadField {
            field,
            max: MAX_ADDRESS_FIELD,
        });
    }
    Ok(value.to_string())
}

impl ShippingAddress {
    /// Validates and normalises (trims fields, upper-cases the country).
    pub fn validate(self) -> Result<Self, ContactError> {
        let postal_code = self.postal_code.trim().to_string();
        if postal_code.is_empty() {
            return Err(ContactError::Missing("postal_code"));
        }
        if postal_code.len() > 16
            || !postal_code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b' ' || b == b'-')
        {
            return Err(ContactError::BadPostalCode);
        }
        let country = self.country.trim().to_ascii_uppercase();
        if country.is_empty() {
            return Err(ContactError::Missing("country"));
        }
        // Shape only: which of the 249 codes a carrier serves is the
        // warehouse's decision, not the order API's.
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ContactError::BadCountry(shown(&self.country)));
        }
        Ok(Self {
            name: text_field("name", &self.name, true)?,
            line1: text_field("line1", &self.line1, true)?,
            line2: text_field("line2", &self.line2, false)?,
            city: text_field("city", &self.city, true)?,
            postal_code,
            country,
        })
    }

    /// The address as label lines (empty `line2` left out).
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![self.name.clone(), self.line1.clone()];
        if !self.line2.is_empty() {
            lines.push(self.line2.clone());
        }
        lines.push(format!("{} {}", self.postal_code, self.city));
        lines.push(self.country.clone());
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address() -> ShippingAddress {
        ShippingAddress {
            name: " Alice Liddell ".into(),
            line1: "1 Rabbit Hole".into(),
            line2: String::new(),
            city: "Oxford".into(),
            postal_code: "OX1 1AA".into(),
            country: "gb".into(),
        }
    }

    #[test]
    fn emails_are_checked_and_normalised() {
        let e = EmailAddress::parse(" Alice.B+shop@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "Alice.B+shop@example.com");
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "alice@localhost",
            "a b@example.com",
            "alice@exa mple.com",
            "<alice@example.com>",
            "alice@example.com\r\nBcc: x@y.z",
            "alice..b@example.com",
            "alice@-example.com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?}");
        }
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            serde_json::from_str::<EmailAddress>(&json).unwrap(),
            e,
            "round trip"
        );
        assert!(serde_json::from_str::<EmailAddress>("\"nope\"").is_err());
    }

    #[test]
    fn addresses_are_checked_and_normalised() {
        let a = address().validate().unwrap();
        assert_eq!(a.name, "Alice Liddell");
        assert_eq!(a.country, "GB");
        assert_eq!(
            a.lines(),
            ["Alice Liddell", "1 Rabbit Hole", "OX1 1AA Oxford", "GB"]
        );
        type Change = fn(&mut ShippingAddress);
        let cases: [(Change, ContactError); 5] = [
            (|a| a.name = "  ".into(), ContactError::Missing("name")),
            (|a| a.city = String::new(), ContactError::Missing("city")),
            (
                |a| a.line1 = "x".repeat(101),
                ContactError::BadField {
                    field: "line1",
                    max: MAX_ADDRESS_FIELD,
                },
            ),
            (
                |a| a.postal_code = "12;34".into(),
                ContactError::BadPostalCode,
            ),
            (
                |a| a.country = "GBR".into(),
                ContactError::BadCountry("GBR".into()),
            ),
        ];
        for (change, want) in cases {
            let mut a = address();
            change(&mut a);
            assert_eq!(a.validate().unwrap_err(), want);
        }
    }
}
