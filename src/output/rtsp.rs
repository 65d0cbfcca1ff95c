//! RTSP with gst-rtsp-server, for VLC, ffplay and NVRs: one shared media fed
//! from the camera's encoded tap through an appsrc, never a pipeline (or an
//! encoder) per viewer.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context as _, Result};
use gst::glib;
use gst::prelude::*;
use gst_rtsp_server::prelude::*;

use super::{Context, Output, Running};
use crate::config::{Config, RtspConfig};

/// The media each viewer session plays. The appsrc is fed by the camera's
/// StreamProducer, whose stream already carries SPS/PPS in front of every
/// keyframe (h264parse config-interval=-1 in the camera pipeline).
///
/// rtph264pay keeps its default config-interval=0 on purpose: with -1 it
/// inserts SPS/PPS before *each slice* of an IDR frame, and x264's
/// zero-latency mode writes several slices per frame, so every keyframe was
/// split in two and decoders reported corrupt frames until the next one.
const MEDIA_LAUNCH: &str = "( appsrc name=videosrc \
    ! rtph264pay name=pay0 pt=96 aggregate-mode=zero-latency )";

/// The RTSP output: a gst-rtsp-server serving `rtsp.path` on `rtsp.port`.
pub struct Rtsp;

impl Output for Rtsp {
    fn name(&self) -> &'static str {
        "rtsp"
    }

    fn enabled(&self, config: &Config) -> bool {
        config.rtsp.enabled
    }

    fn settings(&self) -> &'static [&'static str] {
        &["rtsp"]
    }

    fn start(&self, config: &Config, context: &Context) -> Result<Box<dyn Running>> {
        RunningRtsp::start(&config.rtsp, context).map(|running| Box::new(running) as _)
    }
}

/// A running RTSP server; [`Running::stop`] stops it.
struct RunningRtsp {
    main_loop: glib::MainLoop,
    thread: Option<JoinHandle<()>>,
    server: gst_rtsp_server::RTSPServer,
    /// The listening socket's source in the server's main context.
    listening: Option<glib::SourceId>,
    description: serde_json::Value,
    failures: crate::output::Failures,
}

impl RunningRtsp {
    /// Binds the port and serves `config.path` from the encoded tap.
    fn start(config: &RtspConfig, context: &Context) -> Result<Self> {
        // gst-rtsp-server reports a busy port only as "failed to attach main
        // context"; check first so the message names the port.
        TcpListener::bind(("0.0.0.0", config.port))
            .with_context(|| format!("rtsp.port {} cannot be used", config.port))?;

        let server = gst_rtsp_server::RTSPServer::new();
        server.set_service(&config.port.to_string());
        track_viewers(
            &server,
            context.registry.sessions("rtsp"),
            config.session_timeout_s,
        );

        let factory = gst_rtsp_server::RTSPMediaFactory::new();
        factory.set_launch(MEDIA_LAUNCH);
        // Shared: every viewer of the path plays the same media.
        factory.set_shared(true);
        factory.set_protocols(gst_rtsp::RTSPLowerTrans::TCP | gst_rtsp::RTSPLowerTrans::UDP);
        feed_media_from(&factory, context.clone());
        if !config.user.is_empty() {
            require_credentials(&server, &factory, &config.user, &config.password);
        }
        server
            .mount_points()
            .context("RTSP server has no mount points")?
            .add_factory(&config.path, factory);

        // gst-rtsp-server needs an iterated GLib main context: give it its own
        // thread so it never waits on tokio or on the camera.
        let main_context = glib::MainContext::new();
        let main_loop = glib::MainLoop::new(Some(&main_context), false);
        let listening = server
            .attach(Some(&main_context))
            .with_context(|| format!("RTSP server cannot listen on port {}", config.port))?;
        // Sessions whose viewer vanished (no TEARDOWN, no keep-alive) are
        // only removed when somebody calls cleanup().
        let pool = server
            .session_pool()
            .context("RTSP server has no session pool")?;
        let sweep = glib::timeout_source_new(
            Duration::from_secs(config.cleanup_interval_s.into()),
            None,
            glib::Priority::DEFAULT,
            move || {
                let removed = pool.cleanup();
                if removed > 0 {
                    tracing::info!(removed, "RTSP: expired sessions removed");
                }
                glib::ControlFlow::Continue
            },
        );
        sweep.attach(Some(&main_context));

        let loop_for_thread = main_loop.clone();
        let thread = std::thread::Builder::new()
            .name("rtsp".to_owned())
            .spawn(move || loop_for_thread.run())
            .context("starting the RTSP thread")?;
        Ok(Self {
            main_loop,
            thread: Some(thread),
            server,
            listening: Some(listening),
            description: serde_json::json!({ "port": config.port, "path": config.path }),
            failures: context.failures.clone(),
        })
    }
}

impl Running for RunningRtsp {
    fn describe(&self) -> serde_json::Value {
        self.description.clone()
    }

    /// The server has no bus of its own to fail on: report it directly.
    fn break_now(&self) {
        self.failures
            .report("injected fault: the RTSP server failed");
    }

