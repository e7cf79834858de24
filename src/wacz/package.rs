//! The WACZ package: a zip whose members are listed, with their sha256 and size, in
//! `datapackage.json`, itself digested in `datapackage-digest.json`. The one place vaultkeep
//! uses the `zip` crate, so its next major version is a one-file change.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::Path;

use serde::Serialize;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::digest::{Digest, copy_hashing};

/// One member of the package, as `datapackage.json` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Resource {
    /// Its file name.
    pub name: String,
    /// Its path in the zip.
    pub path: String,
    /// `sha256:` and the hex digest of its bytes.
    pub hash: String,
    /// Its size.
    pub bytes: u64,
}

/// A package being written.
pub struct Package<W: Write + Seek> {
    zip: ZipWriter<W>,
    resources: Vec<Resource>,
}

impl<W: Write + Seek> Package<W> {
    /// A package written to `out`.
    pub fn new(out: W) -> Package<W> {
        Package {
            zip: ZipWriter::new(out),
            resources: Vec::new(),
        }
    }

    /// Adds a member from a reader. Members already compressed (`.gz`) are STORED, as the
    /// WACZ spec asks, so replay tools can read a record at its offset without inflating the
    /// whole file; others are deflated.
    pub fn add(&mut self, path: &str, reader: impl Read, size_hint: u64) -> io::Result<()> {
        let method = if path.ends_with(".gz") {
            CompressionMethod::Stored
        } else {
            CompressionMethod::Deflated
        };
        let options = SimpleFileOptions::default()
            .compression_method(method)
            .large_file(size_hint >= u32::MAX as u64);
        self.zip
            .start_file(path, options)
            .map_err(io::Error::other)?;
        let (digest, bytes) = copy_hashing(reader, &mut self.zip)?;
        self.resources.push(Resource {
            // Frictionless (data packages' validator) wants lower-case names.
            name: path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase(),
            path: path.to_string(),
            hash: format!("sha256:{digest}"),
            bytes,
        });
        Ok(())
    }

    /// Adds a member from a file.
    pub fn add_file(&mut self, path: &str, file: &Path) -> io::Result<()> {
        let f = File::open(file)?;
        let size = f.metadata()?.len();
        self.add(path, io::BufReader::new(f), size)
    }

    /// Writes `datapackage.json` (listing every member added) and `datapackage-digest.json`,
    /// and closes the zip.
    pub fn finish(mut self, meta: Meta) -> io::Result<W> {
        let package = DataPackage {
            profile: "data-package",
            wacz_version: "1.1.1",
            title: meta.title,
            created: meta.created,
            software: meta.software,
            main_page_url: meta.main_page_url,
            main_page_date: meta.main_page_date,
            resources: std::mem::take(&mut self.resources),
        };
        let json = serde_json::to_vec_pretty(&package).map_err(io::Error::other)?;
        let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
        self.zip
            .start_file("datapackage.json", options)
            .map_err(io::Error::other)?;
        self.zip.write_all(&json)?;
        let digest = serde_json::to_vec_pretty(&serde_json::json!({
            "path": "datapackage.json",
            "hash": format!("sha256:{}", Digest::of(&json)),
        }))
        .map_err(io::Error::other)?;
        self.zip
            .start_file("datapackage-digest.json", options)
            .map_err(io::Error::other)?;
        self.zip.write_all(&digest)?;
        self.zip.finish().map_err(io::Error::other)
    }
}

/// What `datapackage.json` says about the whole package.
#[derive(Debug, Clone)]
pub struct Meta {
    /// A title for people.
    pub title: String,
    /// When it was made (RFC 3339).
    pub created: String,
    /// `vaultkeep <version>`.
    pub software: String,
    /// The page ReplayWeb.page opens first.
    pub main_page_url: Option<String>,
    /// When that page was captured.
    pub main_page_date: Option<String>,
}

#[derive(Serialize)]
struct DataPackage {
    profile: &'static str,
    wacz_version: &'static str,
    title: String,
    created: String,
    software: String,
    #[serde(rename = "mainPageURL", skip_serializing_if = "Option::is_none")]
    main_page_url: Option<String>,
    #[serde(rename = "mainPageDate", skip_serializing_if = "Option::is_none")]
    main_page_date: Option<String>,
    resources: Vec<Resource>,
}
