//! Keeps every file and function small enough to hold one job (ARCHITECTURE.md): a
//! file of `src/` at most 700 lines before its tests, a function of `src/` at most 100
//! lines outside tests, and a test file at most 800 lines, split by behaviour.

use super::architecture::{is_ident_char, lex_sources, read_sources, repo_root, Token};

/// The most lines a file of `src/` may have before its tests (ARCHITECTURE.md).
const MAX_LINES: usize = 700;
/// The most lines a function of `src/` may have, outside tests (ARCHITECTURE.md).
const MAX_FUNCTION_LINES: usize = 100;

/// The most lines a test file may have (ARCHITECTURE.md, testing).
const MAX_TEST_FILE_LINES: usize = 800;

/// Every file of `sources` too long to hold one job. Tests beside the code are not
/// counted, so a module keeps its tests at hand; a test-only file counts in full.
fn check_lengths<S: AsRef<str>>(sources: &[(S, S)]) -> Vec<String> {
    let mut too_long = Vec::new();
    for file in lex_sources(sources) {
        let (count, what) = if file.test_only {
            (file.lines, "lines, all of them tests")
        } else {
            (file.lines_before_tests, "lines before its tests")
        };
        if count > MAX_LINES {
            too_long.push(format!(
                "{}: {count} {what} (at most {MAX_LINES}); split it by job (ARCHITECTURE.md)",
                file.path
            ));
        }
    }
    too_long
}

/// Every function of `sources`, outside tests, too long to read as one step: from its
/// `fn` to the brace that closes its body.
fn check_function_lengths<S: AsRef<str>>(sources: &[(S, S)]) -> Vec<String> {
    let mut too_long = Vec::new();
    for file in lex_sources(sources).into_iter().filter(|s| !s.test_only) {
        let code = &file.code;
        for (k, token) in code.iter().enumerate() {
            let name = code.get(k + 1).map_or("", |t| t.text.as_str());
            if token.text != "fn" || !name.starts_with(is_ident_char) {
                continue;
            }
            let Some(last_line) = body_end_line(code, k + 2) else {
                continue;
            };
            let lines = last_line - token.line + 1;
            if lines > MAX_FUNCTION_LINES {
                too_long.push(format!(
                    "{}:{}: fn {name} has {lines} lines (at most {MAX_FUNCTION_LINES}); \
                     split it by what each part does (ARCHITECTURE.md)",
                    file.path, token.line
                ));
            }
        }
    }
    too_long
}

/// The line of the brace closing the body of the function whose signature goes on at
/// `start`, or `None` for a signature without a body (a trait's required method).
fn body_end_line(tokens: &[Token], start: usize) -> Option<usize> {
    let mut depth = 0;
    let mut in_body = false;
    for token in &tokens[start..] {
        match token.text.as_str() {
            ";" if depth == 0 && !in_body => return None,
            "{" if depth == 0 => {
                in_body = true;
                depth += 1;
            }
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" => {
                depth -= 1;
                if depth == 0 && in_body {
                    return Some(token.line);
                }
            }
            _ => {}
        }
    }
    None
}

/// Every file of `sources` (under `tests/`) too long for one behaviour.
fn check_test_file_lengths(sources: &[(String, String)]) -> Vec<String> {
    sources
        .iter()
        .map(|(path, text)| (path, text.lines().count()))
        .filter(|(_, lines)| *lines > MAX_TEST_FILE_LINES)
        .map(|(path, lines)| {
            format!("{path}: {lines} lines (at most {MAX_TEST_FILE_LINES}); split it by behaviour")
        })
        .collect()
}

#[test]
fn no_source_file_is_longer_than_700_lines() {
    let mut sources = Vec::new();
    read_sources(&repo_root().join("src"), "src", &mut sources);
    let too_long = check_lengths(&sources);
    let count = too_long.len();
    assert!(
        count == 0,
        "{count} source files are too long:\n{}",
        too_long.join("\n")
    );
}

#[test]
fn no_function_is_longer_than_100_lines() {
    let mut sources = Vec::new();
    read_sources(&repo_root().join("src"), "src", &mut sources);
    let too_long = check_function_lengths(&sources);
    let count = too_long.len();
    assert!(
        count == 0,
        "{count} functions are too long:\n{}",
        too_long.join("\n")
    );
}

#[test]
fn no_test_file_is_longer_than_800_lines() {
    let mut sources = Vec::new();
    read_sources(&repo_root().join("tests"), "tests", &mut sources);
    assert!(sources.len() > 10, "tests/ read: {} files", sources.len());
    let too_long = check_test_file_lengths(&sources);
    let count = too_long.len();
    assert!(
        count == 0,
        "{count} test files are too long:\n{}",
        too_long.join("\n")
    );
}

#[test]
fn counts_the_lines_before_the_tests_and_test_only_files_in_full() {
    let lines = |n: usize| "fn f() {}\n".repeat(n);
    // A `#[cfg(test)]` in a comment or literal, or below the top level, starts no tests.
    let code = format!(
        "// #[cfg(test)]\nconst S: &str = \"\n#[cfg(test)]\n\";\nmod inner {{\n    \
         #[cfg(test)]\n    fn t() {{}}\n}}\n{}",
        lines(693)
    );
    // The tests start at the first attribute of their item.
    let tested = format!(
        "{}#[allow(dead_code)]\n#[cfg(test)]\nmod tests {{\n{}}}\n",
        lines(700),
        lines(300)
    );
    let (tests, short) = (lines(701), lines(700));
    let sources = [
        ("src/config.rs", code.as_str()),
        ("src/engine.rs", tested.as_str()),
        ("src/policy/mod.rs", "#[cfg(test)]\nmod tests;\n"),
        ("src/policy/tests.rs", tests.as_str()),
        ("src/rules/mod.rs", short.as_str()),
    ];
    let split = "split it by job (ARCHITECTURE.md)";
    let expected = [
        format!("src/config.rs: 701 lines before its tests (at most 700); {split}"),
        format!("src/policy/tests.rs: 701 lines, all of them tests (at most 700); {split}"),
    ];
    assert_eq!(check_lengths(&sources), expected);
}

#[test]
fn measures_functions_from_fn_to_the_end_of_their_body() {
    let body = |n: usize| "    step();\n".repeat(n);
    // 1 + 98 + 1 lines: at the limit. The braces of a closure, a struct literal and a
    // string inside do not end it early; a trait's method without a body is no function.
    let at_limit = format!(
        "pub fn short(\n    x: u8,\n) -> u8 {{\n    let s = \"}}\";\n    let f = || {{ 1 }};\n{}}}\n\
         trait T {{\n    fn required(&self);\n}}\n",
        body(94)
    );
    let over = format!(
        "impl X {{\n    async fn long(&self) {{\n{}    }}\n}}\n",
        body(99)
    );
    let tests = format!(
        "#[cfg(test)]\nmod tests {{\n    fn long_test() {{\n{}    }}\n}}\n",
        body(200)
    );
    let sources = [
        ("src/policy/verdict.rs", at_limit.as_str()),
        ("src/engine/start.rs", over.as_str()),
        ("src/rules/mod.rs", tests.as_str()),
    ];
    let found = check_function_lengths(&sources);
    assert_eq!(
        found,
        [
            "src/engine/start.rs:2: fn long has 101 lines (at most 100); \
          split it by what each part does (ARCHITECTURE.md)"
        ]
    );
}
