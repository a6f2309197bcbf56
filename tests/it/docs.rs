//! The README and the pages under `docs/` stay one set of documents: every page is
//! reachable from the README, every link between them (and to the repository's files)
//! lands on a file and, where it names one, on a heading that exists.

use crate::support::repo_dir;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The README and every page under `docs/`, with their text.
pub fn pages() -> Vec<(PathBuf, String)> {
    let mut paths = vec![repo_dir().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo_dir().join("docs"))
        .expect("read docs/")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    paths.extend(docs);
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            (path, text)
        })
        .collect()
}

/// Lines outside fenced code blocks.
fn prose(text: &str) -> impl Iterator<Item = &str> {
    let mut fenced = false;
    text.lines().filter(move |line| {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            return false;
        }
        !fenced
    })
}

/// The anchors GitHub gives a page's headings.
fn anchors(text: &str) -> BTreeSet<String> {
    prose(text)
        .filter(|line| line.starts_with('#'))
        .map(|line| {
            line.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

/// `(target)` of every `[text](target)` in a page's prose, code spans left out.
fn links(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in prose(text) {
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            if let Some(end) = rest.find(')') {
                found.push(rest[..end].to_string());
                rest = &rest[end..];
            }
        }
    }
    found
}

fn resolve(page: &Path, target: &str) -> (PathBuf, Option<String>) {
    let (file, anchor) = match target.split_once('#') {
        Some((file, anchor)) => (file, Some(anchor.to_string())),
        None => (target, None),
    };
    let base = page.parent().expect("a page is in a folder");
    let file = if file.is_empty() {
        page.to_path_buf()
    } else {
        base.join(file)
    };
    (file, anchor)
}

#[test]
fn every_link_in_the_readme_and_docs_lands_on_a_file_and_a_heading() {
    let mut broken = Vec::new();
    for (page, text) in pages() {
        for target in links(&text) {
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            let (file, anchor) = resolve(&page, &target);
            let name = page
                .strip_prefix(repo_dir())
                .unwrap_or(&page)
                .display()
                .to_string();
            if !file.exists() {
                broken.push(format!("{name}: ({target}): no file {}", file.display()));
                continue;
            }
            if let Some(anchor) = anchor {
                let text = std::fs::read_to_string(&file).unwrap_or_default();
                if !anchors(&text).contains(&anchor) {
                    broken.push(format!("{name}: ({target}): no heading #{anchor}"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_docs_page_is_linked_from_the_readme() {
    let readme = std::fs::read_to_string(repo_dir().join("README.md")).expect("read README.md");
    let linked: BTreeSet<String> = links(&readme).into_iter().collect();
    let missing: Vec<String> = pages()
        .into_iter()
        .skip(1)
        .filter_map(|(path, _)| {
            let name = format!("docs/{}", path.file_name()?.to_string_lossy());
            (!linked.contains(&name)).then_some(name)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "not linked from the README: {missing:?}"
    );
}

#[test]
fn the_readme_stays_a_first_read() {
    let readme = std::fs::read_to_string(repo_dir().join("README.md")).expect("read README.md");
    let lines = readme.lines().count();
    assert!(
        lines <= 200,
        "the README has {lines} lines: move the reference to docs/"
    );
    let headings: Vec<&str> = prose(&readme).filter(|l| l.starts_with("## ")).collect();
    assert_eq!(headings.first(), Some(&"## Install"), "{headings:?}");
}

/// The ```toml blocks of the README and the pages, with where they start.
fn toml_blocks() -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    for (path, text) in pages() {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let mut lines = text.lines().enumerate();
        while let Some((at, line)) = lines.next() {
            if line.trim() != "```toml" {
                continue;
            }
            let block: Vec<&str> = lines
                .by_ref()
                .map(|(_, l)| l)
                .take_while(|l| l.trim() != "```")
                .collect();
            blocks.push((format!("{name}:{}", at + 1), block.join("\n") + "\n"));
        }
    }
    blocks
}

/// A config example may lean on what is not on this machine (a secret's file, an
/// environment variable, a channel another example defines); what it may not do is
/// use a key salve does not know or a value it cannot read.
#[test]
fn every_config_example_in_the_docs_is_read_by_salve() {
    let mut wrong = Vec::new();
    let blocks = toml_blocks();
    assert!(blocks.len() >= 10, "{} toml blocks", blocks.len());
    for (at, block) in blocks {
        // A rule's test cases (`salve test`), not a salve.toml.
        if block.contains("[[case]]") {
            continue;
        }
        let salve = crate::support::Salve::builder().config(&block).write();
        let out = salve.cli(&["check", "--config", "salve.toml", "--rules", "rules"]);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let unread = [
            "unknown field",
            "invalid",
            "expected",
            "missing field",
            "duplicate",
        ];
        if unread.iter().any(|word| stderr.contains(word)) {
            wrong.push(format!("{at}:\n{block}salve check says:\n{stderr}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
