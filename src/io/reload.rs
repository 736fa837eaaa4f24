//! The shard side of a configuration reload: this shard's listeners by
//! address, opened and closed as the configuration says, and the application
//! of a new generation from [`Control`] as a difference
//! ([`crate::config::diff::Changes`]): unchanged listeners and sessions are
//! not touched.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use tracing::{info, warn};

use crate::config::diff::Changes;
use crate::config::Config;
use crate::io::api::Api;
use crate::io::control::Control;
use crate::io::http::{self, files::StaticFiles, routes::Routes, server::HttpServer};
use crate::io::runtime::{api_addresses, http_addresses};
use crate::io::shard::Shard;
use crate::io::srt::listener::SrtListener;
use crate::io::stopper::Stopper;

/// One shard's listeners.
pub struct ShardListeners {
    shard: Rc<Shard>,
    control: Arc<Control>,
    files: Arc<StaticFiles>,
    srt: HashMap<SocketAddr, (Rc<SrtListener>, Stopper)>,
    http: HashMap<SocketAddr, Stopper>,
    http_server: Option<Rc<HttpServer<Routes>>>,
    api: HashMap<SocketAddr, Stopper>,
    api_server: Option<Rc<HttpServer<Api>>>,
    applied: u64,
}

impl ShardListeners {
    pub fn new(shard: Rc<Shard>, control: Arc<Control>, files: Arc<StaticFiles>) -> Self {
        let applied = control.current().0;
        Self {
            shard,
            control,
            files,
            srt: HashMap::new(),
            http: HashMap::new(),
            http_server: None,
            api: HashMap::new(),
            api_server: None,
            applied,
        }
    }

    /// Open every listener of `config` (at start); errors name the address.
    pub fn open_all(&mut self, config: &Config) -> Result<(), String> {
        for addr in &config.srt.listen {
            self.open_srt(*addr)
                .map_err(|e| format!("srt.listen {addr}: cannot bind: {e}"))?;
        }
        for addr in http_addresses(config) {
            self.open_http(addr, config)
                .map_err(|e| format!("http.listen {addr}: cannot bind: {e}"))?;
        }
        for addr in api_addresses(config) {
            self.open_api(addr, config)
                .map_err(|e| format!("api.listen {addr}: cannot bind: {e}"))?;
        }
        Ok(())
    }

    fn open_srt(&mut self, addr: SocketAddr) -> std::io::Result<()> {
        let l = SrtListener::bind(self.shard.clone(), addr)?;
        let stop = Stopper::new();
        glommio::spawn_local({
            let (l, stop) = (l.clone(), stop.clone());
            async move { stop.run(l.run()).await }
        })
        .detach();
        glommio::spawn_local({
            let (l, stop) = (l.clone(), stop.clone());
            async move { stop.run(l.housekeeping()).await }
        })
        .detach();
        self.srt.insert(addr, (l, stop));
        Ok(())
    }

    fn close_srt(&mut self, addr: SocketAddr) {
        if let Some((l, stop)) = self.srt.remove(&addr) {
            l.close();
            stop.stop();
        }
    }

    fn http_server(&mut self, config: &Config) -> Rc<HttpServer<Routes>> {
        self.http_server
            .get_or_insert_with(|| {
                let routes = Routes::new(self.shard.clone(), self.files.clone());
                HttpServer::new(
                    &config.http,
                    self.shard.count,
                    routes,
                    self.shard.metrics.clone(),
                )
            })
            .clone()
    }

    fn api_server(&mut self, config: &Config) -> Rc<HttpServer<Api>> {
        self.api_server
            .get_or_insert_with(|| {
                let api = Api::new(self.shard.clone(), self.files.clone(), self.control.clone());
                HttpServer::new(
                    &config.api_http(),
                    self.shard.count,
                    api,
                    self.shard.metrics.clone(),
                )
            })
            .clone()
    }

    fn open_http(&mut self, addr: SocketAddr, config: &Config) -> std::io::Result<()> {
        let listener = http::server::bind(addr)?;
        let server = self.http_server(config);
        let stop = Stopper::new();
        glommio::spawn_local({
            let stop = stop.clone();
            async move { stop.run(server.run(listener)).await }
        })
        .detach();
        if let Some(old) = self.http.insert(addr, stop) {
            old.stop();
        }
        Ok(())
    }

