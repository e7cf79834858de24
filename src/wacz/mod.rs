//! WACZ 1.1.1, the web-archiving world's package (a zip of WARC files, a CDXJ index and a page
//! list, described by `datapackage.json`): snapshots leave vaultkeep as one ([`export`]) and
//! WARC or WACZ files made by other tools come in as snapshots ([`import`]). ReplayWeb.page
//! and pywb open what `export` writes.

pub mod export;
pub mod import;
mod package;
