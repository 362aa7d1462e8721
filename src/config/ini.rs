//! INI file reading with the semantics of Python's `configparser`.
//!
//! virt-up's configuration files were written for Python's
//! `configparser.ConfigParser()` with default settings, so this module
//! reproduces that exact dialect rather than any generic INI flavour:
//!
//! * A line starting with `[` and containing a later `]` is a section header.
//!   The name is everything up to the *last* `]`, kept verbatim (spaces, `/`,
//!   case); text after that `]` is ignored. `[]` is not a header.
//! * `key = value` or `key: value`, split at the first `=` or `:`. Keys are
//!   stripped and lower-cased, values stripped; `key =` gives an empty value.
//!   A line with neither delimiter is an error (`allow_no_value=False`).
//! * Lines whose first non-blank character is `#` or `;` are comments.
//!   Inline comments are *not* recognised: `a = b # c` has the value `b # c`.
//! * A line indented deeper than the line of its key continues the value;
//!   pieces are joined with `\n`. Blank lines inside a value are kept, trailing
//!   ones are dropped, and comment lines inside a value are skipped entirely.
//! * Duplicate sections and duplicate keys within a section are errors
//!   (`strict=True`), except that repeated `[DEFAULT]` blocks are merged, as
//!   configparser does.
//! * `[DEFAULT]` is returned as an ordinary [`Section`]; applying its values
//!   to other sections is left to the caller.
//! * Lines end at `\n`, `\r\n` or a lone `\r` (Python's universal newlines,
//!   which `ConfigParser.read()` uses) and a leading UTF-8 BOM is ignored.
//!
//! Unlike configparser, which collects all malformed lines before raising,
//! [`parse`] stops at the first problem.
//!
//! Values are returned raw; [`interpolate`] implements `BasicInterpolation`
//! (`%(name)s` and `%%`) for when the caller needs the expanded value.

use std::path::{Path, PathBuf};

/// The section whose values configparser makes visible in every other section.
pub const DEFAULT_SECTION: &str = "DEFAULT";

/// configparser's `MAX_INTERPOLATION_DEPTH`.
pub const MAX_INTERPOLATION_DEPTH: usize = 10;

/// One parsed INI file, sections in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct IniFile {
    /// The path given to [`parse`].
    pub path: PathBuf,
    /// Sections in order of their first header, `[DEFAULT]` included.
    pub sections: Vec<Section>,
}

/// One `[name]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// The text between the brackets, verbatim.
    pub name: String,
    /// 1-based line of the header (the first one, for a repeated `[DEFAULT]`).
    pub line: usize,
    /// Entries in file order; keys are unique.
    pub entries: Vec<Entry>,
}

/// One `key = value` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Lower-cased, as by configparser's default `optionxform`.
    pub key: String,
    /// Raw (not interpolated); continuation lines are joined with `\n`.
    pub value: String,
    /// 1-based line of the key.
    pub line: usize,
}

