//! Keeps the layer map of ARCHITECTURE.md true: leaves import only leaves, stages only
//! leaves, composition anything, and every top-level module of `src/` is in the map.
//! Its lexer also serves `architecture_sizes.rs`, which keeps files and functions small.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const TABLE_HEADER: [&str; 3] = ["layer", "modules", "may import"];
/// Each layer with the "may import" cell the doc must give it, the rule `may_import` enforces.
const LAYERS: [(&str, &str); 3] = [
    ("leaf", "leaves"),
    ("stage", "leaves"),
    ("composition", "anything"),
];
const CFG_TEST: [&str; 7] = ["#", "[", "cfg", "(", "test", ")", "]"];
/// Module name to its layer and the layer's "may import" rule.
type LayerOf = BTreeMap<String, (&'static str, &'static str)>;

fn may_import(from_layer: &str, to_layer: &str) -> bool {
    from_layer == "composition" || to_layer == "leaf"
}

/// The modules that the layer table of ARCHITECTURE.md places, and where.
fn parse_layer_table(doc: &str) -> Result<LayerOf, String> {
    let mut lines = (1..)
        .zip(doc.lines())
        .skip_while(|(_, line)| cells(line) != TABLE_HEADER);
    if lines.next().is_none() {
        let header = TABLE_HEADER.join(" | ");
        return Err(format!(
            "ARCHITECTURE.md has no layer table: expected a markdown table \
             with the header row `| {header} |`"
        ));
    }
    let mut layer_of = BTreeMap::new();
    for (number, line) in lines.take_while(|(_, line)| line.trim_start().starts_with('|')) {
        let error = |message: String| Err(format!("ARCHITECTURE.md:{number}: {message}"));
        let [layer, modules, may_import] = cells(line)[..] else {
            return error("a row needs 3 cells".to_string());
        };
        let is_separator_row = layer.chars().all(|c| matches!(c, '-' | ':'));
        if is_separator_row {
            continue;
        }
        let Some(&(layer, rule)) = LAYERS.iter().find(|(name, _)| *name == layer) else {
            return error(format!("`{layer}` is not leaf, stage or composition"));
        };
        if may_import != rule {
            return error(format!("this test holds that a {layer} may import {rule}"));
        }
        for module in modules.split(',').map(|m| m.trim().trim_matches('`')) {
            if let Some((earlier, _)) = layer_of.insert(module.to_string(), (layer, rule)) {
                return error(format!("`{module}` is already a {earlier}"));
            }
        }
    }
    Ok(layer_of)
}

fn cells(line: &str) -> Vec<&str> {
    let Some(inner) = line.trim().strip_prefix('|') else {
        return Vec::new();
    };
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    inner.split('|').map(str::trim).collect()
}

#[derive(Clone)]
pub(super) struct Token {
    pub(super) text: String,
    pub(super) line: usize,
}

pub(super) fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Identifiers, `::` and single punctuation of the code alone, with their 1-based lines.
fn code_tokens(source: &str) -> Vec<Token> {
    let code = blank_comments_and_literals(source);
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut chars = code.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        line += usize::from(c == '\n');
        if c.is_whitespace() {
            continue;
        }
        let mut end = start + c.len_utf8();
        if is_ident_char(c) {
            while let Some((at, next)) = chars.next_if(|&(_, next)| is_ident_char(next)) {
                end = at + next.len_utf8();
            }
        } else if c == ':' && chars.next_if(|&(_, next)| next == ':').is_some() {
            end += 1;
        }
        let text = code[start..end].to_string();
        tokens.push(Token { text, line });
    }
    tokens
}

/// Spaces over comments and string/char literals; newlines stay, so lines still match.
fn blank_comments_and_literals(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut code = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let literal_end = comment_or_literal_end(&chars, i);
        let end = literal_end.unwrap_or(i + 1);
        let keep = |c: char| literal_end.is_none() || c == '\n';
        code.extend(chars[i..end].iter().map(|&c| if keep(c) { c } else { ' ' }));
        i = end;
    }
    code
}

