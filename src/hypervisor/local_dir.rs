//! The test driver's stand-in for libvirt's storage API: volumes as files in the pool's
//! target directory, made with qemu-img as libvirt's `dir` pool makes them.
//!
//! libvirt's test driver keeps its volumes in the memory of one process and cannot upload
//! (virStorageVolUpload: "this function is not supported by the connection driver"), while
//! the integration tier runs virt-up several times against one fixture pool and looks at its
//! directory. Used only for `test://` connections; every real driver gets the storage API.

use super::{NewVolume, Volume, VolumeSource};
use crate::error::{Error, Result};
use std::path::Path;
use std::process::Command;

pub(super) fn create(pool_dir: &Path, new: &NewVolume) -> Result<Volume> {
    let path = pool_dir.join(new.name);
    if path.exists() {
        return Err(failure(&path, "a volume of this name exists"));
    }
    let disk = path.display().to_string();
    let format = new.format.as_str();
    let size = |bytes: u64| bytes.to_string();
    let args: Vec<String> = match new.source {
        VolumeSource::Empty { capacity } => {
            argv(&["create", "-q", "-f", format, &disk, &size(capacity)])
        }
        VolumeSource::Overlay { backing, capacity } => {
            let base = backing.path.display().to_string();
            let backing_format = backing.format.as_deref().unwrap_or("qcow2");
            let mut args = argv(&["create", "-q", "-f", format, "-F", backing_format]);
            args.extend(argv(&["-b", &base, &disk]));
            args.extend(capacity.map(size));
            args
        }
        VolumeSource::Copy { from, .. } => {
            let base = from.path.display().to_string();
            argv(&["convert", "-q", "-f", format, "-O", format, &base, &disk])
        }
    };
    qemu_img(&path, &args)?;
    if let VolumeSource::Copy {
        from,
        capacity: Some(capacity),
    } = new.source
    {
        if capacity > from.capacity {
            qemu_img(
                &path,
                &argv(&["resize", "-q", "-f", format, &disk, &size(capacity)]),
            )?;
        }
    }
    volume(&path)?.ok_or_else(|| failure(&path, "qemu-img made no file"))
}

pub(super) fn upload(volume: &Path, from: &Path) -> Result<()> {
    std::fs::copy(from, volume)
        .map(|_| ())
        .map_err(|e| Error::io(volume, e))
}

pub(super) fn delete(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

/// The file's size, format and backing file, as `qemu-img info` reads them.
pub(super) fn volume(path: &Path) -> Result<Option<Volume>> {
    if !path.exists() {
        return Ok(None);
    }
    let disk = path.display().to_string();
    let out = qemu_img(path, &argv(&["info", "--output=json", "-U", &disk]))?;
    let info: serde_json::Value =
        serde_json::from_slice(&out).map_err(|e| failure(path, &e.to_string()))?;
    Ok(Some(Volume {
        path: path.to_path_buf(),
        capacity: info["virtual-size"].as_u64().unwrap_or(0),
        allocation: info["actual-size"].as_u64().unwrap_or(0),
        format: info["format"].as_str().map(str::to_string),
        backing: info["backing-filename"].as_str().map(Into::into),
    }))
}

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

fn qemu_img(path: &Path, args: &[String]) -> Result<Vec<u8>> {
    let out = Command::new("qemu-img")
        .args(args)
        .output()
        .map_err(|e| failure(path, &format!("cannot run qemu-img: {e}")))?;
    if !out.status.success() {
        return Err(failure(path, String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(out.stdout)
}

fn failure(path: &Path, message: &str) -> Error {
    Error::Libvirt {
        what: format!(
            "volume {} (test driver, files in the pool directory)",
            path.display()
        ),
        message: message.to_string(),
        hint: String::new(),
    }
}