/// A problem in an INI file (with its path and line) or in interpolation
/// (with the key being expanded).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum IniError {
    /// Something other than a comment or blank line before the first header.
    #[error("{}:{line}: {text:?} appears before any [section] header", .path.display())]
    MissingSectionHeader {
        path: PathBuf,
        line: usize,
        text: String,
    },

    /// Neither a header, a `key = value` line, a comment nor a continuation.
    #[error(
        "{}:{line}: expected '[section]' or 'key = value', found {text:?}",
        .path.display()
    )]
    InvalidLine {
        path: PathBuf,
        line: usize,
        text: String,
    },

    /// A line starting with its delimiter, like `= value`.
    #[error("{}:{line}: missing key name before the delimiter in {text:?}", .path.display())]
    EmptyKey {
        path: PathBuf,
        line: usize,
        text: String,
    },

    /// A second header for a section other than `[DEFAULT]`.
    #[error(
        "{}:{line}: duplicate section [{name}], first defined on line {first_line}",
        .path.display()
    )]
    DuplicateSection {
        path: PathBuf,
        line: usize,
        name: String,
        first_line: usize,
    },

    /// A key given twice in one section (compared case-insensitively).
    #[error(
        "{}:{line}: duplicate key {key:?} in section [{section}], first defined on line {first_line}",
        .path.display()
    )]
    DuplicateKey {
        path: PathBuf,
        line: usize,
        section: String,
        key: String,
        first_line: usize,
    },

    /// `%(name)s` where the lookup found nothing; `name` as written.
    #[error("key {key:?}: %({name})s refers to a key that does not exist")]
    InterpolationMissing { key: String, name: String },

    /// A `%` followed by neither `%` nor `(`; `rest` starts at that `%`.
    #[error(
        "key {key:?}: '%' must be followed by '%' or '(' (write '%%' for a literal '%'), found {rest:?}"
    )]
    InterpolationBarePercent { key: String, rest: String },

    /// A `%(` that does not form `%(name)s`; `rest` starts at the `%`.
    #[error("key {key:?}: bad interpolation reference {rest:?}, expected '%(name)s'")]
    InterpolationBadReference { key: String, rest: String },

    /// References nested deeper than [`MAX_INTERPOLATION_DEPTH`].
    #[error(
        "key {key:?}: interpolation nested more than {max} levels deep (reference loop?)",
        max = MAX_INTERPOLATION_DEPTH
    )]
    InterpolationDepth { key: String },
}

impl IniFile {
    /// The section called exactly `name`; section names are case-sensitive,
    /// as in configparser.
    #[cfg(test)]
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|section| section.name == name)
    }
}

impl Section {
    /// The entry for `key`, compared case-insensitively.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        let key = key.to_lowercase();
        self.entries.iter().find(|entry| entry.key == key)
    }
}

/// Parses `text`, the contents of the file at `path` (used only in errors).
///
/// # Errors
///
/// The first malformed line, key outside a section, or duplicate section or
/// key, with the file and line number.
pub fn parse(path: &Path, text: &str) -> Result<IniFile, IniError> {
    // What `ConfigParser.read(path, encoding="utf-8-sig")` would do; with a
    // plain UTF-8 decode the BOM would spoil the first header.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parser = Parser::new(path);
    for (index, line) in lines(text).enumerate() {
        parser.feed(index + 1, line)?;
    }
    Ok(parser.finish())
}

/// The state configparser's `_read` loop carries from line to line.
struct Parser<'a> {
    path: &'a Path,
    sections: Vec<Section>,
    /// Index in `sections` of the section receiving keys.
    current: Option<usize>,
    /// Whether the last entry of the current section may still be continued
    /// (configparser's `optname`); a section header ends the value.
    in_value: bool,
    /// Indentation of the last header or key line: only deeper lines continue.
    indent_level: usize,
}

impl<'a> Parser<'a> {
    fn new(path: &'a Path) -> Self {
        Parser {
            path,
            sections: Vec::new(),
            current: None,
            in_value: false,
            indent_level: 0,
        }
    }

    fn feed(&mut self, line_no: usize, line: &str) -> Result<(), IniError> {
        let text = line.trim_matches(is_space);
        if text.is_empty() {
            // empty_lines_in_values=True: a blank line may sit inside a value;
            // if the value turns out to end here, finish() trims it again.
            self.extend_value("");
            return Ok(());
        }
        if text.starts_with(['#', ';']) {
            // Checked before the continuation test, so a comment never ends a
            // value nor becomes part of it, however it is indented.
            return Ok(());
        }
        let indent = indentation(line);
        if self.in_value && indent > self.indent_level {
            self.extend_value(text);
            return Ok(());
        }
        self.indent_level = indent;
        match section_header(text) {
            Some(name) => self.start_section(line_no, name),
            None => self.add_entry(line_no, text),
        }
    }

    fn extend_value(&mut self, piece: &str) {
        if !self.in_value {
            return;
        }
        if let Some(entry) = self.current_entry() {
            entry.value.push('\n');
            entry.value.push_str(piece);
        }
    }

    fn current_entry(&mut self) -> Option<&mut Entry> {
        let index = self.current?;
        self.sections[index].entries.last_mut()
    }