fn comment_or_literal_end(chars: &[char], i: usize) -> Option<usize> {
    let starts_word = |k: usize| k == 0 || !is_ident_char(chars[k - 1]);
    let prefixed = |k: usize| k > 0 && matches!(chars[k - 1], 'b' | 'c') && starts_word(k - 1);
    let end = match (chars[i], chars.get(i + 1)) {
        ('/', Some('/')) => {
            let newline = chars[i..].iter().position(|&c| c == '\n');
            newline.map_or(chars.len(), |n| i + n)
        }
        ('/', Some('*')) => block_comment_end(chars, i),
        ('"', _) => quoted_end(chars, i + 1, '"'),
        ('\'', Some('\\')) => quoted_end(chars, i + 1, '\''),
        // `'x'` is a char; a quote not closed two places on starts a lifetime or label.
        ('\'', _) if chars.get(i + 2) == Some(&'\'') => i + 3,
        ('r', Some('"' | '#')) if starts_word(i) || prefixed(i) => return raw_string_end(chars, i),
        _ => return None,
    };
    Some(end)
}

fn block_comment_end(chars: &[char], start: usize) -> usize {
    let mut depth = 0;
    let mut k = start;
    while k + 1 < chars.len() {
        let step = match (chars[k], chars[k + 1]) {
            ('/', '*') => 1,
            ('*', '/') => -1,
            _ => 0,
        };
        depth += step;
        k += if step == 0 { 1 } else { 2 };
        if depth == 0 {
            return k;
        }
    }
    chars.len()
}

fn quoted_end(chars: &[char], mut k: usize, quote: char) -> usize {
    while k < chars.len() && chars[k] != quote {
        k += if chars[k] == '\\' { 2 } else { 1 };
    }
    (k + 1).min(chars.len())
}

/// `r#ident` is a raw identifier: only `r`, hashes, then `"` opens a raw string.
fn raw_string_end(chars: &[char], r: usize) -> Option<usize> {
    let hashes = chars[r + 1..].iter().take_while(|&&c| c == '#').count();
    let body = r + 1 + hashes;
    if chars.get(body) != Some(&'"') {
        return None;
    }
    let closing: Vec<char> = std::iter::once('"')
        .chain(std::iter::repeat_n('#', hashes))
        .collect();
    let close = (body + 1..chars.len()).find(|&k| chars[k..].starts_with(&closing));
    Some(close.map_or(chars.len(), |k| k + closing.len()))
}

/// The code without its `#[cfg(test)]` items, and the children it declares as
/// `#[cfg(test)] mod name;`, whose files are compiled only for tests.
fn strip_test_code(tokens: &[Token]) -> (Vec<Token>, Vec<String>) {
    let mut kept = Vec::new();
    let mut test_children = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if !is_cfg_test(tokens, i) {
            kept.push(tokens[i].clone());
            i += 1;
            continue;
        }
        let item = i + CFG_TEST.len();
        i = item_end(tokens, item);
        let texts: Vec<&str> = tokens[item..i].iter().map(|t| t.text.as_str()).collect();
        if let [.., "mod", name, ";"] = texts[..] {
            test_children.push(name.to_string());
        }
    }
    (kept, test_children)
}

fn is_cfg_test(tokens: &[Token], at: usize) -> bool {
    let window = tokens.get(at..at + CFG_TEST.len()).unwrap_or_default();
    window.iter().map(|t| t.text.as_str()).eq(CFG_TEST)
}

/// The lines before the first top-level item that `#[cfg(test)]` marks, if one does.
fn lines_before_tests(tokens: &[Token]) -> Option<usize> {
    let mut depth = 0;
    // An item starts after the `;` or `}` that ends the one before: at its first attribute.
    let mut item_start = 0;
    for (k, token) in tokens.iter().enumerate() {
        if depth == 0 && is_cfg_test(tokens, k) {
            return Some(tokens[item_start].line - 1);
        }
        match token.text.as_str() {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" => depth -= 1,
            _ => {}
        }
        if depth == 0 && matches!(token.text.as_str(), ";" | "}") {
            item_start = k + 1;
        }
    }
    None
}

