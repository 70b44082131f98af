//! [`Secret`]: a configuration value (password, client secret, webhook
//! secret) that cannot end up in a log by accident.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A string that prints as `[redacted]`. It has no `Display`, so neither
/// `{}` nor `{:?}` (nor a `Debug` derive of a settings struct) shows it;
/// [`Secret::expose`] is the one, greppable, way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that must send it (an HTTP header,
    /// an SMTP login, an HMAC key).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_part_of_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        #[derive(Debug)]
        #[allow(dead_code)] // read by the Debug derive only
        struct Settings {
            password: Option<Secret>,
        }
        let printed = format!(
            "{:?}",
            Settings {
                password: Some(secret.clone())
            }
        );
        assert!(!printed.contains("hunter2"), "{printed}");
        assert_eq!(secret.expose(), "hunter2");
    }
}
