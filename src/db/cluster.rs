//! A private PostgreSQL cluster made from the machine's installed server
//! binaries, for running factlog (and its tests) with no `DATABASE_URL`.
//!
//! Two flavours share the plumbing:
//! - [`PrivateCluster`]: persistent, under `./.factlog/`, started with
//!   `pg_ctl` so it outlives a crash of ours, shared by any number of factlog
//!   processes (a lock file serializes start-up; shared locks count users; the
//!   last user to leave stops it). Its data is the user's and is never wiped.
//! - [`EphemeralCluster`]: throw-away, in a temporary directory, a child of
//!   this process that the kernel stops when the process dies (tests, benches).
//!
//! PostgreSQL refuses to run as root; when we are root the server binaries run
//! as an unprivileged system user (`postgres` unless `FACTLOG_PG_USER` says
//! otherwise), which must own the data directory and be able to reach it.
//! A checkout under a home directory that user cannot enter (mode 700, the
//! usual case for root) keeps its lock files in `./.factlog/` and its data
//! in a directory of its own under [`STATE_BASE`], named after the
//! checkout; `./.factlog/data-location` records where, so the cluster is
//! found again on the next start.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClusterError {
    #[error(
        "DATABASE_URL is not set and no PostgreSQL server binaries (initdb, pg_ctl, postgres) were \
         found in FACTLOG_PG_BINDIR, PATH, `pg_config --bindir` or /usr/lib/postgresql/*/bin. \
         Either install the PostgreSQL server package (Debian/Ubuntu: `apt-get install postgresql`; \
         Fedora: `dnf install postgresql-server`; macOS: `brew install postgresql`) so factlog can \
         run its own private cluster under {dir}, or set DATABASE_URL to an existing database \
         (for example postgres://user@localhost:5432/factlog)."
    )]
    NoBinaries { dir: String },
    #[error(
        "factlog runs as root and PostgreSQL refuses to; it needs the system user `{user}` to run \
         the server, and that user does not exist. Install the PostgreSQL server package (it \
         creates the user), set FACTLOG_PG_USER to another unprivileged user, or set DATABASE_URL."
    )]
    NoServerUser { user: String },
    #[error(
        "the PostgreSQL server runs as `{user}`, which cannot reach {dir}: {blocker} is not \
         searchable by it. Put the project somewhere that user can reach, set FACTLOG_DATA_DIR \
         to such a directory, or set DATABASE_URL."
    )]
    Unreachable {
        user: String,
        dir: String,
        blocker: String,
    },
    #[error("{what} failed ({status}): {output}")]
    Command {
        what: String,
        status: String,
        output: String,
    },
    #[error("PostgreSQL did not become ready within {0:?}; see {1}")]
    NotReady(Duration, String),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ClusterError + '_ {
    move |source| ClusterError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Where the server binaries are and whom they run as.
#[derive(Debug, Clone)]
pub struct Server {
    pub bindir: PathBuf,
    /// (name, uid, gid) of the user the server runs as, when we are root.
    pub run_as: Option<(String, u32, u32)>,
}

impl Server {
    pub fn find(dir_for_message: &Path) -> Result<Server, ClusterError> {
        let bindir = find_bindir().ok_or_else(|| ClusterError::NoBinaries {
            dir: dir_for_message.display().to_string(),
        })?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let run_as = if unsafe { libc::geteuid() } == 0 {
            let user = std::env::var("FACTLOG_PG_USER").unwrap_or_else(|_| "postgres".into());
            let (uid, gid) = lookup_user(&user)
                .ok_or_else(|| ClusterError::NoServerUser { user: user.clone() })?;
            Some((user, uid, gid))
        } else {
            None
        };
        Ok(Server { bindir, run_as })
    }

    /// A server program: in the binaries' directory, else beside where
    /// `postgres` really is (a PATH directory may hold links to the three
    /// programs a cluster needs and no others, such as `pg_basebackup`).
    fn program(&self, program: &str) -> PathBuf {
        let here = self.bindir.join(program);
        if here.is_file() {
            return here;
        }
        fs::canonicalize(self.bindir.join("postgres"))
            .ok()
            .and_then(|p| p.parent().map(|d| d.join(program)))
            .filter(|p| p.is_file())
            .unwrap_or(here)
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.program(program));
        if let Some((_, uid, gid)) = &self.run_as {
            cmd.uid(*uid).gid(*gid);
        }
        // The server user may not be able to enter our working directory.
        cmd.current_dir("/");
        cmd.env("LC_ALL", "C");
        cmd
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<Output, ClusterError> {
        let what = format!("{program} {}", args.join(" "));
        let out = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(io_err(&self.program(program)))?;
        if !out.status.success() {
            return Err(ClusterError::Command {
                what,
                status: out.status.to_string(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                )
                .trim()
                .to_string(),
            });
        }
        Ok(out)
    }