/// One past the item starting at `start`: its `;` or `,`, or the brace closing its body.
fn item_end(tokens: &[Token], start: usize) -> usize {
    let mut depth = 0;
    for (k, token) in tokens.iter().enumerate().skip(start) {
        match token.text.as_str() {
            "(" | "[" | "{" => depth += 1,
            // The enclosing scope closes: the item (a last field, arm...) had no terminator.
            ")" | "]" | "}" if depth == 0 => return k,
            "}" if depth == 1 => return k + 1,
            ")" | "]" | "}" => depth -= 1,
            ";" | "," if depth == 0 => return k + 1,
            _ => {}
        }
    }
    tokens.len()
}

struct Reference {
    module: String,
    path: String,
    line: usize,
}

/// Paths that reach a top-level module from the crate root: `crate::x`, and `super::`
/// chains that climb out of `file_module` (the file's module path) to the root.
fn references(tokens: &[Token], file_module: &[String]) -> Vec<Reference> {
    let text = |k: usize| tokens.get(k).map_or("", |t| t.text.as_str());
    let back = |k: usize, n: usize| k.checked_sub(n).map_or("", text);
    // `pub(in crate::x)` says where an item is visible, not what it uses.
    let is_visibility = |k: usize| back(k, 1) == "in" && back(k, 2) == "(" && back(k, 3) == "pub";
    let mut scope = file_module.to_vec();
    let mut inline_module_depths = Vec::new();
    let mut depth = 0;
    let mut found = Vec::new();
    for i in 0..tokens.len() {
        match text(i) {
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                if inline_module_depths.last() == Some(&depth) {
                    inline_module_depths.pop();
                    scope.pop();
                }
            }
            "mod" if text(i + 2) == "{" => {
                inline_module_depths.push(depth);
                scope.push(text(i + 1).to_string());
            }
            "crate" if text(i + 1) == "::" && !is_visibility(i) => {
                found.extend(rooted(tokens, i, i + 2));
            }
            "super" if text(i + 1) == "::" && back(i, 1) != "::" && !is_visibility(i) => {
                let mut next = i;
                while text(next) == "super" && text(next + 1) == "::" {
                    next += 2;
                }
                if (next - i) / 2 == scope.len() {
                    found.extend(rooted(tokens, i, next));
                }
            }
            _ => {}
        }
    }
    found
}

/// The modules named right after the root prefix `tokens[start..at]`: one, or one per
/// element of a `{...}` group.
fn rooted(tokens: &[Token], start: usize, at: usize) -> Vec<Reference> {
    let prefix: String = tokens[start..at].iter().map(|t| t.text.as_str()).collect();
    let reference = |k: usize| {
        let token = tokens.get(k)?;
        let path = format!("{prefix}{}", path_text(&tokens[k..]));
        Some(Reference {
            module: token.text.clone(),
            path,
            line: token.line,
        })
    };
    if tokens.get(at).is_none_or(|t| t.text != "{") {
        return reference(at).into_iter().collect();
    }
    let mut depth = 0;
    let mut found = Vec::new();
    for (k, token) in tokens.iter().enumerate().skip(at) {
        depth += i32::from(token.text == "{") - i32::from(token.text == "}");
        if depth == 0 {
            break;
        }
        if depth == 1 && (token.text == "{" || token.text == ",") {
            found.extend(reference(k + 1));
        }
    }
    found
}

/// The path as written, shortening a group that follows it to `{..}`.
fn path_text(tokens: &[Token]) -> String {
    let fits = |(k, token): &(usize, &Token)| match k % 2 {
        0 => token.text.starts_with(is_ident_char),
        _ => token.text == "::",
    };
    let length = tokens.iter().enumerate().take_while(fits).count();
    let path: String = tokens[..length].iter().map(|t| t.text.as_str()).collect();
    match tokens.get(length).map(|t| t.text.as_str()) {
        Some("{") if path.ends_with("::") => format!("{path}{{..}}"),
        Some("*") if path.ends_with("::") => format!("{path}*"),
        _ => path.trim_end_matches("::").to_string(),
    }
}

