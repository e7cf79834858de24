//! `vaultkeep archive ...`: verify and gc.

use super::output::{self, Exit};
use super::{ArchiveCommand, Context};
use crate::fsutil::human_bytes;
use crate::store::Store;
use crate::upkeep;

pub(crate) fn run(ctx: &Context, command: &ArchiveCommand) -> anyhow::Result<Exit> {
    match command {
        ArchiveCommand::Verify { json } => verify(ctx, *json),
        ArchiveCommand::Gc { dry_run, json } => gc(ctx, *dry_run, *json),
    }
}

fn verify(ctx: &Context, json: bool) -> anyhow::Result<Exit> {
    let store = Store::open(&ctx.archive)?;
    let report = upkeep::verify(&store)?;
    if json {
        output::json(&report)?;
    } else {
        println!(
            "Verified {} objects ({}) and {} records in {}.",
            report.objects,
            human_bytes(report.bytes),
            report.records,
            ctx.archive.display()
        );
        output::list(
            "Problems",
            report
                .problems
                .iter()
                .map(|p| format!("{}: {}", p.path, p.message)),
            50,
        );
        output::list(
            "Warnings",
            report
                .warnings
                .iter()
                .map(|p| format!("{}: {}", p.path, p.message)),
            10,
        );
        if report.problems.is_empty() {
            println!("No damage found.");
        }
    }
    Ok(Exit::failed_if(!report.problems.is_empty()))
}

fn gc(ctx: &Context, dry_run: bool, json: bool) -> anyhow::Result<Exit> {
    Store::open(&ctx.archive)?;
    let (store, _lock) = Store::open_for_writing(&ctx.archive, "archive gc")?;
    let report = upkeep::gc(&store, dry_run)?;
    if json {
        output::json(&report)?;
    } else {
        let verb = if dry_run { "Would remove" } else { "Removed" };
        println!(
            "{verb} {} unreferenced objects ({}) and {} stale temp files.",
            report.objects,
            human_bytes(report.bytes),
            report.temp_files
        );
        if dry_run {
            output::list("Would remove", report.removed.iter(), 50);
        }
    }
    Ok(Exit::Success)
}