    /// Gives the server user a directory of its own (when we are root).
    fn own(&self, path: &Path) -> Result<(), ClusterError> {
        if let Some((_, uid, gid)) = &self.run_as {
            std::os::unix::fs::chown(path, Some(*uid), Some(*gid)).map_err(io_err(path))?;
        }
        Ok(())
    }

    /// The server user must be able to search every directory above `dir`.
    fn check_reachable(&self, dir: &Path) -> Result<(), ClusterError> {
        let Some((user, uid, gid)) = &self.run_as else {
            return Ok(());
        };
        for ancestor in dir.ancestors().skip(1) {
            let Ok(meta) = fs::metadata(ancestor) else {
                continue;
            };
            let mode = meta.permissions().mode();
            let bit = if meta.uid() == *uid {
                0o100
            } else if meta.gid() == *gid {
                0o010
            } else {
                0o001
            };
            if mode & bit == 0 {
                return Err(ClusterError::Unreachable {
                    user: user.clone(),
                    dir: dir.display().to_string(),
                    blocker: format!("{} (mode {:o})", ancestor.display(), mode & 0o777),
                });
            }
        }
        Ok(())
    }

    /// Where a persistent cluster for the project directory `dir` keeps its
    /// data and server log: as recorded in `dir/data-location` when a
    /// start before chose; else `dir` itself when the server user can reach
    /// it; else (we are root) a directory of the server user's own under
    /// [`STATE_BASE`], recorded for the next start.
    fn data_home(&self, dir: &Path) -> Result<PathBuf, ClusterError> {
        let record = dir.join(DATA_LOCATION);
        if let Ok(text) = fs::read_to_string(&record) {
            let home = PathBuf::from(text.trim());
            if home.is_absolute() {
                return Ok(home);
            }
        }
        let unreachable = match self.check_reachable(dir) {
            Ok(()) => return Ok(dir.to_owned()),
            Err(e) => e,
        };
        let base = Path::new(STATE_BASE);
        if fs::create_dir_all(base).is_err() || self.check_reachable(&base.join("x")).is_err() {
            return Err(unreachable);
        }
        let home = base.join(state_name(dir));
        fs::create_dir_all(&home).map_err(io_err(&home))?;
        fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).map_err(io_err(&home))?;
        self.own(&home)?;
        fs::write(&record, format!("{}\n", home.display())).map_err(io_err(&record))?;
        tracing::info!(
            checkout = %dir.display(),
            data = %home.display(),
            "the PostgreSQL server user cannot enter the project directory: the private \
             cluster's data lives in a directory of its own instead"
        );
        Ok(home)
    }

    fn initdb(&self, data: &Path) -> Result<(), ClusterError> {
        fs::create_dir_all(data).map_err(io_err(data))?;
        fs::set_permissions(data, fs::Permissions::from_mode(0o700)).map_err(io_err(data))?;
        self.own(data)?;
        let d = data.display().to_string();
        self.run(
            "initdb",
            &[
                "-D",
                &d,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-instructions",
            ],
        )?;
        // TCP on loopback only: Unix socket paths are length-limited and the
        // data directory may be deep.
        let conf = data.join("postgresql.conf");
        let mut text = fs::read_to_string(&conf).map_err(io_err(&conf))?;
        text.push_str(
            "\n# factlog private cluster\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n",
        );
        fs::write(&conf, text).map_err(io_err(&conf))?;
        Ok(())
    }
}

/// PostgreSQL's buffer cache as a production server is given it: a quarter
/// of the memory this machine (or its container's cgroup limit) allows, at
/// least initdb's 128 MB and at most 8 GiB.
pub fn production_shared_buffers_mb() -> u64 {
    let ram_mb = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024);
    // A container sees the host's MemTotal; its limit is what it may use
    // ("max" and v1's huge "unlimited" parse to no limit).
    let limit_mb = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .filter_map(|f| fs::read_to_string(f).ok()?.trim().parse::<u64>().ok())
    .map(|bytes| bytes / (1024 * 1024))
    .min()
    .unwrap_or(u64::MAX);
    (ram_mb.min(limit_mb) / 4).clamp(128, 8 * 1024)
}

/// Where private clusters live whose project directory the server user
/// cannot reach (only ever used when running as root).
pub const STATE_BASE: &str = "/var/lib/factlog";

