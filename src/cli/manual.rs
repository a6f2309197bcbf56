//! `salve completions SHELL` and `salve man`: what a package installs beside the
//! binary, made from the same clap definitions so they never drift from it.

use super::Cli;
use clap::CommandFactory;
use clap_mangen::Man;
use std::io::Write;
use std::process::ExitCode;

pub(super) fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut command = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut command, "salve", &mut out);
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn man() -> anyhow::Result<ExitCode> {
    let page = manual_page()?;
    let mut out = std::io::stdout().lock();
    out.write_all(page.as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// What every piece roff renders starts with (how to typeset an apostrophe); the page
/// says it once, after its title.
const APOSTROPHES: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

type Render = fn(&Man, &mut dyn Write) -> std::io::Result<()>;

/// One page for the whole CLI. clap_mangen writes a page a command and lists the
/// commands as `salve-serve(1)` and the like, pages nobody installs, so here each
/// command's synopsis and options follow the top-level ones as a subsection.
pub(crate) fn manual_page() -> std::io::Result<String> {
    let mut command = Cli::command().disable_help_subcommand(true);
    // Gives every subcommand its full name (`salve approvals list`) for its synopsis.
    command.build();
    let top = Man::new(command.clone())
        .source(format!("salve {}", crate::version::VERSION))
        .date(crate::version::BUILD_DATE);
    let mut page = piece(&top, Man::render_title)?;
    page.push_str(APOSTROPHES);
    for render in [
        Man::render_name_section as Render,
        Man::render_synopsis_section,
        Man::render_description_section,
        Man::render_options_section,
    ] {
        page.push_str(&piece(&top, render)?);
    }
    page.push_str(".SH COMMANDS\n");
    for sub in command.get_subcommands().filter(|c| !c.is_hide_set()) {
        render_command(sub, &mut page)?;
    }
    page.push_str(&piece(&top, Man::render_version_section)?);
    Ok(page)
}

/// One part of a page, without the apostrophe preamble.
fn piece(man: &Man, render: Render) -> std::io::Result<String> {
    let mut out = Vec::new();
    render(man, &mut out)?;
    let text = String::from_utf8_lossy(&out);
    Ok(text.strip_prefix(APOSTROPHES).unwrap_or(&text).to_string())
}

/// A command as a subsection: its name, what it does, its synopsis and its options,
/// then its own commands.
fn render_command(command: &clap::Command, page: &mut String) -> std::io::Result<()> {
    let name = command.get_bin_name().unwrap_or(command.get_name());
    let mut heading = roff::Roff::new();
    heading.control("SS", [name]);
    if let Some(about) = command.get_long_about().or(command.get_about()) {
        heading.text([roff::roman(about.to_string())]);
    }
    let heading = heading.render();
    page.push_str(heading.strip_prefix(APOSTROPHES).unwrap_or(&heading));
    let man = Man::new(command.clone());
    for render in [
        Man::render_synopsis_section as Render,
        Man::render_options_section,
    ] {
        // A `.SH` heading would end the command's subsection; a paragraph break keeps
        // the parts apart within it.
        for line in piece(&man, render)?.lines() {
            page.push_str(if line.starts_with(".SH") { ".PP" } else { line });
            page.push('\n');
        }
    }
    for sub in command.get_subcommands().filter(|c| !c.is_hide_set()) {
        render_command(sub, page)?;
    }
    Ok(())
}
