//! Writes the man pages and shell completions (`make man`): see `virt_up::docs`.

fn main() -> std::io::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (path, text) in virt_up::docs::files() {
        let path = root.join(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, text)?;
        virt_up::outln!("wrote {}", path.display());
    }
    Ok(())
}
