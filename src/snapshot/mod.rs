//! Snapshots of web pages: capture a page with its requisites (or a bounded same-site crawl)
//! into the archive, and build an offline copy that opens from the file system.

pub mod css;
pub mod html;
pub mod paths;
