//! `virt-install-args` from existing templates, honoured by translating the options into the
//! domain we build (virt-up defines domains itself, through libvirt). An option that cannot
//! be honoured is an error that names it, never silently ignored.

use crate::error::{Error, Result};
use crate::hypervisor::domain_xml::DomainSpec;

/// Options that only matter to virt-install's own workflow, not to the domain.
const NO_OPS: &[&str] = &[
    "--noautoconsole",
    "--noreboot",
    "--import",
    "--hvm",
    "--wait",
];

/// Check the options before anything is built, so a bad one costs nothing.
pub fn validate(args: &[String]) -> Result<()> {
    apply(&mut DomainSpec::default(), args)
}

pub fn apply(spec: &mut DomainSpec, args: &[String]) -> Result<()> {
    let mut i = 0;
    while i < args.len() {
        let (option, inline) = match args[i].split_once('=') {
            Some((o, v)) if o.starts_with("--") => (o.to_string(), Some(v.to_string())),
            _ => (args[i].clone(), None),
        };
        i += 1;
        if NO_OPS.contains(&option.as_str()) {
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => {
                let v = args.get(i).cloned().ok_or_else(|| Error::Setting {
                    setting: "virt-install-args",
                    message: format!("option '{option}' needs a value"),
                })?;
                i += 1;
                v
            }
        };
        set(spec, &option, &value)?;
    }
    Ok(())
}

fn set(spec: &mut DomainSpec, option: &str, value: &str) -> Result<()> {
    // virt-install values may carry sub-options after a comma; the first field is the value.
    let main = value.split(',').next().unwrap_or_default().to_string();
    match option {
        "--cpu" => spec.cpu = Some(main),
        "--machine" => spec.machine = Some(main),
        "--graphics" => spec.graphics = main,
        "--video" => spec.video = Some(main),
        "--rng" => spec.rng = main != "none",
        "--memory" | "--ram" => {
            spec.memory_mib = main
                .parse()
                .map_err(|_| unsupported(option, value, "a size in MiB"))?
        }
        "--vcpus" => {
            spec.vcpus = main
                .parse()
                .map_err(|_| unsupported(option, value, "a number of vCPUs"))?
        }
        "--virt-type" => spec.virt_type = main,
        "--arch" => spec.arch = main,
        // Recorded by osinfo only: it has no effect on the domain virt-up builds.
        "--os-variant" | "--osinfo" | "--os-type" => {}
        other => {
            return Err(Error::Setting {
                setting: "virt-install-args",
                message: format!(
                "option '{other}' is not supported by virt-up (supported: --cpu, --machine, --graphics, --video, --rng, --memory, --vcpus, --virt-type, --arch, --os-variant, --osinfo, --os-type, {})",
                NO_OPS.join(", ")
            ),
            })
        }
    }
    Ok(())
}

fn unsupported(option: &str, value: &str, expected: &str) -> Error {
    Error::Setting {
        setting: "virt-install-args",
        message: format!("'{option} {value}': expected {expected}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DomainSpec {
        DomainSpec {
            name: "x".into(),
            virt_type: "kvm".into(),
            arch: "x86_64".into(),
            machine: None,
            cpu: None,
            memory_mib: 512,
            vcpus: 1,
            disks: vec![],
            network: "default".into(),
            mac: "52:54:00:00:00:01".into(),
            graphics: "none".into(),
            video: None,
            rng: true,
            console_log: "/x.log".into(),
            template: "t".into(),
        }
    }

    fn words(s: &str) -> Vec<String> {
        shlex::split(s).unwrap()
    }

    #[test]
    fn translates_supported_options() {
        let mut s = spec();
        apply(
            &mut s,
            &words("--hvm --cpu host-model --machine=q35 --os-variant debian11 --noautoconsole --video virtio --vcpus 2,maxvcpus=4"),
        )
        .unwrap();
        assert_eq!(s.cpu.as_deref(), Some("host-model"));
        assert_eq!(s.machine.as_deref(), Some("q35"));
        assert_eq!(s.video.as_deref(), Some("virtio"));
        assert_eq!(s.vcpus, 2);
    }

    #[test]
    fn unsupported_option_is_named() {
        let err = apply(&mut spec(), &words("--boot uefi"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("option '--boot' is not supported"), "{err}");
        let err = apply(&mut spec(), &words("--cpu")).unwrap_err().to_string();
        assert!(err.contains("option '--cpu' needs a value"), "{err}");
    }
}