/// `src/lib.rs` and `src/main.rs` are the root; `src/a.rs`, `src/a/mod.rs` are `a`.
fn module_path(file: &str) -> Vec<String> {
    let inside_src = file.strip_prefix("src/").unwrap_or(file);
    let without_rs = inside_src.strip_suffix(".rs").unwrap_or(inside_src);
    let mut path: Vec<String> = without_rs.split('/').map(String::from).collect();
    if path.last().is_some_and(|last| last == "mod") || path == ["lib"] || path == ["main"] {
        path.pop();
    }
    path
}

/// The layer-table name of a file's top-level module: `lib` and `main` for the roots.
fn top_level_module(file: &str) -> &str {
    let inside_src = file.strip_prefix("src/").unwrap_or(file);
    let first = inside_src.split('/').next().unwrap_or_default();
    first.strip_suffix(".rs").unwrap_or(first)
}

pub(super) struct SourceFile<'a> {
    pub(super) path: &'a str,
    pub(super) module: Vec<String>,
    /// The tokens without the `#[cfg(test)]` items.
    pub(super) code: Vec<Token>,
    /// Its lines in all, and before its first top-level `#[cfg(test)]` item.
    pub(super) lines: usize,
    pub(super) lines_before_tests: usize,
    /// Whether its module, or one it is in, is declared `#[cfg(test)] mod x;`.
    pub(super) test_only: bool,
}

/// `sources` (repo-relative path, text) lexed, each knowing whether only tests compile it.
pub(super) fn lex_sources<S: AsRef<str>>(sources: &[(S, S)]) -> Vec<SourceFile<'_>> {
    let mut test_only_modules = BTreeSet::new();
    let mut files = Vec::new();
    for (path, source) in sources {
        let (path, source) = (path.as_ref(), source.as_ref());
        let module = module_path(path);
        let tokens = code_tokens(source);
        let (code, test_children) = strip_test_code(&tokens);
        for child in test_children {
            test_only_modules.insert([module.clone(), vec![child]].concat());
        }
        let lines = source.lines().count();
        let lines_before_tests = lines_before_tests(&tokens).unwrap_or(lines);
        files.push(SourceFile {
            path,
            module,
            code,
            lines,
            lines_before_tests,
            test_only: false,
        });
    }
    for file in &mut files {
        let module = &file.module;
        file.test_only = (1..=module.len()).any(|n| test_only_modules.contains(&module[..n]));
    }
    files
}

/// Every layering violation among `sources`. Code compiled only for tests may import
/// anything.
fn check_imports<S: AsRef<str>>(sources: &[(S, S)], layer_of: &LayerOf) -> Vec<String> {
    let mut violations = Vec::new();
    for source in lex_sources(sources).into_iter().filter(|s| !s.test_only) {
        let file = source.path;
        let from = top_level_module(file);
        // A module missing from the table is reported by `check_layout`.
        let Some(&(from_layer, rule)) = layer_of.get(from) else {
            continue;
        };
        for Reference { module, path, line } in references(&source.code, &source.module) {
            // A name missing from the table is an item of the crate root, not a module.
            match layer_of.get(&module) {
                Some(&(to_layer, _)) if module != from && !may_import(from_layer, to_layer) => {
                    violations.push(format!(
                        "{file}:{line}: {from_layer} `{from}` imports {to_layer} `{module}` ({path}); \
                         ARCHITECTURE.md: a {from_layer} imports only {rule}"
                    ));
                }
                _ => {}
            }
        }
    }
    violations
}

fn check_layout(layer_of: &LayerOf, modules_in_src: &BTreeSet<&str>) -> Vec<String> {
    let unplaced = modules_in_src
        .iter()
        .filter(|m| !layer_of.contains_key(**m))
        .map(|m| format!("src/{m}: ARCHITECTURE.md must place top-level module `{m}` in a layer"));
    let absent = layer_of
        .keys()
        .filter(|m| !modules_in_src.contains(m.as_str()))
        .map(|m| {
            format!(
                "ARCHITECTURE.md lists `{m}`, but src/ has no {m}.rs or {m}/: \
             the map must match the tree"
            )
        });
    unplaced.chain(absent).collect()
}