    fn start_section(&mut self, line_no: usize, name: &str) -> Result<(), IniError> {
        let existing = self.sections.iter().position(|s| s.name == name);
        self.current = Some(match existing {
            // configparser keeps DEFAULT out of its strict duplicate check, so
            // a second [DEFAULT] block just adds to the first.
            Some(index) if name == DEFAULT_SECTION => index,
            Some(index) => {
                return Err(IniError::DuplicateSection {
                    path: self.path.to_path_buf(),
                    line: line_no,
                    name: name.to_string(),
                    first_line: self.sections[index].line,
                });
            }
            None => {
                self.sections.push(Section {
                    name: name.to_string(),
                    line: line_no,
                    entries: Vec::new(),
                });
                self.sections.len() - 1
            }
        });
        self.in_value = false;
        Ok(())
    }

    fn add_entry(&mut self, line_no: usize, text: &str) -> Result<(), IniError> {
        let error_text = || (self.path.to_path_buf(), line_no, text.to_string());
        let Some(index) = self.current else {
            let (path, line, text) = error_text();
            return Err(IniError::MissingSectionHeader { path, line, text });
        };
        let Some((key, value)) = split_entry(text) else {
            let (path, line, text) = error_text();
            return Err(IniError::InvalidLine { path, line, text });
        };
        if key.is_empty() {
            let (path, line, text) = error_text();
            return Err(IniError::EmptyKey { path, line, text });
        }
        let section = &mut self.sections[index];
        if let Some(first) = section.get(key) {
            return Err(IniError::DuplicateKey {
                path: self.path.to_path_buf(),
                line: line_no,
                section: section.name.clone(),
                key: first.key.clone(),
                first_line: first.line,
            });
        }
        section.entries.push(Entry {
            key: key.to_lowercase(),
            value: value.to_string(),
            line: line_no,
        });
        self.in_value = true;
        Ok(())
    }

    fn finish(mut self) -> IniFile {
        // Each piece is already stripped, so trailing whitespace can only be
        // the newlines of blank lines that followed the value.
        for entry in self.sections.iter_mut().flat_map(|s| &mut s.entries) {
            let trimmed = entry.value.trim_end_matches('\n').len();
            entry.value.truncate(trimmed);
        }
        IniFile {
            path: self.path.to_path_buf(),
            sections: self.sections,
        }
    }
}

/// Splits like Python's universal-newline text mode: `\n`, `\r\n` and a lone
/// `\r` all end a line, and a final line terminator adds no empty line.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest.take()?;
        match current.find(['\r', '\n']) {
            Some(end) => {
                let terminator = if current[end..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
                rest = Some(&current[end + terminator..]);
                Some(&current[..end])
            }
            None => (!current.is_empty()).then_some(current),
        }
    })
}

