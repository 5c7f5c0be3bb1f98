//! A real PostgreSQL server for the index's tests, one per test binary, and
//! a fresh database in it for each test.
//!
//! The server is started on first use: `initdb` into a temporary folder,
//! then `postgres` listening on 127.0.0.1 only, on a free port, with its
//! socket in that folder, password authentication and the "C" locale.
//! `initdb` and `postgres` come from PATH or `/usr/lib/postgresql/*/bin`;
//! when neither has them, `setup.sh` next to this file installs Debian's
//! `postgresql` package (as root). PostgreSQL refuses to run as root, so
//! when the tests run as root both run as the `postgres` user (`nobody`
//! when there is none) through `setpriv`, in a folder that user owns.
//!
//! The server never outlives the test binary: it is started by a small
//! watchdog shell whose standard input is a pipe from this process. When
//! this process ends, however it ends (kill -9 included), the pipe closes,
//! and the watchdog stops the server by its process id (SIGINT: fast
//! shutdown) and deletes the folder.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, PgConnection};

/// The superuser `initdb` creates.
const USER: &str = "peershare";

/// The running server.
struct Server {
    port: u16,
    password: String,
    folder: PathBuf,
    /// The write end of the watchdog's standard input, held until exit.
    _lifeline: Mutex<ChildStdin>,
    /// The watchdog, never waited for: it ends after this process.
    _watchdog: Mutex<Child>,
}

static SERVER: OnceLock<Server> = OnceLock::new();
static DATABASES: AtomicU64 = AtomicU64::new(0);

/// A new empty database on this binary's server (started on first use);
/// returns its URL.
pub async fn fresh_database() -> String {
    let server = SERVER.get_or_init(start);
    let admin = server.url("postgres");
    let started = Instant::now();
    let mut conn = loop {
        match PgConnection::connect(&admin).await {
            Ok(conn) => break conn,
            // Still starting up.
            Err(_) if started.elapsed() < Duration::from_secs(60) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!(
                "cannot reach the test PostgreSQL server: {e}\n{}",
                log_of(&server.folder)
            ),
        }
    };
    let name = format!(
        "index_test_{}",
        DATABASES.fetch_add(1, Ordering::SeqCst) + 1
    );
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    conn.close().await.unwrap();
    server.url(&name)
}

impl Server {
    fn url(&self, database: &str) -> String {
        format!(
            "postgres://{USER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }
}

/// The server's log, for a failure message.
fn log_of(folder: &Path) -> String {
    let read = |name: &str| std::fs::read_to_string(folder.join(name)).unwrap_or_default();
    format!(
        "initdb said:\n{}\npostgres said:\n{}",
        read("initdb.log"),
        read("postgres.log")
    )
}

/// The folder holding `initdb` and `postgres`, if they are installed.
fn find_binaries() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(dir) = std::env::split_paths(&path).find(|d| has_both(d)) {
            return Some(dir);
        }
    }
    // Debian's packages keep them here, without links on PATH.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            has_both(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// The user to run PostgreSQL as when we are root: (name, uid, gid).
fn unprivileged_user() -> (&'static str, u32, u32) {
    for name in ["postgres", "nobody"] {
        let c_name = std::ffi::CString::new(name).unwrap();
        // SAFETY: getpwnam gets a NUL-terminated name and returns NULL or a
        // pointer to a static record, read at once (the tests start the
        // server once, from one thread, under the OnceLock).
        let entry = unsafe { libc::getpwnam(c_name.as_ptr()) };
        if !entry.is_null() {
            // SAFETY: not NULL, so it points to a valid passwd record.
            let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
            return (name, uid, gid);
        }
    }
    panic!("the tests run as root and there is no postgres or nobody user to run PostgreSQL as");
}

fn start() -> Server {
    let bin = find_binaries().unwrap_or_else(|| {
        let setup = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/postgres/setup.sh");
        let status = Command::new("bash").arg(&setup).status().unwrap();
        assert!(status.success(), "{} failed: {status}", setup.display());
        find_binaries().expect("setup.sh installed no initdb and postgres")
    });
    let folder = tempfile::Builder::new()
        .prefix("peershare-index-pg-")
        .tempdir()
        .unwrap()
        .keep();
    // SAFETY: geteuid has no preconditions.
    let owner = (unsafe { libc::geteuid() } == 0).then(unprivileged_user);
    let password: String = format!("{:032x}", rand::random::<u128>());
    let pwfile = folder.join("pwfile");
    std::fs::File::create(&pwfile)
        .and_then(|mut f| f.write_all(password.as_bytes()))
        .unwrap();
    let as_user: Vec<String> = match &owner {
        Some((_, uid, gid)) => {
            for path in [&folder, &pwfile] {
                std::os::unix::fs::chown(path, Some(*uid), Some(*gid)).unwrap();
            }
            vec![
                "setpriv".into(),
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".into(),
                "--".into(),
            ]
        }
        None => Vec::new(),
    };
    let data = folder.join("data");
    let command = |program: &str| {
        let mut c = match as_user.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin.join(program));
                c
            }
            None => Command::new(bin.join(program)),
        };
        c.current_dir(&folder);
        c
    };

    let log = std::fs::File::create(folder.join("initdb.log")).unwrap();
    let status = command("initdb")
        .arg("--pgdata")
        .arg(&data)
        .args(["--username", USER, "--auth", "scram-sha-256"])
        .arg(format!("--pwfile={}", pwfile.display()))
        .args(["--encoding", "UTF8", "--locale", "C", "--no-sync"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .status()
        .unwrap();
    assert!(status.success(), "initdb failed\n{}", log_of(&folder));

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let postgres = command("postgres");
    let mut args: Vec<String> = std::iter::once(postgres.get_program())
        .chain(postgres.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    args.extend([
        "-D".into(),
        data.display().to_string(),
        "-k".into(),
        folder.display().to_string(),
        "-p".into(),
        port.to_string(),
        "-c".into(),
        "listen_addresses=127.0.0.1".into(),
        // Each test runs an index with a pool of its own.
        "-c".into(),
        "max_connections=300".into(),
        // A test server: losing it in a power cut loses nothing of value.
        "-c".into(),
        "fsync=off".into(),
    ]);
    // The watchdog: starts the server, waits for its standard input to
    // close (this process ended), then stops the server by its pid.
    const WATCHDOG: &str = r#"
folder=$1; shift
"$@" </dev/null >>"$folder/postgres.log" 2>&1 &
server=$!
cat >/dev/null
kill -INT "$server" 2>/dev/null
wait "$server"
rm -rf "$folder"
"#;
    let mut watchdog = Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("postgres-watchdog")
        .arg(&folder)
        .args(&args)
        .current_dir(&folder)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lifeline = watchdog.stdin.take().unwrap();
    Server {
        port,
        password,
        folder,
        _lifeline: Mutex::new(lifeline),
        _watchdog: Mutex::new(watchdog),
    }
}
