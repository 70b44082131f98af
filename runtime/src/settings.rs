//! The one settings loader of the shop's processes, on `figment`: a
//! process's defaults, then an optional TOML file, then `ORDERSAGA_*`
//! environment variables, later layers winning.
//!
//! Every setting has one flat name: `ORDERSAGA_RELAY_POLL_MS` in the
//! environment is `relay_poll_ms` in the file. The file is
//! `$ORDERSAGA_CONFIG` (which must then exist) or else `ordersaga.toml` in
//! the working directory, if there is one. An empty variable counts as
//! unset. Each process describes what it reads as a `Deserialize` struct of
//! `Option` fields named that way, and applies the ones present onto its
//! defaults; values arrive as text from the environment and are converted
//! leniently (`"42"` for a number, `"yes"`/`"1"` for a flag).
//!
//! A value that does not fit is a [`SettingsError`] naming the variable (or
//! the file and key) and what was expected; it never repeats the value, so
//! a mistyped secret does not reach a log.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};

/// The prefix of every shop variable.
pub const PREFIX: &str = "ORDERSAGA_";
/// The variable naming the settings file.
pub const CONFIG_VAR: &str = "ORDERSAGA_CONFIG";
/// The settings file read when [`CONFIG_VAR`] is unset, if it exists.
pub const DEFAULT_FILE: &str = "ordersaga.toml";

/// The provider name of the environment layer, to tell it apart in errors.
const ENVIRONMENT: &str = "environment";

/// Why the settings could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// The settings file is missing (when named by [`CONFIG_VAR`]) or is
    /// not TOML.
    #[error("settings file {}: {problem}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong (for TOML errors: the position only, as the line
        /// itself may hold a secret).
        problem: String,
    },
    /// A value that does not fit its setting.
    #[error("{name}: {problem}")]
    Invalid {
        /// Where it came from: `ORDERSAGA_RELAY_BATCH`, or
        /// `relay_batch in ordersaga.toml`.
        name: String,
        /// What was expected.
        problem: String,
    },
}

/// The layers above a process's defaults: a file and variables.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    file: Option<SettingsFile>,
    vars: Dict,
}

#[derive(Debug, Clone)]
struct SettingsFile {
    path: PathBuf,
    /// Named explicitly, so its absence is an error.
    required: bool,
}

impl Sources {
    /// This process's: [`CONFIG_VAR`] or [`DEFAULT_FILE`], and its
    /// environment.
    pub fn from_process() -> Self {
        // vars_os: a variable that is not UTF-8 is not one of ours and must
        // not make the process panic.
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        let sources = Self::default().vars(vars);
        match std::env::var(CONFIG_VAR).ok().filter(|p| !p.is_empty()) {
            Some(path) => sources.file(path),
            None => Self {
                file: Some(SettingsFile {
                    path: PathBuf::from(DEFAULT_FILE),
                    required: false,
                }),
                ..sources
            },
        }
    }

    /// Reads this file (it must exist) below the variables.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(SettingsFile {
            path: path.into(),
            required: true,
        });
        self
    }

    /// Takes these variables: the `ORDERSAGA_*` ones with a value.
    pub fn vars<K, V>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: AsRef<str>,
        V: Into<String>,
    {
        for (name, value) in vars {
            let Some(key) = name.as_ref().strip_prefix(PREFIX) else {
                continue;
            };
            let value = value.into();
            if !key.is_empty() && !value.is_empty() {
                self.vars
                    .insert(key.to_ascii_lowercase(), Value::from(value));
            }
        }
        self
    }

    /// Deserializes `T` from the file overlaid with the variables.
    pub fn load<T: DeserializeOwned>(&self) -> Result<T, SettingsError> {
        let mut figment = Figment::new();
        if let Some(file) = &self.file {
            if file.path.is_file() {
                figment = figment.merge(Toml::file_exact(&file.path));
            } else if file.required {
                return Err(SettingsError::File {
                    path: file.path.clone(),
                    problem: "no such file".to_string(),
                });
            }
        }
        figment
            .merge(Variables(self.vars.clone()))
            .extract_lossy()
            .map_err(render)
    }
}

/// Loads `T` from this process's [`Sources`].
pub fn load<T: DeserializeOwned>() -> Result<T, SettingsError> {
    Sources::from_process().load()
}

