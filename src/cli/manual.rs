//! The manual page, generated from the clap definitions in `cli/mod.rs`: one page for all of
//! pkg, every command at any depth with its usage, arguments, options and examples.

use clap::CommandFactory as _;
use clap_mangen::roff::{Inline, Roff, bold, italic, roman};

use super::Cli;

/// What every roff document from the `roff` crate starts with; kept once in the page.
const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

/// One page for all of pkg: its synopsis and global options, then a COMMANDS section with every
/// command at any depth (`pkg tap add` too): usage, arguments, options and examples. (clap_mangen's
/// own SUBCOMMANDS section points at pkg-install(1) and so on, pages that are not installed.)
pub fn man_page() -> std::io::Result<String> {
    let mut cmd = Cli::command();
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone());
    let mut page = String::new();
    append(&mut page, |w| man.render_title(w))?;
    append(&mut page, |w| man.render_name_section(w))?;
    append(&mut page, |w| man.render_synopsis_section(w))?;
    append(&mut page, |w| man.render_description_section(w))?;
    append(&mut page, |w| man.render_options_section(w))?;

    let mut roff = Roff::new();
    roff.control("SH", ["COMMANDS"]);
    roff.text([
        roman("Each command also takes the options above. "),
        bold("pkg help "),
        italic("COMMAND"),
        roman(" shows the same text as here."),
    ]);
    let mut commands = Vec::new();
    subcommands("pkg", &cmd, &mut commands);
    for (name, sub) in &commands {
        command_entry(&mut roff, name, sub);
    }
    if let Some(after) = cmd.get_after_help() {
        top_sections(&mut roff, &after.to_string());
    }
    append(&mut page, |w| roff.to_writer(w))?;
    append(&mut page, |w| man.render_version_section(w))?;
    // Not every man(1) set-up has a glyph for the ellipsis.
    Ok(page.replace('…', "..."))
}

/// Appends what `render` writes, without the preamble after the first time.
fn append(
    page: &mut String,
    render: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    render(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    match text.strip_prefix(PREAMBLE) {
        Some(rest) if !page.is_empty() => page.push_str(rest),
        _ => page.push_str(&text),
    }
    Ok(())
}

/// Every visible subcommand of `cmd`, depth first, with its full name (`pkg tap add`).
fn subcommands(prefix: &str, cmd: &clap::Command, out: &mut Vec<(String, clap::Command)>) {
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let name = format!("{prefix} {}", sub.get_name());
        out.push((name.clone(), sub.clone()));
        subcommands(&name, sub, out);
    }
}

/// `.SS pkg install`: what it does, its usage, its own arguments and options, its examples.
fn command_entry(roff: &mut Roff, name: &str, cmd: &clap::Command) {
    roff.control("SS", [name]);
    if let Some(about) = cmd.get_long_about().or_else(|| cmd.get_about()) {
        paragraphs(roff, &about.to_string());
    }
    let aliases: Vec<&str> = cmd.get_visible_aliases().collect();
    if !aliases.is_empty() {
        roff.control("PP", []);
        roff.text([roman(format!("Also: {}.", aliases.join(", ")))]);
    }
    let usage = cmd.clone().render_usage().to_string();
    let usage = usage.trim().trim_start_matches("Usage:").trim();
    roff.control("PP", []);
    roff.text([bold(usage)]);
    for arg in cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_global_set())
        .filter(|a| {
            !matches!(
                a.get_action(),
                clap::ArgAction::Help
                    | clap::ArgAction::HelpShort
                    | clap::ArgAction::HelpLong
                    | clap::ArgAction::Version
            )
        })
    {
        roff.control("TP", []);
        roff.text(arg_header(arg));
        let help = arg.get_long_help().or_else(|| arg.get_help());
        let mut body: Vec<Inline> = help.map(|h| roman(h.to_string())).into_iter().collect();
        let values: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| v.get_name().to_owned())
            .collect();
        if !values.is_empty() && arg.get_action().takes_values() {
            body.push(roman(format!(" (one of: {})", values.join(", "))));
        }
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .filter(|v| !v.is_empty())
            .collect();
        if !defaults.is_empty() && arg.get_action().takes_values() {
            body.push(roman(format!(" [default: {}]", defaults.join(", "))));
        }
        roff.text(body);
    }
    if let Some(after) = cmd.get_after_help() {
        for (heading, lines) in blocks(&after.to_string()) {
            match heading {
                Some(h) => {
                    roff.control("PP", []);
                    roff.text([bold(h)]);
                    preformatted(roff, &lines);
                }
                None => paragraphs(roff, &lines.join("\n")),
            }
        }
    }
}

