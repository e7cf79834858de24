//! `vaultkeep.toml`: settings that outlive one command line. Command-line flags win.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The configuration file, every key optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The vault folder (default `./vault`).
    pub vault: Option<PathBuf>,
    /// The archive folder (default `./archive`).
    pub archive: Option<PathBuf>,
    /// `[scan]` settings.
    #[serde(default)]
    pub scan: ScanConfig,
    /// `[fetch]` settings: how vaultkeep talks to web servers.
    #[serde(default)]
    pub fetch: crate::fetch::FetchConfig,
    /// `[snapshot]` settings: what a snapshot of a note captures.
    #[serde(default)]
    pub snapshot: crate::snapshot::plan::SnapshotConfig,
    /// `[links]` settings: when a link counts as dead.
    #[serde(default)]
    pub links: crate::linkcheck::LinksConfig,
    /// `[watch]` settings: the daemon.
    #[serde(default)]
    pub watch: crate::watch::WatchConfig,
}

/// `[scan]`
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanConfig {
    /// Notes larger than this many bytes are recorded but not read for links (default 10 MiB).
    pub max_note_bytes: Option<u64>,
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read the config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("invalid config file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said, with line and column.
        message: String,
    },
}

/// The default config file, looked for in the working folder.
pub const DEFAULT_FILE: &str = "vaultkeep.toml";

impl Config {
    /// Loads `path`, or `./vaultkeep.toml` if it exists, or the defaults. Relative paths in
    /// the file are taken relative to the file's folder.
    pub fn load(path: Option<&Path>) -> Result<Config, Error> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None if Path::new(DEFAULT_FILE).is_file() => PathBuf::from(DEFAULT_FILE),
            None => return Ok(Config::default()),
        };
        let text = fs::read_to_string(&path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| Error::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        for p in [&mut config.vault, &mut config.archive]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_relative_to_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vaultkeep.toml");
        fs::write(&file, "vault = \"notes\"\n[scan]\nmax_note_bytes = 100\n").unwrap();
        let c = Config::load(Some(&file)).unwrap();
        assert_eq!(c.vault.unwrap(), dir.path().join("notes"));
        assert_eq!(c.scan.max_note_bytes, Some(100));
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("v.toml");
        fs::write(&file, "valt = \"x\"\n").unwrap();
        let e = Config::load(Some(&file)).unwrap_err().to_string();
        assert!(e.contains("v.toml") && e.contains("valt"), "{e}");
    }
}
