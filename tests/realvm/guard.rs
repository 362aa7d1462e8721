//! Guards that remove what a real-VM test made (domains, disks, records, processes) when
//! they go out of scope: at the end of the test, and also when one of its assertions
//! fails (a guard drops while the panic unwinds). So a failed test leaves no guest
//! running and no disk or record behind for the next one (cloud-hypervisor's test
//! registry is the model).
//!
//! A drop runs during a panic, where a second panic would abort the whole test binary:
//! nothing here unwraps, every step is tried and its failure ignored.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Where libvirt's default pool keeps the disks virt-up makes.
pub const IMAGES: &str = "/var/lib/libvirt/images";

/// Clean-up steps, run in the reverse order of their registration when dropped.
#[derive(Default)]
pub struct Cleanup {
    steps: Vec<Box<dyn FnOnce()>>,
}

impl Cleanup {
    pub fn new() -> Cleanup {
        Cleanup::default()
    }

    /// A guard for these domains alone.
    pub fn domains(names: &[&str]) -> Cleanup {
        let mut cleanup = Cleanup::new();
        for name in names {
            cleanup.domain(name);
        }
        cleanup
    }

    /// Any step (it must not panic).
    pub fn then(&mut self, step: impl FnOnce() + 'static) -> &mut Cleanup {
        self.steps.push(Box::new(step));
        self
    }

    /// A domain on qemu:///system: stopped and undefined.
    pub fn domain(&mut self, name: &str) -> &mut Cleanup {
        let name = name.to_string();
        self.then(move || remove_domain(&name))
    }

    /// A file or directory tree.
    pub fn path(&mut self, path: impl Into<PathBuf>) -> &mut Cleanup {
        let path = path.into();
        self.then(move || {
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_dir_all(&path);
        })
    }

    /// A virt-up instance's domain and disks in the pool (its records are the caller's:
    /// [`crate::world::World::cleanup`] deletes them through virt-up first).
    pub fn instance_leftovers(&mut self, name: &str) -> &mut Cleanup {
        self.domain(name);
        for file in [format!("{name}.qcow2"), format!("{name}-seed.tar")] {
            self.path(PathBuf::from(IMAGES).join(file));
        }
        self
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        while let Some(step) = self.steps.pop() {
            step();
        }
    }
}

/// virsh on qemu:///system, quietly; whether it succeeded.
pub fn virsh_quiet(args: &[&str]) -> bool {
    Command::new("virsh")
        .args(["-c", "qemu:///system"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn remove_domain(name: &str) {
    virsh_quiet(&["destroy", name]);
    virsh_quiet(&["undefine", name]);
}

/// A child process killed (and reaped) when dropped, unless it ended before: a test
/// that fails while its command runs does not leave that command running.
pub struct KillOnDrop {
    child: Child,
    /// Kill its whole process group (it was started as a group leader).
    group: bool,
}

impl KillOnDrop {
    pub fn new(child: Child) -> KillOnDrop {
        KillOnDrop {
            child,
            group: false,
        }
    }

    /// For a child started with `process_group(0)`: its tools (virt-customize and the
    /// appliance it boots) go with it.
    pub fn group(child: Child) -> KillOnDrop {
        KillOnDrop { child, group: true }
    }
}

impl KillOnDrop {
    /// Wait for it to end, with what it wrote on its stdout and stderr (when piped).
    pub fn output(&mut self) -> std::io::Result<std::process::Output> {
        use std::io::Read;
        let stderr = self.child.stderr.take();
        let errors = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = stderr {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        });
        let mut stdout = Vec::new();
        if let Some(mut pipe) = self.child.stdout.take() {
            pipe.read_to_end(&mut stdout)?;
        }
        let stderr = errors.join().unwrap_or_default();
        let status = self.child.wait()?;
        Ok(std::process::Output {
            status,
            stdout,
            stderr,
        })
    }
}

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.child
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for KillOnDrop {
    // unsafe: kill(2) of a process group; std can signal one child, not its group.
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // Reaped already (by the test's own wait): its pid may belong to another process.
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        if self.group {
            // SAFETY: kill(2) on the process group this test created, still led by its
            // unreaped child.
            unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