    /// Disconnects every viewer, closes the port (a server restarted on the
    /// same port binds it again at once) and ends the server's thread.
    fn stop(mut self: Box<Self>) {
        use gst_rtsp_server::RTSPFilterResult;
        self.server
            .client_filter(Some(&mut |_, _| RTSPFilterResult::Remove));
        if let Some(pool) = self.server.session_pool() {
            pool.filter(Some(&mut |_, _| RTSPFilterResult::Remove));
        }
        // In the server's own context (SourceId::remove looks in the
        // default one, and panics when the source is not there).
        if let Some(listening) = self.listening.take() {
            if let Some(source) = self.main_loop.context().find_source_by_id(&listening) {
                source.destroy();
            }
        }
        self.main_loop.quit();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Viewers must log in as `user` (HTTP Basic, as RTSP clients and NVRs
/// send it): the server checks the credentials, the factory lets only that
/// role see and build the stream.
fn require_credentials(
    server: &gst_rtsp_server::RTSPServer,
    factory: &gst_rtsp_server::RTSPMediaFactory,
    user: &str,
    password: &str,
) {
    const ROLE: &str = "viewer";
    let auth = gst_rtsp_server::RTSPAuth::new();
    let token = gst_rtsp_server::RTSPToken::builder()
        .field(gst_rtsp_server::RTSP_TOKEN_MEDIA_FACTORY_ROLE, ROLE)
        .build();
    auth.add_basic(
        &gst_rtsp_server::RTSPAuth::make_basic(user, password),
        &token,
    );
    server.set_auth(Some(&auth));
    factory.add_role_from_structure(
        &gst::Structure::builder(ROLE)
            .field(gst_rtsp_server::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
            .field(gst_rtsp_server::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
            .build(),
    );
}

/// Hooks each new media (one at a time: the factory is shared) to the
/// encoded tap. A shared media is unprepared when its last viewer leaves
/// and a new one is built for the next viewer, so the subscription is made
/// here, per media, and dropped when the media is unprepared.
fn feed_media_from(factory: &gst_rtsp_server::RTSPMediaFactory, context: Context) {
    let media_count = AtomicUsize::new(0);
    factory.connect_media_configure(move |_, media| {
        let element = media.element();
        let number = media_count.fetch_add(1, Ordering::Relaxed) + 1;
        let media_pipeline = top_level(&element);
        media_pipeline.set_property("name", format!("rtsp-media-{number}"));
        if let Some(pipeline) = media_pipeline.downcast_ref::<gst::Pipeline>() {
            context.timeline.apply(pipeline);
            context.inventory.register(pipeline.upcast_ref());
        }
        let appsrc = element
            .downcast_ref::<gst::Bin>()
            .and_then(|bin| bin.by_name("videosrc"))
            .and_then(|src| src.downcast::<gst_app::AppSrc>().ok());
        let Some(appsrc) = appsrc else {
            tracing::error!("RTSP media has no appsrc named videosrc; viewers get no video");
            return;
        };
        match context.taps.encoded.subscribe(&appsrc) {
            Ok(subscription) => {
                tracing::debug!(media = number, "RTSP media subscribed to the encoder");
                let subscription = Mutex::new(Some(subscription));
                media.connect_unprepared(move |_| {
                    tracing::debug!(media = number, "RTSP media unprepared; unsubscribing");
                    if let Ok(mut subscription) = subscription.lock() {
                        subscription.take();
                    }
                });
            }
            Err(err) => tracing::error!("RTSP media cannot be fed: {err:#}"),
        }
    });
}

/// The pipeline an element lives in (only an unparented object may be
/// renamed, and the top one is).
fn top_level(element: &gst::Element) -> gst::Element {
    let mut top = element.clone();
    while let Some(parent) = top.parent().and_then(|p| p.downcast::<gst::Element>().ok()) {
        top = parent;
    }
    top
}

/// Counts viewers in the registry and logs them coming and going, and
/// applies the session timeout to each new session.
fn track_viewers(
    server: &gst_rtsp_server::RTSPServer,
    sessions: crate::metrics::registry::Sessions,
    session_timeout_s: u32,
) {
    server.connect_client_connected(move |_, client| {
        let address = client_address(client);
        let (viewer, now) = sessions.join();
        tracing::info!(client = %address, clients = now, "RTSP viewer connected");
        client.connect_new_session(move |_, session| {
            session.set_timeout(session_timeout_s);
        });
        let sessions = sessions.clone();
        let viewer = Mutex::new(Some(viewer));
        client.connect_closed(move |_| {
            if let Ok(mut viewer) = viewer.lock() {
                viewer.take();
            }
            tracing::info!(
                client = %address,
                clients = sessions.count(),
                "RTSP viewer disconnected"
            );
        });
    });
}

/// The viewer's IP address. The bindings do not generate
/// `RTSPClient::connection()`, so this asks the C API directly.
fn client_address(client: &gst_rtsp_server::RTSPClient) -> String {
    use glib::translate::ToGlibPtr;
    // SAFETY: `client` is a valid GstRTSPClient for the duration of the call.
    // The connection it returns is owned by the client (transfer none) and
    // the IP string is owned by the connection; both outlive this function,
    // and the string is copied before returning.
    unsafe {
        let connection =
            gst_rtsp_server::ffi::gst_rtsp_client_get_connection(client.to_glib_none().0);
        if connection.is_null() {
            return "unknown".to_owned();
        }
        let ip = gst_rtsp::ffi::gst_rtsp_connection_get_ip(connection);
        if ip.is_null() {
            return "unknown".to_owned();
        }
        std::ffi::CStr::from_ptr(ip).to_string_lossy().into_owned()
    }
}