/// The file under the project directory that records where its cluster's
/// data lives when not under it.
pub const DATA_LOCATION: &str = "data-location";

/// A directory name for the cluster of project directory `dir`: readable
/// (the checkout's name) and unique (a hash of the full path).
fn state_name(dir: &Path) -> String {
    use sha2::{Digest, Sha256};
    let project = dir
        .parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let readable: String = project
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(40)
        .collect();
    let digest = Sha256::digest(dir.as_os_str().as_encoded_bytes());
    format!(
        "{}-{}",
        readable.trim_start_matches('.'),
        &hex::encode(digest)[..16]
    )
}

fn find_bindir() -> Option<PathBuf> {
    let complete = |d: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| d.join(b).is_file())
    };
    if let Some(d) = std::env::var_os("FACTLOG_PG_BINDIR").map(PathBuf::from)
        && complete(&d)
    {
        return Some(d);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if complete(&d) {
                return Some(d);
            }
        }
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && complete(&d) {
            return Some(d);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            complete(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, d)| d)
}

fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let c = CString::new(name).ok()?;
    // SAFETY: getpwnam returns null or a pointer to static storage that stays
    // valid until the next getpw* call; we copy the two fields out at once.
    unsafe {
        let pw = libc::getpwnam(c.as_ptr());
        if pw.is_null() {
            None
        } else {
            Some(((*pw).pw_uid, (*pw).pw_gid))
        }
    }
}

fn free_port() -> Result<u16, ClusterError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(io_err(Path::new("127.0.0.1:0")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(io_err(Path::new("127.0.0.1:0")))
}

/// The port recorded by a running postmaster (line 4 of postmaster.pid), if
/// its status line says it is ready.
fn ready_port(data: &Path) -> Option<u16> {
    let text = fs::read_to_string(data.join("postmaster.pid")).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    // A hot standby says `standby` once it takes read-only connections.
    let ready = lines
        .get(7)
        .is_some_and(|s| matches!(s.trim(), "ready" | "standby"));
    let pid: i32 = lines.first()?.trim().parse().ok()?;
    // SAFETY: signal 0 only checks that the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    if ready && alive {
        lines.get(3)?.trim().parse().ok()
    } else {
        None
    }
}

fn admin_url(port: u16) -> String {
    format!("postgres://postgres@127.0.0.1:{port}")
}

/// A persistent cluster under a project directory, shared by every factlog
/// process that uses that directory.
#[derive(Debug)]
pub struct PrivateCluster {
    dir: PathBuf,
    /// Where the data and the server log are (`dir` unless relocated).
    home: PathBuf,
    server: Server,
    port: u16,
    /// Held (shared) for as long as we use the cluster.
    users: Option<File>,
}

impl PrivateCluster {
    /// Creates the cluster on first use, starts it if it is not running, and
    /// registers this process as a user. Blocking.
    pub fn ensure(dir: &Path) -> Result<PrivateCluster, ClusterError> {
        let dir = std::path::absolute(dir).map_err(io_err(dir))?;
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let server = Server::find(&dir)?;
        let startup = lock_file(&dir.join("cluster.lock"))?;
        startup.lock().map_err(io_err(&dir))?;

        let home = server.data_home(&dir)?;
        let data = home.join("pgdata");
        if !data.join("PG_VERSION").is_file() {
            let shared_buffers_mb = production_shared_buffers_mb();
            tracing::info!(
                dir = %home.display(),
                shared_buffers_mb,
                "creating the private PostgreSQL cluster"
            );
            server.initdb(&data)?;
            // initdb's 128 MB is sized for a laptop; a log of millions of
            // events is gigabytes, and its reads stay fast only when its hot
            // indexes stay in PostgreSQL's own cache (BENCHMARKS.md).
            let conf = data.join("postgresql.conf");
            let mut text = fs::read_to_string(&conf).map_err(io_err(&conf))?;
            text.push_str(&format!("shared_buffers = {shared_buffers_mb}MB\n"));
            fs::write(&conf, text).map_err(io_err(&conf))?;
        }
        let port = match ready_port(&data) {
            Some(p) => p,
            None => start_with_pg_ctl(&server, &home, &data)?,
        };
        let users = lock_file(&dir.join("users.lock"))?;
        users.lock_shared().map_err(io_err(&dir))?;
        drop(startup);
        Ok(PrivateCluster {
            dir,
            home,
            server,
            port,
            users: Some(users),
        })
    }

    /// Connection URL for a database on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("{}/{database}", admin_url(self.port))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the cluster's data and server log are.
    pub fn data_dir(&self) -> PathBuf {
        self.home.join("pgdata")
    }

