//! Test harness: real servers on loopback, killed on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python venv made by `scripts/setup-test-env`.
pub(crate) fn venv() -> PathBuf {
    std::env::var_os("SEDIMENT_VENV").map(PathBuf::from).unwrap_or_else(|| root().join(".venv"))
}

pub(crate) fn venv_bin(name: &str) -> PathBuf {
    let p = venv().join("bin").join(name);
    assert!(p.exists(), "{} is missing: run scripts/setup-test-env (scripts/test does)", p.display());
    p
}

/// The `sediment` binary built for these tests.
pub(crate) fn sediment() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sediment"));
    c.env("SEDIMENT_LOG", "warn,buoyant_kernel=off");
    c
}

/// Runs a command, panicking with its output if it fails.
pub(crate) fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("command starts");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Waits until `addr` accepts TCP connections.
pub(crate) fn wait_for_port(port: u16, timeout: Duration) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < timeout, "nothing listens on port {port} after {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed (with its group) when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        // The whole process group: servers may have children (cargo lambda → cargo → function).
        let _ = Command::new("kill").args(["-TERM", "--", &format!("-{}", self.child.id())]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A command in its own process group, so [`Server`] can stop its children too.
pub(crate) fn grouped(mut cmd: Command) -> Command {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    cmd
}

/// A moto S3 (and Kinesis/SQS/DynamoDB) server on a free loopback port.
pub(crate) struct Moto {
    pub(crate) server: Server,
}

impl Moto {
    pub(crate) fn start() -> Self {
        let port = free_port();
        let child = Command::new(venv_bin("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let server = Server { child, port };
        wait_for_port(port, Duration::from_secs(30));
        Self { server }
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port)
    }

    /// Environment for any process talking to this server.
    pub(crate) fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), self.endpoint()),
            ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_DEFAULT_REGION".into(), "us-east-1".into()),
        ]
    }

    pub(crate) fn create_bucket(&self, bucket: &str) {
        let out = Command::new(venv_bin("python"))
            .args(["-c", "import boto3,sys; boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing').create_bucket(Bucket=sys.argv[2])", &self.endpoint(), bucket])
            .output()
            .expect("python runs");
        assert!(out.status.success(), "create bucket: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Runs a Python script from `tests/py` in the venv with `args`; returns stdout.
pub(crate) fn python(script: &str, args: &[&str], env: &[(String, String)]) -> String {
    let path = root().join("tests/py").join(script);
    let out = Command::new(venv_bin("python")).arg(&path).args(args).envs(env.iter().cloned()).output().expect("python runs");
    assert!(out.status.success(), "{script} failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes generated NDJSON to `path`.
pub(crate) fn generate(path: &Path, args: &[&str]) {
    let out = run_ok(sediment().arg("generate").args(args));
    std::fs::write(path, out.stdout).expect("write events");
}
