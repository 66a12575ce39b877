//! The configuration error type, and [`Origin`]: where a bad value came from.

use std::fmt;
use std::path::PathBuf;

/// Where a value was written, so an error can send the operator to the right place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The definition table's default.
    Default,
    /// The TOML config file.
    File(PathBuf),
    /// An environment variable, by its name (`STRATA_LOG_DIRS`).
    Env(String),
    /// A `--set name=value` command-line flag.
    Cli,
    /// A dynamic broker config (IncrementalAlterConfigs on the broker resource).
    Dynamic,
    /// A per-topic config override.
    TopicOverride,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => write!(f, "the built-in default"),
            Origin::File(path) => write!(f, "config file {}", path.display()),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Cli => write!(f, "command-line flag --set"),
            Origin::Dynamic => write!(f, "dynamic broker config"),
            Origin::TopicOverride => write!(f, "topic config override"),
        }
    }
}

/// Everything that can be wrong with a configuration.
///
/// (The brief called the `origin` fields `source`; thiserror reserves that name
/// for the underlying error, hence `origin`.)
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown config `{name}` in {origin}{hint}; see docs/configuration.md for every name")]
    Unknown {
        name: String,
        origin: Origin,
        hint: String,
    },

    #[error("invalid value `{value}` for `{name}` in {origin}: {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
        origin: Origin,
    },

    #[error(
        "`{name}` cannot be updated dynamically; set it in the config file, \
         as an environment variable or with --set, and restart the broker"
    )]
    NotDynamic { name: String },

    #[error(
        "`{name}` is set twice in {origin} (once as a quoted key, once in a table?); keep one"
    )]
    Duplicate { name: String, origin: Origin },

    #[error("cannot read config file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("config file {path} is not valid TOML: {message}")]
    Parse { path: PathBuf, message: String },
}

impl ConfigError {
    /// The config name the error is about, if it is about one.
    pub fn config_name(&self) -> Option<&str> {
        match self {
            ConfigError::Unknown { name, .. }
            | ConfigError::Invalid { name, .. }
            | ConfigError::NotDynamic { name }
            | ConfigError::Duplicate { name, .. } => Some(name),
            ConfigError::Io { .. } | ConfigError::Parse { .. } => None,
        }
    }
}