/// A process's settings: its defaults, overlaid with what the [`Sources`]
/// give.
pub trait Load: Default {
    /// What the sources may set: `Option` fields named like the variables
    /// without the prefix.
    type Given: DeserializeOwned;

    /// Applies what was given onto `self`.
    fn apply(&mut self, given: Self::Given);

    /// Refuses settings that each fit but not together (e.g. a timeout
    /// longer than the lease it must fit in). None by default.
    fn check(&self) -> Result<(), SettingsError> {
        Ok(())
    }

    /// The defaults overridden by what `sources` give, checked.
    fn from_sources(sources: &Sources) -> Result<Self, SettingsError> {
        let mut settings = Self::default();
        settings.apply(sources.load()?);
        settings.check()?;
        Ok(settings)
    }

    /// This process's settings ([`Sources::from_process`]).
    fn load() -> Result<Self, SettingsError> {
        Self::from_sources(&Sources::from_process())
    }
}

/// The environment layer: every value is text, as the process got it
/// (figment's own `Env` would read `[a]` as a list and `123` as a number,
/// which a password may well be).
struct Variables(Dict);

impl Provider for Variables {
    fn metadata(&self) -> Metadata {
        Metadata::named(ENVIRONMENT)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.0.clone()))
    }
}

/// Turns figment's error into ours, naming the variable the way the
/// operator wrote it and leaving the value out.
fn render(error: figment::Error) -> SettingsError {
    let key = error.path.join(".");
    let problem = match &error.kind {
        figment::error::Kind::InvalidType(_, expected)
        | figment::error::Kind::InvalidValue(_, expected) => format!("expected {expected}"),
        figment::error::Kind::UnknownVariant(_, expected) => {
            format!("expected one of: {}", expected.join(", "))
        }
        other => other.to_string(),
    };
    let file = error
        .metadata
        .as_ref()
        .and_then(|m| m.source.as_ref())
        .and_then(|s| s.file_path())
        .map(Path::to_path_buf);
    let from_environment = error
        .metadata
        .as_ref()
        .is_some_and(|m| m.name == ENVIRONMENT);
    match file {
        // A syntax error: toml's message quotes the offending line.
        Some(path) if key.is_empty() => SettingsError::File {
            path,
            problem: problem.lines().next().unwrap_or_default().to_string(),
        },
        Some(path) => SettingsError::Invalid {
            name: format!("{key} in {}", path.display()),
            problem,
        },
        None if from_environment => SettingsError::Invalid {
            name: format!("{PREFIX}{}", key.to_ascii_uppercase()),
            problem,
        },
        None => SettingsError::Invalid { name: key, problem },
    }
}

/// A setting read from its text form with `FromStr`: an address, a
/// comma-separated list, an enum with aliases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed<T>(pub T);

impl<'de, T> Deserialize<'de> for Parsed<T>
where
    T: FromStr,
    T::Err: Display,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map(Parsed).map_err(D::Error::custom)
    }
}

