//! `vaultkeep archive ...`: verify and gc.

use super::output::{self, Exit, say};
use super::{ArchiveCommand, Context};
use crate::report::human_bytes;
use crate::store::Store;
use crate::upkeep;

pub(crate) fn run(ctx: &Context, command: &ArchiveCommand) -> anyhow::Result<Exit> {
    match command {
        ArchiveCommand::Verify { json } => verify(ctx, *json),
        ArchiveCommand::Gc { dry_run, json } => gc(ctx, *dry_run, *json),
        ArchiveCommand::Snapshot(args) => super::snapshots::snapshot(ctx, args),
        ArchiveCommand::List { json } => super::snapshots::list(ctx, *json),
        ArchiveCommand::Show { id, json } => super::snapshots::show(ctx, id, *json),
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