/// Python's `str.isspace()`, which configparser's `strip()` and `\s` use:
/// Rust's notion of whitespace plus the ASCII separators U+001C..U+001F.
fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Leading whitespace counted in characters, as configparser does (a tab
/// counts as one).
fn indentation(line: &str) -> usize {
    line.chars().take_while(|&c| is_space(c)).count()
}

/// configparser's `SECTCRE`, `\[(?P<header>.+)\]`, matched (not fully) against
/// the stripped line: the greedy `.+` runs to the last `]`.
fn section_header(text: &str) -> Option<&str> {
    let inner = text.strip_prefix('[')?;
    let end = inner.rfind(']')?;
    (end > 0).then(|| &inner[..end])
}

/// configparser's `OPTCRE`: the key ends at the first `=` or `:`.
fn split_entry(text: &str) -> Option<(&str, &str)> {
    let at = text.find(['=', ':'])?;
    let key = text[..at].trim_end_matches(is_space);
    let value = text[at + 1..].trim_start_matches(is_space);
    Some((key, value))
}

/// Expands `value` like configparser's `BasicInterpolation`: `%(name)s` is
/// replaced by `lookup(name lower-cased)` and `%%` by `%`. A looked-up value
/// is expanded in turn if it contains a `%`, up to [`MAX_INTERPOLATION_DEPTH`]
/// levels, so a reference loop ends in an error rather than overflowing.
///
/// `key` is the name of the entry being expanded; it is used only in error
/// messages, which name it even when the broken part is a value it refers to
/// (configparser does the same).
///
/// # Errors
///
/// A reference `lookup` does not resolve, a `%` followed by neither `%` nor
/// `(`, a `%(` not forming `%(name)s`, or nesting deeper than the limit.
pub fn interpolate(
    key: &str,
    value: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, IniError> {
    let mut out = String::with_capacity(value.len());
    Interpolation { key, lookup }.expand(value, 1, &mut out)?;
    Ok(out)
}

struct Interpolation<'a> {
    key: &'a str,
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Interpolation<'_> {
    fn expand(&self, value: &str, depth: usize, out: &mut String) -> Result<(), IniError> {
        if depth > MAX_INTERPOLATION_DEPTH {
            return Err(IniError::InterpolationDepth {
                key: self.key.to_string(),
            });
        }
        let mut rest = value;
        while let Some(percent) = rest.find('%') {
            out.push_str(&rest[..percent]);
            rest = &rest[percent..];
            if let Some(after) = rest.strip_prefix("%%") {
                out.push('%');
                rest = after;
            } else if rest.starts_with("%(") {
                rest = self.substitute(rest, depth, out)?;
            } else {
                return Err(IniError::InterpolationBarePercent {
                    key: self.key.to_string(),
                    rest: rest.to_string(),
                });
            }
        }
        out.push_str(rest);
        Ok(())
    }

    /// Expands the `%(name)s` at the start of `rest` into `out` and returns
    /// what follows it.
    fn substitute<'r>(
        &self,
        rest: &'r str,
        depth: usize,
        out: &mut String,
    ) -> Result<&'r str, IniError> {
        let Some((name, after)) = reference(rest) else {
            return Err(IniError::InterpolationBadReference {
                key: self.key.to_string(),
                rest: rest.to_string(),
            });
        };
        let Some(value) = (self.lookup)(&name.to_lowercase()) else {
            return Err(IniError::InterpolationMissing {
                key: self.key.to_string(),
                name: name.to_string(),
            });
        };
        if value.contains('%') {
            self.expand(&value, depth + 1, out)?;
        } else {
            out.push_str(&value);
        }
        Ok(after)
    }
}

/// configparser's `%\(([^)]+)\)s` at the start of `text`: the name and the
/// text after the reference.
fn reference(text: &str) -> Option<(&str, &str)> {
    let body = text.strip_prefix("%(")?;
    let close = body.find(')')?;
    let after = body[close + 1..].strip_prefix('s')?;
    (close > 0).then(|| (&body[..close], after))
}

#[cfg(test)]
mod tests {
    //! Expected results were checked against Python 3.11's
    //! `ConfigParser().read(path, encoding="utf-8-sig")`.

    use super::*;

    fn parse_ok(text: &str) -> IniFile {
        parse(Path::new("test.ini"), text).unwrap()
    }

    fn parse_err(text: &str) -> IniError {
        parse(Path::new("test.ini"), text).unwrap_err()
    }

