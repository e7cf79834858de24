//! `vaultkeep archive ...`: verify and gc.

use super::output::{self, Exit, say};
use anyhow::Context as _;

use super::files::scan_options;
use std::io::Write;

use super::{ArchiveCommand, Context, ExportArgs};
use crate::links::Destination;
use crate::report::human_bytes;
use crate::scan::ScanOptions;
use crate::store::Store;
use crate::upkeep;
use crate::wacz::export::{self, Selection};
use crate::wacz::import;

pub(crate) fn run(ctx: &Context, command: &ArchiveCommand) -> anyhow::Result<Exit> {
    match command {
        ArchiveCommand::Verify { json } => verify(ctx, *json),
        ArchiveCommand::Gc { dry_run, json } => gc(ctx, *dry_run, *json),
        ArchiveCommand::Objects { json } => objects(ctx, *json),
        ArchiveCommand::Cat { object } => cat(ctx, object),
        ArchiveCommand::Unpack { json } => unpack(ctx, *json),
        ArchiveCommand::Snapshot(args) => super::snapshots::snapshot(ctx, args),
        ArchiveCommand::List { json } => super::snapshots::list(ctx, *json),
        ArchiveCommand::Show { id, json } => super::snapshots::show(ctx, id, *json),
        ArchiveCommand::Export(args) => export(ctx, args),
        ArchiveCommand::Import { files, json } => import(ctx, files, *json),
    }
}

fn verify(ctx: &Context, json: bool) -> anyhow::Result<Exit> {
    let store = Store::open(&ctx.archive)?;
    let report = upkeep::verify(&store)?;
    if json {
        output::json(&report)?;
    } else {
        say!(
            "Verified {} objects ({}) and {} records in {}.",
            report.objects,
            human_bytes(report.bytes),
            report.records,
            ctx.archive.display()
        );
        let problems = report
            .problems
            .iter()
            .take(50)
            .map(|p| format!("{}: {}", p.path, p.message));
        output::list("Problems", report.problems.len(), problems);
        let warnings = report
            .warnings
            .iter()
            .take(10)
            .map(|p| format!("{}: {}", p.path, p.message));
        output::list("Warnings", report.warnings.len(), warnings);
        if report.problems.is_empty() {
            say!("No damage found.");
        }
    }
    Ok(Exit::failed_if(!report.problems.is_empty()))
}

fn gc(ctx: &Context, dry_run: bool, json: bool) -> anyhow::Result<Exit> {
    let store = Store::open(&ctx.archive)?;
    // A dry run removes nothing, so it takes no lock and works beside the daemon (issue 9).
    let _lock = if dry_run {
        None
    } else {
        Some(store.lock("archive gc")?)
    };
    let report = upkeep::gc(&store, dry_run)?;
    if json {
        output::json(&report)?;
    } else {
        let verb = if dry_run { "Would remove" } else { "Removed" };
        say!(
            "{verb} {} unreferenced objects ({}) and {} stale temp files.",
            report.objects,
            human_bytes(report.bytes),
            report.temp_files
        );
        if report.packs_rewritten > 0 {
            let verb = if dry_run { "Would rewrite" } else { "Rewrote" };
            let merged = match report.packs_merged {
                0 => String::new(),
                n => format!(" ({n} of them merged for being small)"),
            };
            say!(
                "{verb} {} packs into one, without their unreferenced objects{merged}.",
                report.packs_rewritten
            );
        }
        for id in &report.finished_snapshots {
            say!("Recorded {id}, a snapshot an interrupted run left unfinished.");
        }
        if dry_run {
            output::list(
                "Would remove",
                report.removed.len(),
                report.removed.iter().take(50),
            );
        }
    }
    Ok(Exit::Success)
}

fn objects(ctx: &Context, json: bool) -> anyhow::Result<Exit> {
    let store = Store::open(&ctx.archive)?;
    let listed = upkeep::list_objects(&store)?;
    if json {
        output::json(&listed)?;
    } else {
        for l in &listed {
            say!("{}  {:>10}  {}", l.sha256, l.size, l.at);
        }
    }
    Ok(Exit::Success)
}

