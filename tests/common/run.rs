//! The result of running a command in a test, shared by the integration and real-VM tiers.

use std::process::Output;

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn fails(self, code: i32, needle: &str) -> Run {
        assert_eq!(
            self.code, code,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        assert!(
            self.stderr.contains(needle),
            "expected {needle:?} in stderr:\n{}",
            self.stderr
        );
        self
    }

    /// gen-vm-image's JSON document: on stdout on success, on stderr on failure (as the
    /// original tool).
    #[track_caller]
    pub fn doc(&self) -> serde_json::Value {
        let text = if self.code == 0 {
            &self.stdout
        } else {
            &self.stderr
        };
        serde_json::from_str(text).unwrap_or_else(|e| {
            panic!(
                "no JSON document ({e}); code {}\nstdout:\n{}\nstderr:\n{}",
                self.code, self.stdout, self.stderr
            )
        })
    }
}
