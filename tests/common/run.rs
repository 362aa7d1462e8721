//! The result of running a command in a test, shared by the integration and real-VM tiers.

use std::process::Output;

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// gen-vm-image's: a JSON document that must agree with the exit code.
    document: bool,
}

impl Run {
    pub fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            document: false,
        }
    }

    /// gen-vm-image's result: `ok` and `fails` check its JSON document too.
    pub fn document(out: Output) -> Run {
        Run {
            document: true,
            ..Run::from(out)
        }
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        if self.document {
            let doc = self.doc();
            assert_eq!(doc["status"], "success");
            assert_eq!(doc["return_code"], 0);
        }
        self
    }

    /// Fails with `code` and says `needle`: on stderr, or for gen-vm-image in its
    /// document's response (the document says it failed, with that code; stdout is empty).
    #[track_caller]
    pub fn fails(self, code: i32, needle: &str) -> Run {
        assert_eq!(
            self.code, code,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        if self.document {
            let doc = self.doc();
            assert_eq!(doc["status"], "failed");
            assert_eq!(doc["return_code"], code);
            let response = self.response();
            assert!(
                response.contains(needle),
                "expected {needle:?} in the response: {response}"
            );
            assert!(self.stdout.is_empty(), "stdout on failure: {}", self.stdout);
        } else {
            assert!(
                self.stderr.contains(needle),
                "expected {needle:?} in stderr:\n{}",
                self.stderr
            );
        }
        self
    }

    /// The response of gen-vm-image's document.
    pub fn response(&self) -> String {
        self.doc()["response"]
            .as_str()
            .unwrap_or_default()
            .to_string()
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
