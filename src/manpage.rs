//! Man pages from clap definitions, with the sections clap does not know: EXIT STATUS,
//! ENVIRONMENT and FILES (each a list of term and text). The front-ends describe their own
//! pages with it; [`crate::docs`] collects them.

/// A section of terms and what each means.
pub struct Section<'a> {
    pub title: &'a str,
    pub items: &'a [(&'a str, &'a str)],
}

/// The man page of `command` followed by `sections`, as roff.
pub fn render(command: clap::Command, sections: &[Section]) -> String {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = clap_mangen::Man::new(command).render(&mut out);
    let mut page = String::from_utf8_lossy(&out).into_owned();
    for section in sections {
        page.push_str(&format!(".SH \"{}\"\n", section.title));
        for (term, text) in section.items {
            page.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", roff(term), roff(text)));
        }
    }
    page
}

/// Text safe in a roff line: backslashes and hyphens escaped, no line starting a request.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    match escaped.starts_with('.') || escaped.starts_with('\'') {
        true => format!("\\&{escaped}"),
        false => escaped,
    }
}

/// The variables every binary reads to find its files.
pub const PATH_VARIABLES: &[(&str, &str)] = &[
    (
        "VIRTUP_CONFIG_HOME",
        "The user's configuration directory (default: $XDG_CONFIG_HOME/virt-up, ~/.config/virt-up).",
    ),
    ("VIRTUP_SYSTEM_CONFIG", "Replaces /etc/virt-up, the system-wide configuration."),
    (
        "VIRTUP_DATA_HOME",
        "Records, keys, inventory, ssh_config, known_hosts (default: $XDG_DATA_HOME/virt-up, ~/.local/share/virt-up).",
    ),
    (
        "VIRTUP_CACHE_HOME",
        "The step cache and template builds (default: $XDG_CACHE_HOME/virt-up, ~/.cache/virt-up).",
    ),
    ("XDG_RUNTIME_DIR", "Where the lock file is (else /tmp)."),
    ("HOME", "The base of the default directories."),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_sections_follow_the_generated_page_escaped() {
        let cmd = clap::Command::new("tool").about("does things");
        let page = render(
            cmd,
            &[Section {
                title: "EXIT STATUS",
                items: &[("2", ".bad input -x")],
            }],
        );
        assert!(page.contains(".SH NAME"), "{page}");
        assert!(
            page.ends_with(".SH \"EXIT STATUS\"\n.TP\n\\fB2\\fR\n\\&.bad input \\-x\n"),
            "{page}"
        );
    }
}
