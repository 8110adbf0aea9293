//! Child processes: the `gleaner` binary with a clean environment, running a command for
//! its output, reading a child's stderr, signals, and waiting for an exit with a deadline.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_gleaner")
}

/// `gleaner` with a clean environment: no stray GLEANER_* or AWS_* from the caller (a test
/// passes what its child needs with `Command::env`, never by changing this process's
/// environment, which every test shares).
pub fn command() -> Command {
    let mut c = Command::new(bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("GLEANER_") || k.starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c
}

pub fn run(mut c: Command) -> Output {
    c.output().expect("run command")
}

/// Reads a child's stderr lines into a shared buffer (for failure messages).
pub fn collect_stderr(child: &mut Child) -> Arc<Mutex<Vec<String>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    if let Some(err) = child.stderr.take() {
        let b = buf.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                b.lock().unwrap().push(line);
            }
        });
    }
    buf
}

pub fn stdio_piped(c: &mut Command) {
    c.stdout(Stdio::null()).stderr(Stdio::piped());
}

pub fn signal(child: &Child, sig: i32) {
    unsafe { libc::kill(child.id() as i32, sig) };
}

/// Waits for exit with a deadline; kills and panics if it does not come.
pub fn wait_exit(child: &mut Child, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
