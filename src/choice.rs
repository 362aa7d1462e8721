//! The settings with a fixed set of spellings that code below the plan also needs (a disk's
//! format, the virt type tools run under), and the macro that makes such an enum: parsed
//! from and written as its spellings. One definition, so the plan, the runner and the
//! image code cannot disagree on a spelling.

/// A setting with a fixed set of spellings: parsed from and written as them.
macro_rules! choice {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            pub fn parse(text: &str) -> Option<$name> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use choice;

choice!(
    /// A disk's format: qcow2 instances are linked clones, raw ones full copies.
    ImageFormat { Qcow2 = "qcow2", Raw = "raw" }
);
choice!(
    /// kvm, or qemu (TCG: libguestfs tools then run with force_tcg too).
    VirtType { Kvm = "kvm", Qemu = "qemu" }
);
