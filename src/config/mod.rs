//! `vaultkeep.toml`: settings that outlive one command line. Command-line flags win. Every
//! value is typed when the file loads (durations, sizes, URLs), so a mistake is reported then,
//! naming the key and the file.

mod sections;

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use sections::{
    BrowserConfig, BrowserUse, FetchConfig, LinksConfig, RemoteConfig, ScanConfig, SnapshotConfig,
    WatchConfig,
};

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
    pub fetch: FetchConfig,
    /// `[snapshot]` settings: what a snapshot of a note captures.
    #[serde(default)]
    pub snapshot: SnapshotConfig,
    /// `[links]` settings: when a link counts as dead.
    #[serde(default)]
    pub links: LinksConfig,
    /// `[watch]` settings: the daemon.
    #[serde(default)]
    pub watch: WatchConfig,
    /// `[browser]` settings: headless Chromium.
    #[serde(default)]
    pub browser: BrowserConfig,
    /// `[remote]` settings: the shared archive on S3-compatible storage.
    #[serde(default)]
    pub remote: RemoteConfig,
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read the config file {path}")]
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
        // A bare name (`chromium`) is looked up on PATH; a relative path is the file's.
        if let Some(p) = &mut config.browser.path
            && p.is_relative()
            && p.components().count() > 1
        {
            *p = base.join(&*p);
        }
        Ok(config)
    }
}

/// A length of time written the way people write it (`30s`, `15m`, `12h`, `1d`, `2w`,
/// `1h30m`, or a bare number of seconds), checked when the config or the command line is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Period(pub std::time::Duration);

impl Period {
    /// A period of whole seconds.
    pub const fn secs(secs: u64) -> Period {
        Period(std::time::Duration::from_secs(secs))
    }

    /// The standard duration.
    pub fn get(self) -> std::time::Duration {
        self.0
    }

    /// `None` for zero, which settings use to mean "never".
    pub fn nonzero(self) -> Option<std::time::Duration> {
        (!self.0.is_zero()).then_some(self.0)
    }
}

impl std::str::FromStr for Period {
    type Err = String;

    fn from_str(text: &str) -> Result<Period, String> {
        let t = text.trim();
        if let Ok(secs) = t.parse::<u64>() {
            return Ok(Period::secs(secs));
        }
        let span: jiff::Span = t.parse().map_err(|e| {
            format!("not a duration: {text:?} (write it like 30s, 12h, 1d, 2w): {e}")
        })?;
        let d = span
            .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
            .map_err(|e| format!("not a duration: {text:?}: {e}"))?;
        std::time::Duration::try_from(d)
            .map(Period)
            .map_err(|_| format!("not a duration: {text:?} is negative"))
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = jiff::SignedDuration::try_from(self.0).unwrap_or(jiff::SignedDuration::MAX);
        write!(f, "{d:#}")
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Period, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(s) => Ok(Period::secs(s)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A number of bytes, written as a number or the way people write sizes (`50 MiB`, `1 GiB`,
/// `10MB`), checked when the config loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

impl Size {
    /// The number of bytes.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::report::human_bytes(self.0))
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(n) => Ok(Size(n)),
            Raw::Text(t) => t
                .trim()
                .parse::<bytesize::ByteSize>()
                .map(|b| Size(b.as_u64()))
                .map_err(|e| {
                    serde::de::Error::custom(format!(
                        "not a size: {t:?} (write it like 10485760, 50 MiB or 1 GiB): {e}"
                    ))
                }),
        }
    }
}

impl serde::Serialize for Period {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
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
        assert_eq!(c.scan.max_note_bytes, Size(100));
    }

    #[test]
    fn periods_read_like_people_write_them() {
        let p = |t: &str| t.parse::<Period>().map(Period::get);
        assert_eq!(p("1d").unwrap().as_secs(), 86_400);
        assert_eq!(p("12h").unwrap().as_secs(), 43_200);
        assert_eq!(p("1h30m").unwrap().as_secs(), 5_400);
        assert_eq!(p("2w").unwrap().as_secs(), 1_209_600);
        assert_eq!(p("90").unwrap().as_secs(), 90);
        assert_eq!(p("0").unwrap().as_secs(), 0);
        for bad in ["soon", "-1d", "99999999999w", "1e20"] {
            assert!(p(bad).is_err(), "{bad}");
        }
        assert_eq!(Period::secs(86_400).to_string(), "24h");
    }

    #[test]
    fn a_bad_duration_is_refused_at_load_naming_the_key_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("v.toml");
        fs::write(&file, "[links]\nmin_gap = \"soon\"\n").unwrap();
        let e = Config::load(Some(&file)).unwrap_err().to_string();
        assert!(
            e.contains("v.toml") && e.contains("min_gap") && e.contains("soon"),
            "{e}"
        );
    }

    #[test]
    fn sizes_and_urls_are_typed_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("v.toml");
        fs::write(
            &file,
            "[fetch]\nmax_bytes = \"2 MiB\"\nproxy = \"http://127.0.0.1:3128\"\n[snapshot]\nmax_total_bytes = 1000\n",
        )
        .unwrap();
        let c = Config::load(Some(&file)).unwrap();
        assert_eq!(c.fetch.max_bytes, Size(2 << 20));
        assert_eq!(c.fetch.proxy.unwrap().port(), Some(3128));
        assert_eq!(c.snapshot.max_total_bytes, Size(1000));
        fs::write(&file, "[fetch]\nmax_bytes = \"lots\"\n").unwrap();
        let e = Config::load(Some(&file)).unwrap_err().to_string();
        assert!(e.contains("max_bytes") && e.contains("lots"), "{e}");
        fs::write(&file, "[fetch]\nproxy = \"not a url\"\n").unwrap();
        let e = Config::load(Some(&file)).unwrap_err().to_string();
        assert!(e.contains("proxy"), "{e}");
        assert_eq!(Size(512).to_string(), "512 B");
        assert_eq!(Size(30 * 1024 * 1024).to_string(), "30.0 MiB");
    }

    #[test]
    fn the_readme_example_config_loads() {
        let readme = include_str!("../../README.md");
        let section = readme.split("## Configuration").nth(1).unwrap();
        let example = section
            .split("```toml\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vaultkeep.toml");
        fs::write(&file, example).unwrap();
        let c = Config::load(Some(&file)).unwrap();
        assert_eq!(c.scan.max_note_bytes, Size(10 << 20));
        assert_eq!(c.links.min_gap, Period::secs(86_400));
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
