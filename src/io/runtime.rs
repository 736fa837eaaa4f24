//! Start-up and shutdown: pre-flight checks, one pinned glommio executor per
//! shard, the cross-shard mesh, listeners, and signal handling.
//!
//! Pre-flight checks fail with a message a person can act on: io_uring missing
//! or disabled, RLIMIT_MEMLOCK too small, a listening port taken by another
//! program (glommio binds with SO_REUSEPORT, so a clash would otherwise go
//! unnoticed and the kernel would split traffic between the two programs).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use glommio::{LocalExecutorPoolBuilder, PoolPlacement};
use tracing::{info, warn};

use crate::config::Config;
use crate::io::control::Control;
use crate::io::http::files::StaticFiles;
use crate::io::mesh::{Mesh, MeshBuilders};
use crate::io::reload::ShardListeners;
use crate::io::shard::Shard;
use crate::io::srtla::SrtlaShard;
use crate::media::registry::{Registry, MAX_SHARDS};
use crate::metrics::Metrics;

/// How long shards give sessions to say goodbye on shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(800);
/// glommio's default registered-buffer memory per shard.
const IO_MEMORY_MAX: usize = 10 << 20;
const MEMLOCK_MIN: u64 = 512 << 10;

/// Check that io_uring can be used by this process.
pub fn check_io_uring() -> anyhow::Result<()> {
    // struct io_uring_params is 120 bytes; zeroed asks for defaults.
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup reads and writes `params` only, and returns a file
    // descriptor we close at once.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    if fd < 0 {
        let err = std::io::Error::last_os_error();
        let why = match err.raw_os_error() {
            Some(libc::ENOSYS) => "this kernel has no io_uring (Linux 5.8 or newer is needed)",
            Some(libc::EPERM) => {
                "io_uring is disabled for this process (sysctl kernel.io_uring_disabled, or a seccomp profile such as a container's default)"
            }
            Some(libc::ENOMEM) => "io_uring could not allocate its rings (RLIMIT_MEMLOCK too small?)",
            _ => "io_uring_setup failed",
        };
        bail!("io_uring is not usable: {why}: {err}");
    }
    // SAFETY: fd is a descriptor we own.
    unsafe { libc::close(fd as i32) };
    Ok(())
}

/// Raise RLIMIT_MEMLOCK's soft limit to the hard limit; returns the new soft limit.
pub fn raise_memlock() -> anyhow::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) != 0 {
            return Err(std::io::Error::last_os_error()).context("getrlimit(RLIMIT_MEMLOCK)");
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    let cur = lim.rlim_cur;
    if cur < MEMLOCK_MIN {
        bail!(
            "RLIMIT_MEMLOCK is {} KiB and the hard limit does not allow more; io_uring needs at least {} KiB (raise it with `ulimit -l` or LimitMEMLOCK= in a systemd unit)",
            cur >> 10,
            MEMLOCK_MIN >> 10
        );
    }
    Ok(cur)
}

/// Registered-buffer memory per shard that fits in the locked-memory limit.
pub fn io_memory_for(memlock: u64, shards: usize) -> usize {
    let share = memlock / (shards as u64 + 1);
    (share.min(IO_MEMORY_MAX as u64) as usize).max(64 << 10)
}

/// Fail if another program holds one of our ports (a plain bind, no SO_REUSEPORT).
pub fn check_ports_free(config: &Config) -> anyhow::Result<()> {
    for addr in &config.srt.listen {
        check_udp_port(*addr).with_context(|| format!("srt.listen {addr}"))?;
    }
    for addr in srtla_addresses(config) {
        check_udp_port(addr).with_context(|| format!("srtla.listen {addr}"))?;
    }
    for addr in http_addresses(config) {
        check_tcp_port(addr).with_context(|| format!("http.listen {addr}"))?;
    }
    for addr in api_addresses(config) {
        check_tcp_port(addr).with_context(|| format!("api.listen {addr}"))?;
    }
    Ok(())
}

/// Fail if another program holds one of the ports a reload would open.
pub fn check_new_ports_free(old: &Config, new: &Config) -> anyhow::Result<()> {
    for addr in new
        .srt
        .listen
        .iter()
        .filter(|a| !old.srt.listen.contains(a))
    {
        check_udp_port(*addr).with_context(|| format!("srt.listen {addr}"))?;
    }
    let (oh, oa) = (http_addresses(old), api_addresses(old));
    for addr in http_addresses(new)
        .into_iter()
        .filter(|a| !oh.contains(a) && !oa.contains(a))
    {
        check_tcp_port(addr).with_context(|| format!("http.listen {addr}"))?;
    }
    for addr in api_addresses(new)
        .into_iter()
        .filter(|a| !oa.contains(a) && !oh.contains(a))
    {
        check_tcp_port(addr).with_context(|| format!("api.listen {addr}"))?;
    }
    Ok(())
}

