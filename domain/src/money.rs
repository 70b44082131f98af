//! Money as integer minor units plus an ISO 4217 currency: never floats.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an amount or currency is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The currency is not an ISO 4217 code with minor units (codes such
    /// as `XAU`, gold, have none and cannot be priced in minor units).
    #[error("currency must be an ISO 4217 code with minor units, got {0:?}")]
    BadCurrency(String),
    /// More than the payment gateway takes ([`GATEWAY_MAX_MAJOR_UNITS`]).
    #[error(
        "{0} is more than the payment gateway takes (at most {GATEWAY_MAX_MAJOR_UNITS} units of a currency)"
    )]
    OverGatewayLimit(Money),
    /// Adding amounts of different currencies.
    #[error("cannot add {0} to {1}")]
    CurrencyMismatch(Currency, Currency),
    /// The sum does not fit in 63 bits of minor units.
    #[error("amount overflows")]
    Overflow,
}

/// An ISO 4217 currency code such as `EUR`, with its minor-unit exponent
/// (EUR 2, JPY 0, BHD 3) from the `iso_currency` crate's copy of the
/// standard's table. Serialised as the bare code, as before exponents were
/// kept, so recorded workflow payloads read back unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

impl Currency {
    /// Accepts an ISO 4217 code (upper case) that has minor units.
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        let bad = || MoneyError::BadCurrency(code.chars().take(16).collect());
        let iso = iso_currency::Currency::from_code(code).ok_or_else(bad)?;
        let exponent = iso
            .exponent()
            .and_then(|e| u8::try_from(e).ok())
            .ok_or_else(bad)?;
        let code = code.as_bytes().try_into().map_err(|_| bad())?;
        Ok(Self { code, exponent })
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Only ISO codes (ASCII upper-case letters) get in through `parse`.
        std::str::from_utf8(&self.code).unwrap_or("XXX")
    }

    /// Decimal places of its minor unit: 2 for EUR, 0 for JPY, 3 for BHD.
    pub fn exponent(&self) -> u32 {
        u32::from(self.exponent)
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;
    fn try_from(value: String) -> Result<Self, MoneyError> {
        Self::parse(&value)
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> String {
        value.as_str().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The largest amount the payment gateway takes, in major units of any
/// currency: PayPal's `amount.value` has at most 10 digits before the
/// decimal point (the payments sandbox refuses more the same way). Prices
/// and order totals above it are refused at the door, not at the capture.
pub const GATEWAY_MAX_MAJOR_UNITS: u64 = 9_999_999_999;

/// An amount in minor units (cents) of a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    /// Minor units, e.g. 1999 for 19.99 EUR.
    pub minor: i64,
    /// The currency of `minor`.
    pub currency: Currency,
}

impl Money {
    /// An amount of `minor` units of `currency`.
    pub fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    /// `self * quantity`, checked.
    pub fn times(self, quantity: i64) -> Result<Self, MoneyError> {
        let minor = self
            .minor
            .checked_mul(quantity)
            .ok_or(MoneyError::Overflow)?;
        Ok(Self::new(minor, self.currency))
    }

    /// `self + other`, checked; both must be in the same currency.
    pub fn plus(self, other: Self) -> Result<Self, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(other.currency, self.currency));
        }
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Self::new(minor, self.currency))
    }
}

impl Money {
    /// The amount as a decimal string with the currency's exponent, as
    /// payment gateways take it: EUR 1000 -> `10.00`, JPY 1000 -> `1000`,
    /// BHD 1000 -> `1.000`.
    pub fn to_decimal(&self) -> String {
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        let places = self.currency.exponent();
        if places == 0 {
            return format!("{sign}{abs}");
        }
        let unit = 10u64.pow(places);
        let width = places as usize;
        format!("{sign}{}.{:0width$}", abs / unit, abs % unit)
    }

    /// Whether the payment gateway takes this amount: at most
    /// [`GATEWAY_MAX_MAJOR_UNITS`] whole units of its currency.
    pub fn check_gateway_limit(&self) -> Result<(), MoneyError> {
        let whole = self.minor.unsigned_abs() / 10u64.pow(self.currency.exponent());
        if whole > GATEWAY_MAX_MAJOR_UNITS {
            return Err(MoneyError::OverGatewayLimit(*self));
        }
        Ok(())
    }
}

impl fmt::Display for Money {
    /// `49.99 EUR`, `1000 JPY`: decimals by the currency's exponent.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal(), self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_is_an_iso_code_with_minor_units() {
        assert!(Currency::parse("EUR").is_ok());
        assert!(Currency::parse("eur").is_err());
        assert!(Currency::parse("EURO").is_err());
        assert!(Currency::parse("ABC").is_err(), "three capitals, not ISO");
        assert!(Currency::parse("XAU").is_err(), "gold has no minor unit");
        assert_eq!(Currency::parse("JPY").unwrap().exponent(), 0);
        assert_eq!(Currency::parse("BHD").unwrap().exponent(), 3);
        let eur: Currency = serde_json::from_str("\"EUR\"").unwrap();
        assert_eq!(serde_json::to_string(&eur).unwrap(), "\"EUR\"");
        assert!(serde_json::from_str::<Currency>("\"ABC\"").is_err());
    }

    #[test]
    fn amounts_are_rendered_by_exponent() {
        let c = |code| Currency::parse(code).unwrap();
        for (code, minor, text) in [
            ("JPY", 1000, "1000"),
            ("EUR", 1000, "10.00"),
            ("BHD", 1000, "1.000"),
            ("EUR", 5, "0.05"),
            ("EUR", -5, "-0.05"),
        ] {
            let m = Money::new(minor, c(code));
            assert_eq!(m.to_decimal(), text, "{code} {minor}");
        }
    }

    #[test]
    fn the_gateway_limit_counts_whole_units() {
        let c = |code| Currency::parse(code).unwrap();
        let max = i64::try_from(GATEWAY_MAX_MAJOR_UNITS).unwrap();
        assert!(
            Money::new(max * 100 + 99, c("EUR"))
                .check_gateway_limit()
                .is_ok()
        );
        assert!(
            Money::new(1_000_000_000_000, c("EUR"))
                .check_gateway_limit()
                .is_err()
        );
        assert!(Money::new(max, c("JPY")).check_gateway_limit().is_ok());
        assert!(Money::new(max + 1, c("JPY")).check_gateway_limit().is_err());
    }

    #[test]
    fn arithmetic_is_checked_and_same_currency() {
        let eur = Currency::parse("EUR").unwrap();
        let usd = Currency::parse("USD").unwrap();
        let a = Money::new(1999, eur);
        assert_eq!(a.times(3).unwrap().minor, 5997);
        assert_eq!(a.plus(a).unwrap().minor, 3998);
        assert!(a.plus(Money::new(1, usd)).is_err());
        assert_eq!(
            Money::new(i64::MAX, eur).times(2),
            Err(MoneyError::Overflow)
        );
        assert_eq!(a.to_string(), "19.99 EUR");
        assert_eq!(Money::new(-5, eur).to_string(), "-0.05 EUR");
    }
}
