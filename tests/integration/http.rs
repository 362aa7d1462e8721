//! A loopback HTTP server for URL inputs: files put by the test, Range + If-Range honoured
//! while the ETag still matches, and modes that cut a response short or send it slowly.
//! Every response is logged, so a test can tell what crossed the network.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
pub struct ServerState {
    pub files: HashMap<String, (Vec<u8>, String)>,
    /// Close the next response after this many body bytes.
    pub cut_next_after: Option<usize>,
    /// Send the body slowly (for interrupting a download).
    pub trickle: bool,
    pub log: Vec<Served>,
}

#[derive(Debug, Clone)]
pub struct Served {
    pub path: String,
    pub range: Option<String>,
    pub status: u16,
    pub body_bytes: usize,
}

pub struct Server {
    pub port: u16,
    pub state: Arc<Mutex<ServerState>>,
}

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(ServerState::default()));
        let st = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let st = st.clone();
                std::thread::spawn(move || serve(stream, &st));
            }
        });
        Server { port, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    pub fn put(&self, path: &str, data: Vec<u8>, etag: &str) {
        self.state
            .lock()
            .unwrap()
            .files
            .insert(path.to_string(), (data, etag.to_string()));
    }

    pub fn log(&self) -> Vec<Served> {
        self.state.lock().unwrap().log.clone()
    }
}

fn serve(mut stream: TcpStream, state: &Mutex<ServerState>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .trim_start_matches('/')
        .to_string();
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let (file, cut, trickle) = {
        let mut st = state.lock().unwrap();
        let cut = st.cut_next_after.take();
        (st.files.get(&path).cloned(), cut, st.trickle)
    };
    let range = headers.get("range").cloned();
    let record = |status: u16, body_bytes: usize| {
        state.lock().unwrap().log.push(Served {
            path: path.clone(),
            range: range.clone(),
            status,
            body_bytes,
        })
    };
    let Some((data, etag)) = file else {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        record(404, 0);
        return;
    };
    // Range is honoured only while If-Range still names this version of the file.
    let start = match (&range, headers.get("if-range")) {
        (Some(r), Some(v)) if *v == etag => r
            .strip_prefix("bytes=")
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|s| s.parse::<usize>().ok()),
        (Some(r), None) => r
            .strip_prefix("bytes=")
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|s| s.parse::<usize>().ok()),
        _ => None,
    };
    let (status, body) = match start {
        Some(s) if s < data.len() => (206u16, &data[s..]),
        _ => (200u16, &data[..]),
    };
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nETag: {etag}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n",
        if status == 206 { "Partial Content" } else { "OK" },
        body.len()
    );
    if status == 206 {
        let s = start.unwrap();
        head.push_str(&format!(
            "Content-Range: bytes {s}-{}/{}\r\n",
            data.len() - 1,
            data.len()
        ));
    }
    head.push_str("\r\n");
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    let limit = cut.unwrap_or(body.len()).min(body.len());
    let mut sent = 0;
    for chunk in body[..limit].chunks(if trickle { 64 << 10 } else { 1 << 20 }) {
        if stream.write_all(chunk).is_err() {
            break;
        }
        sent += chunk.len();
        if trickle {
            std::thread::sleep(Duration::from_millis(40));
        }
    }
    record(status, sent);
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}