/// `-j, --jobs <N>` or `<NAME>...`.
fn arg_header(arg: &clap::Arg) -> Vec<Inline> {
    let names: Vec<String> = match arg.get_value_names() {
        Some(v) => v.iter().map(|n| format!("<{n}>")).collect(),
        None => vec![format!("<{}>", arg.get_id().as_str().to_uppercase())],
    };
    let many = arg.get_num_args().is_some_and(|r| r.max_values() > 1);
    let value = format!("{}{}", names.join(" "), if many { "..." } else { "" });
    if arg.is_positional() {
        return vec![italic(value)];
    }
    let mut header = Vec::new();
    if let Some(short) = arg.get_short() {
        header.push(bold(format!("-{short}")));
    }
    if let Some(long) = arg.get_long() {
        if !header.is_empty() {
            header.push(roman(", "));
        }
        header.push(bold(format!("--{long}")));
    }
    if arg.get_action().takes_values() {
        header.push(roman(" "));
        header.push(italic(value));
    }
    header
}

/// The top-level after-help: `Examples:`, `Environment:` become sections; the rest NOTES.
fn top_sections(roff: &mut Roff, text: &str) {
    let mut notes = Vec::new();
    for (heading, lines) in blocks(text) {
        match heading {
            Some(h) => {
                roff.control("SH", [h.trim_end_matches(':').to_uppercase().as_str()]);
                preformatted(roff, &lines);
            }
            None => notes.push(lines.join("\n")),
        }
    }
    if !notes.is_empty() {
        roff.control("SH", ["NOTES"]);
        for n in notes {
            paragraphs(roff, &n);
        }
    }
}

/// Paragraphs of `text` (separated by blank lines), each with its heading if its first line is a
/// lone `Word:`, and its lines (the heading's block with the common indent removed).
fn blocks(text: &str) -> Vec<(Option<String>, Vec<String>)> {
    let mut out = Vec::new();
    for para in text.split("\n\n").filter(|p| !p.trim().is_empty()) {
        let mut lines: Vec<&str> = para.lines().collect();
        let heading = lines
            .first()
            .filter(|l| l.ends_with(':') && !l.starts_with(' ') && !l.trim().contains(' '))
            .map(|l| l.to_string());
        if heading.is_some() {
            lines.remove(0);
        }
        let indent = lines
            .iter()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.len() - l.trim_start().len())
            .min()
            .unwrap_or(0);
        let lines = lines
            .iter()
            .map(|l| l.get(indent..).unwrap_or(l.trim_start()).to_owned())
            .collect();
        out.push((heading, lines));
    }
    out
}

/// Lines kept as they are (examples, aligned columns), indented.
fn preformatted(roff: &mut Roff, lines: &[String]) {
    roff.control("RS", ["4"]);
    roff.control("nf", []);
    for line in lines {
        roff.text([roman(line.as_str())]);
    }
    roff.control("fi", []);
    roff.control("RE", []);
}

/// Filled text; a blank line starts a new paragraph.
fn paragraphs(roff: &mut Roff, text: &str) {
    for para in text.split("\n\n").filter(|p| !p.trim().is_empty()) {
        roff.control("PP", []);
        roff.text([roman(para.trim())]);
    }
}