    /// Leaves the cluster; the last process to leave stops it. Blocking.
    pub fn release(mut self) -> Result<bool, ClusterError> {
        let startup = lock_file(&self.dir.join("cluster.lock"))?;
        startup.lock().map_err(io_err(&self.dir))?;
        drop(self.users.take());
        let users = lock_file(&self.dir.join("users.lock"))?;
        if users.try_lock().is_ok() {
            stop_with_pg_ctl(&self.server, &self.home.join("pgdata"))?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Stops the cluster under `dir` whoever started it (`factlog db stop`).
    pub fn stop(dir: &Path) -> Result<bool, ClusterError> {
        let dir = std::path::absolute(dir).map_err(io_err(dir))?;
        // Where a start put it; nothing is chosen (or created) here.
        let home = fs::read_to_string(dir.join(DATA_LOCATION))
            .map(|t| PathBuf::from(t.trim()))
            .unwrap_or_else(|_| dir.clone());
        let data = home.join("pgdata");
        if ready_port(&data).is_none() {
            return Ok(false);
        }
        let server = Server::find(&dir)?;
        stop_with_pg_ctl(&server, &data)?;
        Ok(true)
    }
}

fn lock_file(path: &Path) -> Result<File, ClusterError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err(path))
}

fn start_with_pg_ctl(server: &Server, dir: &Path, data: &Path) -> Result<u16, ClusterError> {
    let logdir = dir.join("log");
    fs::create_dir_all(&logdir).map_err(io_err(&logdir))?;
    server.own(&logdir)?;
    let log = logdir.join("postgres.log");
    let mut last = None;
    // A port found free can be taken before the server binds it; try again.
    for _ in 0..3 {
        let port = free_port()?;
        let opts = format!("-p {port}");
        match server.run(
            "pg_ctl",
            &[
                "-D",
                &data.display().to_string(),
                "-l",
                &log.display().to_string(),
                "-o",
                &opts,
                "-w",
                "-t",
                "60",
                "start",
            ],
        ) {
            Ok(_) => {
                tracing::info!(port, log = %log.display(), "private PostgreSQL cluster started");
                return Ok(port);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(ClusterError::NotReady(
        Duration::from_secs(60),
        log.display().to_string(),
    )))
}

fn stop_with_pg_ctl(server: &Server, data: &Path) -> Result<(), ClusterError> {
    server.run(
        "pg_ctl",
        &[
            "-D",
            &data.display().to_string(),
            "-m",
            "fast",
            "-w",
            "stop",
        ],
    )?;
    tracing::info!(data = %data.display(), "private PostgreSQL cluster stopped");
    Ok(())
}

/// A throw-away cluster that lives exactly as long as this process.
pub struct EphemeralCluster {
    dir: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    fast: bool,
    /// Server settings (`name=value`) given at every start.
    settings: Vec<String>,
    server: Server,
    child: Option<Child>,
}

impl EphemeralCluster {
    /// Starts a fresh cluster in a new directory under the system temp dir.
    /// `fast` turns off fsync: for tests and throw-away benchmarks only.
    pub fn start(fast: bool) -> Result<EphemeralCluster, ClusterError> {
        Self::start_with(fast, &[])
    }

    /// [`start`](Self::start) with server settings (`name=value`), e.g. a
    /// benchmark's `shared_buffers`.
    pub fn start_with(fast: bool, settings: &[String]) -> Result<EphemeralCluster, ClusterError> {
        let base = std::env::temp_dir().join("factlog-ephemeral");
        fs::create_dir_all(&base).map_err(io_err(&base))?;
        fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).ok();
        reap_stale(&base);
        // One process may own several clusters (a test of its own for faults).
        let dir = base
            .join(format!("{}", std::process::id()))
            .join(uuid::Uuid::new_v4().simple().to_string());
        let server = Server::find(&dir)?;
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        for d in [dir.parent().unwrap_or(&dir), dir.as_path()] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).map_err(io_err(d))?;
        }
        server.check_reachable(&dir)?;
        server.own(&dir)?;
        let data = dir.join("pgdata");
        server.initdb(&data)?;
        let log = dir.join("postgres.log");
        File::create(&log).map_err(io_err(&log))?;
        server.own(&log)?;
        let mut cluster = EphemeralCluster {
            port: free_port()?,
            dir,
            data,
            log,
            fast,
            settings: settings.to_vec(),
            server,
            child: None,
        };
        cluster.resume()?;
        Ok(cluster)
    }

    /// Starts the server again after [`halt`](Self::halt), on the same port.
    pub fn resume(&mut self) -> Result<(), ClusterError> {
        if self.child.is_some() {
            return Ok(());
        }
        let log_file = OpenOptions::new()
            .append(true)
            .open(&self.log)
            .map_err(io_err(&self.log))?;
        let mut cmd = self.server.command("postgres");
        cmd.arg("-D")
            .arg(&self.data)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-c", "max_connections=300"]);
        for setting in &self.settings {
            cmd.args(["-c", setting]);
        }
        // A profiling aid (e.g. `shared_preload_libraries=pg_stat_statements`
        // for the benchmarks): space-separated `name=value` server settings.
        if let Ok(extra) = std::env::var("FACTLOG_EPHEMERAL_PG_SETTINGS") {
            for setting in extra.split_whitespace() {
                cmd.args(["-c", setting]);
            }
        }
        if self.fast {
            cmd.args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]);
        }
        let err_file = log_file.try_clone().map_err(io_err(&self.log))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log_file))
            .stderr(Stdio::from(err_file));
        // SAFETY: prctl is async-signal-safe; it asks the kernel to stop the
        // server (fast shutdown) when the thread that spawned it ends.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        self.child = Some(spawn_from_immortal_thread(cmd).map_err(io_err(&self.data))?);
        let deadline = Instant::now() + Duration::from_secs(60);
        while ready_port(&self.data) != Some(self.port) {
            if Instant::now() > deadline {
                return Err(ClusterError::NotReady(
                    Duration::from_secs(60),
                    self.log.display().to_string(),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Stops the server: `crash` kills it as a power cut would (SIGQUIT,
    /// immediate shutdown, recovery on restart), otherwise a fast shutdown.
    pub fn halt(&mut self, crash: bool) {
        if let Some(mut child) = self.child.take() {
            let signal = if crash { libc::SIGQUIT } else { libc::SIGINT };
            // SAFETY: plain signal to our own child.
            unsafe {
                libc::kill(child.id() as i32, signal);
            }
            let _ = child.wait();
        }
    }

    /// A streaming standby of this cluster, made with `pg_basebackup -R`
    /// over loopback, in a directory of its own and on a port of its own:
    /// it replays each commit no sooner than `apply_delay` after it (a test
    /// can then count on reads there being stale). Stopped and removed when
    /// dropped, as any ephemeral cluster.
    pub fn standby(&self, apply_delay: Duration) -> Result<EphemeralCluster, ClusterError> {
        let dir = self
            .dir
            .parent()
            .unwrap_or(&self.dir)
            .join(uuid::Uuid::new_v4().simple().to_string());
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).map_err(io_err(&dir))?;
        self.server.own(&dir)?;
        let data = dir.join("pgdata");
        let port = self.port.to_string();
        self.server.run(
            "pg_basebackup",
            &[
                "-D",
                &data.display().to_string(),
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                // Writes standby.signal and primary_conninfo.
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ],
        )?;
        let auto = data.join("postgresql.auto.conf");
        let mut text = fs::read_to_string(&auto).map_err(io_err(&auto))?;
        text.push_str(&format!(
            "recovery_min_apply_delay = '{}ms'\n",
            apply_delay.as_millis()
        ));
        fs::write(&auto, text).map_err(io_err(&auto))?;
        let log = dir.join("postgres.log");
        File::create(&log).map_err(io_err(&log))?;
        self.server.own(&log)?;
        let mut standby = EphemeralCluster {
            port: free_port()?,
            dir,
            data,
            log,
            fast: self.fast,
            settings: self.settings.clone(),
            server: self.server.clone(),
            child: None,
        };
        standby.resume()?;
        Ok(standby)
    }

    pub fn admin_url(&self) -> String {
        admin_url(self.port)
    }

    pub fn url(&self, database: &str) -> String {
        format!("{}/{database}", admin_url(self.port))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for EphemeralCluster {
    fn drop(&mut self) {
        self.halt(false);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// PR_SET_PDEATHSIG fires when the spawning *thread* exits, so spawn from a
/// thread that never does.
fn spawn_from_immortal_thread(mut cmd: Command) -> io::Result<Child> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("factlog-pg-parent".into())
        .spawn(move || {
            let _ = tx.send(cmd.spawn());
            loop {
                std::thread::park();
            }
        })?;
    rx.recv()
        .map_err(|_| io::Error::other("spawner thread died"))?
}

/// Removes directories of ephemeral clusters whose owning process is gone.
fn reap_stale(base: &Path) {
    for entry in fs::read_dir(base).into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only checks that the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        if !alive {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}