pub(super) fn read_sources(dir: &Path, relative: &str, sources: &mut Vec<(String, String)>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.expect("list a src/ folder").path())
        .collect();
    paths.sort();
    for path in paths {
        let name = path
            .file_name()
            .expect("a listed entry has a name")
            .to_string_lossy();
        let relative = format!("{relative}/{name}");
        if path.is_dir() {
            read_sources(&path, &relative, sources);
        } else if relative.ends_with(".rs") {
            let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {relative}: {e}"));
            sources.push((relative, text));
        }
    }
}

pub(super) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn stages_depend_one_way() {
    let root = repo_root();
    let doc_path = root.join("ARCHITECTURE.md");
    let doc = fs::read_to_string(&doc_path)
        .unwrap_or_else(|e| panic!("read {}: {e}", doc_path.display()));
    let layer_of = parse_layer_table(&doc).unwrap_or_else(|e| panic!("{e}"));
    let mut sources = Vec::new();
    read_sources(&root.join("src"), "src", &mut sources);
    let modules_in_src = sources.iter().map(|(file, _)| top_level_module(file));
    let mut violations = check_layout(&layer_of, &modules_in_src.collect());
    violations.extend(check_imports(&sources, &layer_of));
    let count = violations.len();
    assert!(
        count == 0,
        "{count} architecture violations:\n{}",
        violations.join("\n")
    );
}

const DRAFT_DOC: &str = "# Architecture

| layer | modules | may import |
| --- | --- | --- |
| leaf | `event`, `model`, `alertmanager`, `template`, `metrics` | leaves |
| stage | `ingest`, `rules`, `policy`, `execute`, `audit` | leaves |
| composition | `engine`, `config`, `api`, `cli`, `schema`, `rule_tests`, `main`, `lib` | anything |
";

/// Checks `sources` against the draft table; each expected entry is a violation's start.
fn assert_reports(sources: &[(&str, &str)], expected: &[&str]) {
    let found = check_imports(
        sources,
        &parse_layer_table(DRAFT_DOC).expect("a draft table"),
    );
    let same =
        found.len() == expected.len() && found.iter().zip(expected).all(|(f, e)| f.starts_with(e));
    assert!(same, "expected {expected:#?}\nfound {found:#?}");
}

#[test]
fn reports_references_to_other_stages() {
    let grouped = "use crate::{\n    event::Event,\n    policy::Decision,\n};\n";
    let api = "fn f(t: &str) -> bool {\n    crate::execute::has_template_syntax(t)\n}\n\
               use super::super::policy::X;\nfn g() { for r in crate::audit::all() {} }\n";
    let sources = [("src/ingest/http.rs", grouped), ("src/rules/api.rs", api)];
    assert_reports(&sources, &[
        "src/ingest/http.rs:3: stage `ingest` imports stage `policy` (crate::policy::Decision); \
         ARCHITECTURE.md: a stage imports only leaves",
        "src/rules/api.rs:2: stage `rules` imports stage `execute` \
         (crate::execute::has_template_syntax)",
        "src/rules/api.rs:4: stage `rules` imports stage `policy` (super::super::policy::X)",
        "src/rules/api.rs:5: stage `rules` imports stage `audit` (crate::audit::all)",
    ]);
}

#[test]
fn reports_leaves_importing_stages_and_stages_importing_composition() {
    let audit =
        "use crate::config::{Config, Paths};\nfn run(e: Option<&crate::engine::Engine>) {}\n";
    let sources = [
        ("src/model/x.rs", "use crate::rules::Target;\n"),
        ("src/audit/mod.rs", audit),
    ];
    assert_reports(&sources, &[
        "src/model/x.rs:1: leaf `model` imports stage `rules` (crate::rules::Target); \
         ARCHITECTURE.md: a leaf imports only leaves",
        "src/audit/mod.rs:1: stage `audit` imports composition `config` (crate::config::{..})",
        "src/audit/mod.rs:2: stage `audit` imports composition `engine` (crate::engine::Engine)",
    ]);
}