fn cat(ctx: &Context, name: &str) -> anyhow::Result<Exit> {
    let store = Store::open(&ctx.archive)?;
    let (_, bytes) = upkeep::cat(&store, name)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&bytes)?;
    out.flush()?;
    Ok(Exit::Success)
}

fn unpack(ctx: &Context, json: bool) -> anyhow::Result<Exit> {
    let store = Store::open(&ctx.archive)?;
    let _lock = store.lock("archive unpack")?;
    let report = upkeep::unpack(&store)?;
    if json {
        output::json(&report)?;
    } else {
        say!(
            "Wrote {} packed objects ({}) as files of their own and removed {} packs.",
            report.objects,
            human_bytes(report.bytes),
            report.packs
        );
    }
    Ok(Exit::Success)
}

fn export(ctx: &Context, args: &ExportArgs) -> anyhow::Result<Exit> {
    let store = Store::open(&ctx.archive)?;
    let mut selection = Selection {
        ids: args.snapshots.clone(),
        urls: args.url.clone(),
        all: args.all,
    };
    if !args.note.is_empty() {
        // A preview scan: read the notes as they are now, record nothing.
        crate::scan::check_vault(&ctx.vault)?;
        let mut options = ScanOptions {
            record: false,
            ..scan_options(ctx)
        };
        super::files::ask_the_daemon(&store, &mut options);
        let view = crate::scan::scan(&ctx.vault, &store, &options)?.view()?;
        for note in &args.note {
            let facts = view.note(note.trim_start_matches("./")).with_context(|| {
                format!("{note} is not a note of the vault {}", ctx.vault.display())
            })?;
            for link in &facts.links {
                if let Destination::External(url) = link.destination() {
                    selection.urls.push(url.to_string());
                }
            }
        }
    }
    if selection.ids.is_empty() && selection.urls.is_empty() && !selection.all {
        anyhow::bail!("nothing to export: give snapshot ids, --url, --note or --all");
    }
    let snapshots = export::select(&store, &selection).map_err(anyhow::Error::msg)?;
    let report = export::export(&store, &snapshots, &args.wacz, &ctx.config.fetch.user_agent)?;
    if args.json {
        output::json(&report)?;
    } else {
        say!(
            "Wrote {} ({}): {} snapshots, {} captures, {} pages, {} WARC records ({} revisits).",
            report.file.display(),
            human_bytes(report.bytes),
            report.snapshots.len(),
            report.captures,
            report.pages,
            report.records,
            report.revisits
        );
    }
    Ok(Exit::Success)
}

fn import(ctx: &Context, files: &[std::path::PathBuf], json: bool) -> anyhow::Result<Exit> {
    let (store, _lock) = Store::open_for_writing(&ctx.archive, "archive import")?;
    let mut reports = Vec::new();
    let mut failed = false;
    for file in files {
        match import::import(&store, file) {
            Ok(r) => {
                failed |= !r.skipped.is_empty();
                reports.push(r);
            }
            Err(import::ImportError::Store(e)) => return Err(e.into()),
            Err(e) => {
                failed = true;
                eprintln!("vaultkeep: {e}");
            }
        }
    }
    if json {
        output::json(&serde_json::json!({ "files": reports }))?;
    } else {
        for r in &reports {
            say!(
                "{}: {} snapshots ({}), {} captures, {} of new bodies{}",
                r.file.display(),
                r.snapshots.len(),
                r.snapshots.join(", "),
                r.captures,
                human_bytes(r.new_bytes),
                if r.already_held.is_empty() {
                    String::new()
                } else {
                    format!("; already held: {}", r.already_held.join(", "))
                }
            );
            output::list(
                "Skipped",
                r.skipped.len(),
                r.skipped
                    .iter()
                    .take(20)
                    .map(|p| format!("{}: {}", p.path, p.message)),
            );
        }
    }
    Ok(Exit::failed_if(failed))
}