    fn open_api(&mut self, addr: SocketAddr, config: &Config) -> std::io::Result<()> {
        let listener = http::server::bind(addr)?;
        let server = self.api_server(config);
        let stop = Stopper::new();
        glommio::spawn_local({
            let stop = stop.clone();
            async move { stop.run(server.run(listener)).await }
        })
        .detach();
        if let Some(old) = self.api.insert(addr, stop) {
            old.stop();
        }
        Ok(())
    }

    /// Apply a newer generation, if there is one.
    pub fn poll(&mut self) {
        let gen = self.control.generation();
        if gen <= self.applied {
            return;
        }
        let (gen, config) = self.control.current();
        let closed = self.apply(config);
        self.applied = gen;
        self.control.applied(self.shard.id, gen, closed);
    }

    /// Move this shard from its configuration to `new`; returns the number of
    /// sessions closed because the new rules refuse them.
    fn apply(&mut self, new: Arc<Config>) -> usize {
        let old = self.shard.config();
        let changes = Changes::between(&old, &new);
        self.shard.set_config(new.clone());
        if changes.is_empty() {
            return 0;
        }
        let hub = &self.shard.hub;
        if changes.srt_settings {
            hub.set_reader_queue(new.srt.reader_queue);
        }
        if changes.hls {
            self.shard.hls.set_config(new.hls.clone());
        }
        // SRTLA limits and allow-lists are read from the shard's configuration
        // on every registration and tick: nothing to do for them here.
        for addr in &changes.srt_listen.open {
            if let Err(e) = self.open_srt(*addr) {
                warn!(listen = %addr, error = %e, "reload: cannot bind srt listener");
            }
        }
        for addr in &changes.srt_listen.close {
            self.close_srt(*addr);
        }
        // New HTTP settings (timeouts, limits, CORS) take a new server: its
        // listeners replace the old ones, whose connections run on.
        let (mut http_open, mut http_close) = (
            changes.http_listen.open.clone(),
            changes.http_listen.close.clone(),
        );
        if changes.http_settings {
            self.http_server = None;
            let keep: Vec<_> = self
                .http
                .keys()
                .copied()
                .filter(|a| !http_close.contains(a))
                .collect();
            http_open.extend(keep);
        }
        let http_now = http_addresses(&new);
        http_open.retain(|a| http_now.contains(a));
        for addr in &http_open {
            if let Err(e) = self.open_http(*addr, &new) {
                warn!(listen = %addr, error = %e, "reload: cannot bind http listener");
            }
        }
        http_close.retain(|a| !http_open.contains(a));
        for addr in &http_close {
            if let Some(stop) = self.http.remove(addr) {
                stop.stop();
            }
        }
        let (api_open, api_close) = api_rebind(&old, &new);
        if api_settings_changed(&old, &new) {
            self.api_server = None;
        }
        for addr in api_open {
            if let Err(e) = self.open_api(addr, &new) {
                warn!(listen = %addr, error = %e, "reload: cannot bind api listener");
            }
        }
        for addr in api_close {
            if let Some(stop) = self.api.remove(&addr) {
                stop.stop();
            }
        }
        let rules = !changes.rules_added.is_empty()
            || !changes.rules_changed.is_empty()
            || !changes.rules_removed.is_empty()
            || changes.rules_reordered;
        let closed = if rules {
            self.shard.recheck_sessions(&new)
        } else {
            0
        };
        if self.shard.id == 0 {
            info!(
                srt_open = ?changes.srt_listen.open, srt_close = ?changes.srt_listen.close,
                http_open = ?changes.http_listen.open, http_close = ?changes.http_listen.close,
                rules_added = ?changes.rules_added, rules_changed = ?changes.rules_changed,
                rules_removed = ?changes.rules_removed, "configuration applied"
            );
        }
        closed
    }
}

/// API addresses to open and close. A changed API setting (body limit,
/// token) needs no rebind: the handler reads the configuration per request.
fn api_rebind(old: &Config, new: &Config) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
    let (a, b) = (api_addresses(old), api_addresses(new));
    let mut open: Vec<_> = b.iter().filter(|x| !a.contains(x)).copied().collect();
    let close: Vec<_> = a.iter().filter(|x| !b.contains(x)).copied().collect();
    if api_settings_changed(old, new) {
        // Rebuild the server with the new HTTP limits on the kept addresses.
        open.extend(b.iter().filter(|x| a.contains(x)).copied());
    }
    (open, close)
}

fn api_settings_changed(old: &Config, new: &Config) -> bool {
    old.api_http() != new.api_http()
}