#[test]
fn ignores_comments_and_literals_but_sees_the_code_after_them() {
    let source = r###"//! crate::policy::A
/// crate::policy::B
// crate::policy::C
/* crate::policy::D /* nested crate::policy::E */ crate::policy::F */
const S: &str = "crate::policy::G \" crate::policy::H";
const R: &str = r#"crate::policy::I " crate::policy::J"#;
const B: &[u8] = br"crate::policy::K";
const Q: [char; 3] = ['"', '\'', '{'];
fn f<'a>(x: &'a str) -> &'a str { x }
#[serde(with = "crate::policy::serde")]
use crate::policy::Real;
"###;
    let expected =
        "src/rules/lint.rs:11: stage `rules` imports stage `policy` (crate::policy::Real)";
    assert_reports(&[("src/rules/lint.rs", source)], &[expected]);
}

#[test]
fn ignores_test_code_inline_and_in_test_only_files() {
    let rules = "mod lint;\n#[cfg(test)]\nmod tests;\n#[cfg(test)]\nmod tests {\n    \
                 use crate::policy::X;\n    fn f() { let s = \"}\"; crate::execute::y(); }\n}\n";
    let policy = "#[cfg(test)]\n#[allow(dead_code)]\npub(crate) mod fixtures;\n";
    let sources = [
        ("src/rules/mod.rs", rules),
        ("src/rules/tests.rs", "use crate::policy::X;\n"),
        ("src/policy/mod.rs", policy),
        ("src/policy/fixtures/deep.rs", "use crate::execute::X;\n"),
        ("src/rules/lint.rs", "use crate::execute::Counted;\n"),
    ];
    assert_reports(
        &sources,
        &["src/rules/lint.rs:1: stage `rules` imports stage `execute`"],
    );
}

#[test]
fn allows_self_imports_composition_and_super_within_the_module() {
    let lint = "use crate::rules::x;\nfn f() { crate::rules::y(); }\n\
                pub(in crate::policy) fn g() {}\npub(crate) fn h() {}\n";
    let engine = "use crate::{self as me, rules::A, policy::B, execute::C, audit::D, ingest::E};\n";
    let message = "use super::super::{ActionContext, Report};\nuse super::template;\n";
    let sources = [
        ("src/rules/lint.rs", lint),
        ("src/engine.rs", engine),
        ("src/lib.rs", "pub mod rules;\nuse crate::policy::*;\n"),
        ("src/execute/notify/message.rs", message),
        (
            "src/rules/api.rs",
            "mod inner {\n    use super::super::lint::Warning;\n}\n",
        ),
    ];
    assert_reports(&sources, &[]);
}

#[test]
fn reads_the_layer_table_and_rejects_a_doc_without_one() {
    let layer_of = parse_layer_table(DRAFT_DOC).expect("the draft doc has a layer table");
    assert_eq!(layer_of.len(), 18);
    let layers = ["template", "audit", "rule_tests", "lib"].map(|m| layer_of[m].0);
    assert_eq!(layers, ["leaf", "stage", "composition", "composition"]);

    let missing =
        parse_layer_table("# Architecture\n\nStages import leaves.\n").expect_err("no table");
    assert!(
        missing.contains("no layer table")
            && missing.contains("`| layer | modules | may import |`")
    );
    let typo = "| layer | modules | may import |\n|---|---|---|\n| leafs | `event` | leaves |\n";
    let typo = parse_layer_table(typo).expect_err("`leafs` is no layer");
    assert!(typo.starts_with("ARCHITECTURE.md:3: `leafs` is not leaf, stage or composition"));
    let looser = DRAFT_DOC.replace(
        "| stage | `ingest`, `rules`, `policy`, `execute`, `audit` | leaves |",
        "| stage | `ingest` | anything |",
    );
    let looser = parse_layer_table(&looser).expect_err("the doc must state the enforced rule");
    assert!(
        looser.ends_with("this test holds that a stage may import leaves"),
        "{looser}"
    );
}

#[test]
fn the_map_must_match_the_tree() {
    let layer_of = parse_layer_table(DRAFT_DOC).expect("the draft doc has a layer table");
    let mut modules_in_src: BTreeSet<&str> = layer_of.keys().map(String::as_str).collect();
    modules_in_src.remove("api");
    modules_in_src.insert("web");
    let found = check_layout(&layer_of, &modules_in_src);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].contains("must place top-level module `web` in a layer"));
    assert!(found[1].contains("lists `api`") && found[1].contains("the map must match the tree"));
}