/// Overwrites `into` with `value` when the setting was given.
pub fn set<T>(into: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *into = value;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::secret::Secret;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Simulated,
        Checkout,
    }

    #[derive(Debug, Default, Deserialize)]
    struct Vars {
        database_url: Option<String>,
        relay_batch: Option<u32>,
        relay_poll_ms: Option<u64>,
        seed_demo: Option<bool>,
        smtp_password: Option<Secret>,
        payment_mode: Option<Mode>,
        metrics_addr: Option<Parsed<std::net::SocketAddr>>,
    }

    /// What a process does with its `Vars`: defaults, then what was given.
    #[derive(Debug, PartialEq)]
    struct Settings {
        database_url: String,
        relay_batch: u32,
        relay_poll: Duration,
        seed_demo: bool,
    }

    impl Default for Settings {
        fn default() -> Self {
            Self {
                database_url: "sqlite://default".into(),
                relay_batch: 32,
                relay_poll: Duration::from_millis(100),
                seed_demo: false,
            }
        }
    }

    impl Load for Settings {
        type Given = Vars;
        fn apply(&mut self, vars: Vars) {
            set(&mut self.database_url, vars.database_url);
            set(&mut self.relay_batch, vars.relay_batch);
            let poll = vars.relay_poll_ms.map(Duration::from_millis);
            set(&mut self.relay_poll, poll);
            set(&mut self.seed_demo, vars.seed_demo);
        }
    }

    fn settings(vars: Vars) -> Settings {
        let mut s = Settings::default();
        s.apply(vars);
        s
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn nothing_given_keeps_the_defaults() {
        let vars: Vars = Sources::default().load().unwrap();
        assert_eq!(settings(vars), settings(Vars::default()));
        // Other programs' variables and empty ones are not ours.
        let vars: Vars = Sources::default()
            .vars([
                ("PATH", "/bin"),
                ("ORDERSAGA_DATABASE_URL", ""),
                ("ORDERSAGA_SOMETHING_ELSE", "x"),
            ])
            .load()
            .unwrap();
        assert_eq!(vars.database_url, None);
    }

    #[test]
    fn the_file_overrides_defaults_and_variables_override_the_file() {
        let f = file("database_url = \"postgres://file\"\nrelay_batch = 8\nseed_demo = true\n");
        let from_file = Settings::from_sources(&Sources::default().file(f.path())).unwrap();
        assert_eq!(from_file.database_url, "postgres://file");
        assert_eq!(from_file.relay_batch, 8);
        assert!(from_file.seed_demo);
        assert_eq!(from_file.relay_poll, Duration::from_millis(100));

        let both = Settings::from_sources(&Sources::default().file(f.path()).vars([
            ("ORDERSAGA_RELAY_BATCH", "64"),
            ("ORDERSAGA_RELAY_POLL_MS", "250"),
            ("ORDERSAGA_SEED_DEMO", "no"),
        ]))
        .unwrap();
        assert_eq!(both.database_url, "postgres://file");
        assert_eq!(both.relay_batch, 64);
        assert_eq!(both.relay_poll, Duration::from_millis(250));
        assert!(!both.seed_demo);
    }

    #[test]
    fn text_values_convert_and_secrets_stay_text() {
        let vars: Vars = Sources::default()
            .vars([
                ("ORDERSAGA_SEED_DEMO", "1"),
                ("ORDERSAGA_SMTP_PASSWORD", "[12345]"),
                ("ORDERSAGA_PAYMENT_MODE", "checkout"),
                ("ORDERSAGA_METRICS_ADDR", "127.0.0.1:9464"),
            ])
            .load()
            .unwrap();
        assert_eq!(vars.seed_demo, Some(true));
        assert_eq!(vars.smtp_password.unwrap().expose(), "[12345]");
        assert!(matches!(vars.payment_mode, Some(Mode::Checkout)));
        assert_eq!(
            vars.metrics_addr.unwrap().0,
            "127.0.0.1:9464".parse().unwrap()
        );
        assert!(!matches!(Mode::Simulated, Mode::Checkout));
    }

    #[test]
    fn a_bad_value_names_its_variable_and_not_the_value() {
        let err = Sources::default()
            .vars([("ORDERSAGA_RELAY_BATCH", "many-secret-words")])
            .load::<Vars>()
            .unwrap_err();
        let SettingsError::Invalid { name, problem } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(name, "ORDERSAGA_RELAY_BATCH");
        assert!(problem.contains("u32"), "{problem}");
        assert!(!err.to_string().contains("many-secret-words"), "{err}");

        let err = Sources::default()
            .vars([("ORDERSAGA_PAYMENT_MODE", "cash")])
            .load::<Vars>()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "ORDERSAGA_PAYMENT_MODE: expected one of: simulated, checkout"
        );

        let err = Sources::default()
            .vars([("ORDERSAGA_METRICS_ADDR", "nowhere")])
            .load::<Vars>()
            .unwrap_err();
        assert!(
            err.to_string().starts_with("ORDERSAGA_METRICS_ADDR: "),
            "{err}"
        );
    }

    #[test]
    fn a_bad_file_names_the_file_and_key_and_never_quotes_it() {
        let f = file("relay_batch = \"lots\"\n");
        let err = Sources::default()
            .file(f.path())
            .load::<Vars>()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("relay_batch in {}: expected u32", f.path().display())
        );

        let f = file("smtp_password = hunter2 oops\n");
        let err = Sources::default()
            .file(f.path())
            .load::<Vars>()
            .unwrap_err();
        assert!(matches!(err, SettingsError::File { .. }), "{err:?}");
        assert!(!err.to_string().contains("hunter2"), "{err}");

        let err = Sources::default()
            .file("/nonexistent/ordersaga.toml")
            .load::<Vars>()
            .unwrap_err();
        assert!(matches!(err, SettingsError::File { .. }), "{err:?}");
    }
}