/// The API addresses to bind: none when disabled, and IPv6 ones only where
/// the host has IPv6.
pub fn api_addresses(config: &Config) -> Vec<SocketAddr> {
    if !config.api.enabled {
        return Vec::new();
    }
    let v6 = ipv6_available();
    config
        .api
        .listen
        .iter()
        .copied()
        .filter(|a| v6 || a.is_ipv4())
        .collect()
}

/// The HTTP addresses to bind: none when disabled, and an IPv6 wildcard only
/// where the host has IPv6.
pub fn http_addresses(config: &Config) -> Vec<SocketAddr> {
    if !config.http.enabled {
        return Vec::new();
    }
    config
        .http
        .listen
        .iter()
        .copied()
        .filter(|a| !(a.is_ipv6() && a.ip().is_unspecified() && !ipv6_available()))
        .collect()
}

fn check_tcp_port(addr: SocketAddr) -> anyhow::Result<()> {
    // A plain bind (SO_REUSEADDR for TIME_WAIT leftovers, no SO_REUSEPORT)
    // fails if another program listens there.
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.set_reuse_address(true)?;
    match sock.bind(&addr.into()).and_then(|()| sock.listen(1)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(anyhow!(
            "tcp {addr} (port {}) is already in use by another program",
            addr.port()
        )),
        Err(e) => Err(anyhow!("cannot bind tcp {addr}: {e}")),
    }
}

/// The SRTLA addresses to bind: none when disabled, and an IPv6 wildcard only
/// where the host has IPv6 (the default lists `[::]:5000` beside `0.0.0.0:5000`).
pub fn srtla_addresses(config: &Config) -> Vec<SocketAddr> {
    if !config.srtla.enabled {
        return Vec::new();
    }
    config
        .srtla
        .listen
        .iter()
        .copied()
        .filter(|a| !(a.is_ipv6() && a.ip().is_unspecified() && !ipv6_available()))
        .collect()
}

fn ipv6_available() -> bool {
    std::net::UdpSocket::bind("[::1]:0").is_ok()
}

fn check_udp_port(addr: SocketAddr) -> anyhow::Result<()> {
    match crate::io::srtla::bind_plain(addr) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(anyhow!(
            "udp {addr} (port {}) is already in use by another program",
            addr.port()
        )),
        Err(e) => Err(anyhow!("cannot bind udp {addr}: {e}")),
    }
}

fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Block the signals we handle in this thread (and the shards it spawns), so
/// only [`wait_for_signal`] sees them.
fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset manipulation on a local value, then pthread_sigmask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_for_signal(set: &libc::sigset_t) -> i32 {
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` holds blocked signals; sigwait stores the one received.
    unsafe { libc::sigwait(set, &mut sig) };
    sig
}

/// Run the gateway until SIGINT/SIGTERM; SIGHUP re-reads `file`.
pub fn run(config: Config, file: PathBuf) -> anyhow::Result<()> {
    check_io_uring()?;
    let memlock = raise_memlock()?;
    check_ports_free(&config)?;
    let cpus = cpu_count();
    let shards = config.workers_or(cpus).clamp(1, MAX_SHARDS);
    let placement = if shards <= cpus {
        PoolPlacement::MaxSpread(shards, None)
    } else {
        warn!(
            shards,
            cpus, "more workers than CPUs: shards will not be pinned"
        );
        PoolPlacement::Unbound(shards)
    };
    let io_memory = io_memory_for(memlock, shards);
    let signals = block_signals();

    let files = Arc::new(if config.http.enabled || config.api.enabled {
        let (files, warnings) = StaticFiles::load(Path::new(&config.http.root));
        for w in warnings {
            warn!("http: {w}");
        }
        files
    } else {
        StaticFiles::default()
    });
    let config = Arc::new(config);
    let control = Arc::new(Control::new(file, config.clone(), shards));
    let registry = Arc::new(Registry::default());
    let metrics = Arc::new(Metrics::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mesh = MeshBuilders::new(shards);
    let (ready_tx, ready_rx) = mpsc::channel::<Result<usize, String>>();
    let spawned = Arc::new(AtomicUsize::new(0));

    let handles = LocalExecutorPoolBuilder::new(placement)
        .io_memory(io_memory)
        .name("srtgate")
        .on_all_shards({
            let stop = stop.clone();
            let config = config.clone();
            let control = control.clone();
            move || {
                let (config, control, registry, metrics, stop, mesh, ready, files) = (
                    config.clone(),
                    control.clone(),
                    registry.clone(),
                    metrics.clone(),
                    stop.clone(),
                    mesh.clone(),
                    ready_tx.clone(),
                    files.clone(),
                );
                let fallback_id = spawned.fetch_add(1, Ordering::Relaxed);
                async move {
                    shard_main(
                        fallback_id,
                        shards,
                        config,
                        control,
                        registry,
                        metrics,
                        mesh,
                        stop,
                        ready,
                        files,
                    )
                    .await
                }
            }
        })
        .map_err(|e| anyhow!("cannot start {shards} executors: {e}"))?;

    for _ in 0..shards {
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!("{e}");
                std::process::exit(1);
            }
            Err(_) => {
                tracing::error!("shards did not start within 10 s");
                std::process::exit(1);
            }
        }
    }
    let srtla = srtla_addresses(&config);
    if config.srtla.enabled && srtla.len() < config.srtla.listen.len() {
        warn!("IPv6 is not available on this host: SRTLA listens on IPv4 only");
    }
    let http = http_addresses(&config);
    if config.http.enabled && http.len() < config.http.listen.len() {
        warn!("IPv6 is not available on this host: HTTP listens on IPv4 only");
    }
    let api = api_addresses(&config);
    info!(
        workers = shards,
        srt = ?config.srt.listen,
        srtla = ?srtla,
        http = ?http,
        api = ?api,
        io_memory_kib = io_memory >> 10,
        "srtgate ready"
    );

    loop {
        let sig = wait_for_signal(&signals);
        match sig {
            libc::SIGHUP => reload_file(&control),
            _ => {
                info!(signal = sig, "shutting down");
                break;
            }
        }
    }
    let t0 = Instant::now();
    stop.store(true, Ordering::Release);
    let _ = handles.join_all();
    info!(ms = t0.elapsed().as_millis() as u64, "stopped");
    Ok(())
}

/// SIGHUP: re-read the configuration file and apply it, or log why not.
fn reload_file(control: &Control) {
    let file = control.file().to_path_buf();
    let new = match Config::load(&file) {
        Ok(c) => c,
        Err(e) => {
            warn!("SIGHUP: configuration not reloaded, the running one stays: {e:#}");
            return;
        }
    };
    let Some(change) = control.begin() else {
        warn!("SIGHUP: another configuration change is in progress; send SIGHUP again later");
        return;
    };
    let old = control.current().1;
    if let Err(e) = check_new_ports_free(&old, &new) {
        warn!("SIGHUP: configuration not reloaded, the running one stays: {e:#}");
        return;
    }
    let (gen, changes) = control.publish(&change, new);
    info!(generation = gen, file = %file.display(), restart_needed = ?changes.restart_needed,
        "SIGHUP: configuration reloaded");
}

#[allow(clippy::too_many_arguments)]
async fn shard_main(
    fallback_id: usize,
    count: usize,
    config: Arc<Config>,
    control: Arc<Control>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    mesh: Option<MeshBuilders>,
    stop: Arc<AtomicBool>,
    ready: mpsc::Sender<Result<usize, String>>,
    files: Arc<StaticFiles>,
) {
    let (mesh, receivers) = match mesh {
        Some(m) => match m.join().await {
            Ok((mesh, rx)) => (mesh, Some(rx)),
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        },
        None => (Mesh::single(fallback_id), None),
    };
    let id = mesh.shard();
    let shard = Shard::new(id, count, config.clone(), registry, metrics, mesh);
    if let Some(rx) = receivers {
        shard.serve_mesh(rx);
    }
    let srtla = srtla_addresses(&config);
    if !srtla.is_empty() {
        let mut sockets = Vec::with_capacity(srtla.len());
        for addr in &srtla {
            match crate::io::srtla::bind(*addr) {
                Ok(s) => sockets.push(s),
                Err(e) => {
                    let _ = ready.send(Err(format!("srtla.listen {addr}: cannot bind: {e}")));
                    return;
                }
            }
        }
        let srtla = SrtlaShard::new(shard.clone(), sockets, srtla.clone());
        shard.set_srtla(srtla.clone());
        srtla.spawn();
    }
    let mut listeners = ShardListeners::new(shard.clone(), control, files);
    if let Err(e) = listeners.open_all(&config) {
        let _ = ready.send(Err(e));
        return;
    }
    {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(Duration::from_secs(1)).await;
                shard.hls.sweep(Instant::now());
                shard.publish_figures();
            }
        })
        .detach();
    }
    let _ = ready.send(Ok(id));
    wait_until_stopped(&shard, &stop, &mut listeners).await;
}

/// Apply configuration changes as they come, until the process stops.
async fn wait_until_stopped(shard: &Rc<Shard>, stop: &AtomicBool, listeners: &mut ShardListeners) {
    while !stop.load(Ordering::Acquire) {
        glommio::timer::sleep(crate::io::control::POLL).await;
        listeners.poll();
    }
    shard.begin_stop();
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while shard.session_count() > 0 && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_memory_fits_memlock() {
        assert_eq!(io_memory_for(u64::MAX, 2), IO_MEMORY_MAX);
        assert_eq!(io_memory_for(8 << 20, 3), 2 << 20);
        assert_eq!(io_memory_for(512 << 10, 64), 64 << 10);
    }

    #[test]
    fn taken_port_is_named() {
        let held = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let err = check_udp_port(addr).unwrap_err().to_string();
        assert!(
            err.contains(&addr.port().to_string()) && err.contains("in use"),
            "{err}"
        );
        drop(held);
        check_udp_port(addr).unwrap();
    }
}