    /// `(key, value)` pairs of one section.
    fn pairs<'f>(file: &'f IniFile, section: &str) -> Vec<(&'f str, &'f str)> {
        let section = file.section(section).expect("section exists");
        let pairs = section.entries.iter();
        pairs.map(|e| (e.key.as_str(), e.value.as_str())).collect()
    }

    fn value<'f>(file: &'f IniFile, section: &str, key: &str) -> &'f str {
        &file.section(section).unwrap().get(key).unwrap().value
    }

    #[test]
    fn keys_values_and_lines() {
        let file = parse_ok("# header\n[s]\n  a = 1  \nb=2\nempty =\n");
        assert_eq!(file.path, Path::new("test.ini"));
        assert_eq!(file.sections.len(), 1);
        let section = &file.sections[0];
        assert_eq!((section.name.as_str(), section.line), ("s", 2));
        let b = section.get("b").unwrap();
        assert_eq!((b.value.as_str(), b.line), ("2", 4));
        assert_eq!(pairs(&file, "s"), [("a", "1"), ("b", "2"), ("empty", "")]);
    }

    #[test]
    fn colon_delimiter_and_first_delimiter_wins() {
        let text = "[s]\nkey: value = x\nurl = http://host:80/\na==b\n";
        let file = parse_ok(text);
        assert_eq!(
            pairs(&file, "s"),
            [
                ("key", "value = x"),
                ("url", "http://host:80/"),
                ("a", "=b")
            ]
        );
    }

    #[test]
    fn keys_are_lower_cased_and_looked_up_case_insensitively() {
        let file = parse_ok("[Sec]\nMyKey = 1\nÄBC: 2\n");
        assert_eq!(pairs(&file, "Sec"), [("mykey", "1"), ("äbc", "2")]);
        assert_eq!(value(&file, "Sec", "MYKEY"), "1");
        assert_eq!(value(&file, "Sec", "Äbc"), "2");
        // Section names, unlike keys, are case-sensitive.
        assert!(file.section("sec").is_none());
        assert_eq!(parse_ok("[A]\n[a]\n").sections.len(), 2);
    }

    #[test]
    fn section_names() {
        let file = parse_ok("[fedora/40 x86_64]\na=1\n[ spaced ]\n[x=y]\n");
        let names: Vec<_> = file.sections.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["fedora/40 x86_64", " spaced ", "x=y"]);
    }

    #[test]
    fn section_name_runs_to_the_last_bracket() {
        let file = parse_ok("[a] trailing text\n[b] ; c]\n[c]]\n");
        let names: Vec<_> = file.sections.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b] ; c", "c]"]);
    }

    #[test]
    fn multi_line_value() {
        let text = "[fedora-40]\n\
                    virt-builder-args = --install \"sudo,python3\"\n    \
                    --selinux-relabel\n\
                    memory = 2048\n";
        let file = parse_ok(text);
        assert_eq!(
            value(&file, "fedora-40", "virt-builder-args"),
            "--install \"sudo,python3\"\n--selinux-relabel"
        );
        assert_eq!(value(&file, "fedora-40", "memory"), "2048");
    }

    #[test]
    fn blank_lines_inside_a_value_are_kept_trailing_ones_dropped() {
        let file = parse_ok("[s]\na = one\n\n  two\n\n \t\n[t]\nb = x\n\n");
        assert_eq!(value(&file, "s", "a"), "one\n\ntwo");
        assert_eq!(value(&file, "t", "b"), "x");
    }

    #[test]
    fn continuation_depends_only_on_indentation() {
        // Deeper than the key line: continuation, even if it looks like a key
        // or a header. Not deeper: a new key, even if indented. A tab counts
        // as one character.
        let file = parse_ok("[s]\n  a = 1\n    b = 2\n    [t]\n  c = 3\n\t\t\td\n");
        assert_eq!(pairs(&file, "s"), [("a", "1\nb = 2\n[t]"), ("c", "3\nd")]);
    }

    #[test]
    fn empty_first_line_gives_leading_newline() {
        let file = parse_ok("[s]\na =\n  one\n  two\n");
        assert_eq!(value(&file, "s", "a"), "\none\ntwo");
    }

    #[test]
    fn section_header_ends_a_value() {
        let file = parse_ok("[s]\na = 1\n[t]\n  b = 2\n");
        assert_eq!(pairs(&file, "s"), [("a", "1")]);
        assert_eq!(pairs(&file, "t"), [("b", "2")]);
    }

    #[test]
    fn comments() {
        let text = "# top\n  ; indented\n[s]\n# c\na = b # kept\nc = d ; kept\n";
        let file = parse_ok(text);
        assert_eq!(pairs(&file, "s"), [("a", "b # kept"), ("c", "d ; kept")]);
    }

    #[test]
    fn comment_lines_inside_a_value_are_skipped() {
        let file = parse_ok("[s]\na = one\n  # indented comment\n; comment\n  two\n");
        assert_eq!(value(&file, "s", "a"), "one\ntwo");
    }

    #[test]
    fn line_endings_and_bom() {
        let crlf = parse_ok("\u{feff}[s]\r\na = 1\r\n  more\r\n\r\nb = 2\r\n");
        assert_eq!(pairs(&crlf, "s"), [("a", "1\nmore"), ("b", "2")]);
        assert_eq!(crlf.sections[0].get("b").unwrap().line, 5);
        let cr = parse_ok("[s]\ra = 1\rb = 2");
        assert_eq!(pairs(&cr, "s"), [("a", "1"), ("b", "2")]);
    }

    #[test]
    fn whitespace_is_pythons() {
        // U+001C..U+001F are str.isspace() in Python but not char::is_whitespace.
        let file = parse_ok("[s]\na =\u{a0}v\u{1c}\n\u{1d}more\n");
        assert_eq!(value(&file, "s", "a"), "v\nmore");
        let python: Vec<u32> = (0..=0x10_ffff)
            .filter_map(char::from_u32)
            .filter(|&c| is_space(c))
            .map(u32::from)
            .collect();
        let mut expected: Vec<u32> = vec![0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20];
        expected.extend([0x85, 0xa0, 0x1680]);
        expected.extend(0x2000..=0x200a);
        expected.extend([0x2028, 0x2029, 0x202f, 0x205f, 0x3000]);
        assert_eq!(python, expected);
    }

    #[test]
    fn default_is_an_ordinary_section_and_repeats_merge() {
        let file = parse_ok("[DEFAULT]\na=1\n[s]\nx=1\n[DEFAULT]\nb=2\n");
        let names: Vec<_> = file.sections.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["DEFAULT", "s"]);
        assert_eq!(pairs(&file, "DEFAULT"), [("a", "1"), ("b", "2")]);
        let err = parse_err("[DEFAULT]\na=1\n[s]\n[DEFAULT]\nA=2\n");
        assert!(matches!(
            err,
            IniError::DuplicateKey {
                line: 5,
                first_line: 2,
                ..
            }
        ));
    }

    #[test]
    fn empty_input() {
        assert!(parse_ok("").sections.is_empty());
        assert!(parse_ok("# only\n\n; comments\n").sections.is_empty());
    }

    #[test]
    fn missing_section_header() {
        let err = parse_err("\n# comment\nkey = value\n[s]\n");
        assert_eq!(
            err.to_string(),
            "test.ini:3: \"key = value\" appears before any [section] header"
        );
    }

    #[test]
    fn line_without_delimiter() {
        let err = parse_err("[s]\na = 1\njustakey\n");
        assert_eq!(
            err,
            IniError::InvalidLine {
                path: "test.ini".into(),
                line: 3,
                text: "justakey".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "test.ini:3: expected '[section]' or 'key = value', found \"justakey\""
        );
        // Neither is a header, and neither has a delimiter.
        assert!(matches!(
            parse_err("[s]\n[]\n"),
            IniError::InvalidLine { line: 2, .. }
        ));
        assert!(matches!(
            parse_err("[s]\n[abc\n"),
            IniError::InvalidLine { line: 2, .. }
        ));
    }

    #[test]
    fn empty_key() {
        let err = parse_err("[s]\n= value\n");
        assert_eq!(
            err.to_string(),
            "test.ini:2: missing key name before the delimiter in \"= value\""
        );
    }

    #[test]
    fn duplicate_key_names_both_lines() {
        let err = parse_err("[s]\na=1\nb=2\nA = 3\n");
        assert_eq!(
            err,
            IniError::DuplicateKey {
                path: "test.ini".into(),
                line: 4,
                section: "s".into(),
                key: "a".into(),
                first_line: 2
            }
        );
        assert_eq!(
            err.to_string(),
            "test.ini:4: duplicate key \"a\" in section [s], first defined on line 2"
        );
        // The same key in different sections is fine.
        parse_ok("[s]\na=1\n[t]\na=2\n");
    }

    #[test]
    fn duplicate_section_names_both_lines() {
        let err = parse_err("[s]\na=1\n[t]\n[s]\n");
        assert_eq!(
            err.to_string(),
            "test.ini:4: duplicate section [s], first defined on line 1"
        );
    }

    /// Interpolates `key` of section `s` in `text`, looking names up in `s`.
    fn expand(text: &str, key: &str) -> Result<String, IniError> {
        let file = parse_ok(text);
        let section = file.section("s").unwrap();
        let lookup = |name: &str| section.get(name).map(|e| e.value.clone());
        interpolate(key, &section.get(key).unwrap().value, &lookup)
    }

    const INTERPOLATION: &str = "[s]\n\
        Name = vm\n\
        disk = /var/%(name)s.img\n\
        pct = 100%%\n\
        nested = %(DISK)s:%(pct)s\n\
        multi = a\n  %(name)s\n\
        bare = 50%\n\
        wrong_type = %(name)d\n\
        unclosed = %(name\n\
        empty = %()s\n\
        missing = %(nope)s\n\
        deep_missing = %(missing)s\n\
        self = x%(self)s\n";

    #[test]
    fn interpolation() {
        assert_eq!(expand(INTERPOLATION, "disk").unwrap(), "/var/vm.img");
        assert_eq!(expand(INTERPOLATION, "pct").unwrap(), "100%");
        assert_eq!(expand(INTERPOLATION, "nested").unwrap(), "/var/vm.img:100%");
        assert_eq!(expand(INTERPOLATION, "multi").unwrap(), "a\nvm");
    }

    #[test]
    fn looked_up_values_are_expanded_only_if_they_contain_percent() {
        let lookup = |name: &str| match name {
            "escaped" => Some("100%%".to_string()),
            "bare" => Some("50%".to_string()),
            _ => None,
        };
        assert_eq!(interpolate("k", "%(Escaped)s", &lookup).unwrap(), "100%");
        let err = interpolate("k", "%(bare)s", &lookup).unwrap_err();
        let expected = IniError::InterpolationBarePercent {
            key: "k".into(),
            rest: "%".into(),
        };
        assert_eq!(err, expected);
    }

    #[test]
    fn interpolation_errors_name_the_key() {
        let err = expand(INTERPOLATION, "bare").unwrap_err();
        assert_eq!(
            err.to_string(),
            "key \"bare\": '%' must be followed by '%' or '(' (write '%%' for a literal '%'), found \"%\""
        );
        for key in ["wrong_type", "unclosed", "empty"] {
            let err = expand(INTERPOLATION, key).unwrap_err();
            assert!(
                matches!(err, IniError::InterpolationBadReference { .. }),
                "{key}"
            );
        }
        let err = expand(INTERPOLATION, "missing").unwrap_err();
        assert_eq!(
            err.to_string(),
            "key \"missing\": %(nope)s refers to a key that does not exist"
        );
        // configparser reports the key being read, not the one that is broken.
        let err = expand(INTERPOLATION, "deep_missing").unwrap_err();
        let expected = IniError::InterpolationMissing {
            key: "deep_missing".into(),
            name: "nope".into(),
        };
        assert_eq!(err, expected);
    }

    /// Section `s` with a chain x0 -> x1 -> ... -> x{refs} = "end".
    fn chain(refs: usize) -> String {
        let links: String = (0..refs)
            .map(|i| format!("x{i} = %(x{})s\n", i + 1))
            .collect();
        format!("[s]\n{links}x{refs} = end\n")
    }

    #[test]
    fn interpolation_depth_limit() {
        // x0 is expanded at depth 1 and x{n} at depth n + 1; "end" needs no
        // expansion, so ten references are the most configparser accepts.
        assert_eq!(expand(&chain(10), "x0").unwrap(), "end");
        let err = expand(&chain(11), "x0").unwrap_err();
        assert_eq!(err, IniError::InterpolationDepth { key: "x0".into() });
        assert_eq!(
            err.to_string(),
            "key \"x0\": interpolation nested more than 10 levels deep (reference loop?)"
        );
        let err = expand(INTERPOLATION, "self").unwrap_err();
        assert!(matches!(err, IniError::InterpolationDepth { .. }));
    }
}
